// taskBatch as it ran before `batch-window`: the whole batch in one input, every result kept in
// one run's history. Kept so that batches started before replay as they ran.
import { ApplicationFailure, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { patched } from './patches';
import { batchWithoutLegacyKeyNames } from '../domain/registry';
import { stripTaskCredentials } from '../domain/repoUrl';
import { mergeUsage } from '../domain/usage';
import { formatZodIssues, TaskBatchInputSchema, type BatchResult, type CodingTaskResult, type TaskBatchInput } from '../domain/schema';
import { resultRows } from '../domain/slim';
import { WeaverStatus } from '../domain/searchAttributes';
import { REFUSED } from '../domain/taskOutcome';
import { runBounded } from './children';
import { runBatchChild } from './batchChild';
import { batchProgressQuery } from './messages';

const MAX_INLINE_RESULTS_BYTES = 1_000_000;

/** The batch's end as WeaverStatus: all, some or none of its tasks succeeded. */
export function batchStatus(successCount: number, total: number): 'succeeded' | 'partial' | 'failed' {
  return successCount === total ? 'succeeded' : successCount ? 'partial' : 'failed';
}

export async function legacyBatch(raw: TaskBatchInput): Promise<BatchResult> {
  // Batches started before the provider registry named key env vars (apiKeyEnv) in their tasks:
  // they replay as they ran, the names dropped (their children take keys from the registry).
  const parsed = TaskBatchInputSchema.safeParse(patched('provider-registry') ? raw : batchWithoutLegacyKeyNames(raw));
  // A batch carries a WeaverStatus too (a `WeaverStatus` filter finds refused and unfinished
  // batches). Versioned: batches started before replay as they ran.
  const statuses = patched('batch-weaver-status');
  if (!parsed.success || !parsed.data.tasks) {
    if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: REFUSED }]);
    throw ApplicationFailure.nonRetryable(`invalid batch input: ${parsed.success ? 'no tasks' : formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  const { concurrency } = parsed.data;
  const given = parsed.data.tasks;
  // Credentials in a task's repo / push.remote URL never reach the children's inputs (the
  // worker supplies git credentials); versioned so that runs started before replay as they ran.
  const cleaned = given.map((t) => stripTaskCredentials(t));
  const tasks = cleaned.some((c) => c.stripped.length) && patched('strip-url-credentials') ? cleaned.map((c) => c.input) : given;
  const { workflowId } = workflowInfo();
  let running = 0;
  let finished = 0;
  let successCount = 0;
  setHandler(batchProgressQuery, () => ({ workflowId, total: tasks.length, running, finished, successCount }));
  if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: 'running' }]);

  const results = await runBounded(tasks.length, concurrency, async (i): Promise<CodingTaskResult> => {
    running += 1;
    try {
      const result = await runBatchChild(workflowId, i, tasks[i]);
      if (result.status === 'succeeded') successCount += 1;
      return result;
    } finally {
      running -= 1;
      finished += 1;
    }
  });
  const aggregate = {
    total: results.length,
    successCount,
    failureCount: results.length - successCount,
    successRate: results.length ? successCount / results.length : 0,
    usage: mergeUsage(...results.map((r) => r.usage)),
  };
  if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: batchStatus(successCount, results.length) }]);
  return { results: resultRows(results, MAX_INLINE_RESULTS_BYTES), aggregate };
}
