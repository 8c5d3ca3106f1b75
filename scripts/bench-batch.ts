// Benchmark of a batch of thousands (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-batch.ts [--tasks N] [--concurrency C] [--continue-after K] [--page-size P]
//
// N (default 2,000) tiny real tasks — clone, one scripted model answer, a one-line test, commit —
// in one taskBatch on one in-process worker (what the tests start: a throwaway Temporal dev
// server, the scripted model server over HTTP, real git). The task list is uploaded to the
// artifact store; the batch continues as new every K children (default: the batch's own 500).
// Figures: wall time, tasks/min, runs of the batch, the largest history of any workflow (the
// batch's runs and every child: events and bytes), the worker process's RSS after a warm-up
// batch of 10, at the end and at its peak.
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { byTitle, fix, multiRepo, sub } from '../test/support/modules';
import { runHistories } from '../test/support/temporal';
import { closeTestConnections, startRig, type Rig } from '../test/support/weaver';
import { getBatchResult, startTaskBatch } from '../src/client';
import type { CodingTaskInput } from '../src/domain/schema';

process.env.WEAVER_TEST_LOG_LEVEL ??= 'ERROR';

const arg = (name: string, dflt?: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

async function batchOf(rig: Rig, repo: string, n: number, label: string, opts: { concurrency: number; continueAfter?: number; pageSize?: number }) {
  const titles = Array.from({ length: n }, (_, i) => `${label} ${i}`);
  rig.model.setDefault(`bb-${label}`, byTitle(Object.fromEntries(titles.map((t) => [t, fix('a')]))));
  const provider = rig.provider(`bb-${label}`);
  const tasks: CodingTaskInput[] = titles.map((title) => ({
    repo,
    baseBranch: 'main',
    task: sub(title, 'a'),
    // A trivial check: the module says it is done.
    testCommand: ['grep', '-q', 'a-done', 'src/a.js'],
    providers: [provider],
    limits: { maxAttempts: 1, testTimeoutSec: 60 },
    decomposition: 'never',
    push: false,
  }));
  const id = `bench-batch-${label}-${Date.now()}`;
  const store = { artifactDir: rig.artifactDir, artifacts: undefined };
  const started = performance.now();
  const handle = await startTaskBatch({ tasks, ...opts }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: id, upload: true, store });
  const result = await getBatchResult(id, { client: rig.client, store });
  const wallMs = performance.now() - started;
  return { id, handle, result, wallMs };
}

async function largestChild(rig: Rig, ids: string[]): Promise<{ events: number; bytes: number }> {
  let events = 0;
  let bytes = 0;
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const desc = await rig.client.workflow.getHandle(id).describe();
        const [run] = await runHistories(rig.client, id, desc.runId);
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
  await globalSetup();
  const rig = await startRig();
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200);
  try {
    const repo = await multiRepo(rig, ['a']);
    await batchOf(rig, repo, 10, 'warmup', { concurrency });
    const rssBefore = process.memoryUsage().rss;
    peak = rssBefore;
    const { id, handle, result, wallMs } = await batchOf(rig, repo, n, 'bench', { concurrency, ...(continueAfter ? { continueAfter } : {}), ...(pageSize ? { pageSize } : {}) });
    const rssAfter = process.memoryUsage().rss;
    const runs = await runHistories(rig.client, id, handle.firstExecutionRunId);
    const child = await largestChild(rig, result.results.map((r) => r.workflowId));
    const a = result.aggregate;
    console.log(`batch of ${n} tiny tasks, concurrency ${concurrency}, one worker (2-core machine, other jobs running):`);
    console.log(`  ${a.successCount}/${a.total} succeeded; wall ${(wallMs / 1000).toFixed(0)} s; ${((n / wallMs) * 60_000).toFixed(1)} tasks/min`);
    console.log(`  batch: ${runs.length} run(s); largest run ${Math.max(...runs.map((r) => r.events))} events / ${(Math.max(...runs.map((r) => r.bytes)) / 1024).toFixed(0)} KiB`);
    console.log(`  largest child: ${child.events} events / ${(child.bytes / 1024).toFixed(0)} KiB`);
    console.log(`  rows read back in input order: ${result.results.length} from ${result.pages?.length ?? 0} page(s)`);
    console.log(`  worker RSS: ${mib(rssBefore)} after warm-up, ${mib(rssAfter)} at the end (${(((rssAfter - rssBefore) / rssBefore) * 100).toFixed(0)}%), peak ${mib(peak)}`);
  } finally {
    clearInterval(sampler);
    await rig.close().catch(() => undefined);
    await closeTestConnections();
    await globalTeardown();
  }
}

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
