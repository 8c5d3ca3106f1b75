// Running child workflows with bounded concurrency, in order, fail-independent.

/**
 * Runs `run(i)` for i = 0..count-1 with at most `concurrency` at once, starting them in
 * order; results keep input order. Deterministic: plain promises, no timers.
 * Fail-independence is the caller's: `run` should catch. If one does reject, nothing new
 * starts, the ones running are awaited (so nothing outlives the call), then the call
 * rejects with the first error.
 */
export async function runBounded<T>(count: number, concurrency: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < count) {
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
