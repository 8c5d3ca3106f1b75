// Worker entry: one worker on the shared queue (workflows, provider calls, workspace
// preparation) and one on this worker's own workspace queue (git, apply, tests).
import os from 'node:os';
import path from 'node:path';
import { NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import { weaverLogger } from './logging';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import { describeSandbox, detectSandbox, enforcementOf, type SandboxSetting } from './activities/sandbox';
import { describeRegistry, loadProviderRegistry } from './activities/providers';
import type { ActivityDeps } from './activities/types';
import type { ProviderRegistry } from './domain/registry';
import { WEAVER_SEARCH_ATTRIBUTES } from './domain/searchAttributes';
import { config } from './config';

export interface WeaverWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Defaults to `<taskQueue>@<hostname>`: stable across restarts so a workspace stays reachable. */
  workspaceQueue?: string;
  deps?: Partial<ActivityDeps>;
  /** The provider registry; otherwise loaded (and validated) from WEAVER_PROVIDERS, or the built-in one. */
  providers?: ProviderRegistry;
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
    allowInlineEndpoints: c.allowInlineEndpoints,
    // Which repositories it clones and where it pushes (WEAVER_DEV, WEAVER_REPO_ROOTS, WEAVER_PUSH_REMOTES).
    dev: c.dev,
    repoRoots: c.repoRoots,
    pushRemotes: c.pushRemotes,
    ...opts.deps,
    // Provider keys and their endpoints come from here only (a bad file fails the start, naming the field).
    providers: opts.providers ?? opts.deps?.providers ?? loadProviderRegistry(c.providersFile),
    workspaceQueue,
  };
  // Which sandbox commands run in: found (and tried) once; `required` without bwrap stops the start here.
  deps.sandbox ??= await workerSandbox(deps);
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

/** The sandbox this worker's commands run in (WEAVER_SANDBOX; see src/activities/sandbox.ts). */
export async function workerSandbox(paths: { workspaceRoot: string; artifactDir: string }, mode = config().sandbox): Promise<SandboxSetting> {
  const c = config();
  return detectSandbox({ mode, hide: [paths.workspaceRoot, paths.artifactDir, ...c.sandboxHide], readOnly: c.sandboxReadOnly });
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
  // Before connecting: a bad registry file stops the worker here, naming the file and the field.
  const providers = loadProviderRegistry(c.providersFile);
  const sandbox = await workerSandbox(c);
  const connection = await NativeConnection.connect({ address: c.address });
  await ensureSearchAttributes(connection, c.namespace);
  // WEAVER_WORKFLOW_BUNDLE: a prebuilt bundle (bundleWorkflowCode output) to skip bundling at start.
  const bundlePath = process.env.WEAVER_WORKFLOW_BUNDLE;
  const w = await createWorkers({ connection, providers, deps: { sandbox }, workflowBundle: bundlePath ? { codePath: bundlePath } : undefined });
  console.log(
    `weaver worker: queue "${c.taskQueue}", workspace queue "${w.workspaceQueue}", temporal ${c.address}/${c.namespace}\n` +
      `  workspaces in ${path.resolve(c.workspaceRoot)}, artifacts in ${path.resolve(c.artifactDir)}\n` +
      `  local repositories: ${c.repoRoots?.length ? `under ${c.repoRoots.join(':')} (WEAVER_REPO_ROOTS)` : c.dev ? 'anywhere (WEAVER_DEV=1)' : 'refused (set WEAVER_REPO_ROOTS)'}; ` +
      `push to: the task's own repository${c.pushRemotes.length ? ` and under ${c.pushRemotes.join(', ')}` : ''} (WEAVER_PUSH_REMOTES)\n` +
      `  sandbox: ${sandbox.kind === 'none' ? `NONE — ${sandbox.warning}` : `${describeSandbox(sandbox)} (WEAVER_SANDBOX=${sandbox.mode}; limits by ${enforcementOf(sandbox)}${sandbox.runAs !== undefined ? `; commands run as uid ${sandbox.runAs}` : ''})`}\n` +
      `  providers (${c.providersFile ? `WEAVER_PROVIDERS=${c.providersFile}` : 'built-in; set WEAVER_PROVIDERS for a registry'}${c.allowInlineEndpoints ? '; inline endpoints allowed, without keys' : ''}):\n` +
      describeRegistry(providers, process.env).map((l) => `    ${l}`).join('\n'),
  );
  await w.run();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
