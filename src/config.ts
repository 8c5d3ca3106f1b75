// Environment settings shared by the worker, the client and the CLI (the public contract).
// Numbers are checked here, once, at start: a bad value stops the process naming its variable.
import os from 'node:os';
import path from 'node:path';
import { checkInlineEndpoints, INLINE_ENDPOINTS_ENV, splitPatterns } from './domain/endpoints';
import { MIN_HEARTBEAT_TIMEOUT_MS, DEFAULT_QUEUE_CHECK_SEC } from './domain/liveness';
import { isIP } from 'node:net';
import { DEFAULT_EGRESS_ALLOW, parseEgressList } from './domain/egress';
import { SandboxLimitsSchema, type SandboxLimits } from './domain/schema';
import { DEFAULT_TREE_COST_USD } from './domain/settings';
import { parseS3Url } from './domain/artifactsUrl';

export interface WeaverConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  artifactDir: string;
  /** WEAVER_ARTIFACTS: `s3://bucket/prefix` for a shared object store (artifactDir is then its local cache); unset: artifactDir is the store. */
  artifacts?: string;
  workspaceRoot: string;
  /** WEAVER_CACHE_DIR: caches shared by every worker process on the host (the repository map's tags); default `$XDG_CACHE_HOME/weaver`, else `~/.cache/weaver`. */
  cacheDir: string;
  retryDelayScale: number;
  heartbeatMs: number;
  uiUrl: string;
  /** WEAVER_DEV=1: a development machine — local repos anywhere, the sandbox when available. */
  dev: boolean;
  /** WEAVER_SANDBOX: `required` (default outside dev mode), `auto` (dev default: bwrap when present), `off`. */
  sandbox: SandboxMode;
  /** WEAVER_SANDBOX_HIDE / WEAVER_SANDBOX_RO_PATHS (':'-separated): more paths hidden from commands (the Temporal data dir…); host paths kept visible read-only under a hidden one (a toolchain under a home). */
  sandboxHide: string[];
  sandboxReadOnly: string[];
  /** WEAVER_SANDBOX_TOOLCHAINS (':'-separated): the host directories lent read-only to commands besides the system ones; unset: found on PATH and in the usual places (src/activities/sandbox/root.ts). */
  sandboxToolchains?: string[];
  /** WEAVER_SANDBOX_MAX_LIMITS (`memoryMb=4096,processes=1024`): the most a task's `sandbox.limits` get; the rest keep SANDBOX_LIMIT_CAPS. */
  sandboxMaxLimits: SandboxLimits;
  /** WEAVER_SANDBOX_UID_RANGE (`200000-299999`): a root worker runs each workspace's commands as its own uid from here. */
  sandboxUids: { first: number; last: number };
  /** WEAVER_SANDBOX_ENV (','-separated names or globs): what a task's `sandbox.env` may pass; none by default, `*` with WEAVER_DEV. */
  sandboxEnv: string[];
  /** WEAVER_REPO_ROOTS (':'-separated): the only local paths a task's `repo` may name. */
  repoRoots?: string[];
  /** WEAVER_PUSH_REMOTES (','-separated URL prefixes): remotes a task may push to besides the repo's own origin. */
  pushRemotes: string[];
  /** WEAVER_PROVIDERS: the worker's provider registry file (YAML or JSON). */
  providersFile?: string;
  /** WEAVER_INLINE_ENDPOINTS: URL patterns a task's own provider `baseURL` may match (never called with a key of the worker's); empty by default. */
  inlineEndpoints: string[];
  /** WEAVER_DEFAULT_TREE_COST_USD (default $5, 0: none): the cost bound of a task's whole tree (itself and its subtasks) when it sets no limits.maxCostUsd. */
  defaultTreeCostUsd: number;
  /** WEAVER_SHUTDOWN_GRACE (default 5m): on SIGTERM/SIGINT, how long in-flight activities may finish before they are cancelled. */
  shutdownGraceMs: number;
  /** WEAVER_RETENTION (default 7d): how long finished runs' workspaces, unreferenced artifacts and unused tag-cache entries are kept (src/gc). */
  retentionMs: number;
  /** WEAVER_GC_INTERVAL (default 1d; 0: off): how often a worker runs `weaver gc` on its host. */
  gcIntervalMs: number;
  /** WEAVER_CACHE_MAX_MB (default 5120): the host caches' (tag cache, toolchain caches, S3 copies) size cap, enforced by gc least recently used first. */
  cacheMaxBytes: number;
  /** WEAVER_SHUTDOWN_FORCE (default grace + 1m): when the worker gives up draining and exits anyway. */
  shutdownForceMs: number;
  /** WEAVER_HEARTBEAT_THROTTLE_MS: how often heartbeats may reach the server; unset: WEAVER_HEARTBEAT_MS for provider calls, the SDK's 0.8 × heartbeat timeout for workspace activities. */
  heartbeatThrottleMs?: number;
  /** WEAVER_MAX_ACTIVITIES (default 50): provider calls, clones and artifact writes this worker runs at once (shared queue). */
  maxActivities: number;
  /** WEAVER_MAX_WORKSPACE_ACTIVITIES (default max(8, 2 × commands)): git, apply and test activities at once (workspace queue). */
  maxWorkspaceActivities: number;
  /** WEAVER_MAX_COMMANDS (default: the number of CPUs): setup and test commands at once; more wait their turn, heartbeating. */
  maxCommands: number;
  /** WEAVER_CONNECT_WAIT (a duration; default 0: forever): how long a starting worker waits for the Temporal server, retrying with backoff. */
  connectWaitMs: number;
  /** WEAVER_CONNECT_TIMEOUT (a duration; default 5s): how long a client (the CLI, `weaverClient()`) waits for the Temporal server before saying it is not reachable. */
  connectTimeoutMs: number;
  /** WEAVER_QUEUE_CHECK_SEC (default 25): how long a workspace activity found busy waits again in this worker's queue before the workflow checks the worker is alive (the first check is after 2 s). */
  queueCheckSec: number;
  /** WEAVER_WORKSPACE_QUEUE: this worker's workspace queue; default `<taskQueue>@<host>/<slot>` (src/workerSlot.ts). */
  workspaceQueue?: string;
  /** WEAVER_WORKER_SLOT: claim exactly this slot (a service unit per slot); default: the lowest free one. */
  workerSlot?: number;
  /** WEAVER_DEPLOYMENT_NAME + WEAVER_BUILD_ID: Worker Versioning (workflows pinned to the build that started them). */
  deployment?: { name: string; buildId: string };
  /** WEAVER_FAULT_HOLD_AFTER_ANSWER_MS (crash tests only, unset in production): a provider call waits this long between keeping its answer and completing. */
  holdAfterAnswerMs?: number;
}

