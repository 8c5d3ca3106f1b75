// `weaver doctor`: what a worker needs, checked before starting one — each check passes or
// fails with the fix. It reuses the worker's own probes (registry, sandbox, artifact store) so
// it says what the worker would find.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, statfs, unlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Connection } from '@temporalio/client';
import { loadProviderRegistry } from './activities/providers';
import { openaiClient } from './activities/openaiClient';
import { openArtifactStore } from './activities/s3Artifacts';
import type { ActivityDeps } from './activities/types';
import { formatBytes } from './activities/commands';
import { connectTemporal } from './client';
import { config, type WeaverConfig } from './config';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from './devtools/devServer';
import { trimCaches } from './gc/caches';
import { maxDispatchedIn, providerTaskQueue } from './domain/quota';
import { ProviderRegistryError } from './domain/registry';
import { WEAVER_SEARCH_ATTRIBUTES } from './domain/searchAttributes';
import { workerSandbox } from './worker';
import { telemetryCheck } from './telemetry';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** git ≥ 2.36: the worker's hardening sets safe.directory=* (2.36) through GIT_CONFIG_COUNT (2.31). */
export const MIN_GIT = [2, 36] as const;
/** Below this much free space where workspaces and artifacts go, clones and test logs start failing. */
export const MIN_FREE_BYTES = 1024 ** 3;
/** A provider's `GET /models` gets this long. */
const PROVIDER_TIMEOUT_SEC = 10;

const pass = (name: string, detail: string): Check => ({ name, ok: true, detail });
const fail = (name: string, detail: string, fix: string): Check => ({ name, ok: false, detail, fix });
const why = (err: unknown) => ((err as Error)?.message ?? String(err)).split('\n')[0];

export async function runDoctor(env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const c = config(env);
  const temporal = await temporalChecks(c);
  const rest = await Promise.all([providerChecks(c, env), gitCheck(), sandboxCheck(c, env), writableCheck('workspace root', c.workspaceRoot), artifactCheck(c, env), writableCheck('cache dir', c.cacheDir)]);
  // After the writable checks, which make the directories.
  const limits = temporal[0].ok ? await rateLimitChecks(c) : [];
  return [...temporal, ...limits, ...rest.flat(), await diskCheck(c), await cacheSizeCheck(c, env), { name: 'telemetry', ...(await telemetryCheck(env)) }];
}

/**
 * Each rate-limited provider's queue has one partition: Temporal splits the limit over the
 * partitions, each with its own burst (maxDispatchedIn), so more loosen it. The registry's own
 * faults are the provider checks' to say.
 */
