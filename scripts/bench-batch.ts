// Benchmark of a batch of thousands (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-batch.ts [--tasks N] [--concurrency C] [--continue-after K] [--page-size P] [--warmup W]
//
// N (default 2,000) tiny real tasks — clone, one scripted model answer, a one-line test, commit —
// in one taskBatch on one worker. Three processes: this harness (a throwaway Temporal dev server
// and the workflow bundle from the tests' global setup, the client), the scripted model server
// (scripts/bench/batchModelServer.ts) and the worker (src/worker.ts, its settings from the
// environment: scripts/bench/workerProcess.ts), so the worker's memory is its own. The task list
// is uploaded to the artifact store; the batch continues as new every K children (default: the
// batch's own 500). Figures: wall time, tasks/min, runs of the batch, the largest history of any
// workflow (the batch's runs and every child: events and bytes), and memory: the worker process's
// RSS (the worker alone) and its tree's (plus its spawn helper, git and test commands) at start,
// after a warm-up batch of W (default 50: the first tasks load code and grow heaps and caches once)
// and at the end — the worker's after every thread's full GC — sampled each minute and at its peak
// (no GC), each split by kind of mapping; the JS heaps after a full GC (the probe preloaded into
// it); the load average.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { multiRepo, sub } from '../test/support/modules';
import { closeTestConnections, runHistories, testAddress, testClient, uniqueQueue } from '../test/support/temporal';
import { getBatchResult, startTaskBatch } from '../src/client';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import type { CodingTaskInput } from '../src/domain/schema';
import { startLineChild } from './bench/children';
import { describeRss, findInTree, processRssBytes, rssBreakdown, treeMembers, treeRssBytes } from './bench/procStat';
import { HELPER_ARGV_TAG } from '../src/activities/spawner/script';
import { loadavg } from 'node:os';
import { benchWorkerEnv, startBenchWorker, type WorkerMemory } from './bench/workerProcess';

