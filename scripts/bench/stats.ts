// Small helpers shared by the benchmarks: medians, min/max, a bounded-concurrency pool, the exit.

export interface Stats {
  min: number;
  median: number;
  max: number;
}

export function stats(xs: number[]): Stats {
  if (!xs.length) return { min: NaN, median: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { min: s[0], median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s[s.length - 1] };
}

export const median = (xs: number[]): number => stats(xs).median;

/** Runs fn over items with at most `concurrency` in flight; the next starts as soon as one ends. */
export async function pool<T, R>(items: T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return out;
}

/** 12345 → "12,345" (figures for a README). */
export const grouped = (x: number, digits = 0): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** A benchmark's end: exit 0, or print the error and exit 1 (its own cleanup ran in main's finally). */
export function exitWith(main: Promise<void>): void {
  main.then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
