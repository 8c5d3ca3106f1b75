// How a function's cost grows with its input, as a guard against catastrophic backtracking or a
// quadratic search that does not depend on the machine's speed: the same input shape at size 1
// and size 8, each measured in CPU time of this process (a loaded machine preempting the run adds
// wall time, not CPU time), several times (the best counts: a GC pause hits one run, not the
// figure). Linear work grows about 8×, quadratic 64×, exponential without bound; the ratio is the
// same on a fast idle machine and a slow loaded one.

export const GROWTH_FACTOR = 8;
/** Four times what linear work shows, half of what quadratic work would: the bound the tests assert. */
export const MAX_LINEAR_GROWTH = 32;

/** Best-of-`runs` CPU time (ms, user + system) of `f(input)`, after one warm-up call. */
function bestMs(f: (input: string) => unknown, input: string, runs: number): number {
  f(input);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage();
    f(input);
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

/**
 * cpu(f(make(GROWTH_FACTOR))) / cpu(f(make(1))), best of `runs` each; `label` names the line
 * printed with both figures. `make(1)` should take several milliseconds (below 1 ms counts as
 * 1 ms, which only lowers the ratio).
 */
export function growthRatio(label: string, make: (scale: number) => string, f: (input: string) => unknown, runs = 5): number {
  const small = make(1);
  const large = make(GROWTH_FACTOR);
  const smallMs = bestMs(f, small, runs);
  const largeMs = bestMs(f, large, runs);
  const ratio = largeMs / Math.max(smallMs, 1);
  process.stderr.write(`[growth] ${label}: ${small.length} chars in ${smallMs.toFixed(1)} ms CPU, ${large.length} chars in ${largeMs.toFixed(1)} ms CPU: ×${ratio.toFixed(1)} for ×${GROWTH_FACTOR} input\n`);
  return ratio;
}
