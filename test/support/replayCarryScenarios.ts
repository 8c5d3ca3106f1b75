// Replay scenarios of runs that continue as new: a batch's window (its first run, which hands
// over, and its last, which reads the stored tasks and pages its results) and an attempt loop
// past its history threshold (the run that hands over, and the one that resumes from the carry).
// A kept history is named `<workflowId>#<runId>` when it is not the workflow's latest run.
import { resultOf, startTaskBatch } from '../../src/client';
import type { BatchResult, CodingTaskResult } from '../../src/domain/schema';
import { byTitle, fix, multiRepo, parentTask, sub } from './modules';
import { answer, BAD, check, GOOD, type ReplayScenario } from './replayShapes';
import type { Rig } from './weaver';

/** Three tiny tasks, two children per run: the first run hands over after two. */
async function windowedBatch(rig: Rig, id: string): Promise<{ firstRunId: string; batch: BatchResult }> {
  const repo = await multiRepo(rig, ['a', 'b', 'c']);
  rig.model.setDefault('rs-window', byTitle({ 'fix a': fix('a'), 'fix b': fix('b', 'nope'), 'fix c': fix('c') }));
  const tasks = ['a', 'b', 'c'].map((n) => ({
    ...parentTask(rig, repo, 'rs-window', {}),
    task: sub(`fix ${n}`, n),
    testCommand: ['node', '--test', `test/${n}.test.js`],
    limits: { maxAttempts: 1, testTimeoutSec: 60 },
    decomposition: 'never' as const,
  }));
  const h = await startTaskBatch({ tasks, concurrency: 2, pageSize: 2, continueAfter: 2 }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: id });
  const batch = (await h.result()) as BatchResult;
  check(batch.aggregate.total === 3 && batch.aggregate.successCount === 2 && batch.pages?.length === 2, '3 tasks, 2 succeeded, 2 pages', batch.aggregate);
  return { firstRunId: h.firstExecutionRunId, batch };
}

/** Three attempts (bad, bad, good) under the least history threshold: the loop continues as new after the first. */
async function carriedAttempts(rig: Rig, id: string): Promise<{ firstRunId: string; result: CodingTaskResult }> {
  rig.model.script(`rs-carry-${id}`, [answer(BAD), answer(BAD), answer(GOOD)]);
  const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider(`rs-carry-${id}`)], { limits: { maxAttempts: 3, testTimeoutSec: 60, historyEvents: 50 }, decomposition: 'never' }), id);
  const firstRunId = (await h.describe()).runId;
  const result = await resultOf(h);
  check(result.status === 'succeeded' && result.attempts.length === 3 && result.usage.calls === 3, 'succeeded on attempt 3 with 3 calls', [result.status, result.usage.calls]);
  return { firstRunId, result };
}

export const CARRY_SCENARIOS: ReplayScenario[] = [
  {
    name: 'batch-window-handover',
    about: 'taskBatch since batch-window: the first run starts two children, stores its tasks and a page, and continues as new',
    expect: { closed: 'CONTINUED_AS_NEW', workflowType: 'taskBatch', children: 2, activities: { storeArtifact: 2 }, patches: ['batch-window'] },
    run: async (rig, id) => {
      const { firstRunId, batch } = await windowedBatch(rig, id);
      check(batch.results.length === 0, "no rows inline after a continue-as-new", batch.results.length);
      return [`${id}#${firstRunId}`, `${id}/1-fix-a`, `${id}/2-fix-b`];
    },
  },
  {
    name: 'batch-window-last-run',
    about: 'taskBatch since batch-window: the last run reads its task from the store, runs it, pages the result and returns the totals',
    expect: { closed: 'COMPLETED', workflowType: 'taskBatch', children: 1, activities: { readBatchTasks: 1, storeArtifact: 1 } },
    run: async (rig, id) => {
      await windowedBatch(rig, id);
      return [id, `${id}/3-fix-c`];
    },
  },
  {
    name: 'attempts-handover',
    about: 'codingTask past limits.historyEvents: after a failed attempt the loop continues as new with its ledger',
    expect: { closed: 'CONTINUED_AS_NEW', activities: { generateChange: 1, rollbackWorkspace: 1 }, patches: ['attempts-continue-as-new'] },
    run: async (rig, id) => [`${id}#${(await carriedAttempts(rig, id)).firstRunId}`],
  },
  {
    name: 'attempts-resumed',
    about: 'codingTask resumed from a carry: the next attempts on the same workspace, committed, the ledger whole',
    expect: { closed: 'COMPLETED', activities: { generateChange: 1, commitAndPush: 1 } },
    run: async (rig, id) => {
      await carriedAttempts(rig, id);
      return [id];
    },
  },
];
