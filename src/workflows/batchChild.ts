// One task of a taskBatch as a child codingTask, failure-independent: however it ends (bar a
// cancellation of the batch), a slim result takes its slot and counts in the totals.
import { executeChild, isCancellation } from '@temporalio/workflow';
import type { CodingTaskInput, CodingTaskResult } from '../domain/schema';
import { slimResult } from '../domain/slim';
import { slugify } from '../domain/slug';
import { emptyUsage } from '../domain/usage';
import { childEnd, childTaskTimeout } from './children';
import type { codingTask } from './codingTask';

/** The child's workflow id: the batch's, its 1-based index and its title (deterministic: one id per slot). */
export function batchChildId(batchId: string, i: number, title: string): string {
  return `${batchId}/${i + 1}-${slugify(title, 30)}`;
}

/** A failed row for task `i` that never ran or left no result. */
export function failedRow(id: string, task: Pick<CodingTaskInput, 'branch'>, reason: string, extra: Partial<CodingTaskResult> = {}): CodingTaskResult {
  const branch = task.branch ?? `weaver/${id.replace(/\//g, '--')}`;
  return { workflowId: id, status: 'failed', reason, branch, attempts: [], usage: emptyUsage(), artifacts: [], ...extra };
}

export async function runBatchChild(batchId: string, i: number, task: CodingTaskInput): Promise<CodingTaskResult> {
  const id = batchChildId(batchId, i, task.task.title);
  try {
    const result = await executeChild<typeof codingTask>('codingTask', { workflowId: id, args: [task], memo: { title: task.task.title, batch: batchId }, ...childTaskTimeout() });
    return slimResult(result);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // One task's failure never cancels the others: its result (from the failure's details), or
    // a failed one with the spend found for it, takes its slot and counts in the totals.
    const end = await childEnd(err, id);
    if ('result' in end) return slimResult(end.result);
    return failedRow(id, task, end.reason, { usage: end.usage ?? emptyUsage(), ...(end.note ? { warnings: [end.note] } : {}) });
  }
}
