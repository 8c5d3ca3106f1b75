// Benchmark: what Weaver itself costs around the work it orchestrates.
//
//   npx tsx scripts/bench.ts            (BENCH_N runs per figure, default 5; BENCH_K parallel tasks, default 8)
//
// Self-contained: starts its own Temporal dev server (the binary from scripts/temporal-cli.sh,
// headless, on a free port, with Weaver's search attributes), the scripted model server, and
// an in-process worker (createWorkers, workflow code bundled once). Prints figures; asserts
// nothing. Everything it starts is stopped and its temp dir removed on exit.
//
// Figures (min / median / max over BENCH_N runs):
//   a) end-to-end latency of a one-attempt and a two-attempt codingTask on the example repo,
//      and Weaver's overhead = total − (model latency + test command time), in ms and as a share;
//   b) throughput: BENCH_K tasks started at once → tasks/minute;
//   c) workflow history size (bytes, events) per attempt, and with a 10 MB test output vs a 64 KB
//      and a tiny one (only a capped tail of the output is kept in history);
//   d) process RSS / heap before and after the runs.
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { startCodingTask } from '../src/client';
import { createExampleRepo, demoModelStep, exampleTask } from './demo/example';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import type { CodingTaskInput, CodingTaskResult, ProviderSpec } from '../src/domain/schema';
import { startBenchRig } from './benchRig';
import { goodAnswer } from './bench/answer';
import { exitWith, stats, type Stats } from './bench/stats';

const N = Math.max(1, Number(process.env.BENCH_N || 5));
const K = Math.max(1, Number(process.env.BENCH_K || 8));
/** The scripted model's answer delay, standing in for an LLM's latency. */
const MODEL_DELAY_MS = Number(process.env.BENCH_MODEL_DELAY_MS || 300);

const BIG_OUTPUT_BYTES = 10 * 1024 * 1024;
const MID_OUTPUT_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

const rows: [string, string, string, string, string][] = [];
function row(label: string, unit: string, xs: number[], digits = 0): Stats {
  const st = stats(xs);
  const f = (x: number) => x.toFixed(digits);
  rows.push([label, f(st.min), f(st.median), f(st.max), unit]);
  return st;
}

