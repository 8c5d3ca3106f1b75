// Quota-adaptive concurrency end to end (issue 19 item 3): real dev server and worker, the real
// openai SDK to the scripted model server, which sends OpenAI's x-ratelimit-* headers. What the
// provider said reaches its providerQuota workflow; a batch launches its children within it.
import type { WorkflowHandle } from '@temporalio/client';
import type { AnswerStep } from '../scripts/demo/scriptedModelServer';
import { reportQuota } from '../src/activities/quota';
import { startTaskBatch } from '../src/client';
import { QUOTA_REPORTS_PER_RUN, quotaWorkflowId, type QuotaState } from '../src/domain/quota';
import type { BatchResult } from '../src/domain/schema';
import { timerSummaries } from './support/calls';
import { byTitle, fix, multiRepo, parentTask, sub } from './support/modules';
import { activitiesOf, waitUntil } from './support/processes';
import { answer, GOOD } from './support/replayShapes';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const limited = (remaining: number, reset: string) => ({ 'x-ratelimit-remaining-requests': String(remaining), 'x-ratelimit-reset-requests': reset });

/** Pairs of intervals that overlap. */
const overlaps = (spans: { from: number; to: number }[]) => spans.flatMap((a, i) => spans.slice(i + 1).filter((b) => a.from < b.to && b.from < a.to).map((b) => [a, b]));

/** When each workflow ran, as Temporal recorded it. */
async function childSpans(ids: string[]): Promise<{ id: string; from: number; to: number }[]> {
  return Promise.all(
    ids.map(async (id) => {
      const d = await rig.client.workflow.getHandle(id).describe();
      return { id, from: d.startTime.getTime(), to: d.closeTime!.getTime() };
    }),
  );
}

async function startBatch(model: string, count: number, concurrency: number, id: string): Promise<WorkflowHandle> {
  const spec = rig.provider(model);
  const tasks = [];
  for (let i = 0; i < count; i++) tasks.push(rig.task(await rig.newRepo(), [spec], { decomposition: 'never' }));
  return startTaskBatch({ tasks, concurrency }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: id });
}

test('x-ratelimit-remaining-requests: 2 → a batch of 8 (concurrency 4) runs one child at a time until the provider reports its reset, then widens', async () => {
  const model = `qw-two-${Date.now()}`;
  // The provider has 2 requests left (resetting in a minute) for the first 4 requests (a warm-up
  // call and 3 of the batch's), then reports its quota reset: 500 left.
  const LIMITED = 4;
  rig.model.setDefault(model, () => ({ ...answer(GOOD, 300), headers: rig.model.count(model) <= LIMITED ? limited(2, '1m0s') : limited(500, '1s') }));
  // A provider's quota is known once it has answered: this run's call tells its quota workflow.
  const warm = await rig.run(rig.task(await rig.newRepo(), [rig.provider(model)], { decomposition: 'never' }));
  expect(warm.status).toBe('succeeded');
  const quota = await rig.client.workflow.getHandle(quotaWorkflowId(model)).query<QuotaState | null>('quota');
  expect(quota?.requests?.remaining).toBe(2);

  const handle = await startBatch(model, 8, 4, `quota-two-${Date.now()}`);
  const batch = (await handle.result()) as BatchResult;
  expect(batch.aggregate.successCount).toBe(8);
  const spans = await childSpans(batch.results.map((r) => r.workflowId));
  // The children that started while the provider said "2 left" (the first LIMITED - 1 = 3, as each
  // child makes one call) ran one at a time: no two overlap, in Temporal's record and at the server.
  const whileLimited = spans.slice(0, LIMITED - 1);
  expect(overlaps(whileLimited)).toEqual([]);
  const requests = rig.model.requests.filter((r) => r.model === model);
  expect(requests).toHaveLength(9);
  const limitedCalls = requests.slice(1, LIMITED).map((r) => ({ from: r.receivedAt, to: r.finishedAt! }));
  expect(overlaps(limitedCalls)).toEqual([]);
  // Once the provider reported its reset (500 left: a window of min(4, 250)), the rest ran together.
  expect(overlaps(spans.slice(LIMITED - 1)).length).toBeGreaterThan(0);
});

