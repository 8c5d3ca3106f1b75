// taskBatch: independent codingTasks as children, bounded concurrency, fail-independent.
import { ApplicationFailure, executeChild, upsertSearchAttributes, isCancellation, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { batchWithoutLegacyKeyNames } from '../domain/registry';
import { stripTaskCredentials } from '../domain/repoUrl';
import { emptyUsage, mergeUsage } from '../domain/usage';
import { formatZodIssues, TaskBatchInputSchema, type BatchResult, type CodingTaskResult, type TaskBatchInput } from '../domain/schema';
import { resultRows, slimResult } from '../domain/slim';
import { slugify } from '../domain/slug';
import { WeaverStatus } from '../domain/searchAttributes';
import { REFUSED } from '../domain/taskOutcome';
import { DEFAULT_PROMPT_BUDGET } from '../domain/models';
import { childEnd, childTaskTimeout, runBounded, runWindowed } from './children';
import { quotaWindowOf } from './quotaWindow';
import { codingTask } from './codingTask';
import { batchProgressQuery } from './messages';

const MAX_INLINE_RESULTS_BYTES = 1_000_000;


export async function taskBatch(raw: TaskBatchInput): Promise<BatchResult> {
  // Batches started before the provider registry named key env vars (apiKeyEnv) in their tasks:
  // they replay as they ran, the names dropped (their children take keys from the registry).
  const parsed = TaskBatchInputSchema.safeParse(patched('provider-registry') ? raw : batchWithoutLegacyKeyNames(raw));
  // A batch carries a WeaverStatus too (a `WeaverStatus` filter finds refused and unfinished
  // batches). Versioned: batches started before replay as they ran.
  const statuses = patched('batch-weaver-status');
  if (!parsed.success) {
    if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: REFUSED }]);
    throw ApplicationFailure.nonRetryable(`invalid batch input: ${formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  const { concurrency } = parsed.data;
  // Credentials in a task's repo / push.remote URL never reach the children's inputs (the
  // worker supplies git credentials); versioned so that runs started before replay as they ran.
  const cleaned = parsed.data.tasks.map((t) => stripTaskCredentials(t));
  const tasks = cleaned.some((c) => c.stripped.length) && patched('strip-url-credentials') ? cleaned.map((c) => c.input) : parsed.data.tasks;
  const { workflowId } = workflowInfo();
  let running = 0;
  let finished = 0;
  let successCount = 0;
  setHandler(batchProgressQuery, () => ({ workflowId, total: tasks.length, running, finished, successCount }));
  if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: 'running' }]);

  // Runs since QUOTA_WINDOW launch within the quota their providers last reported (src/workflows/quotaWindow.ts).
  const window = quotaWindowOf([...new Set(tasks.flatMap((t) => t.providers.map((p) => p.id)))], concurrency, { tokensPerChild: DEFAULT_PROMPT_BUDGET });
  const runChild = async (i: number): Promise<CodingTaskResult> => {
    const id = `${workflowId}/${i + 1}-${slugify(tasks[i].task.title, 30)}`;
    running += 1;
    try {
      const result = await executeChild(codingTask, { workflowId: id, args: [tasks[i]], memo: { title: tasks[i].task.title, batch: workflowId }, ...childTaskTimeout() });
      if (result.status === 'succeeded') successCount += 1;
      return slimResult(result);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // One task's failure never cancels the others: its result (from the failure's details), or
      // a failed one with the spend found for it, takes its slot and counts in the totals.
      const end = await childEnd(err, id);
      if ('result' in end) return slimResult(end.result);
      const branch = tasks[i].branch ?? `weaver/${id.replace(/\//g, '--')}`;
      return { workflowId: id, status: 'failed', reason: end.reason, branch, attempts: [], usage: end.usage ?? emptyUsage(), artifacts: [], ...(end.note ? { warnings: [end.note] } : {}) };
    } finally {
      running -= 1;
      finished += 1;
    }
  };
  const results = await (window ? runWindowed(tasks.length, window, runChild) : runBounded(tasks.length, concurrency, runChild));
  const aggregate = {
    total: results.length,
    successCount,
    failureCount: results.length - successCount,
    successRate: results.length ? successCount / results.length : 0,
    usage: mergeUsage(...results.map((r) => r.usage)),
  };
  if (statuses) upsertSearchAttributes([{ key: WeaverStatus, value: successCount === results.length ? 'succeeded' : successCount ? 'partial' : 'failed' }]);
  return { results: resultRows(results, MAX_INLINE_RESULTS_BYTES), aggregate };
}