export type SandboxMode = 'required' | 'auto' | 'off';
const SANDBOX_MODES: readonly SandboxMode[] = ['required', 'auto', 'off'];

/** An env flag's value read as on/off (`1`, `true`, `yes`, `on`). */
export const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
const list = (v: string | undefined, sep: string) =>
  (v ?? '')
    .split(sep)
    .map((s) => s.trim())
    .filter(Boolean);

/** WEAVER_CACHE_DIR, else the XDG cache home's `weaver` (an XDG_CACHE_HOME that is not absolute is ignored, as the spec says). */
function hostCacheDir(env: NodeJS.ProcessEnv): string {
  const set = env.WEAVER_CACHE_DIR?.trim();
  if (set) return path.resolve(set);
  const xdg = env.XDG_CACHE_HOME?.trim();
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME?.trim() || os.homedir(), '.cache'), 'weaver');
}

export function config(env: NodeJS.ProcessEnv = process.env): WeaverConfig {
  const address = env.TEMPORAL_ADDRESS || 'localhost:7233';
  const dev = truthy(env.WEAVER_DEV);
  return {
    address,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.WEAVER_TASK_QUEUE || 'weaver',
    artifactDir: path.resolve(env.WEAVER_ARTIFACT_DIR || '.weaver/artifacts'),
    artifacts: artifactsUrl(env.WEAVER_ARTIFACTS),
    workspaceRoot: path.resolve(env.WEAVER_WORKSPACE_ROOT || '.weaver/workspaces'),
    cacheDir: hostCacheDir(env),
    retryDelayScale: num(env, 'WEAVER_RETRY_DELAY_SCALE', 1),
    heartbeatMs: heartbeatMs(env),
    uiUrl: env.WEAVER_UI_URL || `http://${address.split(':')[0] === '127.0.0.1' ? '127.0.0.1' : 'localhost'}:8233`,
    dev,
    sandbox: sandboxMode(env.WEAVER_SANDBOX, dev),
    sandboxHide: list(env.WEAVER_SANDBOX_HIDE, ':').map((p) => path.resolve(p)),
    sandboxReadOnly: list(env.WEAVER_SANDBOX_RO_PATHS, ':').map((p) => path.resolve(p)),
    sandboxToolchains: env.WEAVER_SANDBOX_TOOLCHAINS === undefined ? undefined : list(env.WEAVER_SANDBOX_TOOLCHAINS, ':').map((p) => path.resolve(p)),
    sandboxMaxLimits: sandboxMaxLimits(env),
    sandboxUids: sandboxUids(env),
    sandboxEnv: sandboxEnvAllowlist(env, dev),
    repoRoots: env.WEAVER_REPO_ROOTS ? list(env.WEAVER_REPO_ROOTS, ':').map((r) => path.resolve(r)) : undefined,
    pushRemotes: list(env.WEAVER_PUSH_REMOTES, ','),
    providersFile: env.WEAVER_PROVIDERS ? path.resolve(env.WEAVER_PROVIDERS) : undefined,
    inlineEndpoints: inlineEndpoints(env),
    defaultTreeCostUsd: num(env, 'WEAVER_DEFAULT_TREE_COST_USD', DEFAULT_TREE_COST_USD),
    ...operations(env),
  };
}

