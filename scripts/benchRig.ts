// What the benchmarks run on: their own Temporal dev server (the binary from
// scripts/temporal-cli.sh, headless, on a free port), the workflow code bundled once, the
// scripted model server with one registry provider per model name, and an in-process worker.
// Everything is stopped, and the temp dir removed, on close, on Ctrl-C and on exit.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { bundleWeaverWorkflows } from '../src/workflowBundle';
import { weaverLogger } from '../src/logging';
import { killProcessGroup, startDevServer, stopProcessGroup, temporalCliPath } from '../src/devtools/devServer';
import { ScriptedModelServer } from './demo/scriptedModelServer';
import { createWorkers, type WeaverWorkers } from '../src/worker';

export interface BenchRig {
  client: Client;
  taskQueue: string;
  model: ScriptedModelServer;
  worker: WeaverWorkers;
  /** How long the dev server took to be ready, the bundle to be made, and its size. */
  serverMs: number;
  bundleMs: number;
  bundleBytes: number;
  close(): Promise<void>;
}

/** `models`: the scripted model names the worker's registry offers (a task names no endpoint). */
export async function startBenchRig(tmp: string, models: string[], name: string): Promise<BenchRig> {
  let server: { pid: number; address: string } | undefined;
  let model: ScriptedModelServer | undefined;
  let worker: WeaverWorkers | undefined;
  let running: Promise<void> | undefined;
  let nativeConn: NativeConnection | undefined;
  let clientConn: Connection | undefined;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      worker?.shutdown();
      await running?.catch(() => undefined);
      await nativeConn?.close().catch(() => undefined);
      await clientConn?.close().catch(() => undefined);
      await model?.close().catch(() => undefined);
      if (server) await stopProcessGroup(server.pid);
      rmSync(tmp, { recursive: true, force: true });
    })());
  // Ctrl-C or a crash: do not leave the server or the temp dir behind.
  process.once('SIGINT', () => void close().finally(() => process.exit(130)));
  process.once('exit', () => {
    if (server) killProcessGroup(server.pid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });
  try {
    Runtime.install({ logger: weaverLogger('WARN') });
    const t0 = Date.now();
    server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'temporal-server.log') });
    const serverMs = Date.now() - t0;
    const t1 = Date.now();
    const { code } = await bundleWeaverWorkflows({ logger: new DefaultLogger('WARN') });
    const bundleMs = Date.now() - t1;
    model = await ScriptedModelServer.start();
    const providers = { providers: Object.fromEntries(models.map((m) => [m, { baseURL: model!.url, models: [m], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } }])) };
    nativeConn = await NativeConnection.connect({ address: server.address });
    clientConn = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConn, namespace: 'default' });
    const taskQueue = `${name}-${process.pid}`;
    worker = await createWorkers({
      connection: nativeConn,
      taskQueue,
      workspaceQueue: `${taskQueue}-ws`,
      workflowBundle: { code },
      providers,
      deps: { artifactDir: path.join(tmp, 'artifacts'), workspaceRoot: path.join(tmp, 'workspaces'), repoRoots: [tmp] },
    });
    running = worker.run();
    return { client, taskQueue, model, worker, serverMs, bundleMs, bundleBytes: code.length, close };
  } catch (err) {
    await close();
    throw err;
  }
}
