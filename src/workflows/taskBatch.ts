// taskBatch: independent codingTasks as children, a sliding window of `concurrency` of them,
// fail-independent. Batches of thousands (since `batch-window`): the tasks come inline (a small
// batch) or as a JSON Lines list in the artifact store, read a page at a time; the results go to
// the store in pages, in input order; every `continueAfter` children (or when Temporal suggests
// it) the batch continues as new, carrying its counters, so no run's history grows with the batch.
import { ApplicationFailure, makeContinueAsNewFunc, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { patched } from './patches';
import { BATCH_PAGE_KIND, BATCH_TASKS_KIND, MAX_PAGE_BYTES, PageBuffer, toJsonLines, type BatchCarry } from '../domain/batch';
import { WORKFLOW_TASK_TIMEOUT } from '../domain/liveness';
import { stripTaskCredentials } from '../domain/repoUrl';
import {
  CodingTaskInputSchema,
  formatZodIssues,
  TaskBatchInputSchema,
  type ArtifactRef,
  type BatchResult,
  type CodingTaskInput,
  type CodingTaskResult,
  type ParsedTaskBatchInput,
  type TaskBatchInput,
} from '../domain/schema';
import { WeaverStatus } from '../domain/searchAttributes';
import { REFUSED } from '../domain/taskOutcome';
import { resultRows } from '../domain/slim';
import { emptyUsage, mergeUsage } from '../domain/usage';
import { shared } from './activityProxies';
import { batchStatus, legacyBatch } from './batchLegacy';
import { batchChildId, failedRow, runBatchChild } from './batchChild';
import { runBounded, runWindowed } from './children';
import { quotaWindow, QUOTA_WINDOW } from './quotaWindow';
import { DEFAULT_PROMPT_BUDGET } from '../domain/models';

import { batchProgressQuery } from './messages';

/** A batch re-reads its providers' quotas at most this often (workflow time). */
const QUOTA_REREAD_MS = 1000;

/** Marks batches run as a window over stored tasks, paged results and continue-as-new. */
export const BATCH_WINDOW = 'batch-window';
/** A one-run batch also returns its rows inline while they fit (Temporal refuses payloads over ~2 MB). */
const MAX_INLINE_RESULTS_BYTES = 1_000_000;

export async function taskBatch(raw: TaskBatchInput): Promise<BatchResult> {
  if (!patched(BATCH_WINDOW)) return legacyBatch(raw);
  const parsed = TaskBatchInputSchema.safeParse(raw);
  if (!parsed.success) {
    upsertSearchAttributes([{ key: WeaverStatus, value: REFUSED }]);
    throw ApplicationFailure.nonRetryable(`invalid batch input: ${formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  return new BatchRun(parsed.data).run();
}

/** One run of a batch: the window from `carry.next` up to `continueAfter` children further. */
class BatchRun {
  private readonly workflowId = workflowInfo().workflowId;
  private readonly carry: BatchCarry;
  private readonly buffer: PageBuffer;
  private tasksRef?: ArtifactRef;
  private running = 0;
  /** The providers of the tasks read so far (all of them for an inline list). */
  private readonly providers = new Set<string>();
  private finished: number;
  /** Pages of stored tasks being read or read, by page index (those behind the window are dropped). */
  private readonly chunks = new Map<number, Promise<unknown[]>>();
  /** Pages are stored one after the other, in order. */
  private flushing: Promise<void> = Promise.resolve();
  /** This run's rows, returned inline when the whole batch ran in this one run. */
  private readonly kept: CodingTaskResult[] = [];

  constructor(private readonly input: ParsedTaskBatchInput) {
    this.carry = input.carried
      ? { ...input.carried, pages: [...input.carried.pages] }
      : { next: 0, total: input.tasks?.length ?? 0, successCount: 0, usage: emptyUsage(), pages: [], runs: 0 };
    this.tasksRef = input.tasksRef;
    for (const t of input.tasks ?? []) for (const p of (t as { providers?: { id?: unknown }[] }).providers ?? []) if (typeof p.id === 'string') this.providers.add(p.id);
    this.finished = this.carry.next;
    this.buffer = new PageBuffer(this.carry.next, input.pageSize);
    // Answered by every run alike: the counters come over with the carry.
    setHandler(batchProgressQuery, () => ({
      workflowId: this.workflowId,
      total: this.carry.total,
      running: this.running,
      finished: this.finished,
      successCount: this.carry.successCount,
      run: this.carry.runs + 1,
    }));
  }

  async run(): Promise<BatchResult> {
    upsertSearchAttributes([{ key: WeaverStatus, value: 'running' }]);
    const size = this.input.pageSize;
    // The stored list's length comes with its first page read.
    if (!this.input.tasks && !this.input.carried) await this.chunk(Math.floor(this.carry.next / size));
    const from = this.carry.next;
    const to = Math.min(this.carry.total, from + this.input.continueAfter);
    let next = from;
    // Nothing new starts once Temporal suggests continuing as new; those running finish first, so
    // no child is in flight across the boundary: each slot's child is started by one run only.
    const start = (k: number) => {
      next = from + k + 1;
      return this.one(from + k);
    };
    const stop = () => workflowInfo().continueAsNewSuggested;
    const window = this.quotaWindow();
    await (window ? runWindowed(to - from, window, start, stop) : runBounded(to - from, this.input.concurrency, start, stop));
    await this.flush(true);
    this.carry.next = next;
    if (next < this.carry.total) {
      this.tasksRef ??= await shared.storeArtifact({ kind: BATCH_TASKS_KIND, content: toJsonLines(this.input.tasks!) });
      const { concurrency, pageSize, continueAfter } = this.input;
      const continueBatch = makeContinueAsNewFunc<typeof taskBatch>({ workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT, memo: workflowInfo().memo });
      return continueBatch({ tasksRef: this.tasksRef, concurrency, pageSize, continueAfter, carried: { ...this.carry, runs: this.carry.runs + 1 } });
    }
    const { total, successCount, usage, pages } = this.carry;
    upsertSearchAttributes([{ key: WeaverStatus, value: batchStatus(successCount, total) }]);
    const inline = !this.input.carried && JSON.stringify(this.kept).length <= MAX_INLINE_RESULTS_BYTES;
    return {
      results: inline ? this.kept : [],
      pages,
      aggregate: { total, successCount, failureCount: total - successCount, successRate: total ? successCount / total : 0, usage },
    };
  }

  /**
   * Since QUOTA_WINDOW: children launched within the quota their providers last reported
   * (src/workflows/quotaWindow.ts), read at most once a second of workflow time — children ending
   * in one workflow task share a reading, so a run's history stays within its bound. Providers
   * of a stored list are known as its tasks are read.
   */
  private quotaWindow(): (() => Promise<number>) | undefined {
    if (!patched(QUOTA_WINDOW)) return undefined;
    const { concurrency } = this.input;
    let last: { at: number; size: number } | undefined;
    return async () => {
      if (last && Date.now() - last.at < QUOTA_REREAD_MS) return last.size;
      const size = this.providers.size ? await quotaWindow([...this.providers], concurrency, { tokensPerChild: DEFAULT_PROMPT_BUDGET }) : concurrency;
      last = { at: Date.now(), size };
      return size;
    };
  }

  /** Task `i` as a child, its row counted and buffered for its page. */
  private async one(i: number): Promise<void> {
    this.running += 1;
    let row: CodingTaskResult;
    try {
      row = await this.child(i);
    } finally {
      this.running -= 1;
    }
    this.finished += 1;
    if (row.status === 'succeeded') this.carry.successCount += 1;
    this.carry.usage = mergeUsage(this.carry.usage, row.usage);
    this.buffer.add(i, row);
    if (!this.input.carried) this.kept[i] = row;
    await this.flush(false);
  }

  private async child(i: number): Promise<CodingTaskResult> {
    const raw = await this.taskAt(i);
    // A stored list is checked here, task by task (the client checked it before uploading).
    const parsed = CodingTaskInputSchema.safeParse(raw);
    if (!parsed.success) {
      const title = (raw as { task?: { title?: unknown } } | null)?.task?.title;
      const id = batchChildId(this.workflowId, i, typeof title === 'string' ? title : 'task');
      return failedRow(id, {}, `invalid task input: ${formatZodIssues(parsed.error).join('; ')}`);
    }
    for (const p of parsed.data.providers) this.providers.add(p.id);
    // Credentials in a task's repo / push.remote URL never reach the children's inputs.
    return runBatchChild(this.workflowId, i, stripTaskCredentials(parsed.data).input as CodingTaskInput);
  }

  private async taskAt(i: number): Promise<unknown> {
    if (this.input.tasks) return this.input.tasks[i];
    const c = Math.floor(i / this.input.pageSize);
    const items = await this.chunk(c);
    this.chunks.delete(c - 1);
    return items[i - c * this.input.pageSize];
  }

  /** Page `c` of the stored task list (read once). */
  private chunk(c: number): Promise<unknown[]> {
    let got = this.chunks.get(c);
    if (!got) {
      const size = this.input.pageSize;
      got = shared.readBatchTasks({ tasks: this.tasksRef!, from: c * size, count: size }).then((r) => {
        this.carry.total ||= r.total;
        return r.tasks;
      });
      this.chunks.set(c, got);
    }
    return got;
  }

  /** Stores every page whose rows are all in (`drain`: the rest too), in order. */
  private flush(drain: boolean): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      for (let page = this.buffer.take(drain); page; page = this.buffer.take(drain)) {
        const ref = await shared.storeArtifact({ kind: BATCH_PAGE_KIND, content: JSON.stringify(resultRows(page.rows, MAX_PAGE_BYTES)) });
        this.carry.pages.push({ from: page.from, count: page.rows.length, ref });
      }
    });
    return this.flushing;
  }
}