async function rateLimitChecks(c: WeaverConfig): Promise<Check[]> {
  let limited: [string, number][];
  try {
    limited = Object.entries(loadProviderRegistry(c.providersFile).providers).flatMap(([id, e]) => (e.rateLimit ? [[id, e.rateLimit.requestsPerSecond] as [string, number]] : []));
  } catch {
    return [];
  }
  if (!limited.length) return [];
  // The temporal check has just reached it; failing now is that check's to say.
  const connection = await connectTemporal(c.address, c.connectTimeoutMs).catch(() => undefined);
  if (!connection) return [];
  try {
    return await Promise.all(
      limited.map(async ([id, rps]): Promise<Check> => {
        const name = `rate limit ${id}`;
        const queue = providerTaskQueue(id);
        try {
          const n = (await connection.workflowService.listTaskQueuePartitions({ namespace: c.namespace, taskQueue: { name: queue } })).activityTaskQueuePartitions?.length ?? 0;
          const most = `at most ${maxDispatchedIn(rps, 1, Math.max(n, 1))} calls in any second at ${rps}/s`;
          if (n <= 1) return pass(name, `queue ${queue} has 1 partition: ${most}`);
          return fail(name, `queue ${queue} has ${n} partitions, each with its own burst: ${most} (${maxDispatchedIn(rps, 1)} with one)`, `give it one partition: the server's dynamic config matching.numTaskqueueWritePartitions and matching.numTaskqueueReadPartitions = 1 for taskQueueName ${queue} (README "Quotas and rate limits")`);
        } catch (err) {
          return fail(name, `cannot list the partitions of ${queue}: ${why(err)}`, 'check the server allows this call from here');
        }
      }),
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** One line per check: ✓/✗, name, detail; a failure's fix after it. */
export function formatChecks(checks: Check[]): string {
  const lines = checks.map((k) => `${k.ok ? '✓' : '✗'} ${k.name}: ${k.detail}${k.fix ? ` — fix: ${k.fix}` : ''}`);
  const failed = checks.filter((k) => !k.ok).length;
  lines.push(failed ? `${failed} of ${checks.length} checks failed` : `all ${checks.length} checks passed`);
  return lines.join('\n');
}

async function temporalChecks(c: WeaverConfig): Promise<Check[]> {
  const name = 'temporal';
  const attrs = 'search attributes';
  let connection: Connection;
  try {
    connection = await connectTemporal(c.address, c.connectTimeoutMs);
  } catch (err) {
    return [
      fail(name, `not reachable at ${c.address} (${why((err as Error).cause ?? err)})`, 'start the server (e.g. `temporal server start-dev`) or set TEMPORAL_ADDRESS to where it listens'),
      fail(attrs, `not checked: no server at ${c.address}`, 'fix the temporal check first'),
    ];
  }
  try {
    try {
      await connection.workflowService.describeNamespace({ namespace: c.namespace });
    } catch (err) {
      return [
        fail(name, `${c.address} answers, but namespace "${c.namespace}" is not there (${why(err)})`, `temporal operator namespace create --namespace ${c.namespace}, or set TEMPORAL_NAMESPACE`),
        fail(attrs, 'not checked: no namespace', 'fix the temporal check first'),
      ];
    }
    const ok = pass(name, `${c.address}, namespace "${c.namespace}"`);
    const have = await connection.operatorService.listSearchAttributes({ namespace: c.namespace });
    const missing = WEAVER_SEARCH_ATTRIBUTES.filter((k) => !have.customAttributes?.[k.name]).map((k) => k.name);
    if (!missing.length) return [ok, pass(attrs, WEAVER_SEARCH_ATTRIBUTES.map((k) => k.name).join(', '))];
    const create = missing.map((n) => `--name ${n} --type ${DEV_SERVER_SEARCH_ATTRIBUTES[n]}`).join(' ');
    return [ok, fail(attrs, `missing: ${missing.join(', ')}`, `start a worker (it registers them) or run temporal operator search-attribute create --namespace ${c.namespace} ${create}`)];
  } catch (err) {
    return [pass(name, `${c.address}, namespace "${c.namespace}"`), fail(attrs, `cannot list them: ${why(err)}`, 'check the server allows operator calls from here')];
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Each registry provider: its key present (the NAME is said, never the value) and `GET /models` answering. */
async function providerChecks(c: WeaverConfig, env: NodeJS.ProcessEnv): Promise<Check[]> {
  let providers;
  try {
    providers = loadProviderRegistry(c.providersFile);
  } catch (err) {
    const detail = err instanceof ProviderRegistryError ? `invalid registry ${err.source}: ${err.issues.join('; ')}` : why(err);
    return [fail('providers', detail, 'correct the registry file (WEAVER_PROVIDERS)')];
  }
  const deps = { providers, env, inlineEndpoints: [] } as unknown as ActivityDeps;
  return Promise.all(
    Object.entries(providers.providers).map(async ([id, entry]): Promise<Check> => {
      const name = `provider ${id}`;
      const where = entry.baseURL ?? env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1';
      if (entry.apiKeyEnv && !env[entry.apiKeyEnv]) return fail(name, `${where}: key ${entry.apiKeyEnv} is not set`, `set ${entry.apiKeyEnv} in the worker's environment`);
      try {
        const models = [];
        for await (const m of openaiClient(deps, { id, model: entry.models[0], timeoutSec: PROVIDER_TIMEOUT_SEC }).models.list()) models.push(m.id);
        const key = entry.apiKeyEnv ? `key ${entry.apiKeyEnv} set` : 'keyless';
        return pass(name, `${where} answers GET /models (${models.length} model(s)), ${key}`);
      } catch (err) {
        return fail(name, `${where}: GET /models failed: ${why(err)}`, `check the endpoint is up and reachable from here${entry.apiKeyEnv ? ` and that ${entry.apiKeyEnv} holds a valid key` : ''}`);
      }
    }),
  );
}

async function gitCheck(): Promise<Check> {
  const need = MIN_GIT.join('.');
  try {
    const out = (await promisify(execFile)('git', ['--version'])).stdout.trim();
    const [major, minor] = (/(\d+)\.(\d+)/.exec(out) ?? []).slice(1).map(Number);
    if (major > MIN_GIT[0] || (major === MIN_GIT[0] && minor >= MIN_GIT[1])) return pass('git', `${out} (≥ ${need})`);
    return fail('git', `${out} is older than ${need}`, `install git ${need} or later`);
  } catch (err) {
    return fail('git', `not runnable: ${why(err)}`, `install git ${need} or later and put it on PATH`);
  }
}

/** The worker's own sandbox detection (WEAVER_SANDBOX): what it would run commands in. */
async function sandboxCheck(c: WeaverConfig, env: NodeJS.ProcessEnv): Promise<Check> {
  try {
    const s = await workerSandbox({ workspaceRoot: c.workspaceRoot, artifactDir: c.artifactDir }, c.sandbox, env);
    if (s.kind === 'none') return pass('sandbox', `none — ${s.warning}`);
    return pass('sandbox', `${s.version} at ${s.bwrap}, user namespaces work${s.networkWarning ? `; ${s.networkWarning}` : ''}`);
  } catch (err) {
    const [problem, fix] = (err as Error).message.split(' Fix: ');
    return fail('sandbox', problem, fix ?? 'see README "The sandbox"');
  }
}

async function writableCheck(name: string, dir: string): Promise<Check> {
  const probe = `${dir}/.weaver-doctor-${randomUUID()}`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, 'ok');
    await unlink(probe);
    return pass(name, `${dir} is writable`);
  } catch (err) {
    const setting = { 'workspace root': 'WEAVER_WORKSPACE_ROOT', 'cache dir': 'WEAVER_CACHE_DIR' }[name] ?? 'WEAVER_ARTIFACT_DIR';
    return fail(name, `${dir} is not writable: ${why(err)}`, `make it writable by this user, or point the setting elsewhere (${setting})`);
  }
}

/** The local directory always (scratch files, the S3 cache); the object store through its own check(). */
async function artifactCheck(c: WeaverConfig, env: NodeJS.ProcessEnv): Promise<Check> {
  const local = await writableCheck('artifact store', c.artifactDir);
  if (!local.ok || !c.artifacts) return local;
  const store = openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env });
  try {
    await store.check();
    // Reachable is not enough: the worker writes, reads back and deletes (records of unpushed commits).
    const key = `doctor/${randomUUID()}.txt`;
    const token = randomUUID();
    await store.putRecord(key, token);
    const back = await store.readRecord(key);
    await store.removeRecord(key);
    if (back !== token) throw new Error(`${store.where}: an object written was read back ${back === undefined ? 'missing' : 'changed'}`);
    return pass('artifact store', `${store.where} reachable (put, get and delete work); cache ${c.artifactDir} writable`);
  } catch (err) {
    return fail('artifact store', why(err), 'check WEAVER_ARTIFACTS and the AWS_* variables (endpoint, region, credentials)');
  }
}

async function diskCheck(c: WeaverConfig): Promise<Check> {
  const dirs = [...new Set([c.workspaceRoot, c.artifactDir])];
  try {
    const free = await Promise.all(dirs.map(async (d) => ({ d, bytes: await statfs(d).then((s) => s.bavail * s.bsize) })));
    const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
    const detail = free.map((f) => `${gib(f.bytes)} free at ${f.d}`).join(', ');
    const low = free.filter((f) => f.bytes < MIN_FREE_BYTES);
    if (!low.length) return pass('disk', detail);
    return fail('disk', detail, `free space on ${low.map((f) => f.d).join(', ')} (at least ${gib(MIN_FREE_BYTES)})`);
  } catch (err) {
    return fail('disk', `cannot read free space: ${why(err)}`, 'fix the workspace root and artifact store checks first');
  }
}

/** The host caches' sizes against WEAVER_CACHE_MAX_MB: over it is said (gc trims it), not a failure. */
async function cacheSizeCheck(c: WeaverConfig, env: NodeJS.ProcessEnv): Promise<Check> {
  try {
    const store = openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env });
    // A cap of infinity measures without evicting anything.
    const t = await trimCaches({ cacheDir: c.cacheDir, workspaceRoot: c.workspaceRoot, store, capBytes: Infinity, dryRun: true });
    const by = `tag cache ${formatBytes(t.sizes['tag cache'])}, toolchain caches ${formatBytes(t.sizes['toolchain cache'])}, artifact cache ${formatBytes(t.sizes['artifact cache'])}`;
    const over = t.totalBytes > c.cacheMaxBytes ? ` — over the cap: the next \`weaver gc\` (or a worker's periodic one) evicts the least recently used` : '';
    return pass('caches', `${formatBytes(t.totalBytes)} of the ${formatBytes(c.cacheMaxBytes)} cap (WEAVER_CACHE_MAX_MB): ${by}${over}`);
  } catch (err) {
    return fail('caches', `cannot measure them: ${why(err)}`, 'fix the cache dir and workspace root checks first');
  }
}
