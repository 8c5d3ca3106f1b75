// Decomposition into child workflows and task batches, end to end: real dev server, real
// git repositories (children's branches merged by the parent), the scripted model over HTTP.
import { execSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { workspaceDirFor } from '../src/activities/workspace';
import { simpleGit } from 'simple-git';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { listUnpushed, unpushedPrefix } from '../src/activities/unpushed';
import type { StaticStep } from '../scripts/demo/scriptedModelServer';
import type { BatchResult, CodingTaskInput } from '../src/domain/schema';
import { resultOf } from '../src/client';
import { WeaverStatus } from '../src/domain/searchAttributes';
import { useRig, type Rig } from './support/weaver';
import { byTitle, fix, multiRepo as multiRepoIn, parentTask as parentTaskOf, sub, withParentTests } from './support/modules';

let rig: Rig;
useRig((r) => (rig = r));

const multiRepo = (names: string[]) => multiRepoIn(rig, names);
const parentTask = (repo: string, model: string, extra: Partial<CodingTaskInput>) => parentTaskOf(rig, repo, model, extra);

/** Largest number of the given workflows running at the same moment (server start/close times). */
async function maxOverlap(ids: string[]): Promise<number> {
  const spans = await Promise.all(
    ids.map(async (id) => {
      const d = await rig.client.workflow.getHandle(id).describe();
      return [d.startTime.getTime(), d.closeTime!.getTime()] as const;
    }),
  );
  const points = spans.flatMap(([s, e]) => [[s, 1] as const, [e, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (cur += d));
  return max;
}

test('3 explicit subtasks on childConcurrency 2: documented child IDs, never more than 2 at once, merged branch passes', async () => {
  const repo = await multiRepo(['a', 'b', 'c']);
  rig.model.setDefault('d-ok', byTitle({ 'fix a': fix('a', 'a-done', 400), 'fix b': fix('b', 'b-done', 400), 'fix c': fix('c', 'c-done', 400) }));
  const id = `dec-ok-${Date.now()}`;
  const result = await rig.run(parentTask(repo, 'd-ok', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')] }), id);

  expect(result.status).toBe('succeeded');
  expect(result.children!.map((c) => c.workflowId)).toEqual([`${id}/1-fix-a`, `${id}/2-fix-b`, `${id}/3-fix-c`]);
  expect(result.aggregate).toMatchObject({ total: 3, successCount: 3, failureCount: 0, successRate: 1 });
  expect(await maxOverlap(result.children!.map((c) => c.workflowId))).toBe(2);
  // The integrated branch, pushed to the repo, holds all three fixes and passed the full tests.
  expect(result.attempts.at(-1)!.tests!.passed).toBe(true);
  for (const n of ['a', 'b', 'c']) expect(await simpleGit(repo).show([`${result.branch}:src/${n}.js`])).toContain(`${n}-done`);
  expect(result.usage.calls).toBe(3);
  expect(result.aggregate!.usage.calls).toBe(3);
});

test('without push, children hand their branches over as git bundles in the artifact store', async () => {
  const repo = await multiRepo(['a', 'b']);
  rig.model.setDefault('d-bundle', byTitle({ 'fix a': fix('a'), 'fix b': fix('b') }));
  const result = await rig.run(parentTask(repo, 'd-bundle', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')], push: false }));
  expect(result.status).toBe('succeeded');
  for (const c of result.children!) {
    expect(c.result!.bundle?.kind).toBe('git-bundle');
    // The parent's history carries a slim child result; the whole one is an artifact.
    expect(c.result!.artifacts.map((a) => a.kind)).toEqual(expect.arrayContaining(['report', 'events', 'result']));
    expect(c.result!.attempts[0].calls).toEqual([]);
    // The child's clone is gone: the parent can only have merged from the bundle.
    expect(c.result!.workspace).toBeUndefined();
    expect(c.merged).toBe(true);
  }
  // Nothing was pushed; the integrated branch lives in the parent's workspace.
  expect((await simpleGit(repo).branchLocal()).all).toEqual(['main']);
  const git = simpleGit(result.workspace!);
  for (const n of ['a', 'b']) expect(await git.show([`${result.branch}:src/${n}.js`])).toContain(`${n}-done`);
  // Each child's bundle was recorded as an unpushed commit when handed over; the parent's bundled
  // integration holds them, so only its own record is left (it names the parent's bundle).
  const records = await listUnpushed(new LocalArtifactStore(rig.artifactDir), unpushedPrefix(result.workflowId));
  expect(records.map((r) => [r.workflowId, r.bundle, r.commit])).toEqual([[result.workflowId, result.bundle!.ref, result.commit]]);
});

test('the parent workspace lost while children run: rebuilt from the same base, the pushed branches of the children merged again', async () => {
  const repo = await multiRepo(['a', 'b']);
  const id = `dec-rebuild-${Date.now()}`;
  const answers = byTitle({ 'fix a': fix('a'), 'fix b': fix('b') });
  let wiped = false;
  rig.model.setDefault('d-rebuild', async (req) => {
    // While the children work, the parent's worker "loses" its clone (disk wiped, new machine).
    if (!wiped) {
      wiped = true;
      await rm(workspaceDirFor(rig.workspaceRoot, id), { recursive: true, force: true });
    }
    return answers(req);
  });
  const result = await rig.run(parentTask(repo, 'd-rebuild', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')], push: true }), id);
  expect(wiped).toBe(true);
  expect(result.status).toBe('succeeded');
  expect(result.children!.every((c) => c.merged)).toBe(true);
  // One integration record, not one per try; two model calls in all (the children's).
  expect(result.attempts.filter((a) => a.detail === 'integration of the merged subtasks')).toHaveLength(1);
  expect(result.usage.calls).toBe(2);
  for (const n of ['a', 'b']) expect(await simpleGit(repo).show([`${result.branch}:src/${n}.js`])).toContain(`${n}-done`);
  expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
});

test('a child that fails every attempt: siblings still succeed, parent reports 2/3 partial with the reason', async () => {
  const repo = await multiRepo(['a', 'b', 'c']);
  rig.model.setDefault('d-partial', byTitle({ 'fix a': fix('a'), 'fix b': fix('b'), 'fix c': fix('c', 'wrong') }));
  const id = `dec-partial-${Date.now()}`;
  const result = await rig.run(parentTask(repo, 'd-partial', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')] }), id);

  expect(result.status).toBe('partial');
  expect(result.aggregate).toMatchObject({ total: 3, successCount: 2, failureCount: 1 });
  expect(result.children!.map((c) => c.status)).toEqual(['succeeded', 'succeeded', 'failed']);
  expect(result.reason).toContain(`${id}/3-fix-c: failed: tests failed (exit 1); 2 attempt(s) exhausted`);
  // The failed child failed its workflow (Failed in the Web UI); its result came with the failure,
  // and its two paid calls are in the parent's usage. The parent delivered merged work: Completed.
  expect((await rig.client.workflow.getHandle(`${id}/3-fix-c`).describe()).status.name).toBe('FAILED');
  expect((await rig.client.workflow.getHandle(id).describe()).status.name).toBe('COMPLETED');
  expect(result.children![2].result!.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_failed']);
  expect(result.usage.calls).toBe(4);
  // Nothing is lost: the two good children are merged and pushed.
  expect(await simpleGit(repo).show([`${result.branch}:src/a.js`])).toContain('a-done');
  expect(await simpleGit(repo).show([`${result.branch}:src/b.js`])).toContain('b-done');
});

test('two children changing the same lines: the merge conflict is reported, with the child named', async () => {
  const repo = await multiRepo(['a', 'b']);
  rig.model.setDefault('d-conflict', byTitle({ 'fix a': fix('a'), 'fix a again': fix('a', 'a-other'), 'fix b': fix('b') }));
  const id = `dec-conflict-${Date.now()}`;
  const result = await rig.run(
    parentTask(repo, 'd-conflict', {
      subtasks: [sub('fix a', 'a'), { ...sub('fix a again', 'a'), description: 'Make src/a.js return a-other.' }, sub('fix b', 'b')].map(withParentTests),
      limits: { maxAttempts: 1, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 2 },
      // The second child's own test fails (a-other ≠ a-done); make it pass so only the merge conflicts.
      testCommand: ['node', '-e', 'process.exit(0)'],
    }),
    id,
  );
  const second = result.children![1];
  expect(second.workflowId).toBe(`${id}/2-fix-a-again`);
  expect(second.status).toBe('succeeded');
  expect(second.merged).toBe(false);
  expect(second.conflict).toMatch(/merge conflict in src\/a\.js/);
  expect(result.reason).toContain(`${id}/2-fix-a-again: merge conflict in src/a.js`);
  expect(result.status).toBe('partial');
  expect(result.children!.filter((c) => c.merged).map((c) => c.title)).toEqual(['fix a', 'fix b']);
});

test('auto: the model proposes subtasks; at maxDepth a child may not split further (recorded why)', async () => {
  const repo = await multiRepo(['a', 'b']);
  const split = (titles: string[]): StaticStep => ({ content: { summary: 'split', subtasks: titles.map((t) => sub(t, t.slice(-1))) } });
  rig.model.setDefault(
    'd-auto',
    byTitle({
      'Finish every module': split(['fix a', 'fix b']),
      'fix a': [split(['fix a part 1', 'fix a part 2']), fix('a')],
      'fix b': fix('b'),
    }),
  );
  const result = await rig.run(parentTask(repo, 'd-auto', {}));
  expect(result.status).toBe('succeeded');
  expect(result.attempts[0]).toMatchObject({ outcome: 'subtasks_proposed', decision: { action: 'decompose' } });
  const childA = result.children![0].result!;
  expect(childA.attempts[0].decision).toMatchObject({ action: 'retry' });
  expect(childA.attempts[0].decision.why).toMatch(/depth 1 reached maxDepth 1/);
  expect(childA.children).toBeUndefined();
});

test('a parent budget that covers two children but not three: the third does not spend, total within the limit', async () => {
  const repo = await multiRepo(['a', 'b', 'c']);
  const big = (n: string): StaticStep => ({ ...fix(n), usage: { prompt_tokens: 1000, completion_tokens: 60_000 } });
  rig.model.setDefault('d-budget', byTitle({ 'fix a': big('a'), 'fix b': big('b'), 'fix c': big('c') }));
  const priced = rig.provider('d-budget', { pricing: { inputPerMTok: 10, outputPerMTok: 10 }, maxTokens: 60_000 });
  const result = await rig.run(
    parentTask(repo, 'd-budget', {
      providers: [priced],
      subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')],
      limits: { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 1, maxCostUsd: 1.5 },
    }),
  );
  expect(rig.model.count('d-budget')).toBe(2);
  expect(['budget_exceeded', 'not_started']).toContain(result.children![2].status);
  expect(result.usage.costUsd).toBeLessThanOrEqual(1.5);
  expect(result.usage.costUsd).toBeCloseTo(1.22, 6);
  expect(result.aggregate).toMatchObject({ successCount: 2, failureCount: 1 });
});

test('cancelling the parent cancels running children, waits for their cleanup, and leaves no test process behind', async () => {
  const repo = await multiRepo(['a', 'b', 'c']);
  const marker = `weaver-cancel-${Date.now()}`;
  rig.model.setDefault('d-cancel', byTitle({ 'fix a': fix('a'), 'fix b': fix('b'), 'fix c': fix('c') }));
  const id = `dec-cancel-${Date.now()}`;
  const handle = await rig.start(
    parentTask(repo, 'd-cancel', {
      subtasks: [sub('fix a', 'a'), sub('fix b', 'b'), sub('fix c', 'c')].map(withParentTests),
      // argv form: one process per child. It ignores SIGTERM, so each child's cleanup takes
      // the kill grace period: the parent must wait for it rather than finish first.
      testCommand: ['node', '-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)", marker],
    }),
    id,
  );
  const running = () => execSync(`ps -eo stat=,args= | grep '${marker}' | grep -v grep | grep -v bwrap | grep -v '^Z' || true`).toString().trim().split('\n').filter(Boolean).length;
  const deadline = Date.now() + 30_000;
  while (running() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(running()).toBe(2);

  await handle.cancel();
  const result = await resultOf(handle);
  expect(result.status).toBe('cancelled');
  expect(result.children!.map((c) => c.status)).toEqual(['cancelled', 'cancelled', 'not_started']);
  expect(result.reason).toMatch(/children finished: none/);
  // The children completed their own cleanup (not terminated by the parent closing)…
  for (const c of result.children!.slice(0, 2)) {
    expect((await rig.client.workflow.getHandle(c.workflowId).describe()).status.name).toBe('COMPLETED');
  }
  // …so their paid calls are in the parent's usage, and no test process is left.
  expect(result.usage.calls).toBe(2);
  expect(running()).toBe(0);
});

test('taskBatch: 5 tasks, concurrency 2, one failing → 4/5, results in input order', async () => {
  const repo = await multiRepo(['a', 'b', 'c', 'd', 'e']);
  const names = ['a', 'b', 'c', 'd', 'e'];
  rig.model.setDefault('d-batch', byTitle(Object.fromEntries(names.map((n) => [`fix ${n}`, fix(n, n === 'c' ? 'nope' : `${n}-done`, 200)]))));
  const tasks = names.map((n) => ({
    ...parentTask(repo, 'd-batch', {}),
    task: sub(`fix ${n}`, n),
    testCommand: ['node', '--test', `test/${n}.test.js`],
    limits: { maxAttempts: 1, testTimeoutSec: 60 },
    decomposition: 'never' as const,
  }));
  const id = `batch-${Date.now()}`;
  const handle = await rig.client.workflow.start('taskBatch', { taskQueue: rig.taskQueue, workflowId: id, args: [{ tasks, concurrency: 2 }] });
  const batch = (await handle.result()) as BatchResult;

  expect(batch.results.map((r) => r.workflowId)).toEqual(names.map((n, i) => `${id}/${i + 1}-fix-${n}`));
  expect(batch.results.map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'failed', 'succeeded', 'succeeded']);
  expect(batch.aggregate).toMatchObject({ total: 5, successCount: 4, failureCount: 1, successRate: 0.8 });
  expect(batch.aggregate.usage.calls).toBe(5);
  expect(await maxOverlap(batch.results.map((r) => r.workflowId))).toBeLessThanOrEqual(2);
  // The batch itself reads right in a WeaverStatus filter: 4 of 5 is partial.
  expect((await handle.describe()).typedSearchAttributes.get(WeaverStatus)).toBe('partial');
});