/**
 * WEAVER_INLINE_ENDPOINTS, checked at start. The old WEAVER_ALLOW_INLINE_ENDPOINTS=1 allowed
 * every URL; it is not mapped to a pattern (`*` would keep the hole open, none would silently
 * break the tasks that relied on it): set, it stops the start naming its replacement. Set to
 * an off value (`0`, `false`) it said what is now the default, and is ignored.
 */
function inlineEndpoints(env: NodeJS.ProcessEnv): string[] {
  const old = env.WEAVER_ALLOW_INLINE_ENDPOINTS?.trim();
  if (old && !/^(0|false|no|off)$/i.test(old)) {
    throw new Error(
      `WEAVER_ALLOW_INLINE_ENDPOINTS is no longer read (it let a task send its repository to any URL): unset it, and list the endpoints tasks may name in ${INLINE_ENDPOINTS_ENV} (URL patterns, e.g. "http://127.0.0.1:*,http://localhost:11434/*"), or give them registry entries in WEAVER_PROVIDERS`,
    );
  }
  return checkInlineEndpoints(splitPatterns(env[INLINE_ENDPOINTS_ENV]));
}

/** A number ≥ 0 (`integer`: a whole one ≥ 1), or the default when unset; anything else names the variable. */
function num(env: NodeJS.ProcessEnv, name: string, fallback: number, integer = false): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (integer && (!Number.isInteger(n) || n < 1))) {
    throw new Error(`${name} must be ${integer ? 'a whole number ≥ 1' : 'a number ≥ 0'}, got "${raw}"`);
  }
  return n;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `300`, `300s`, `5m`, `1500ms`, `1h`, `7d`, `1w` → milliseconds (a bare number is seconds). */
function duration(env: NodeJS.ProcessEnv, name: string, fallbackMs: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/i.exec(raw);
  if (!m) throw new Error(`${name} must be a duration such as 300, 90s, 5m, 1h or 7d, got "${raw}"`);
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's').toLowerCase()]);
}

/** The local heartbeat pace must fit twice into the smallest heartbeat timeout, or every long activity times out. */
function heartbeatMs(env: NodeJS.ProcessEnv): number {
  const ms = num(env, 'WEAVER_HEARTBEAT_MS', 1000);
  if (ms <= 0 || ms * 2 >= MIN_HEARTBEAT_TIMEOUT_MS) {
    throw new Error(
      `WEAVER_HEARTBEAT_MS must be above 0 and below ${MIN_HEARTBEAT_TIMEOUT_MS / 2} (half the smallest activity heartbeat timeout, ${MIN_HEARTBEAT_TIMEOUT_MS / 1000} s), got "${env.WEAVER_HEARTBEAT_MS}"`,
    );
  }
  return ms;
}

function workerSlot(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.WEAVER_WORKER_SLOT?.trim();
  if (!raw) return undefined;
  if (!/^\d{1,4}$/.test(raw)) throw new Error(`WEAVER_WORKER_SLOT must be a whole number 0–9999, got "${raw}"`);
  return Number(raw);
}