test('one request left → the batch waits for the reset on a durable timer before launching, instead of sending the call that starts a 429 storm', async () => {
  const model = `qw-one-${Date.now()}`;
  let resetAt = 0;
  rig.model.setDefault(model, () => {
    if (rig.model.count(model) > 1) return { ...answer(GOOD), headers: limited(500, '1s') };
    resetAt = Date.now() + 3000;
    return { ...answer(GOOD), headers: limited(1, '3s') };
  });
  expect((await rig.run(rig.task(await rig.newRepo(), [rig.provider(model)], { decomposition: 'never' }))).status).toBe('succeeded');

  const handle = await startBatch(model, 2, 2, `quota-one-${Date.now()}`);
  const batch = (await handle.result()) as BatchResult;
  expect(batch.aggregate.successCount).toBe(2);
  expect(await timerSummaries(handle)).toEqual([expect.stringMatching(new RegExp(`^quota: ${model}: 1 request\\(s\\) left until its reset`))]);
  // The batch's first call reached the provider only after the reset it was told of.
  const [, first] = rig.model.requests.filter((r) => r.model === model);
  expect(first.receivedAt).toBeGreaterThanOrEqual(resetAt - 50);
});

test('a decomposition scales its children by the quota too: 2 requests left → its 3 subtasks (childConcurrency 3) run one at a time', async () => {
  const model = `qw-dec-${Date.now()}`;
  const repo = await multiRepo(rig, ['a', 'b', 'c', 'w']);
  const answers = byTitle({ 'fix a': fix('a', undefined, 200), 'fix b': fix('b', undefined, 200), 'fix c': fix('c', undefined, 200), 'fix w': fix('w') });
  rig.model.setDefault(model, (req) => ({ ...(answers(req) as AnswerStep), headers: limited(2, '1m0s') }));
  // The provider's quota becomes known with a first call.
  const warm = await rig.run({ ...parentTask(rig, repo, model, { push: false }), task: sub('fix w', 'w'), testCommand: ['node', '--test', 'test/w.test.js'], decomposition: 'never' });
  expect(warm.status).toBe('succeeded');

  const id = `quota-dec-${Date.now()}`;
  const limits = { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 3 };
  const result = await rig.run(parentTask(rig, repo, model, { push: false, limits, subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')] }), id);
  expect(result.children?.map((c) => c.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  expect(overlaps(await childSpans(result.children!.map((c) => c.workflowId)))).toEqual([]);
  // Asked before each launch.
  expect((await activitiesOf(rig.client, id)).filter((a) => a.type === 'readQuotas').length).toBeGreaterThanOrEqual(3);
});

test('the quota workflow continues as new after 500 reports and keeps the newest reading across runs', async () => {
  const provider = `qw-can-${Date.now()}`;
  const t0 = Date.now();
  for (let i = 0; i <= QUOTA_REPORTS_PER_RUN; i++) {
    await reportQuota(rig.client, rig.taskQueue, { provider, observedAt: t0 + i, requests: { remaining: 10_000 - i, resetAt: t0 + 60_000 } });
  }
  const handle = rig.client.workflow.getHandle(quotaWorkflowId(provider));
  let state: QuotaState | null = null;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    state = await handle.query<QuotaState | null>('quota');
    if (state?.requests?.remaining === 10_000 - QUOTA_REPORTS_PER_RUN) break;
  }
  // The last report (past the threshold) landed in the new run, on top of the carried-over state.
  expect(state?.requests?.remaining).toBe(10_000 - QUOTA_REPORTS_PER_RUN);
  const runs = async () => {
    const found: string[] = [];
    for await (const wf of rig.client.workflow.list({ query: `WorkflowId="${quotaWorkflowId(provider)}"` })) found.push(wf.status.name);
    return found.sort().join();
  };
  await waitUntil('both runs listed', async () => (await runs()) === 'CONTINUED_AS_NEW,RUNNING', 20_000);
});
