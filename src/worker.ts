// Worker entry: one worker on the shared queue (workflows, provider calls, workspace
// preparation), one on this process's own workspace queue (git, apply, tests), and a small one
// that answers the workflow's liveness check for that queue (src/domain/liveness.ts).
// Operations (README "Operating workers"): a slot per process on its host (src/workerSlot.ts),
// slot limits, a graceful stop on SIGTERM/SIGINT, Worker Versioning when a build is named.
import os from 'node:os';
import path from 'node:path';
import { NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import { weaverLogger } from './logging';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import { openArtifactStore } from './activities/s3Artifacts';
import { describeSandbox, describeToolchains, detectSandbox, enforcementOf, sandboxDetails, sweepCgroups, type SandboxSetting } from './activities/sandbox';
import { describeRegistry, loadProviderRegistry } from './activities/providers';
import { checkGitCredentials } from './activities/repoPolicy';
import type { ActivityDeps } from './activities/types';
import { providerTaskQueue } from './domain/quota';
import type { ProviderRegistry } from './domain/registry';
import { checkInlineEndpoints, INLINE_ENDPOINTS_ENV } from './domain/endpoints';
import { WEAVER_SEARCH_ATTRIBUTES } from './domain/searchAttributes';
import { aliveQueueOf, WORKSPACE_HEARTBEAT_TIMEOUT_SEC } from './domain/liveness';
import { usableCacheDir } from './cacheDir';
import { WORKFLOW_BUNDLER_OPTIONS } from './workflowBundle';
import { config, type WeaverConfig } from './config';
import { claimWorkerSlot, type WorkerSlot } from './workerSlot';
import { spawnHelperPid, startSpawnHelper } from './activities/spawner';
import { connectWithRetry } from './connect';
import { sweepWorkspaces, type SweepOutcome } from './workspaceSweep';
import { listUnpushed } from './activities/unpushed';
import { runGc } from './gc';
import { periodicGc } from './gc/periodic';
import { describeMallocArenas } from './mallocArenas';
import { describeMetrics, describeTracing, metricsAddress, runtimeTelemetry, tracesUrl } from './telemetry';

export interface WeaverWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /**
   * Defaults to WEAVER_WORKSPACE_QUEUE, else `<taskQueue>@<hostname>/<slot>`: unique per process
   * on a host, and the same again for a process restarted in its slot, so its workspaces stay reachable.
   */
  workspaceQueue?: string;
  /** Overrides of the operational settings read from the environment (tests). */
  settings?: Partial<Pick<WeaverConfig, 'shutdownGraceMs' | 'shutdownForceMs' | 'heartbeatThrottleMs' | 'maxActivities' | 'maxWorkspaceActivities' | 'workerSlot' | 'deployment'>>;
  deps?: Partial<ActivityDeps>;
  /** The provider registry; otherwise loaded (and validated) from WEAVER_PROVIDERS, or the built-in one. */
  providers?: ProviderRegistry;
  /** Tests pass a prebuilt bundle; otherwise the workflows are bundled from source. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** SDK plugins for the workers that run workflows and activities (OpenTelemetry: src/tracing.ts). */
  plugins?: WorkerOptions['plugins'];
}

export interface WeaverWorkers {
  run(): Promise<void>;
  /** Stops polling; in-flight activities get the shutdown grace. `run()` resolves once drained. */
  shutdown(): void;
  workspaceQueue: string;
  slot: WorkerSlot;
  workers: Worker[];
  /** The sweep started with the workers (src/workspaceSweep.ts): closed runs' folders past retention, lost hosts' leftovers at once; undefined if it could not run. */
  swept: Promise<SweepOutcome | undefined>;
}

export async function createWorkers(opts: WeaverWorkerOptions): Promise<WeaverWorkers> {
  const c = { ...config(), ...opts.settings };
  const taskQueue = opts.taskQueue ?? c.taskQueue;
  const workspaceRoot = opts.deps?.workspaceRoot ?? c.workspaceRoot;
  // This process's place on its host; a dead predecessor's leftover commands are killed here.
  // Its one fork of this process now, while it is small: every child process starts there.
  startSpawnHelper();
  const slot = await claimWorkerSlot(workspaceRoot, c.workerSlot);
  try {
    return await startWorkers(opts, c, taskQueue, slot);
  } catch (err) {
    await slot.release();
    throw err;
  }
}