const arg = (name: string, dflt?: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const pct = (a: number, b: number) => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(0)}%`;
const spaces = (s: Record<string, number>) => Object.entries(s).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
const heap = (m: WorkerMemory) =>
  `main heap ${mib(m.heapUsed)} used of ${mib(m.heapTotal)} (${spaces(m.spaces)}), external ${mib(m.external)}; ` +
  m.threads.map((t) => `thread ${t.threadId} heap ${mib(t.heapUsed)} of ${mib(t.heapTotal)} (${spaces(t.spaces)}), external ${mib(t.external)}; `).join('') +
  `process RSS ${mib(m.rss)}`;

/** BENCH_SMAPS_DIR: the worker's /proc/<pid>/smaps copied there before and after, to see which mappings grew. */
const keepSmaps = (pid: number, label: string) => {
  const dir = process.env.BENCH_SMAPS_DIR;
  if (dir) writeFileSync(path.join(dir, `smaps-${pid}-${label}`), readFileSync(`/proc/${pid}/smaps`));
};

interface Env {
  client: Client;
  taskQueue: string;
  repo: string;
  artifactDir: string;
}

async function batchOf(env: Env, n: number, label: string, opts: { concurrency: number; continueAfter?: number; pageSize?: number }) {
  const tasks: CodingTaskInput[] = Array.from({ length: n }, (_, i) => ({
    repo: env.repo,
    baseBranch: 'main',
    task: sub(`${label} ${i}`, 'a'),
    // A trivial check: the module says it is done.
    testCommand: ['grep', '-q', 'a-done', 'src/a.js'],
    providers: [{ id: 'bb', model: 'bb' }],
    limits: { maxAttempts: 1, testTimeoutSec: 60 },
    decomposition: 'never',
    push: false,
  }));
  const id = `bench-batch-${label}-${Date.now()}`;
  const store = { artifactDir: env.artifactDir, artifacts: undefined };
  const started = performance.now();
  const handle = await startTaskBatch({ tasks, ...opts }, { client: env.client, taskQueue: env.taskQueue, workflowId: id, upload: true, store });
  const result = await getBatchResult(id, { client: env.client, store });
  return { id, handle, result, wallMs: performance.now() - started };
}

async function largestChild(client: Client, ids: string[]): Promise<{ events: number; bytes: number }> {
  let events = 0;
  let bytes = 0;
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const desc = await client.workflow.getHandle(id).describe();
        const [run] = await runHistories(client, id, desc.runId);
        events = Math.max(events, run.events);
        bytes = Math.max(bytes, run.bytes);
      }
    }),
  );
  return { events, bytes };
}

async function main(): Promise<void> {
  const n = arg('--tasks', 2000)!;
  const concurrency = arg('--concurrency', 8)!;
  const continueAfter = arg('--continue-after');
  const pageSize = arg('--page-size');
  const warmup = arg('--warmup', 50)!;
  process.env.WEAVER_TEST_LOG_LEVEL ??= 'ERROR';
  await globalSetup();
  const tmp = sandboxableTempDir('weaver-bench-batch-');
  const model = startLineChild(path.join(__dirname, 'bench/batchModelServer.ts'), []);
  let worker: Awaited<ReturnType<typeof startBenchWorker>> | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const { url } = (await model.ready) as { url: string };
    const registry = path.join(tmp, 'providers.json');
    writeFileSync(registry, JSON.stringify({ providers: { bb: { baseURL: url, models: ['bb'], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } } }));
    const taskQueue = uniqueQueue('bench-batch');
    const artifactDir = path.join(tmp, 'artifacts');
    worker = await startBenchWorker(benchWorkerEnv({ tmp, address: testAddress(), taskQueue, registry, bundle: process.env.WEAVER_TEST_WORKFLOW_BUNDLE!, artifactDir }));
    const w = worker;
    const atStart = { own: processRssBytes(w.pid), tree: treeRssBytes(w.pid), kinds: rssBreakdown(w.pid) };
    const env: Env = { client: await testClient(), taskQueue, repo: await multiRepo({ tmp }, ['a']), artifactDir };
    await batchOf(env, warmup, 'warmup', { concurrency });
    const memBefore = await w.memory();
    const rssBefore = treeRssBytes(w.pid);
    const membersBefore = treeMembers(w.pid);
    const kindsBefore = rssBreakdown(w.pid);
    const helperPid = findInTree(w.pid, HELPER_ARGV_TAG[0]);
    const helperBefore = helperPid ? rssBreakdown(helperPid) : undefined;
    keepSmaps(w.pid, 'before');
    const loadBefore = load();
    let peak = rssBefore;
    let peakOwn = memBefore.rss;
    const started = Date.now();
    let lastLog = started;
    sampler = setInterval(() => {
      peak = Math.max(peak, treeRssBytes(w.pid));
      peakOwn = Math.max(peakOwn, processRssBytes(w.pid));
      if (Date.now() - lastLog >= 60_000) {
        lastLog = Date.now();
        const rss = `worker process RSS ${mib(processRssBytes(w.pid))} (${describeRss(rssBreakdown(w.pid))}), tree ${mib(treeRssBytes(w.pid))}, the rest ${treeMembers(w.pid)}; load ${load()}`;
        const minutes = ((Date.now() - started) / 60_000).toFixed(0);
        void env.client.workflow.count(`TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Completed'`).then(
          (c) => console.error(`  … ${minutes} min, ${c.count - warmup - 1} tasks done: ${rss}`),
          () => console.error(`  … ${minutes} min: ${rss}`),
        );
      }
    }, 500);
    const { id, handle, result, wallMs } = await batchOf(env, n, 'bench', { concurrency, ...(continueAfter ? { continueAfter } : {}), ...(pageSize ? { pageSize } : {}) });
    clearInterval(sampler);
    const rssAfter = treeRssBytes(w.pid);
    const membersAfter = treeMembers(w.pid);
    const loadAfter = load();
    const memAfter = await w.memory();
    const kindsAfter = rssBreakdown(w.pid);
    keepSmaps(w.pid, 'after');
    const runs = await runHistories(env.client, id, handle.firstExecutionRunId);
    const child = await largestChild(env.client, result.results.map((r) => r.workflowId));
    const a = result.aggregate;
    console.log(`batch of ${n} tiny tasks, concurrency ${concurrency}, one worker process (2-core machine, other jobs running):`);
    console.log(`  ${a.successCount}/${a.total} succeeded; wall ${(wallMs / 1000).toFixed(0)} s; ${((n / wallMs) * 60_000).toFixed(1)} tasks/min`);
    console.log(`  batch: ${runs.length} run(s); largest run ${Math.max(...runs.map((r) => r.events))} events / ${(Math.max(...runs.map((r) => r.bytes)) / 1024).toFixed(0)} KiB`);
    console.log(`  largest child: ${child.events} events / ${(child.bytes / 1024).toFixed(0)} KiB`);
    console.log(`  rows read back in input order: ${result.results.length} from ${result.pages?.length ?? 0} page(s)`);
    // "Before" is after the warm-up batch (the worker's first tasks load its code, fill its caches
    // and grow its heaps once); its value at start is printed too.
    console.log(`  load average: ${loadBefore} before, ${loadAfter} after (1, 5, 15 min; 2 cores)`);
    console.log(`  worker process RSS (the worker alone): ${mib(atStart.own)} at start, ${mib(memBefore.rss)} after a warm-up of ${warmup}, ${mib(memAfter.rss)} at the end (${pct(memBefore.rss, memAfter.rss)}), peak ${mib(peakOwn)} (${pct(memBefore.rss, peakOwn)})`);
    console.log(`    by kind, at start:          ${describeRss(atStart.kinds)}`);
    console.log(`    by kind, after the warm-up: ${describeRss(kindsBefore)}`);
    console.log(`    by kind, at the end:        ${describeRss(kindsAfter)}`);
    console.log(`  worker tree RSS (the worker, its spawn helper, live git/test commands): ${mib(atStart.tree)} at start, ${mib(rssBefore)} after the warm-up, ${mib(rssAfter)} at the end (${pct(rssBefore, rssAfter)}), peak ${mib(peak)} (${pct(rssBefore, peak)})`);
    console.log(`  the rest of the tree (process:MiB), before: ${membersBefore || 'none'}; after: ${membersAfter || 'none'}`);
    if (helperPid && helperBefore) console.log(`    the spawn helper (pid ${helperPid}) by kind, after the warm-up: ${describeRss(helperBefore)}; at the end: ${describeRss(rssBreakdown(helperPid))}`);
    console.log(`  worker after a full GC, before: ${heap(memBefore)}`);
    console.log(`  worker after a full GC, after:  ${heap(memAfter)}`);
  } finally {
    clearInterval(sampler);
    await worker?.stop().catch(() => undefined);
    await model.stop().catch(() => undefined);
    await closeTestConnections();
    await globalTeardown();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