function printTable(title: string): void {
  const head: [string, string, string, string, string] = ['', 'min', 'median', 'max', ''];
  const all = [head, ...rows];
  const w = [0, 1, 2, 3, 4].map((c) => Math.max(...all.map((r) => r[c].length)));
  console.log(`\n${title}`);
  for (const r of all) console.log(`  ${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}  ${r[3].padStart(w[3])}  ${r[4]}`);
  rows.length = 0;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

interface Run {
  result: CodingTaskResult;
  totalMs: number;
  modelMs: number;
  testMs: number;
  overheadMs: number;
  historyBytes: number;
  historyEvents: number;
}

async function main(): Promise<void> {
  const mem0 = process.memoryUsage();
  const tmp = sandboxableTempDir('weaver-bench-');
  const rig = await startBenchRig(tmp, ['bench-good', 'bench-demo'], 'weaver-bench');
  try {
    const { client, taskQueue, model } = rig;
    const good = () => ({ content: goodAnswer(), delayMs: MODEL_DELAY_MS });
    model.setDefault('bench-good', good);
    model.setDefault('bench-demo', (req) => ({ ...demoModelStep(req), delayMs: MODEL_DELAY_MS }));
    const provider = (m: string): ProviderSpec => ({ id: m, model: m });
    const mem1 = process.memoryUsage();

    console.log(
      `Weaver benchmark — node ${process.version}, ${os.cpus().length} CPU (${os.cpus()[0]?.model.trim() ?? '?'}), ${os.platform()} ${os.arch()}\n` +
        `N=${N} runs per figure, K=${K} parallel tasks, scripted model delay ${MODEL_DELAY_MS} ms per call\n` +
        `setup: dev server ready in ${rig.serverMs} ms, workflow bundle ${(rig.bundleBytes / 1024).toFixed(0)} KiB in ${rig.bundleMs} ms`,
    );

    let seq = 0;
    const task = async (modelName: string, extra: Partial<CodingTaskInput> = {}): Promise<CodingTaskInput> => {
      const repo = await createExampleRepo(path.join(tmp, 'repos', `r${++seq}`));
      return { ...exampleTask(repo, provider(modelName)), ...extra };
    };
    const measure = async (input: CodingTaskInput, expectAttempts: number): Promise<Run> => {
      const started = Date.now();
      const handle = await startCodingTask(input, { client, taskQueue, workflowId: `bench-${process.pid}-${++seq}` });
      const result = await handle.result();
      const totalMs = Date.now() - started;
      if (result.status !== 'succeeded' || result.attempts.length !== expectAttempts) {
        throw new Error(`${handle.workflowId}: expected success in ${expectAttempts} attempt(s), got ${result.status} in ${result.attempts.length}: ${result.reason}`);
      }
      const modelMs = result.attempts.flatMap((a) => a.calls).reduce((s, c) => s + c.latencyMs, 0);
      const testMs = result.attempts.reduce((s, a) => s + (a.tests?.durationMs ?? 0), 0);
      const history = await handle.fetchHistory();
      const historyBytes = temporal.api.history.v1.History.encode(history).finish().length;
      return { result, totalMs, modelMs, testMs, overheadMs: totalMs - modelMs - testMs, historyBytes, historyEvents: history.events?.length ?? 0 };
    };

    // Warm-up (first-run JIT, git and node caches): not counted.
    await measure(await task('bench-good'), 1);

    // a) latency and overhead
    const one: Run[] = [];
    const two: Run[] = [];
    for (let i = 0; i < N; i++) {
      one.push(await measure(await task('bench-good'), 1));
      two.push(await measure(await task('bench-demo'), 2));
    }
    for (const [name, runs] of [['1 attempt', one], ['2 attempts', two]] as const) {
      row(`${name}: end to end`, 'ms', runs.map((r) => r.totalMs));
      row(`${name}: model calls`, 'ms', runs.map((r) => r.modelMs));
      row(`${name}: test command`, 'ms', runs.map((r) => r.testMs));
      row(`${name}: Weaver overhead`, 'ms', runs.map((r) => r.overheadMs));
      row(`${name}: overhead / end to end`, '%', runs.map((r) => (100 * r.overheadMs) / r.totalMs), 1);
      row(`${name}: end to end / (model + tests)`, '×', runs.map((r) => r.totalMs / (r.modelMs + r.testMs)), 2);
    }
    row('2nd attempt costs (2 attempts − 1 attempt, medians)', 'ms', [stats(two.map((r) => r.totalMs)).median - stats(one.map((r) => r.totalMs)).median]);
    printTable('a) latency of one codingTask (example repo, scripted model)');

    // b) throughput
    const perMinute: number[] = [];
    const batchWall: number[] = [];
    for (let i = 0; i < N; i++) {
      const inputs = await Promise.all(Array.from({ length: K }, () => task('bench-good')));
      const started = Date.now();
      await Promise.all(inputs.map((input) => measure(input, 1)));
      const wall = Date.now() - started;
      batchWall.push(wall);
      perMinute.push((K * 60_000) / wall);
    }
    row(`${K} tasks at once: wall time`, 'ms', batchWall);
    row('throughput', 'tasks/min', perMinute, 1);
    const serialPerMinute = one.map((r) => 60_000 / r.totalMs);
    row('one at a time (from a)', 'tasks/min', serialPerMinute, 1);
    row(`speed-up of ${K} at once over one at a time (medians)`, '×', [stats(perMinute).median / stats(serialPerMinute).median], 2);
    printTable(`b) throughput (one in-process worker, ${os.cpus().length} cores)`);

    // c) history
    // The tail kept in history is capped (a few KB): 64 KB of output already fills it, so
    // 64 KB vs 10 MB isolates "does the size of the output matter" from "the tail is full".
    const withOutput = (bytes: number) => task('bench-good', { testCommand: `head -c ${bytes} /dev/zero | tr '\\0' 'x'; node --test test/` });
    const big: Run[] = [];
    const mid: Run[] = [];
    for (let i = 0; i < N; i++) {
      big.push(await measure(await withOutput(BIG_OUTPUT_BYTES), 1));
      mid.push(await measure(await withOutput(MID_OUTPUT_BYTES), 1));
    }
    row('1 attempt: history', 'bytes', one.map((r) => r.historyBytes));
    row('1 attempt: events', 'events', one.map((r) => r.historyEvents));
    row('2 attempts: history', 'bytes', two.map((r) => r.historyBytes));
    row('2 attempts: events', 'events', two.map((r) => r.historyEvents));
    row('per extra attempt (2 − 1, medians)', 'bytes', [stats(two.map((r) => r.historyBytes)).median - stats(one.map((r) => r.historyBytes)).median]);
    row('per extra attempt (2 − 1, medians)', 'events', [stats(two.map((r) => r.historyEvents)).median - stats(one.map((r) => r.historyEvents)).median]);
    row('10 MB test output: history', 'bytes', big.map((r) => r.historyBytes));
    row('10 MB test output: test log artifact', 'bytes', big.map((r) => r.result.attempts[0].tests?.log?.bytes ?? 0));
    row('64 KB test output: history', 'bytes', mid.map((r) => r.historyBytes));
    row('history ratio 10 MB output / 64 KB output (medians)', '×', [stats(big.map((r) => r.historyBytes)).median / stats(mid.map((r) => r.historyBytes)).median], 3);
    row('history ratio 10 MB output / tiny output (medians)', '×', [stats(big.map((r) => r.historyBytes)).median / stats(one.map((r) => r.historyBytes)).median], 3);
    printTable('c) workflow history (protobuf-encoded, as Temporal measures it)');

    // d) memory
    const mem2 = process.memoryUsage();
    console.log('\nd) memory of this process (worker + client + model server)');
    const memRow = (label: string, m: NodeJS.MemoryUsage) => console.log(`  ${label.padEnd(30)} rss ${mb(m.rss).padStart(9)}  heapUsed ${mb(m.heapUsed).padStart(8)}  heapTotal ${mb(m.heapTotal).padStart(8)}  external ${mb(m.external).padStart(8)}`);
    memRow('at start', mem0);
    memRow('worker up, before the runs', mem1);
    memRow(`after ${1 + 2 * N + N * K + 2 * N} tasks`, mem2);
    console.log(`  growth over the runs: rss ${((mem2.rss / mem1.rss - 1) * 100).toFixed(1)}%, heapUsed ${((mem2.heapUsed / mem1.heapUsed - 1) * 100).toFixed(1)}%`);
  } finally {
    await rig.close();
  }
}

exitWith(main());
