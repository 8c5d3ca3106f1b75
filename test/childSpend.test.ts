// All spend counted (issue 9 item 6): a child that fails, is terminated or exhausts the budget
// still adds what it spent to its parent's usage and budget. Real dev server, real git, the
// scripted model over HTTP; the terminated child is terminated with the client, as a person would.
import type { StaticStep } from '../scripts/demo/scriptedModelServer';
import { childUsage } from '../src/activities/children';
import type { CodingTaskInput } from '../src/domain/schema';
import { Worker } from '@temporalio/worker';
import { byTitle, fix, multiRepo, parentTask, sub, titleOf } from './support/modules';
import { workflowBundle } from './support/temporal';
import { startRig, useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const parent = (repo: string, model: string, extra: Partial<CodingTaskInput>) => parentTask(rig, repo, model, extra);
const statusOf = async (workflowId: string) => (await rig.client.workflow.getHandle(workflowId).describe()).status.name;

/** The requests the scripted model received for the task titled `title`. */
const requestsFor = (model: string, title: string) => rig.model.requestsFor(model).filter((r) => titleOf(r) === title);

test("a failed child's spend is in its parent's usage (read from the child's failure details)", async () => {
  const repo = await multiRepo(rig, ['a', 'b']);
  // fix b never passes its test: two paid answers, then the child fails its workflow.
  rig.model.setDefault('cs-failed', byTitle({ 'fix a': fix('a'), 'fix b': fix('b', 'wrong') }));
  const id = `cs-failed-${Date.now()}`;
  const result = await rig.run(parent(repo, 'cs-failed', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')] }), id);

  expect(result.status).toBe('partial');
  const [a, b] = result.children!;
  expect(a.status).toBe('succeeded');
  expect(b).toMatchObject({ status: 'failed', reason: expect.stringMatching(/tests failed \(exit 1\); 2 attempt\(s\) exhausted/) });
  expect(await statusOf(b.workflowId)).toBe('FAILED');
  // The child's own result (from its failure) and its two calls: 100 in / 100 out tokens each at $1 / $2 per MTok.
  expect(b.result!.usage).toMatchObject({ calls: 2, tokensIn: 200, tokensOut: 200, costUsd: 0.0006 });
  expect(rig.model.count('cs-failed')).toBe(3);
  expect(result.usage).toMatchObject({ calls: 3, tokensIn: 300, tokensOut: 300, costUsd: 0.0009 });
  expect(result.aggregate!.usage.calls).toBe(3);
});

test('a parent budget that a failing child exhausts: the siblings never start, with the budget as the reason', async () => {
  const repo = await multiRepo(rig, ['a', 'b', 'c']);
  // The provider bills more than the reservation assumed (as reasoning models can): one answer
  // costs $1.50 = the parent's whole budget, and it does not even pass the child's tests.
  const overspend: StaticStep = { ...fix('a', 'wrong'), usage: { prompt_tokens: 1000, completion_tokens: 149_000 } };
  rig.model.setDefault('cs-budget', byTitle({ 'fix a': overspend, 'fix b': fix('b'), 'fix c': fix('c') }));
  const priced = rig.provider('cs-budget', { pricing: { inputPerMTok: 10, outputPerMTok: 10 }, maxTokens: 20_000 });
  const id = `cs-budget-${Date.now()}`;
  const result = await rig.run(
    parent(repo, 'cs-budget', {
      providers: [priced],
      subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')],
      limits: { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 1, maxCostUsd: 1.5 },
    }),
    id,
  );

  // The failing child spent it all: its next call was refused (budget_exceeded, a failed workflow).
  expect(result.children![0]).toMatchObject({ status: 'budget_exceeded' });
  expect(await statusOf(`${id}/1-fix-a`)).toBe('FAILED');
  // Its spend reached the parent's budget before the next sibling's share was computed.
  for (const c of result.children!.slice(1)) {
    expect(c).toMatchObject({ status: 'not_started', reason: 'not started: the budget is spent (maxCostUsd 1.5)' });
  }
  expect(rig.model.count('cs-budget')).toBe(1);
  expect(result.usage.costUsd).toBeCloseTo(1.5, 9);
  expect(result.usage.calls).toBe(1);
  // Nothing merged: the parent failed too, and reads as Failed.
  expect(result.status).toBe('failed');
  expect(await statusOf(id)).toBe('FAILED');
  for (const wid of [id, `${id}/1-fix-a`]) {
    await Worker.runReplayHistory({ workflowBundle: workflowBundle() }, await rig.client.workflow.getHandle(wid).fetchHistory(), wid);
  }
});

test("a terminated child's spend reaches its parent: settled calls from its last state, the call in flight as estimated", async () => {
  const repo = await multiRepo(rig, ['a', 'b']);
  // fix a: a wrong answer (paid), then a slow one it never gets — terminated while waiting.
  rig.model.setDefault('cs-term', byTitle({ 'fix a': [fix('a', 'wrong'), fix('a', 'a-done', 120_000)], 'fix b': fix('b') }));
  const id = `cs-term-${Date.now()}`;
  const handle = await rig.start(parent(repo, 'cs-term', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')] }), id);
  await rig.model.waitFor(() => requestsFor('cs-term', 'fix a').length === 2, 60_000);
  await rig.client.workflow.getHandle(`${id}/1-fix-a`).terminate('test: a person stops a runaway child');
  const result = await handle.result();

  expect(await statusOf(`${id}/1-fix-a`)).toBe('TERMINATED');
  const [a, b] = result.children!;
  expect(a).toMatchObject({ status: 'failed', reason: expect.stringMatching(/terminated/i) });
  expect(b.status).toBe('succeeded');
  expect(result.status).toBe('partial');
  // b: 1 call; a: its answered call (100/100) and the one cut off, booked at its reservation.
  expect(result.usage).toMatchObject({ calls: 3, tokensIn: 200, tokensOut: 200, costUsd: 0.0006 });
  expect(result.usage.estimatedCostUsd).toBeGreaterThan(0);
  expect(result.usage.byProvider['cs-term'].estimatedCostUsd).toBe(result.usage.estimatedCostUsd);
  // The parent's history (a failed-child path, the childUsage activity) replays deterministically.
  await Worker.runReplayHistory({ workflowBundle: workflowBundle() }, await handle.fetchHistory(), id);
});

test('childUsage: the progress query of a closed run, and the same figures from its history when no worker can answer', async () => {
  // A second worker on its own queue runs the task; once it is gone, nothing can replay it.
  const other = await startRig();
  let closed = false;
  try {
    other.model.script('cs-direct', [fix('a', 'wrong'), { hang: true }]);
    const repo = await multiRepo(other, ['a']);
    const input = { ...parentTask(other, repo, 'cs-direct', {}), task: sub('fix a', 'a'), limits: { maxAttempts: 3, testTimeoutSec: 60 }, decomposition: 'never' as const };
    const handle = await other.start(input, `cs-direct-${Date.now()}`);
    await other.model.waitFor((m) => m.count('cs-direct') === 2, 60_000);
    await handle.terminate('test');

    const byQuery = await childUsage(rig.client, { workflowId: handle.workflowId });
    expect(byQuery).toMatchObject({ source: 'query', inFlight: 1, openChildren: [] });
    expect(byQuery.usage).toMatchObject({ calls: 2, tokensIn: 100, tokensOut: 100, costUsd: 0.0003 });
    expect(byQuery.usage.estimatedCostUsd).toBeGreaterThan(0);

    await other.close();
    closed = true;
    const byHistory = await childUsage(rig.client, { workflowId: handle.workflowId }, { queryTimeoutMs: 3000 });
    expect(byHistory.source).toBe('history');
    expect(byHistory.queryError).toBeTruthy();
    expect(byHistory.usage).toEqual(byQuery.usage);
  } finally {
    if (!closed) await other.close();
  }
});
