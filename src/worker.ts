// Worker entry: one worker on the shared queue (workflows, provider calls, workspace
// preparation) and one on this worker's own workspace queue (git, apply, tests).
import os from 'node:os';
import path from 'node:path';
import { NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import { weaverLogger } from './logging';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import type { ActivityDeps } from './activities/types';
import { WEAVER_SEARCH_ATTRIBUTES } from './domain/searchAttributes';
import { config } from './config';

export interface WeaverWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Defaults to `<taskQueue>@<hostname>`: stable across restarts so a workspace stays reachable. */
  workspaceQueue?: string;
  deps?: Partial<ActivityDeps>;
  /** Tests pass a prebuilt bundle; otherwise the workflows are bundled from source. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export async function createWorkers(opts: WeaverWorkerOptions): Promise<{ run(): Promise<void>; shutdown(): void; workspaceQueue: string; workers: Worker[] }> {
  const c = config();
  const taskQueue = opts.taskQueue ?? c.taskQueue;
  const workspaceQueue = opts.workspaceQueue ?? process.env.WEAVER_WORKSPACE_QUEUE ?? `${taskQueue}@${os.hostname()}`;
  const deps: ActivityDeps = {
    artifactDir: c.artifactDir,
    workspaceRoot: c.workspaceRoot,
    env: process.env,
    retryDelayScale: c.retryDelayScale,
    heartbeatMs: c.heartbeatMs,
    ...opts.deps,
    workspaceQueue,
  };
  const activities = createActivities(deps);
  const namespace = opts.namespace ?? c.namespace;
  // Heartbeats reach the server at this pace, so a cancelled call notices within about one tick.
  const throttle = { maxHeartbeatThrottleInterval: deps.heartbeatMs, defaultHeartbeatThrottleInterval: deps.heartbeatMs };
  const main = await Worker.create({
    connection: opts.connection,
    namespace,
    taskQueue,
    ...throttle,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('./workflows') }),
    activities,
  });
  const local = await Worker.create({ connection: opts.connection, namespace, taskQueue: workspaceQueue, activities, ...throttle });
  const workers = [main, local];
  return {
    workers,
    workspaceQueue,
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
  };
}

/** Registers Weaver's search attributes if the namespace lacks them (plain `temporal server start-dev`). */
export async function ensureSearchAttributes(connection: NativeConnection, namespace: string): Promise<void> {
  const have = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = WEAVER_SEARCH_ATTRIBUTES.filter((k) => !have.customAttributes?.[k.name]);
  if (!missing.length) return;
  const kind = temporal.api.enums.v1.IndexedValueType;
  const types: Record<string, number> = { KEYWORD: kind.INDEXED_VALUE_TYPE_KEYWORD, DOUBLE: kind.INDEXED_VALUE_TYPE_DOUBLE, INT: kind.INDEXED_VALUE_TYPE_INT };
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((k) => [k.name, types[k.type]])),
  });
}

async function main() {
  Runtime.install({ logger: weaverLogger((process.env.WEAVER_LOG_LEVEL as LogLevel) || 'INFO') });
  const c = config();
  const connection = await NativeConnection.connect({ address: c.address });
  await ensureSearchAttributes(connection, c.namespace);
  // WEAVER_WORKFLOW_BUNDLE: a prebuilt bundle (bundleWorkflowCode output) to skip bundling at start.
  const bundlePath = process.env.WEAVER_WORKFLOW_BUNDLE;
  const w = await createWorkers({ connection, workflowBundle: bundlePath ? { codePath: bundlePath } : undefined });
  console.log(
    `weaver worker: queue "${c.taskQueue}", workspace queue "${w.workspaceQueue}", temporal ${c.address}/${c.namespace}\n` +
      `  workspaces in ${path.resolve(c.workspaceRoot)}, artifacts in ${path.resolve(c.artifactDir)}`,
  );
  await w.run();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