function operations(env: NodeJS.ProcessEnv) {
  const shutdownGraceMs = duration(env, 'WEAVER_SHUTDOWN_GRACE', 5 * 60_000);
  const shutdownForceMs = duration(env, 'WEAVER_SHUTDOWN_FORCE', shutdownGraceMs + 60_000);
  if (shutdownForceMs <= shutdownGraceMs) {
    throw new Error(`WEAVER_SHUTDOWN_FORCE (${shutdownForceMs} ms) must be longer than WEAVER_SHUTDOWN_GRACE (${shutdownGraceMs} ms): activities get the grace, then the worker exits`);
  }
  const throttle = env.WEAVER_HEARTBEAT_THROTTLE_MS?.trim() ? num(env, 'WEAVER_HEARTBEAT_THROTTLE_MS', 0) : undefined;
  if (throttle === 0) throw new Error('WEAVER_HEARTBEAT_THROTTLE_MS must be above 0 (unset: the SDK default)');
  const maxCommands = num(env, 'WEAVER_MAX_COMMANDS', Math.max(1, os.availableParallelism()), true);
  const queueCheckSec = num(env, 'WEAVER_QUEUE_CHECK_SEC', DEFAULT_QUEUE_CHECK_SEC);
  if (queueCheckSec < 1) throw new Error(`WEAVER_QUEUE_CHECK_SEC must be at least 1 (seconds), got "${env.WEAVER_QUEUE_CHECK_SEC}"`);
  const name = env.WEAVER_DEPLOYMENT_NAME?.trim();
  const buildId = env.WEAVER_BUILD_ID?.trim();
  if (!!name !== !!buildId) throw new Error('WEAVER_DEPLOYMENT_NAME and WEAVER_BUILD_ID go together: set both for Worker Versioning, or neither');
  return {
    shutdownGraceMs,
    retentionMs: duration(env, 'WEAVER_RETENTION', 7 * 86_400_000),
    gcIntervalMs: duration(env, 'WEAVER_GC_INTERVAL', 86_400_000),
    cacheMaxBytes: Math.round(num(env, 'WEAVER_CACHE_MAX_MB', 5120) * 1024 * 1024),
    shutdownForceMs,
    connectWaitMs: duration(env, 'WEAVER_CONNECT_WAIT', 0),
    connectTimeoutMs: duration(env, 'WEAVER_CONNECT_TIMEOUT', 5000),
    heartbeatThrottleMs: throttle,
    maxActivities: num(env, 'WEAVER_MAX_ACTIVITIES', 50, true),
    maxWorkspaceActivities: num(env, 'WEAVER_MAX_WORKSPACE_ACTIVITIES', Math.max(8, 2 * maxCommands), true),
    maxCommands,
    queueCheckSec,
    workspaceQueue: env.WEAVER_WORKSPACE_QUEUE?.trim() || undefined,
    workerSlot: workerSlot(env),
    deployment: name && buildId ? { name, buildId } : undefined,
    holdAfterAnswerMs: env.WEAVER_FAULT_HOLD_AFTER_ANSWER_MS ? num(env, 'WEAVER_FAULT_HOLD_AFTER_ANSWER_MS', 0) : undefined,
  };
}

/** The most a task's `sandbox.limits` get when WEAVER_SANDBOX_MAX_LIMITS does not say: a few times each task default. */
export const SANDBOX_LIMIT_CAPS: SandboxLimits = { memoryMb: 8192, processes: 2048, openFiles: 65536, fileSizeMb: 16384, cpuSec: 14400, diskMb: 32768, maxOutputMb: 64 };

/** WEAVER_SANDBOX_MAX_LIMITS: `name=integer` pairs over SANDBOX_LIMIT_CAPS; a bad one throws, naming the variable. */
export function sandboxMaxLimits(env: NodeJS.ProcessEnv = process.env): SandboxLimits {
  const caps = { ...SANDBOX_LIMIT_CAPS };
  const bad = (why: string) => new Error(`WEAVER_SANDBOX_MAX_LIMITS: ${why} (e.g. "memoryMb=4096,processes=1024"; names: ${Object.keys(caps).join(', ')})`);
  for (const pair of list(env.WEAVER_SANDBOX_MAX_LIMITS, ',')) {
    const m = /^([A-Za-z]+)\s*=\s*(\S+)$/.exec(pair);
    if (!m) throw bad(`"${pair}" is not name=integer`);
    const [, name, value] = m;
    if (!Object.hasOwn(caps, name)) throw bad(`unknown limit "${name}"`);
    const parsed = /^\d+$/.test(value) ? SandboxLimitsSchema.shape[name as keyof SandboxLimits].safeParse(Number(value)) : undefined;
    // A cap below the least a task may ask for would make valid tasks unrunnable.
    if (!parsed?.success) throw bad(`${name}=${value}: ${parsed ? parsed.error.issues[0].message : 'not a whole number'}`);
    caps[name as keyof SandboxLimits] = parsed.data;
  }
  return caps;
}

/**
 * WEAVER_SANDBOX_UID_RANGE (`first-last`, default 200000-299999); WEAVER_SANDBOX_UID pins one
 * uid for every sandbox (the old setting: their process counts are then shared).
 */