async function startWorkers(opts: WeaverWorkerOptions, c: WeaverConfig, taskQueue: string, slot: WorkerSlot): Promise<WeaverWorkers> {
  const workspaceQueue = opts.workspaceQueue ?? c.workspaceQueue ?? `${taskQueue}@${os.hostname()}/${slot.label}`;
  const deps: ActivityDeps = {
    artifactDir: c.artifactDir,
    artifacts: c.artifacts,
    workspaceRoot: c.workspaceRoot,
    // One tag cache for every worker process on the host (falls back to the workspace root's).
    cacheDir: opts.deps?.cacheDir ?? (await usableCacheDir(c.cacheDir, opts.deps?.workspaceRoot ?? c.workspaceRoot)),
    env: process.env,
    retryDelayScale: c.retryDelayScale,
    heartbeatMs: c.heartbeatMs,
    inlineEndpoints: c.inlineEndpoints,
    defaultTreeCostUsd: c.defaultTreeCostUsd,
    // Which repositories it clones and where it pushes (WEAVER_DEV, WEAVER_REPO_ROOTS, WEAVER_PUSH_REMOTES).
    dev: c.dev,
    repoRoots: c.repoRoots,
    pushRemotes: c.pushRemotes,
    maxCommands: c.maxCommands,
    queueCheckSec: c.queueCheckSec,
    holdAfterAnswerMs: c.holdAfterAnswerMs,
    ...opts.deps,
    commandRecordDir: slot.commandsDir,
    // Provider keys and their endpoints come from here only (a bad file fails the start, naming the field).
    providers: opts.providers ?? opts.deps?.providers ?? loadProviderRegistry(c.providersFile),
    workspaceQueue,
    workflowQueue: taskQueue,
  };
  // Git tokens and the repositories each may go to: a bad WEAVER_GIT_CREDENTIALS file, or a host
  // token without a scope outside dev mode, stops the start here, naming the setting.
  checkGitCredentials(deps.env);
  // Endpoints a task may name itself: a bad pattern (deps given in code skip config()) stops the start.
  checkInlineEndpoints(deps.inlineEndpoints ?? [], `inlineEndpoints (${INLINE_ENDPOINTS_ENV})`);
  // Which sandbox commands run in: found (and tried) once; `required` without bwrap stops the start here.
  deps.sandbox ??= await workerSandbox(deps);
  // Cgroups a dead worker process left (its workspaces' own, never released) go, beside the start
  // (this worker's own are named by its pid: nothing to wait for).
  void sweepCgroups(deps.sandbox.cgroup).catch(() => []);
  // The artifact store reachable (an S3 bucket with these credentials; created when missing), or no start.
  const store = openArtifactStore({ artifacts: deps.artifacts, dir: deps.artifactDir, env: deps.env });
  await store.check();
  const activities = createActivities(deps);
  const common = {
    connection: opts.connection,
    namespace: opts.namespace ?? c.namespace,
    // On shutdown: stop polling, let in-flight activities finish for the grace (a provider call
    // answered meanwhile is delivered and booked), then cancel the rest — retried elsewhere.
    shutdownGraceTime: c.shutdownGraceMs,
    shutdownForceTime: c.shutdownForceMs,
    // A workflow cached on a worker that died waits this long before another worker takes its
    // next task (SDK default 10 s): paid once or twice by every lost host's recovery (3 s each in
    // the crash campaign). A live worker takes its sticky tasks at once whatever its load (Core
    // polls apart from the JS thread); the cost of a miss is a replay on another worker.
    stickyQueueScheduleToStartTimeout: 1000,
    ...(opts.plugins?.length ? { plugins: opts.plugins } : {}),
  };
  const throttle = (ms: number | undefined) => (ms ? { maxHeartbeatThrottleInterval: ms, defaultHeartbeatThrottleInterval: ms } : {});
  const main = await Worker.create({
    ...common,
    // Provider calls report at WEAVER_HEARTBEAT_MS: a cancellation (a lost race, a quorum
    // reached) reaches a call only with a heartbeat's reply, and every second the loser keeps
    // generating is paid for. Calls last minutes at most, so these beats stay few.
    ...throttle(c.heartbeatThrottleMs ?? deps.heartbeatMs),
    taskQueue,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('./workflows'), bundlerOptions: WORKFLOW_BUNDLER_OPTIONS }),
    activities,
    maxConcurrentActivityTaskExecutions: c.maxActivities,
    // A named build pins each workflow to the build that started it: a deploy never replays old
    // histories on new code. Workspace queues are this process's own and stay unversioned.
    ...(c.deployment
      ? { workerDeploymentOptions: { useWorkerVersioning: true, version: { deploymentName: c.deployment.name, buildId: c.deployment.buildId }, defaultVersioningBehavior: 'PINNED' as const } }
      : {}),
  });
  // Workspace activities (suites of half an hour) report every 0.4 × their heartbeat timeout (4 s),
  // unless WEAVER_HEARTBEAT_THROTTLE_MS says otherwise: each beat is a billable action on Temporal
  // Cloud (450 for a 30-min suite, not 1,800), and the SDK's 0.8 × would leave a loaded machine
  // 2 s before a live worker is taken for dead.
  const local = await Worker.create({ ...common, ...throttle(c.heartbeatThrottleMs ?? WORKSPACE_HEARTBEAT_TIMEOUT_SEC * 400), taskQueue: workspaceQueue, activities, maxConcurrentActivityTaskExecutions: c.maxWorkspaceActivities });
  // Never busy (its one activity returns at once): it answers "alive" while every workspace slot is taken.
  const alive = await Worker.create({ ...common, plugins: [], taskQueue: aliveQueueOf(workspaceQueue), activities: { workspaceAlive: activities.workspaceAlive }, maxConcurrentActivityTaskExecutions: 4 });
  const limited = await providerQueueWorkers(deps.providers!, (taskQueue, requestsPerSecond) =>
    Worker.create({
      ...common,
      ...throttle(c.heartbeatThrottleMs ?? deps.heartbeatMs),
      taskQueue,
      // The provider call only, with the same store: a kept answer is delivered from this queue too.
      activities: { generateChange: activities.generateChange },
      maxConcurrentActivityTaskExecutions: c.maxActivities,
      // Server-side: Temporal dispatches at most this many tasks a second from the queue, whichever workers poll it.
      maxTaskQueueActivitiesPerSecond: requestsPerSecond,
    }),
  );
  const workers = [main, local, alive, ...limited];
  // Beside the start, not before it: a root of many folders is many questions to Temporal.
  const namespace = opts.namespace ?? c.namespace;
  // The store's unpushed records: a folder whose commits a recorded bundle holds is no commit's only copy.
  const records = listUnpushed(store).catch(() => []);
  const swept = records.then((unpushed) => sweepWorkspaces({ root: deps.workspaceRoot, connection: opts.connection, namespace, workspaceQueue, retentionMs: c.retentionMs, unpushed })).catch((err: Error) => {
    console.warn(`weaver worker: workspace sweep failed: ${err.message}`);
    return undefined;
  });
  const stopGc = periodicGc(c.gcIntervalMs, () =>
    runGc({ connection: opts.connection, namespace, workspaceRoot: deps.workspaceRoot, cacheDir: deps.cacheDir, store, retentionMs: c.retentionMs, cacheMaxBytes: c.cacheMaxBytes }),
  );
  return {
    workers,
    swept,
    workspaceQueue,
    slot,
    run: async () => {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        stopGc();
        await swept;
        await slot.release();
      }
    },
    shutdown: () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
  };
}

