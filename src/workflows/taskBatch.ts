// taskBatch: independent codingTasks as children, bounded concurrency, fail-independent.
import { ApplicationFailure, executeChild, isCancellation, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { batchWithoutLegacyKeyNames } from '../domain/registry';
import { stripTaskCredentials } from '../domain/repoUrl';
import { emptyUsage, mergeUsage } from '../domain/usage';
import { formatZodIssues, TaskBatchInputSchema, type BatchResult, type CodingTaskResult, type TaskBatchInput } from '../domain/schema';
import { resultRows, slimResult } from '../domain/slim';
import { slugify } from '../domain/slug';
import { runBounded } from './children';
import { codingTask } from './codingTask';
import { batchProgressQuery } from './messages';

const MAX_INLINE_RESULTS_BYTES = 1_000_000;


export async function taskBatch(raw: TaskBatchInput): Promise<BatchResult> {
  // Batches started before the provider registry named key env vars (apiKeyEnv) in their tasks:
  // they replay as they ran, the names dropped (their children take keys from the registry).
  const parsed = TaskBatchInputSchema.safeParse(patched('provider-registry') ? raw : batchWithoutLegacyKeyNames(raw));
  if (!parsed.success) {
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

  const results = await runBounded(tasks.length, concurrency, async (i): Promise<CodingTaskResult> => {
    const id = `${workflowId}/${i + 1}-${slugify(tasks[i].task.title, 30)}`;
    running += 1;
    try {
      const result = await executeChild(codingTask, { workflowId: id, args: [tasks[i]], memo: { title: tasks[i].task.title, batch: workflowId } });
      if (result.status === 'succeeded') successCount += 1;
      return slimResult(result);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // One task's crash never cancels the others: it becomes a failed result in its slot.
      const reason = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      return { workflowId: id, status: 'failed', reason, branch: tasks[i].branch ?? `weaver/${id.replace(/\//g, '--')}`, attempts: [], usage: emptyUsage(), artifacts: [] };
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
  return { results: resultRows(results, MAX_INLINE_RESULTS_BYTES), aggregate };
}

