// The sandbox a worker found at start (SandboxSetting), what one command asks of it, and the
// setting in words for the banner, results and the progress query.
import { SANDBOX_LIMIT_CAPS, type SandboxMode } from '../../config';
import type { Command, ResourceUsage, SandboxLimits, SandboxPolicy } from '../../domain/schema';
import type { EgressRefusal } from '../../domain/egress';
import type { RunCommandResult } from '../commands';
import type { EgressSetting } from './egress';
import type { ResolvedToolchain } from './toolchains';
/** What the worker found at start: which sandbox every workspace command runs in. */
export interface SandboxSetting {
  mode: SandboxMode;
  /** `bubblewrap`, or `none` (WEAVER_SANDBOX=off, or auto without a working bwrap). */
  kind: 'bubblewrap' | 'none';
  /** Absolute path of bwrap, and its version (`bubblewrap 0.8.0`). */
  bwrap?: string;
  version?: string;
  /** A root worker runs commands as unprivileged uids: the first (the start-up probe's)… */
  runAs?: number;
  /** …and the range each workspace gets its own from (WEAVER_SANDBOX_UID_RANGE). */
  uids?: { first: number; last: number };
  /** The most each of a task's limits gets (WEAVER_SANDBOX_MAX_LIMITS); absent: SANDBOX_LIMIT_CAPS. */
  maxLimits?: SandboxLimits;
  /** Names or globs a task's `sandbox.env` may pass (WEAVER_SANDBOX_ENV); absent (no worker setting): all it lists. */
  envAllow?: string[];
  /**
   * nsenter: a command with network gets a namespace with only a loopback, where the worker's
   * egress proxy listens (./egress.ts); nothing else leaves it.
   */
  nsenter?: string;
  /**
   * Fault injection (WEAVER_SANDBOX_FAIL_SETUPS, for tests and drills): this many of the next
   * sandboxes fail in bwrap's own set-up, before their command; counted down as they start.
   */
  failSetups?: number;
  /** What that proxy lets through (WEAVER_EGRESS_ALLOW), and what it always refuses. */
  egress?: EgressSetting;
  /** Why a command with network shares the worker's own (auto, without a usable egress proxy). */
  networkWarning?: string;
  cgroup?: CgroupSupport;
  /** Paths no command may see (besides the defaults of hiddenPaths). */
  hide: string[];
  /**
   * Host paths lent read-only besides the system directories: the toolchains
   * (WEAVER_SANDBOX_TOOLCHAINS, else found on PATH; plus WEAVER_SANDBOX_RO_PATHS).
   */
  readOnly: string[];
  /** Env the lent toolchains need under the sandbox's own HOME (RUSTUP_HOME). */
  toolchainEnv?: Record<string, string>;
  /** The worker's own python3, go, cargo, node, java, mvn as its PATH resolves them (the start-up log names them). */
  toolchains?: ResolvedToolchain[];
  /** Toolchains a root worker could not lend (not reachable for the sandbox's uids), for the banner. */
  toolchainNote?: string;
  /** Where workspaces are made: traversal (o+x) is given only below it. */
  workspaceRoot?: string;
  /** A root worker's lock file per uid (WEAVER_SANDBOX_UID_LOCKS): no two worker processes on a host hand out the same uid. */
  uidLocks?: string;
  /** Said in every result when commands are not confined. */
  warning?: string;
  /** The most network a task may ask for (WEAVER_SANDBOX_NETWORK, default `setup`). */
  maxNetwork?: SandboxPolicy['network'];
}

/** v1: the worker's own cgroup directory per controller (cpuacct: only to measure CPU time). */
export type CgroupSupport = { version: 1; memory?: string; pids?: string; cpuacct?: string } | { version: 2; parent: string };

export interface SandboxRunRequest {
  setting: SandboxSetting;
  policy: SandboxPolicy;
  phase: 'setup' | 'test';
  /** The workspace: the only writable place (its .git read-only). */
  dir: string;
  command: Command;
  /** The worker's env: only PATH, LANG/LC_*, TZ and the names the policy lists are passed. */
  env: NodeJS.ProcessEnv;
  /** Env var names never passed, whatever the policy says (provider keys). */
  secretEnvNames?: string[];
  /**
   * The repository's own cache directory (./toolchains.ts repoCacheDir): writable, shared by its
   * tasks on this host, the tools' caches pointed at it. Absent: every command starts cold.
   */
  cacheDir?: string;
  /** A private home for the sandbox=none case (created). */
  scratchHome: string;
}

export interface SandboxedCommand {
  command: string[];
  env: Record<string, string>;
  /**
   * Pass to runCommand as `sampleUsageMs` when set: no cgroup counts this command's CPU time or
   * memory, so its process tree is sampled from /proc.
   */
  sampleUsageMs?: number;
  /**
   * After the command: which limit it hit (if one) and what its process tree used (from the
   * cgroup, else from `r.usage`); the cgroup, network and watches gone.
   */
  finish(r: RunCommandResult): Promise<{ limit?: string; resources: ResourceUsage; egressRefused?: EgressRefusal[]; sandboxFailed?: string }>;
  /** When the command never ran: the same clean-up, nothing to report. */
  dispose(): Promise<void>;
}

/** The sandbox in words, for the worker's banner, results and the progress query. */
export function describeSandbox(s: SandboxSetting): string {
  return s.kind === 'none' ? 'none' : (s.version ?? 'bubblewrap');
}

export function enforcementOf(s: SandboxSetting): string {
  if (s.kind === 'none') return 'none';
  return s.cgroup ? `cgroup v${s.cgroup.version} + rlimit` : 'rlimit';
}

/** The rest of the banner's sandbox line: uids, network, caps and env allowlist. */
export function sandboxDetails(s: SandboxSetting): string {
  if (s.kind === 'none') return '';
  const uids = !s.uids ? '' : s.uids.first === s.uids.last ? `; commands run as uid ${s.uids.first}` : `; commands run as a uid per workspace in ${s.uids.first}-${s.uids.last}`;
  const net =
    s.maxNetwork === 'none'
      ? 'none'
      : s.nsenter && s.egress
        ? `${s.maxNetwork}, only through the egress proxy to ${s.egress.allow.length ? s.egress.allow.join(',') : 'nothing'} (WEAVER_EGRESS_ALLOW)${s.egress.devAddresses ? `; private addresses exempt for development: ${s.egress.devAddresses.join(',')}` : ''}`
        : `${s.maxNetwork} — ${s.networkWarning}`;
  const caps = Object.entries(s.maxLimits ?? SANDBOX_LIMIT_CAPS).map(([k, v]) => `${k}=${v}`).join(',');
  const lent = s.readOnly.length ? `; toolchains lent read-only: ${s.readOnly.join(', ')}` : '';
  return `${uids}${lent}${s.toolchainNote ? ` (${s.toolchainNote})` : ''}; network: ${net}; limits at most ${caps}; sandbox.env allowed: ${s.envAllow === undefined ? 'any' : s.envAllow.join(',') || 'none'}`;
}
