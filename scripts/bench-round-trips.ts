// Benchmark: what one task costs in Temporal round trips, read from finished runs' histories.
//
//   npx tsx scripts/bench-round-trips.ts                 (BENCH_N tasks, default 5)
//   BENCH_WORKFLOWS=/path/to/other/src/workflows npx tsx scripts/bench-round-trips.ts
//
// Self-contained like scripts/bench.ts: its own Temporal dev server, the scripted model server
// (answers at once) and an in-process worker; one-attempt codingTasks on the example repository,
// pushed. BENCH_WORKFLOWS bundles other workflow code (e.g. a checkout of an earlier commit, with
// node_modules linked) to compare before and after with the same activities. Prints per task:
// workflow tasks, activities scheduled, local activities, events, history bytes, search-attribute
// upserts (Weaver's, and the SDK's TemporalChangeVersion ones for patches), end to end.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { weaverLogger } from '../src/logging';
import { startCodingTask } from '../src/client';
import { startDevServer, stopProcessGroup, temporalCliPath } from '../src/devtools/devServer';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { editFormat } from '../src/domain/editformats';
import { createWorkers } from '../src/worker';
import { bundleWeaverWorkflows } from '../src/workflowBundle';
import { historyShape } from '../test/support/histories';
import { GOOD } from '../test/support/replayShapes';
import { createExampleRepo, exampleTask } from './demo/example';
import { ScriptedModelServer } from './demo/scriptedModelServer';

const N = Math.max(1, Number(process.env.BENCH_N || 5));

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-trips-');
  Runtime.install({ logger: weaverLogger('WARN') });
  const server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'temporal-server.log') });
  const model = await ScriptedModelServer.start();
  let worker: Awaited<ReturnType<typeof createWorkers>> | undefined;
  let running: Promise<void> | undefined;
  try {
    const workflowsPath = process.env.BENCH_WORKFLOWS ? path.resolve(process.env.BENCH_WORKFLOWS) : undefined;
    const { code } = await bundleWeaverWorkflows({ logger: new DefaultLogger('WARN'), ...(workflowsPath ? { workflowsPath } : {}) });
    model.setDefault('trips', () => ({ content: editFormat('editblock').render({ summary: 'slugify', files: [{ path: 'src/slugify.js', action: 'write', content: GOOD }] }) }));
    const providers = { providers: { trips: { baseURL: model.url, models: ['trips'], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } } };
    const connection = await NativeConnection.connect({ address: server.address });
    const clientConn = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConn, namespace: 'default' });
    const taskQueue = `weaver-trips-${process.pid}`;
    worker = await createWorkers({
      connection,
      taskQueue,
      workspaceQueue: `${taskQueue}-ws`,
      workflowBundle: { code },
      providers,
      deps: { artifactDir: path.join(tmp, 'artifacts'), workspaceRoot: path.join(tmp, 'workspaces'), repoRoots: [tmp] },
    });
    running = worker.run();
    const rows: Record<string, number[]> = {};
    const add = (k: string, v: number) => (rows[k] ??= []).push(v);
    // The first task warms the worker up: not counted.
    for (let i = 0; i <= N; i++) {
      const repo = await createExampleRepo(path.join(tmp, 'repos', `r${i}`));
      const started = Date.now();
      const handle = await startCodingTask({ ...exampleTask(repo, { id: 'trips', model: 'trips' }), push: true }, { client, taskQueue, workflowId: `trips-${process.pid}-${i}` });
      const result = await handle.result();
      const ms = Date.now() - started;
      if (result.status !== 'succeeded' || result.attempts.length !== 1) throw new Error(`${handle.workflowId}: ${result.status} in ${result.attempts.length} attempts: ${result.reason}`);
      if (i === 0) continue;
      const history = await handle.fetchHistory();
      const shape = historyShape(history);
      const count = (r: Record<string, number>) => Object.values(r).reduce((s, n) => s + n, 0);
      add('workflow tasks', shape.workflowTasks);
      add('activities scheduled', count(shape.activities));
      add('local activities', count(shape.localActivities));
      add('events', history.events?.length ?? 0);
      add('history bytes', temporal.api.history.v1.History.encode(history).finish().length);
      add("upserts of Weaver's search attributes", shape.upserts.length);
      add('upserts in all (with patches\' TemporalChangeVersion)', (history.events ?? []).filter((e) => e.upsertWorkflowSearchAttributesEventAttributes).length);
      add('end to end (ms)', ms);
    }
    console.log(`per one-attempt pushed task, median of ${N} (${workflowsPath ? `workflows from ${workflowsPath}` : 'this checkout'}):`);
    for (const [k, xs] of Object.entries(rows)) console.log(`  ${k.padEnd(56)} ${String(median(xs)).padStart(7)}   (min ${Math.min(...xs)}, max ${Math.max(...xs)})`);
    await clientConn.close();
  } finally {
    worker?.shutdown();
    await running?.catch(() => undefined);
    await model.close().catch(() => undefined);
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
