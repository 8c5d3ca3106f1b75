// Fewer round trips (runs since LEAN_ROUND_TRIPS) and a lean workflow bundle that still maps
// workflow stack traces to Weaver's sources: asserted on finished runs' histories.
import { existsSync } from 'node:fs';
import { WorkflowFailedError } from '@temporalio/client';
import { workspaceDirFor } from '../src/activities/workspace';
import { WeaverAttempt, WeaverCostUsd, WeaverPhase, WeaverStatus } from '../src/domain/searchAttributes';
import { LEAN_ROUND_TRIPS } from '../src/workflows/task';
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
  expect(shape.patches).toContain(LEAN_ROUND_TRIPS);
  // Providers resolved and the events and report stored by the worker running the workflow task.
  expect(shape.localActivities).toEqual({ resolveProviders: 1, storeArtifact: 2 });
  // On the task queues: only the work itself (no resolveProviders, storeArtifact, releaseWorkspace).
  expect(shape.activities).toEqual({ prepareWorkspace: 1, buildPrompt: 1, generateChange: 1, applyChange: 1, runCheck: 1, commitAndPush: 1 });
  // Pushed, so the commit's activity removed the clone: no result names it, and it is gone.
  expect(result.workspace).toBeUndefined();
  expect(existsSync(workspaceDirFor(rig.workspaceRoot, result.workflowId))).toBe(false);
  // Two status changes (running, then succeeded): two upserts, the last with where the run got to.
  expect(shape.upserts).toEqual([
    ['WeaverRepo', 'WeaverStatus'],
    ['WeaverAttempt', 'WeaverCostUsd', 'WeaverPhase', 'WeaverStatus'],
  ]);
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
  // The frame where it was thrown: a TypeScript file under src/, with line and column.
  expect(cause.stack).toMatch(/at codingTask \(\S*\/src\/workflows\/codingTask\.ts:\d+:\d+\)/);
});
