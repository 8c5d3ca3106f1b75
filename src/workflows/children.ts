// Running child workflows with bounded concurrency, in order, fail-independent.

/**
 * Runs `run(i)` for i = 0..count-1 with at most `concurrency` at once, starting them in
 * order; results keep input order. Deterministic: plain promises, no timers.
 */
export async function runBounded<T>(count: number, concurrency: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await run(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), count) }, lane));
  return results;
}
