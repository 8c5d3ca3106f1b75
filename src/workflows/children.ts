// Running child workflows with bounded concurrency, in order, fail-independent; and reading how
// a child ended when it did not complete.
import { ChildWorkflowFailure, isCancellation } from '@temporalio/workflow';
import { patched } from './patches';
import type { CodingTaskResult, Usage } from '../domain/schema';
import { resultFromFailure } from '../domain/taskOutcome';
import { shared } from './activityProxies';
import { WORKFLOW_TASK_TIMEOUT } from '../domain/liveness';

/** A child's workflow-task timeout, the same as its parent's (runs since `child-task-timeout`; before, the SDK's 10 s). */
export function childTaskTimeout(): { workflowTaskTimeout?: typeof WORKFLOW_TASK_TIMEOUT } {
  return patched('child-task-timeout') ? { workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT } : {};
}

/**
 * Runs `run(i)` for i = 0..count-1 with at most `concurrency` at once, starting them in
 * order; results keep input order. Deterministic: plain promises, no timers.
 * Fail-independence is the caller's: `run` should catch. If one does reject, nothing new
 * starts, the ones running are awaited (so nothing outlives the call), then the call
 * rejects with the first error.
 */
export async function runBounded<T>(count: number, concurrency: number, run: (i: number) => Promise<T>, stop?: () => boolean): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  let failed = false;
  const lane = async () => {
    // `stop`: nothing new starts once it says so (a batch about to continue as new drains its window).
    while (!failed && next < count && !stop?.()) {
      const i = next++;
      try {
        results[i] = await run(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const lanes = Number.isFinite(concurrency) ? Math.max(1, Math.floor(concurrency)) : 1;
  const settled = await Promise.allSettled(Array.from({ length: Math.min(lanes, count) }, lane));
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}

/**
 * Runs `run(i)` for i = 0..count-1 in order, at most `window()` at once, asked before each
 * launch (and again each time a child ends while the window is full): the window may shrink
 * or grow as the providers' quotas change. Results keep input order; failure as runBounded:
 * nothing outlives the call.
 */
export async function runWindowed<T>(count: number, window: () => Promise<number>, run: (i: number) => Promise<T>, stop?: () => boolean): Promise<T[]> {
  const results = new Array<T>(count);
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  /** The window, or (when asking fails, e.g. cancelled) the error once the running children have settled. */
  const size = async () => {
    try {
      return await window();
    } catch (err) {
      await Promise.all(running);
      throw err;
    }
  };
  // `stop`: as runBounded's (nothing new starts once it says so).
  for (let i = 0; i < count && !failure && !stop?.(); i++) {
    // The window first, then the count: read before the await, `running` could name children
    // that ended meanwhile, and a race over none never ends.
    while (!failure) {
      const window = await size();
      if (running.size < window) break;
      await Promise.race(running);
    }
    if (failure || stop?.()) break;
    const p: Promise<void> = run(i).then(
      (r) => void (results[i] = r),
      (err) => void (failure ??= { err }),
    );
    running.add(p);
    void p.finally(() => running.delete(p));
  }
  await Promise.all(running);
  if (failure) throw failure.err;
  return results;
}

/** How a child codingTask ended, read from what executeChild threw (never a cancellation). */
export type ChildEnd =
  /** It failed its workflow with its result (failed, budget_exceeded, rejected): the result. */
  | { result: CodingTaskResult }
  /** It ended without one (terminated, timed out, input refused): why, and its spend as found. */
  | { reason: string; usage?: Usage; note?: string };

/**
 * A failed child's result is in its failure's details; a child that left none (terminated, timed
 * out) is asked for its spend (activities/children.ts), so that a parent's usage and budget, and a
 * batch's totals, count what every child spent. Versioned: runs that started before neither read
 * details nor ask, and replay as they ran.
 */
export async function childEnd(err: unknown, workflowId: string): Promise<ChildEnd> {
  const reason = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
  if (!patched('child-spend-counted')) return { reason };
  const result = resultFromFailure(err);
  if (result) return { result };
  const runId = err instanceof ChildWorkflowFailure ? err.execution.runId ?? undefined : undefined;
  try {
    const found = await shared.childUsage({ workflowId, ...(runId ? { runId } : {}) });
    return { reason, usage: found.usage };
  } catch (e) {
    if (isCancellation(e)) throw e;
    return { reason, note: `the spend of ${workflowId} could not be read (${e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e)}): not counted` };
  }
}
