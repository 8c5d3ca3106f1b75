// What a flood of test output costs the worker (issue 15, item 2), as figures, not assertions:
//  1. failure extraction over a large log: the longest the event loop was held (perf_hooks
//     monitorEventLoopDelay, and a 1 ms interval's worst lateness), the wall time and the heap
//     growth; before (the whole log read into one string, extractFailures on it) and after (the
//     log streamed through the bounded excerpt: src/activities/failureLog.ts);
//  2. extractFailures on a 1 MB log (the figure test/testFailures.test.ts used to assert);
//  3. runCommand capturing 1 GiB of output under the default 16 MiB bound: time, log size, and
//     the event loop's worst block meanwhile.
//   npx tsx scripts/bench-output.ts [logMb=100] [floodMb=1024]
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runCommand } from '../src/activities/commands';
import { extractFailuresFromFile } from '../src/activities/failureLog';
import { extractFailures } from '../src/domain/testFailures';

/** Runs `work` while watching the event loop: its worst block, by two measures. */
async function watched<T>(work: () => Promise<T>): Promise<{ value: T; wallMs: number; maxBlockMs: number; maxLateMs: number; heapGrowthMb: number }> {
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  let heapPeak = heap0;
  const h = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let maxLate = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxLate = Math.max(maxLate, now - last - 1);
    last = now;
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 1);
  h.enable();
  const t = performance.now();
  const value = await work();
  const wallMs = performance.now() - t;
  // A block that ends the work is only recorded once the timers run again.
  await new Promise((r) => setTimeout(r, 50));
  h.disable();
  clearInterval(probe);
  return { value, wallMs, maxBlockMs: h.max / 1e6, maxLateMs: maxLate, heapGrowthMb: (Math.max(heapPeak, process.memoryUsage().heapUsed) - heap0) / 2 ** 20 };
}

/** A jest-like log of about `mb` MB: noise, with one failure near the start, one in the middle and a summary at the end. */
async function writeLog(file: string, mb: number): Promise<void> {
  const out = createWriteStream(file);
  const failure = (name: string) =>
    `  ● suite › ${name}\n\n    expect(received).toBe(expected)\n\n    Expected: 3\n    Received: 2\n\n      at Object.<anonymous> (test/${name}.test.js:12:5)\n\n`;
  const noiseLine = (i: number) => `  console.log: processed record ${i} of the fixture, status ok, checksum ${(i * 2654435761) % 4294967296}\n`;
  const target = mb * 1e6;
  let written = 0;
  let i = 0;
  const write = (s: string) => (written += s.length, out.write(s));
  write('PASS test/setup.test.js\n');
  write(failure('first'));
  while (written < target) {
    if (i === Math.floor(target / 2 / 90)) write(failure('middle'));
    let batch = '';
    for (let k = 0; k < 1000; k++) batch += noiseLine(i++);
    if (!write(batch)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  write(failure('last'));
  write('Tests:       3 failed, 120 passed, 123 total\n');
  await new Promise<void>((r) => out.end(r));
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main() {
  const logMb = Number(process.argv[2] ?? 100);
  const floodMb = Number(process.argv[3] ?? 1024);
  const root = await mkdtemp(path.join(tmpdir(), 'weaver-bench-output-'));
  try {
    const file = path.join(root, 'big.log');
    await writeLog(file, logMb);
    const size = (await stat(file)).size;
    console.log(`## Failure extraction over a ${(size / 1e6).toFixed(0)} MB log (3 failures: start, middle, end)\n`);
    console.log('| path | wall | max event-loop block (monitorEventLoopDelay) | worst 1 ms timer lateness | heap growth | failures found |');
    console.log('|---|---|---|---|---|---|');
    const before = await watched(async () => extractFailures(await readFile(file, 'utf8')));
    console.log(`| before: whole log in one string | ${ms(before.wallMs)} | ${ms(before.maxBlockMs)} | ${ms(before.maxLateMs)} | ${before.heapGrowthMb.toFixed(0)} MiB | ${before.value.failures} |`);
    const after = await watched(() => extractFailuresFromFile(file));
    console.log(`| after: streamed, bounded excerpt | ${ms(after.wallMs)} | ${ms(after.maxBlockMs)} | ${ms(after.maxLateMs)} | ${after.heapGrowthMb.toFixed(0)} MiB | ${after.value.failures} (${after.value.chunks} chunks) |`);

    // 2. The 1 MB figure (median of 5, after a warm-up).
    const small = path.join(root, 'small.log');
    await writeLog(small, 1);
    const text = await readFile(small, 'utf8');
    extractFailures(text);
    const times: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      extractFailures(text);
      times.push(performance.now() - t);
    }
    console.log(`\nextractFailures on a ${(text.length / 1e6).toFixed(2)} MB log: median ${ms(times.sort((a, b) => a - b)[2])}`);

    // 3. A command printing floodMb MiB under the default bound.
    const log = path.join(root, 'flood.log');
    const flood = await watched(() =>
      runCommand({ command: `echo FIRST; yes 'noise line' | head -c ${floodMb * 2 ** 20}; echo; echo LAST`, cwd: root, timeoutSec: 600, logFile: log }),
    );
    console.log(
      `\nrunCommand, ${floodMb} MiB printed: ${ms(flood.wallMs)}, log ${((await stat(log)).size / 2 ** 20).toFixed(2)} MiB, ${(flood.value.droppedBytes / 2 ** 20).toFixed(0)} MiB dropped, max event-loop block ${ms(flood.maxBlockMs)}, heap growth ${flood.heapGrowthMb.toFixed(0)} MiB`,
    );
    const flooded = await watched(() => extractFailuresFromFile(log));
    console.log(`extraction over that log: ${ms(flooded.wallMs)}, max event-loop block ${ms(flooded.maxBlockMs)}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
