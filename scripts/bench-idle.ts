// Benchmark: what an idle worker burns. The worker as users run it (src/worker.ts in its own
// process, settings from the environment: scripts/bench/workerProcess.ts) against a throwaway
// Temporal dev server, no task at all; after a settling pause, the CPU (utime+stime from /proc)
// over a window of each of its threads — main, the workflow thread, the SDK core's tokio threads,
// libuv's and V8's — of its spawn helper, and of the Temporal server, in ms per second.
//
//   npx tsx scripts/bench-idle.ts [--seconds S] [--settle S] [--warm N] [--during]
//
// --seconds   the measured window (default 60), --settle the pause before it (default 15)
// --warm N    N example tasks (scripts/demo/example.ts, model 200 ms) first: idle after work
//             (workflows cached, pools started) rather than fresh
// --during    the window is instead one task's wait on a model that answers after the window:
//             what a task pays per second on top of its own work (heartbeats, timers)
// BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=<dir>" also profiles every thread of the worker
// (written at its stop; the profile starts at the process's start: look at its last part).
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { closeTestConnections, testAddress, testClient, uniqueQueue } from '../test/support/temporal';
import { ticksPerSecond } from '../src/activities/processUsage';
import { HELPER_ARGV_TAG } from '../src/activities/spawner/script';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { startCodingTask } from '../src/client';
import { benchModel } from './bench/answer';
import { startLineChild, type LineChild } from './bench/children';
import { findInTree, processRssBytes, statTimes } from './bench/procStat';
import { createExampleRepo, exampleTask } from './demo/example';
import { exitWith } from './bench/stats';
import { benchWorkerEnv, startBenchWorker } from './bench/workerProcess';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime+stime of a process or thread in ms, with its name; undefined once gone. */
function cpu(statFile: string): { name: string; ms: number } | undefined {
  const t = statTimes(statFile);
  return t && { name: t.name, ms: t.own };
}

/** utime+stime of the whole process (every thread), in ms. */
const processMs = (pid: number) => cpu(`/proc/${pid}/stat`)?.ms ?? 0;

/** Every thread of `pid`: "name#tid" → CPU ms. */
function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const t = cpu(`/proc/${pid}/task/${tid}/stat`);
    if (t) out.set(`${t.name}#${tid}${Number(tid) === pid ? ' (main)' : ''}`, t.ms);
  }
  return out;
}

async function main(): Promise<void> {
  const seconds = arg('--seconds', 60);
  const settle = arg('--settle', 15);
  const warm = arg('--warm', 0);
  const during = process.argv.includes('--during');
  const fast = 200;
  const slow = (settle + seconds + 30) * 1000;
  process.env.WEAVER_TEST_LOG_LEVEL ??= 'ERROR';
  await globalSetup();
  const tmp = sandboxableTempDir('weaver-bench-idle-');
  let worker: Awaited<ReturnType<typeof startBenchWorker>> | undefined;
  let model: LineChild | undefined;
  try {
    model = startLineChild(path.join(__dirname, 'bench/modelServer.ts'), [String(fast), String(slow)]);
    const { url } = (await model.ready) as { url: string };
    const registry = path.join(tmp, 'providers.json');
    const models = [benchModel(fast), benchModel(slow)];
    writeFileSync(registry, JSON.stringify({ providers: { bench: { baseURL: url, models, pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } } }));
    const taskQueue = uniqueQueue('bench-idle');
    // The Temporal server's own idle rate, before any worker polls it.
    const server = globalThis.__WEAVER_TEST_SERVER__?.pid;
    const alone0 = server ? cpu(`/proc/${server}/stat`) : undefined;
    await sleep(20_000);
    const alone1 = server ? cpu(`/proc/${server}/stat`) : undefined;
    worker = await startBenchWorker(benchWorkerEnv({ tmp, address: testAddress(), taskQueue, registry, bundle: process.env.WEAVER_TEST_WORKFLOW_BUNDLE! }));
    const client = await testClient();
    let seq = 0;
    const start = async (delayMs: number) => {
      const t = exampleTask(await createExampleRepo(path.join(tmp, 'repos', `r${++seq}`)), { id: 'bench', model: benchModel(delayMs) });
      return startCodingTask(t, { client, taskQueue, workflowId: `bench-idle-${process.pid}-${seq}` });
    };
    for (let i = 0; i < warm; i++) await (await start(fast)).result();
    if (during) await start(slow);
    await sleep(settle * 1000);
    const helper = findInTree(worker.pid, HELPER_ARGV_TAG[0]);
    const load0 = loadavg()[0];
    const t0 = threads(worker.pid);
    const h0 = helper ? cpu(`/proc/${helper}/stat`) : undefined;
    const s0 = server ? cpu(`/proc/${server}/stat`) : undefined;
    const t0ms = performance.now();
    // The window in 5 s steps: a settling burst (the heaps' memory reducer, a few GCs after work
    // stops) shows apart from the steady rate.
    const series: number[] = [];
    for (let last = processMs(worker.pid), i = 0; i < Math.ceil(seconds / 5); i++) {
      await sleep(Math.min(5, seconds - i * 5) * 1000);
      const now = processMs(worker.pid);
      series.push(now - last);
      last = now;
    }
    const t1 = threads(worker.pid);
    const h1 = helper ? cpu(`/proc/${helper}/stat`) : undefined;
    const s1 = server ? cpu(`/proc/${server}/stat`) : undefined;
    const secs = (performance.now() - t0ms) / 1000;
    const rate = (ms: number) => `${(ms / secs).toFixed(2)} ms/s`;
    const rows = [...t1].map(([k, ms]) => [k, ms - (t0.get(k) ?? 0)] as const).sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((a, [, ms]) => a + ms, 0);
    const what = during ? 'worker waiting on one task\'s model call' : warm ? `idle worker after ${warm} task(s)` : 'fresh idle worker';
    console.log(`${what}, over ${secs.toFixed(1)} s after ${settle} s settling (load ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${ticksPerSecond()} ticks/s: 10 ms resolution per thread)`);
    console.log(`worker process ${rate(total)} (${rows.length} threads):`);
    for (const [k, ms] of rows) if (ms > 0) console.log(`  ${k.padEnd(28)} ${rate(ms)}`);
    console.log(`  (${rows.filter(([, ms]) => ms === 0).length} threads at 0)`);
    console.log(`  RSS at the end ${(processRssBytes(worker.pid) / 2 ** 20).toFixed(0)} MiB`);
    console.log(`  by 5 s: ${series.map((ms) => (ms / 5).toFixed(0)).join(' ')} ms/s`);
    if (h0 && h1) console.log(`spawn helper ${rate(h1.ms - h0.ms)}`);
    if (s0 && s1) console.log(`Temporal server ${rate(s1.ms - s0.ms)} (${alone0 && alone1 ? ((alone1.ms - alone0.ms) / 20).toFixed(2) : '?'} ms/s before the worker started)`);
  } finally {
    await worker?.stop().catch(() => undefined);
    await model?.stop().catch(() => undefined);
    await closeTestConnections();
    await globalTeardown();
    rmSync(tmp, { recursive: true, force: true });
  }
}

exitWith(main());