export function sandboxUids(env: NodeJS.ProcessEnv = process.env): { first: number; last: number } {
  if (env.WEAVER_SANDBOX_UID?.trim() && env.WEAVER_SANDBOX_UID_RANGE?.trim()) throw new Error('set WEAVER_SANDBOX_UID_RANGE or WEAVER_SANDBOX_UID, not both');
  const one = env.WEAVER_SANDBOX_UID?.trim();
  const raw = one ? `${one}-${one}` : env.WEAVER_SANDBOX_UID_RANGE?.trim() || '200000-299999';
  const m = /^(\d+)\s*-\s*(\d+)$/.exec(raw);
  const [first, last] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  // Never root, and below the kernel's "no uid" (2^32 - 1).
  if (!(first >= 1 && first <= last && last < 2 ** 32 - 1)) {
    throw new Error(
      one
        ? `WEAVER_SANDBOX_UID must be a positive integer, got "${one}"`
        : `WEAVER_SANDBOX_UID_RANGE must be "first-last", positive integers with first ≤ last (e.g. 200000-299999), got "${env.WEAVER_SANDBOX_UID_RANGE}"`,
    );
  }
  return { first, last };
}

/** WEAVER_SANDBOX_ENV: names or globs (`*`, `?`); unset: none — or every name with WEAVER_DEV. */
export function sandboxEnvAllowlist(env: NodeJS.ProcessEnv = process.env, dev = truthy(env.WEAVER_DEV)): string[] {
  if (env.WEAVER_SANDBOX_ENV === undefined) return dev ? ['*'] : [];
  const globs = list(env.WEAVER_SANDBOX_ENV, ',');
  const bad = globs.find((g) => !/^[A-Za-z_*?][A-Za-z0-9_*?]*$/.test(g));
  if (bad) throw new Error(`WEAVER_SANDBOX_ENV: "${bad}" is not an environment variable name or glob (letters, digits, _, * and ?; ','-separated)`);
  return globs;
}

/**
 * What a command with network may reach (through the worker's egress proxy): WEAVER_EGRESS_ALLOW,
 * ','-separated host patterns (`registry.npmjs.org`, `*.pypi.org`, `host:8080`, `host:*`), where
 * `defaults` stands for DEFAULT_EGRESS_ALLOW and `none` for nothing; unset: the defaults.
 * WEAVER_DEV_EGRESS_ADDRESSES (IPs or CIDRs) exempts addresses from the private/loopback refusal,
 * for tests' local servers: only with WEAVER_DEV, so a production worker cannot have it by accident.
 */
export function egressSetting(env: NodeJS.ProcessEnv = process.env): { allow: string[]; temporal: string; devAddresses?: string[] } {
  const raw = env.WEAVER_EGRESS_ALLOW === undefined ? ['defaults'] : list(env.WEAVER_EGRESS_ALLOW, ',');
  const allow = [...new Set(raw.flatMap((e) => (e.toLowerCase() === 'defaults' ? DEFAULT_EGRESS_ALLOW : e.toLowerCase() === 'none' ? [] : [e])))];
  parseEgressList(allow, 'WEAVER_EGRESS_ALLOW');
  const dev = list(env.WEAVER_DEV_EGRESS_ADDRESSES, ',');
  if (dev.length && !truthy(env.WEAVER_DEV)) {
    throw new Error('WEAVER_DEV_EGRESS_ADDRESSES is a test setting (it lets commands reach private and loopback addresses): it needs WEAVER_DEV=1; unset it in production');
  }
  const bad = dev.find((d) => {
    const [ip, bits, more] = d.split('/');
    const family = isIP(ip);
    return !family || more !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
  });
  if (bad) throw new Error(`WEAVER_DEV_EGRESS_ADDRESSES: "${bad}" is not an IP address or CIDR`);
  return { allow, temporal: env.TEMPORAL_ADDRESS || 'localhost:7233', ...(dev.length ? { devAddresses: dev } : {}) };
}

function sandboxMode(value: string | undefined, dev: boolean): SandboxMode {
  if (!value) return dev ? 'auto' : 'required';
  const mode = value.trim().toLowerCase() as SandboxMode;
  if (!SANDBOX_MODES.includes(mode)) throw new Error(`WEAVER_SANDBOX must be one of ${SANDBOX_MODES.join(', ')}, got "${value}"`);
  return mode;
}

/** WEAVER_ARTIFACTS, checked at start (a bad URL stops the process naming the variable). */
function artifactsUrl(v: string | undefined): string | undefined {
  if (!v?.trim()) return undefined;
  parseS3Url(v);
  return v.trim();
}