/** A worker on each rate-limited provider's queue (registry `rateLimit`), made by `create`. */
export function providerQueueWorkers(registry: ProviderRegistry, create: (taskQueue: string, requestsPerSecond: number) => Promise<Worker>): Promise<Worker[]> {
  const limited = Object.entries(registry.providers).filter(([, e]) => e.rateLimit);
  return Promise.all(limited.map(([id, e]) => create(providerTaskQueue(id), e.rateLimit!.requestsPerSecond)));
}

/** The worker's own code: its checkout (or installed package), above src/. */
export const CHECKOUT = path.resolve(__dirname, '..');

/**
 * The sandbox this worker's commands run in (WEAVER_SANDBOX; see src/activities/sandbox.ts).
 * What the worker owns is hidden from it: the workspace root (but the task's own workspace),
 * the artifact store, its checkout, its provider registry and git credentials files.
 */
export async function workerSandbox(paths: { workspaceRoot: string; artifactDir: string; cacheDir?: string }, mode = config().sandbox, env: NodeJS.ProcessEnv = process.env): Promise<SandboxSetting> {
  const c = config(env);
  const owned = [c.providersFile, env.WEAVER_GIT_CREDENTIALS && path.resolve(env.WEAVER_GIT_CREDENTIALS), CHECKOUT].filter((p): p is string => !!p);
  return detectSandbox({
    mode,
    hide: [paths.workspaceRoot, paths.artifactDir, ...(paths.cacheDir ? [paths.cacheDir] : []), ...owned, ...c.sandboxHide],
    toolchains: c.sandboxToolchains,
    readOnly: c.sandboxReadOnly,
    workspaceRoot: paths.workspaceRoot,
    env,
  });
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
  // Signals are handled below (stopOnSignals), not by the Runtime: it would let a second signal
  // kill the process at once, and wrappers (npm, tsx) relay one Ctrl-C as two.
  // Once per process: the Prometheus endpoint (WEAVER_METRICS_ADDRESS) is the Runtime's.
  const metrics = metricsAddress();
  Runtime.install({ logger: weaverLogger((process.env.WEAVER_LOG_LEVEL as LogLevel) || 'INFO'), shutdownSignals: [], telemetryOptions: runtimeTelemetry(metrics) });
  // Every setting checked before anything starts: a bad number stops the worker naming its variable.
  const c = config();
  // Before connecting: a bad registry file stops the worker here, naming the file and the field.
  const providers = loadProviderRegistry(c.providersFile);
  const gitCredentials = checkGitCredentials(process.env);
  const sandbox = await workerSandbox(c);
  // The server may still be starting (compose, a fleet's restart): waited for, saying so.
  const connection = await connectWithRetry({ address: c.address, waitMs: c.connectWaitMs });
  await ensureSearchAttributes(connection, c.namespace);
  // WEAVER_WORKFLOW_BUNDLE: a prebuilt bundle (src/workflowBundle.ts bundleWeaverWorkflows output) to skip bundling at start.
  const bundlePath = process.env.WEAVER_WORKFLOW_BUNDLE;
  // Loaded only when on (WEAVER_OTEL_ENDPOINT or the standard OTEL_EXPORTER_OTLP_ENDPOINT).
  const otlp = tracesUrl();
  const tracing = otlp ? (await import('./tracing')).startTracing(otlp) : undefined;
  const w = await createWorkers({ connection, providers, deps: { sandbox }, workflowBundle: bundlePath ? { codePath: bundlePath } : undefined, plugins: tracing && [tracing.plugin] });
  console.log(
    `weaver worker: queue "${c.taskQueue}", workspace queue "${w.workspaceQueue}", temporal ${c.address}/${c.namespace}\n` +
      `  workspaces in ${path.resolve(c.workspaceRoot)}, artifacts in ${c.artifacts ? `${c.artifacts} (cache ${path.resolve(c.artifactDir)})` : path.resolve(c.artifactDir)}\n` +
      `  local repositories: ${c.repoRoots?.length ? `under ${c.repoRoots.join(':')} (WEAVER_REPO_ROOTS)` : c.dev ? 'anywhere (WEAVER_DEV=1)' : 'refused (set WEAVER_REPO_ROOTS)'}; ` +
      `push to: the task's own repository${c.pushRemotes.length ? ` and under ${c.pushRemotes.join(', ')}` : ''} (WEAVER_PUSH_REMOTES)\n` +
      `  git tokens (repository prefix → variable; nothing is sent elsewhere): ${gitCredentials}\n` +
      `  sandbox: ${sandbox.kind === 'none' ? `NONE — ${sandbox.warning}` : `${describeSandbox(sandbox)} (WEAVER_SANDBOX=${sandbox.mode}; limits by ${enforcementOf(sandbox)}${sandboxDetails(sandbox)})`}\n` +
      `  toolchains: ${describeToolchains(sandbox.toolchains ?? [])}${sandbox.toolchainEnv && Object.keys(sandbox.toolchainEnv).length ? ` (${Object.entries(sandbox.toolchainEnv).map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}; ` +
      `caches (Go, cargo, Maven, Gradle, npm, pnpm, yarn, pip) per repository in ${path.join(path.resolve(c.workspaceRoot), '.cache', 'toolchains')}\n` +
      `  providers (${c.providersFile ? `WEAVER_PROVIDERS=${c.providersFile}` : 'built-in; set WEAVER_PROVIDERS for a registry'}; endpoints a task may name itself: ${c.inlineEndpoints.length ? `${c.inlineEndpoints.join(', ')}, called without keys` : 'none'} (${INLINE_ENDPOINTS_ENV})):\n` +
      describeRegistry(providers, process.env).map((l) => `    ${l}`).join('\n') +
      `\n  operations: slot ${w.slot.label} on ${os.hostname()}${w.slot.orphansKilled ? ` (killed ${w.slot.orphansKilled} command group(s) its previous holder left running)` : ''}; ` +
      `${describeMetrics(metrics)}; ${describeTracing(otlp)}${otlp && bundlePath ? ' (activities only: the prebuilt WEAVER_WORKFLOW_BUNDLE has no tracing interceptors)' : ''}; ` +
      `child processes start in the spawn helper (pid ${spawnHelperPid() ?? 'none yet'}); ${describeMallocArenas()}; ` +
      `at most ${c.maxActivities} shared + ${c.maxWorkspaceActivities} workspace activities, ${c.maxCommands} commands at once; ` +
      `on SIGTERM/SIGINT in-flight work gets ${seconds(c.shutdownGraceMs)} (WEAVER_SHUTDOWN_GRACE); ` +
      (c.deployment ? `Worker Versioning: deployment "${c.deployment.name}", build "${c.deployment.buildId}", workflows pinned` : 'unversioned (set WEAVER_DEPLOYMENT_NAME and WEAVER_BUILD_ID for Worker Versioning)'),
  );
  stopOnSignals(w, c);
  let code = 0;
  try {
    await w.run();
    console.log('weaver worker: stopped');
  } catch (err) {
    // GracefulShutdownPeriodExpiredError: WEAVER_SHUTDOWN_FORCE passed with work still running.
    console.error(`weaver worker: stopped without draining: ${(err as Error).message}`);
    code = 1;
  }
  await tracing?.shutdown().catch(() => undefined);
  await connection.close().catch(() => undefined);
  process.exit(code);
}

/**
 * SIGTERM / SIGINT: stop polling and drain — in-flight activities have the shutdown grace to
 * finish (an answered provider call is delivered and booked), then they are cancelled and retried
 * elsewhere. The same signal again within 2 s is a wrapper relaying it (npm, tsx) and is ignored;
 * later, it stops the process at once (commands still die with it: src/activities/commands.ts).
 */
function stopOnSignals(w: WeaverWorkers, c: WeaverConfig): void {
  let first: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = Date.now();
      console.log(`weaver worker: ${signal}: no new work taken; in-flight activities have up to ${seconds(c.shutdownGraceMs)} to finish (WEAVER_SHUTDOWN_GRACE). ${signal} again to stop at once.`);
      w.shutdown();
      return;
    }
    if (Date.now() - first < 2000) return;
    console.log(`weaver worker: ${signal} again: stopping at once; unfinished activities are retried elsewhere`);
    process.exit(130);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

const seconds = (ms: number) => (ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`);

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
