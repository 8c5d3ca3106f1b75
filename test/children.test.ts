// runBounded (src/workflows/children.ts): plain promise code, so it is tested here with real
// timers outside a workflow. codingTask and taskBatch catch failures inside `run`; these tests
// pin down what runBounded itself does when `run` rejects.
import { runBounded } from '../src/workflows/children';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Instruments `run`: how many are in flight at once, which started, in which order. */
function probe(delay: (i: number) => number, fail: (i: number) => boolean = () => false) {
  const state = { running: 0, maxRunning: 0, started: [] as number[], finished: [] as number[] };
  const run = async (i: number): Promise<string> => {
    state.started.push(i);
    state.running += 1;
    state.maxRunning = Math.max(state.maxRunning, state.running);
    try {
      await sleep(delay(i));
      if (fail(i)) throw new Error(`boom ${i}`);
      return `r${i}`;
    } finally {
      state.running -= 1;
      state.finished.push(i);
    }
  };
  return { state, run };
}

test('results keep input order even when later items finish first', async () => {
  // Item 0 is the slowest, the last the fastest.
  const { state, run } = probe((i) => (5 - i) * 15);
  const out = await runBounded(5, 5, run);
  expect(out).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  expect(state.finished).not.toEqual([0, 1, 2, 3, 4]);
  expect(state.finished[0]).toBe(4);
});

test.each([1, 2, 3, 5])('never more than concurrency=%i running at once, and the limit is reached (random delays)', async (concurrency) => {
  for (let round = 0; round < 3; round++) {
    const delays = Array.from({ length: 12 }, () => Math.floor(Math.random() * 25));
    const { state, run } = probe((i) => delays[i]);
    const out = await runBounded(12, concurrency, run);
    expect(out).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`));
    expect(state.maxRunning).toBeLessThanOrEqual(concurrency);
    // Bounded, not serialised: it does use all its lanes.
    expect(state.maxRunning).toBe(concurrency);
    expect(state.running).toBe(0);
    // Starts in input order, each exactly once.
    expect(state.started).toEqual(Array.from({ length: 12 }, (_, i) => i));
  }
});

test('starts the next item as soon as a lane frees up (no waiting for a whole wave)', async () => {
  // Lane pattern with concurrency 2: item 0 is long; items 1, 2, 3 are short and should all
  // run on the second lane while item 0 is still going.
  const { state, run } = probe((i) => (i === 0 ? 120 : 10));
  await runBounded(4, 2, run);
  expect(state.finished.slice(0, 3)).toEqual([1, 2, 3]);
  expect(state.finished[3]).toBe(0);
});

test('concurrency larger than the count runs everything at once', async () => {
  const { state, run } = probe(() => 20);
  const out = await runBounded(3, 50, run);
  expect(out).toEqual(['r0', 'r1', 'r2']);
  expect(state.maxRunning).toBe(3);
  expect(state.started).toEqual([0, 1, 2]);
});

test('count 0 resolves to [] without calling run', async () => {
  const run = jest.fn(async (i: number) => i);
  await expect(runBounded(0, 3, run)).resolves.toEqual([]);
  expect(run).not.toHaveBeenCalled();
});

test('concurrency 0 or negative is treated as 1 (still runs everything, one at a time)', async () => {
  for (const c of [0, -2]) {
    const { state, run } = probe(() => 5);
    await expect(runBounded(3, c, run)).resolves.toEqual(['r0', 'r1', 'r2']);
    expect(state.maxRunning).toBe(1);
  }
});

test('one rejection rejects the call with that error, but only once the running items have finished', async () => {
  const { state, run } = probe((i) => (i === 1 ? 5 : 200), (i) => i === 1);
  const t0 = Date.now();
  await expect(runBounded(4, 2, run)).rejects.toThrow('boom 1');
  // Item 0 (200 ms) was awaited: nothing the call started outlives it.
  expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  expect(state.finished.sort()).toEqual([0, 1]);
  expect(state.started.sort()).toEqual([0, 1]);
});

test('after a rejection nothing new starts; items already running finish', async () => {
  // concurrency 2: item 1 fails fast while item 0 is still running; items 2 and 3 never start.
  const { state, run } = probe((i) => (i === 1 ? 5 : 20), (i) => i === 1);
  await expect(runBounded(4, 2, run)).rejects.toThrow('boom 1');
  await sleep(150);
  expect(state.started.sort()).toEqual([0, 1]);
  expect(state.finished.sort()).toEqual([0, 1]);
});

test('a concurrency that is not a number runs one at a time', async () => {
  const { state, run } = probe(() => 5, () => false);
  expect(await runBounded(3, Number.NaN, run)).toEqual(['r0', 'r1', 'r2']);
  expect(state.maxRunning).toBe(1);
});

test('with concurrency 1 a rejection stops the run: nothing after the failed item starts', async () => {
  const { state, run } = probe(() => 5, (i) => i === 1);
  await expect(runBounded(4, 1, run)).rejects.toThrow('boom 1');
  await sleep(80);
  expect(state.started).toEqual([0, 1]);
});

test('when every lane fails, the remaining items never start', async () => {
  const { state, run } = probe(() => 5, (i) => i < 2);
  await expect(runBounded(6, 2, run)).rejects.toThrow(/boom [01]/);
  await sleep(80);
  expect(state.started.sort()).toEqual([0, 1]);
});

test('fail-independence is the caller\'s job: a `run` that catches gets every result, in order', async () => {
  const { state, run } = probe((i) => 5 + ((i * 7) % 4) * 5, (i) => i % 3 === 0);
  const out = await runBounded(7, 3, (i) => run(i).catch((e: Error) => `failed: ${e.message}`));
  expect(out).toEqual(['failed: boom 0', 'r1', 'r2', 'failed: boom 3', 'r4', 'r5', 'failed: boom 6']);
  expect(state.maxRunning).toBeLessThanOrEqual(3);
});
