// Benchmark: what a worker pays to start and what a fresh workflow pays before its first command.
//
//   npx tsx scripts/bench-workflow-start.ts [sdk|lean]   (BENCH_N workers, default 5; BENCH_M workflows each, default 6)
//
// Self-contained: its own Temporal dev server; workflow-only workers (no activities) on fresh
// queues. `sdk` bundles with the SDK's default options, `lean` (default) with src/workflowBundle.ts.
// Per worker: Worker.create (the bundle parsed, the V8 context built), a workflow started before
// the worker → its first workflow task's start (worker start to first poll), then BENCH_M
// codingTasks one after another whose input is refused, so their one workflow task is module
// initialisation + input validation only (the history's WorkflowTaskStarted → Completed).
// Prints figures; asserts nothing.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { weaverLogger } from '../src/logging';
import { startDevServer, stopProcessGroup, temporalCliPath } from '../src/devtools/devServer';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { bundleWeaverWorkflows } from '../src/workflowBundle';

const N = Math.max(1, Number(process.env.BENCH_N || 5));
const M = Math.max(1, Number(process.env.BENCH_M || 6));
const variant = process.argv[2] === 'sdk' ? 'sdk' : 'lean';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}, n=${xs.length})`;
const ms = (t: temporal.api.history.v1.IHistoryEvent) => Number(t.eventTime!.seconds) * 1000 + (t.eventTime!.nanos ?? 0) / 1e6;

/** The first workflow task's start and its duration (started → completed), from the history. */
async function firstTask(client: Client, workflowId: string): Promise<{ startedAt: number; durationMs: number }> {
  for (;;) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const started = events.find((e) => e.workflowTaskStartedEventAttributes);
    const done = events.find((e) => e.workflowTaskCompletedEventAttributes || e.workflowTaskFailedEventAttributes);
    if (started && done) return { startedAt: ms(started), durationMs: ms(done) - ms(started) };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-start-');
  Runtime.install({ logger: weaverLogger('ERROR') });
  const server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'temporal-server.log') });
  try {
    const t0 = Date.now();
    const logger = new DefaultLogger('WARN');
    const { code } = variant === 'sdk' ? await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger }) : await bundleWeaverWorkflows({ logger });
    const bundleMs = Date.now() - t0;
    const mapAt = code.lastIndexOf('//# sourceMappingURL=');
    console.log(`workflow bundle (${variant}): ${(code.length / 1024).toFixed(0)} KiB = code ${(mapAt / 1024).toFixed(0)} KiB + inline source map ${((code.length - mapAt) / 1024).toFixed(0)} KiB, built in ${bundleMs} ms`);
    const connection = await NativeConnection.connect({ address: server.address });
    const clientConn = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConn, namespace: 'default' });
    const create: number[] = [];
    const toFirstPoll: number[] = [];
    const firstOfWorker: number[] = [];
    const fresh: number[] = [];
    // Refused at validation (no providers): the run's only workflow task, no activity scheduled.
    const refused = { repo: '/nowhere', task: { title: 'bench', description: 'bench' }, providers: [] };
    for (let i = 0; i < N; i++) {
      const taskQueue = `bench-start-${process.pid}-${i}`;
      const id = (k: number | string) => `${taskQueue}-${k}`;
      await client.workflow.start('codingTask', { taskQueue, workflowId: id('waiting'), args: [refused] });
      const started = Date.now();
      const worker = await Worker.create({ connection, taskQueue, workflowBundle: { code } });
      create.push(Date.now() - started);
      await worker.runUntil(async () => {
        const first = await firstTask(client, id('waiting'));
        toFirstPoll.push(first.startedAt - started);
        firstOfWorker.push(first.durationMs);
        for (let k = 0; k < M; k++) {
          await client.workflow.start('codingTask', { taskQueue, workflowId: id(k), args: [refused] });
          fresh.push((await firstTask(client, id(k))).durationMs);
        }
      });
    }
    console.log(`Worker.create:                            ${fmt(create)}`);
    console.log(`worker start → first workflow task taken: ${fmt(toFirstPoll)}`);
    console.log(`first workflow task, worker's first run:  ${fmt(firstOfWorker)}`);
    console.log(`first workflow task, a fresh workflow:    ${fmt(fresh)}`);
    await clientConn.close();
    await connection.close();
  } finally {
    await stopProcessGroup(server.pid);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
