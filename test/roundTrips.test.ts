// Fewer round trips (runs since LEAN_ROUND_TRIPS) and a lean workflow bundle that still maps
// workflow stack traces to Weaver's sources: asserted on finished runs' histories.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { workspaceDirFor } from '../src/activities/workspace';
import { WeaverAttempt, WeaverCostUsd, WeaverPhase, WeaverStatus } from '../src/domain/searchAttributes';
import { FOLD_ROUND_TRIPS, LEAN_ROUND_TRIPS } from '../src/workflows/task';
import { PATCH_EPOCH } from '../src/workflows/patches';
import { COMMIT_WITH_CHECKS } from '../src/workflows/commit';
import { historyShape } from './support/histories';
import { answer, GOOD } from './support/replayShapes';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

test('a pushed one-attempt task: bookkeeping as local activities, the clone removed by the commit, one upsert per status change', async () => {
  const repo = await rig.newRepo();
  rig.model.script('rt-lean', [answer(GOOD)]);
  const result = await rig.run(rig.task(repo, [rig.provider('rt-lean')], { push: true }));
  expect(result).toMatchObject({ status: 'succeeded', pushed: true });
  expect(result.attempts).toHaveLength(1);

  const shape = historyShape(await rig.client.workflow.getHandle(result.workflowId).fetchHistory());
  expect(shape.patches).toEqual(expect.arrayContaining([LEAN_ROUND_TRIPS, FOLD_ROUND_TRIPS]));
  // Every workflow change in effect through one marker (the patch epoch): one TemporalChangeVersion upsert, not one per change.
  expect(shape.patchMarkers).toEqual([PATCH_EPOCH]);
  expect(shape.changeVersionUpserts).toBe(1);
  // Providers resolved and the events and report stored by the worker running the workflow task.
  expect(shape.localActivities).toEqual({ resolveProviders: 1, storeArtifact: 2 });
  // On the task queues: only the work itself (no resolveProviders, storeArtifact, releaseWorkspace);
  // since FOLD_ROUND_TRIPS the first prompt is built with the workspace, and the change applied
  // and checked in one activity (not buildPrompt, applyChange, runCheck); since COMMIT_WITH_CHECKS
  // that activity also commits and pushes when every check passed (no commitAndPush).
  expect(shape.patches).toContain(COMMIT_WITH_CHECKS);
  expect(shape.activities).toEqual({ prepareWorkspace: 1, generateChange: 1, applyChangeAndCheck: 1 });
  expect(shape.workflowTasks).toBe(4);
  // Pushed, so the commit's activity removed the clone: no result names it, and it is gone.
  expect(result.workspace).toBeUndefined();
  expect(existsSync(workspaceDirFor(rig.workspaceRoot, result.workflowId))).toBe(false);
  // `running` was set by the client at start; one status change (succeeded) is one upsert, with
  // where the run got to. Runs before upserted three attributes at every phase.
  expect(shape.upserts).toEqual([['WeaverAttempt', 'WeaverCostUsd', 'WeaverPhase', 'WeaverStatus']]);
  const attrs = (await rig.client.workflow.getHandle(result.workflowId).describe()).typedSearchAttributes;
  expect([attrs.get(WeaverStatus), attrs.get(WeaverPhase), attrs.get(WeaverAttempt), attrs.get(WeaverCostUsd)]).toEqual(['succeeded', 'done', 1, result.usage.costUsd]);
});

test("a workflow's failure carries a stack trace mapped to Weaver's source files (the lean bundle's source map)", async () => {
  // Around the client (which validates): the workflow itself refuses the input and throws.
  const handle = await rig.client.workflow.start('codingTask', {
    taskQueue: rig.taskQueue,
    workflowId: `rt-stack-${Date.now()}`,
    args: [{ repo: await rig.newRepo(), task: { title: 'no providers', description: 'x' }, providers: [] }],
  });
  const err = await handle.result().then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as Error & { type?: string };
  expect(cause.type).toBe('InvalidTaskInput');
  // The frame where it was thrown: codingTask.ts under src/, at the line of the throw.
  const source = (await readFile(path.join(__dirname, '..', 'src', 'workflows', 'codingTask.ts'), 'utf8')).split('\n');
  const line = source.findIndex((l) => l.includes('invalid task input')) + 1;
  expect(line).toBeGreaterThan(0);
  expect(cause.stack).toMatch(new RegExp(`\\(\\S*src/workflows/codingTask\\.ts:${line}:\\d+\\)`));
});
