// Environment settings shared by the worker, the client and the CLI (the public contract).
import path from 'node:path';

export interface WeaverConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  artifactDir: string;
  workspaceRoot: string;
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
  /** WEAVER_REPO_ROOTS (':'-separated): the only local paths a task's `repo` may name. */
  repoRoots?: string[];
  /** WEAVER_PUSH_REMOTES (','-separated URL prefixes): remotes a task may push to besides the repo's own origin. */
  pushRemotes: string[];
  /** WEAVER_PROVIDERS: the worker's provider registry file (YAML or JSON). */
  providersFile?: string;
  /** WEAVER_ALLOW_INLINE_ENDPOINTS=1: a task may name its own baseURL for registry providers (never with a key of the worker's). */
  allowInlineEndpoints: boolean;
}

export type SandboxMode = 'required' | 'auto' | 'off';
const SANDBOX_MODES: readonly SandboxMode[] = ['required', 'auto', 'off'];

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
const list = (v: string | undefined, sep: string) =>
  (v ?? '')
    .split(sep)
    .map((s) => s.trim())
    .filter(Boolean);

export function config(env: NodeJS.ProcessEnv = process.env): WeaverConfig {
  const address = env.TEMPORAL_ADDRESS || 'localhost:7233';
  const dev = truthy(env.WEAVER_DEV);
  return {
    address,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.WEAVER_TASK_QUEUE || 'weaver',
    artifactDir: path.resolve(env.WEAVER_ARTIFACT_DIR || '.weaver/artifacts'),
    workspaceRoot: path.resolve(env.WEAVER_WORKSPACE_ROOT || '.weaver/workspaces'),
    retryDelayScale: Number(env.WEAVER_RETRY_DELAY_SCALE || 1),
    heartbeatMs: Number(env.WEAVER_HEARTBEAT_MS || 1000),
    uiUrl: env.WEAVER_UI_URL || `http://${address.split(':')[0] === '127.0.0.1' ? '127.0.0.1' : 'localhost'}:8233`,
    dev,
    sandbox: sandboxMode(env.WEAVER_SANDBOX, dev),
    sandboxHide: list(env.WEAVER_SANDBOX_HIDE, ':').map((p) => path.resolve(p)),
    sandboxReadOnly: list(env.WEAVER_SANDBOX_RO_PATHS, ':').map((p) => path.resolve(p)),
    repoRoots: env.WEAVER_REPO_ROOTS ? list(env.WEAVER_REPO_ROOTS, ':').map((r) => path.resolve(r)) : undefined,
    pushRemotes: list(env.WEAVER_PUSH_REMOTES, ','),
    providersFile: env.WEAVER_PROVIDERS ? path.resolve(env.WEAVER_PROVIDERS) : undefined,
    allowInlineEndpoints: truthy(env.WEAVER_ALLOW_INLINE_ENDPOINTS),
  };
}

function sandboxMode(value: string | undefined, dev: boolean): SandboxMode {
  if (!value) return dev ? 'auto' : 'required';
  const mode = value.trim().toLowerCase() as SandboxMode;
  if (!SANDBOX_MODES.includes(mode)) throw new Error(`WEAVER_SANDBOX must be one of ${SANDBOX_MODES.join(', ')}, got "${value}"`);
  return mode;
}
