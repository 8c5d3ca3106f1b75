// Confinement for commands that run repository code (design rule 7): bubblewrap on Linux.
//
// Every setup and test command runs as
//   [cgroup attach] prlimit <rlimits> [setpriv <uid>] bwrap <namespaces, mounts> -- <command>
// - bwrap: a read-only view of the host, the workspace writable but its `.git` read-only, a
//   private /tmp and $HOME, the worker's home, cwd, workspaces, artifact store, /run and /root
//   hidden; new user, PID, IPC, UTS and (unless allowed) network namespaces; a fresh /proc;
//   `--die-with-parent`, so killing bwrap (timeout, cancel, the worker dying) kills everything
//   inside, whatever it did with setsid.
// - a root worker runs each workspace's sandbox as its own unprivileged uid (WEAVER_SANDBOX_UID_RANGE):
//   a sandbox mapped to root could still read root's files and write /proc/sys, and one uid for
//   all would share RLIMIT_NPROC (one task's fork bomb would stop another's forks).
// - limits: each at most the worker's cap (WEAVER_SANDBOX_MAX_LIMITS); rlimits always (processes,
//   open files, file size, CPU time; memory as RLIMIT_DATA), and a cgroup for memory and processes
//   when the worker can make one (v1 as root, or a delegated v2 parent named by
//   WEAVER_CGROUP_PARENT), which also tells an OOM kill apart. Disk: every writable tmpfs is
//   sized, the other hiding ones read-only, and the workspace's growth is watched (`du`, about
//   every second); over `diskMb`, the sandbox is killed.
// - network for a command that may have it: its own stack through slirp4netns
//   (--disable-host-loopback), so it reaches the internet but not the worker's 127.0.0.1
//   (Temporal). bwrap reports the sandbox's pid (--info-fd) and waits (--block-fd) until the
//   tap device is up. The same pid lets the disk watch kill the sandbox.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, readlink, rm, rmdir, stat, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SANDBOX_LIMIT_CAPS, sandboxEnvAllowlist, sandboxMaxLimits, sandboxUids, type SandboxMode } from '../config';
import { SandboxLimitsSchema, type Command, type SandboxLimits, type SandboxPolicy } from '../domain/schema';
import type { RunCommandResult } from './commands';
import { isInside } from './paths';

const run = promisify(execFile);

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
  /** slirp4netns: a command with network gets its own stack, without the worker's loopback. */
  slirp4netns?: string;
  /** Why a command with network shares the worker's own (auto, without a usable slirp4netns). */
  networkWarning?: string;
  cgroup?: CgroupSupport;
  /** Paths no command may see (besides the defaults of hiddenPaths). */
  hide: string[];
  /** Host paths kept visible read-only even under a hidden one (toolchains under a home). */
  readOnly: string[];
  /** Said in every result when commands are not confined. */
  warning?: string;
  /** The most network a task may ask for (WEAVER_SANDBOX_NETWORK, default `setup`). */
  maxNetwork?: SandboxPolicy['network'];
}

export type CgroupSupport = { version: 1; memory?: string; pids?: string } | { version: 2; parent: string };

export interface DetectOptions {
  mode: SandboxMode;
  /** Worker paths to hide: workspace root, artifact store, the worker's own directory. */
  hide: string[];
  readOnly?: string[];
  /**
   * Env: WEAVER_BWRAP, WEAVER_SLIRP4NETNS, WEAVER_SANDBOX_NETWORK, WEAVER_SANDBOX_UID(_RANGE),
   * WEAVER_SANDBOX_MAX_LIMITS, WEAVER_SANDBOX_ENV, WEAVER_DEV, WEAVER_CGROUP_PARENT, PATH.
   */
  env?: NodeJS.ProcessEnv;
}

export const INSTALL_HINT =
  'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap; Alpine: apk add bubblewrap)';
export const SLIRP_INSTALL_HINT =
  'install slirp4netns (Debian/Ubuntu: apt-get install slirp4netns; Fedora/RHEL: dnf install slirp4netns; Alpine: apk add slirp4netns)';

/**
 * Finds and tries bwrap. `required` without a working one throws, naming the fix; `auto` falls
 * back to no sandbox with a warning; `off` never sandboxes.
 */
export async function detectSandbox(opts: DetectOptions): Promise<SandboxSetting> {
  const env = opts.env ?? process.env;
  const maxNetwork = (env.WEAVER_SANDBOX_NETWORK || 'setup') as SandboxPolicy['network'];
  if (!NETWORK_ORDER.includes(maxNetwork)) throw new Error(`WEAVER_SANDBOX_NETWORK must be one of ${NETWORK_ORDER.join(', ')}, got "${maxNetwork}"`);
  const base = {
    maxNetwork,
    mode: opts.mode,
    hide: opts.hide.map((p) => path.resolve(p)),
    readOnly: (opts.readOnly ?? []).map((p) => path.resolve(p)),
    maxLimits: sandboxMaxLimits(env),
    envAllow: sandboxEnvAllowlist(env),
  };
  const unconfined = (why: string): SandboxSetting => ({
    ...base,
    kind: 'none',
    warning: `commands ran without a sandbox (${why}): repository code could read and change anything the worker can`,
  });
  if (opts.mode === 'off') return unconfined('WEAVER_SANDBOX=off');
  const problem = (why: string): SandboxSetting => {
    if (opts.mode === 'required') {
      throw new Error(
        `WEAVER_SANDBOX=required, but ${why}. Fix: ${INSTALL_HINT}; in a container, run the worker with user namespaces allowed ` +
          `(see README "Sandbox"). On a development machine WEAVER_SANDBOX=auto runs unconfined instead.`,
      );
    }
    return unconfined(why);
  };
  if (process.platform !== 'linux') return problem(`bubblewrap needs Linux (this is ${process.platform})`);
  const bwrap = env.WEAVER_BWRAP || findOnPath('bwrap', env.PATH);
  if (!bwrap || !existsSync(bwrap)) return problem(`bwrap is not installed${env.WEAVER_BWRAP ? ` (WEAVER_BWRAP=${env.WEAVER_BWRAP} does not exist)` : ''}`);
  const uids = process.getuid?.() === 0 ? sandboxUids(env) : undefined;
  const runAs = uids?.first;
  let version: string;
  try {
    version = (await run(bwrap, ['--version'])).stdout.trim();
    const probe = [...dropPrivileges(runAs), bwrap, ...NAMESPACES, '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true'];
    await run(probe[0], probe.slice(1), { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return problem(`bwrap cannot make a sandbox here: ${(e.stderr || e.message).trim().split('\n').pop()}`);
  }
  // The sandbox's uid must reach the read-only toolchains it is promised (e.g. /root/.pyenv).
  if (runAs !== undefined) for (const p of base.readOnly) if (existsSync(p)) await makeTraversable(p);
  const setting: SandboxSetting = { ...base, kind: 'bubblewrap', bwrap, version, runAs, uids, cgroup: await detectCgroup(env) };
  if (maxNetwork === 'none') return setting;
  // Network without slirp4netns is the worker's own: 127.0.0.1 (Temporal) and all.
  const slirp = env.WEAVER_SLIRP4NETNS || findOnPath('slirp4netns', env.PATH);
  // A container's /dev lacks the tun device slirp4netns opens; Docker's default device rules allow making it.
  if (slirp && runAs !== undefined && !existsSync('/dev/net/tun')) {
    await run('sh', ['-c', 'mkdir -p /dev/net && mknod -m 600 /dev/net/tun c 10 200']).catch(() => undefined);
  }
  const installed = !!slirp && existsSync(slirp);
  const why = !installed
    ? `slirp4netns is not installed${env.WEAVER_SLIRP4NETNS ? ` (WEAVER_SLIRP4NETNS=${env.WEAVER_SLIRP4NETNS} does not exist)` : ''}`
    : await probeNetwork(bwrap, runAs, slirp);
  if (!why) return { ...setting, slirp4netns: slirp };
  if (opts.mode === 'required') {
    // Not root: bwrap's network namespace belongs to a user namespace no process stays in, so slirp4netns cannot join it.
    const fix = !installed ? SLIRP_INSTALL_HINT : runAs === undefined ? 'run the worker as root (slirp4netns joins the sandbox\'s network namespace from outside)' : 'see README "The sandbox"';
    throw new Error(
      `WEAVER_SANDBOX=required, but ${why}: a command given network (WEAVER_SANDBOX_NETWORK=${maxNetwork}) would share the worker's, ` +
        `127.0.0.1 included. Fix: ${fix}; or WEAVER_SANDBOX_NETWORK=none (no command gets network).`,
    );
  }
  return { ...setting, networkWarning: `commands given network share the worker's own (${why}): they can reach services on its 127.0.0.1` };
}

/** Whether slirp4netns can give a bwrap sandbox its network here; the reason when not. */
async function probeNetwork(bwrap: string, runAs: number | undefined, slirp: string): Promise<string | undefined> {
  const ctl = await Control.create(os.tmpdir(), true);
  const net = attachNetwork(ctl, slirp, () => ctl.killSandbox());
  try {
    // tap0 must be up inside, or the probe fails.
    const argv = [...dropPrivileges(runAs), bwrap, ...NAMESPACES, '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', ...ctl.bwrapArgs, '--', '/bin/sh', '-c', 'grep -q tap0 /proc/net/dev'];
    const failed = await run('/bin/sh', ['-c', `exec "$@" ${ctl.redirections}`, 'weaver-probe', ...argv], { timeout: 20_000 }).then(
      () => undefined,
      (err: { stderr?: string; message: string }) => (err.stderr || err.message).trim().split('\n').pop() || 'no tap0 in the sandbox',
    );
    // After the sandbox is done: it waited for slirp4netns, or was killed when that failed.
    const error = await net.stop();
    return error ? `slirp4netns does not work here: ${error}` : failed && `bwrap with slirp4netns failed: ${failed}`;
  } finally {
    await net.stop();
    await ctl.close();
  }
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
  const net = s.maxNetwork === 'none' ? 'none' : s.slirp4netns ? `${s.maxNetwork}, through slirp4netns (no host loopback)` : `${s.maxNetwork} — ${s.networkWarning}`;
  const caps = Object.entries(s.maxLimits ?? SANDBOX_LIMIT_CAPS).map(([k, v]) => `${k}=${v}`).join(',');
  return `${uids}; network: ${net}; limits at most ${caps}; sandbox.env allowed: ${s.envAllow === undefined ? 'any' : s.envAllow.join(',') || 'none'}`;
}

function findOnPath(name: string, PATH = ''): string | undefined {
  for (const dir of PATH.split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return ['/usr/bin', '/usr/local/bin', '/bin'].map((d) => path.join(d, name)).find((p) => existsSync(p));
}

const NETWORK_ORDER: SandboxPolicy['network'][] = ['none', 'setup', 'all'];

const NAMESPACES = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];

function dropPrivileges(uid: number | undefined): string[] {
  return uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--'];
}

/** Our own cgroup in the v1 hierarchy of `controller` (`4:memory:/a/b` in /proc/self/cgroup). */
function ownV1Path(controller: string): string | undefined {
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, controllers, p] = line.split(':');
      if (controllers?.split(',').includes(controller)) return p;
    }
  } catch {
    // not Linux, or no /proc
  }
  return undefined;
}

async function writable(dir: string): Promise<boolean> {
  const probe = path.join(dir, `weaver-probe-${process.pid}-${randomUUID().slice(0, 8)}`);
  try {
    await mkdir(probe);
    await rmdir(probe);
    return true;
  } catch {
    return false;
  }
}

async function detectCgroup(env: NodeJS.ProcessEnv): Promise<CgroupSupport | undefined> {
  if (env.WEAVER_CGROUP_PARENT) {
    const parent = path.resolve(env.WEAVER_CGROUP_PARENT);
    const enabled = await readFile(path.join(parent, 'cgroup.subtree_control'), 'utf8').catch(() => '');
    if (!/\bmemory\b/.test(enabled) || !/\bpids\b/.test(enabled) || !(await writable(parent))) {
      throw new Error(`WEAVER_CGROUP_PARENT=${parent} must be a writable cgroup v2 directory with "memory pids" in its cgroup.subtree_control`);
    }
    return { version: 2, parent };
  }
  const v1: { version: 1; memory?: string; pids?: string } = { version: 1 };
  for (const controller of ['memory', 'pids'] as const) {
    const own = ownV1Path(controller);
    const dir = own === undefined ? undefined : path.join('/sys/fs/cgroup', controller, own);
    if (dir && existsSync(path.join(dir, 'cgroup.procs')) && (await writable(dir))) v1[controller] = dir;
  }
  return v1.memory || v1.pids ? v1 : undefined;
}

/** Worker-side paths no command may see, on top of the setting's own. */
function hiddenPaths(s: SandboxSetting): string[] {
  const all = ['/tmp', '/var/tmp', '/run', '/root', '/home', '/mnt', '/media', '/srv', '/dev/shm', os.homedir(), process.cwd(), ...s.hide];
  const unique = [...new Set(all.map((p) => path.resolve(p)))].filter((p) => {
    try {
      return lstatSync(p).isDirectory(); // symlinks (/var/run → /run) are covered by their target
    } catch {
      return false;
    }
  });
  // Shallow first: a tmpfs over a parent would cover one mounted over its child.
  return unique.sort((a, b) => a.split('/').length - b.split('/').length);
}

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
  /** A private home for the sandbox=none case (created). */
  scratchHome: string;
}

export interface SandboxedCommand {
  command: string[];
  env: Record<string, string>;
  /** After the command: which limit it hit (if one); the cgroup, network and watches gone. */
  finish(r: RunCommandResult): Promise<string | undefined>;
  /** When the command never ran: the same clean-up, nothing to report. */
  dispose(): Promise<void>;
}

const HOME_IN_SANDBOX = '/tmp/home';
/** Writable tmpfs mounts of the sandbox, each sized; every other hiding tmpfs is remounted read-only. */
const SCRATCH = new Set(['/tmp', '/var/tmp', '/dev/shm']);
/** The host's resolv.conf with slirp4netns's DNS forwarder (10.0.2.3) as the server: it reaches the worker's resolver even on its loopback. */
function slirpResolv(): string {
  const host = existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '';
  return ['nameserver 10.0.2.3', ...host.split('\n').filter((l) => l.trim() && !/^\s*nameserver\b/.test(l))].join('\n') + '\n';
}
const MIB = 1024 * 1024;

/** The task's limits, each lowered to the worker's cap; which were lowered, for the notes. */
export function effectiveLimits(setting: SandboxSetting, asked: Partial<SandboxLimits>): { limits: SandboxLimits; lowered: string[] } {
  const caps = setting.maxLimits ?? SANDBOX_LIMIT_CAPS;
  // A policy recorded before a limit existed (diskMb) gets its default.
  const want: SandboxLimits = { ...SandboxLimitsSchema.parse({}), ...asked };
  const limits = { ...want };
  const lowered: string[] = [];
  for (const k of Object.keys(want) as (keyof SandboxLimits)[]) {
    if (want[k] > caps[k]) {
      limits[k] = caps[k];
      lowered.push(`sandbox.limits.${k} ${want[k]} lowered to ${caps[k]}, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)`);
    }
  }
  return { limits, lowered };
}

/** The network a command of `phase` gets: at most what the worker allows (asking for `all` does not lift the cap). */
function networkFor(setting: SandboxSetting, policy: SandboxPolicy, phase: 'setup' | 'test'): boolean {
  const allowed = NETWORK_ORDER[Math.min(NETWORK_ORDER.indexOf(policy.network), NETWORK_ORDER.indexOf(setting.maxNetwork ?? 'setup'))];
  return allowed === 'all' || (allowed === 'setup' && phase === 'setup');
}

/** `NODE_*` → /^NODE_.*$/ (names are letters, digits and `_`: nothing else to escape). */
const globRe = (glob: string) => new RegExp(`^${glob.replace(/\*/g, '.*').replace(/\?/g, '.')}$`);

/** Names of the policy's `sandbox.env` this worker does not let in (WEAVER_SANDBOX_ENV). */
function envRefused(setting: SandboxSetting, policy: SandboxPolicy): string[] {
  if (setting.envAllow === undefined) return [];
  const allow = setting.envAllow.map(globRe);
  return policy.env.filter((name) => !allow.some((re) => re.test(name)));
}

/**
 * What the worker changes in a task's policy, said once per workspace (WorkspaceHandle.sandboxNotes):
 * limits lowered to its caps, `sandbox.env` names it does not allow, network shared with it.
 */
export function sandboxNotes(setting: SandboxSetting, policy: SandboxPolicy): string[] {
  const notes: string[] = [];
  if (setting.kind === 'bubblewrap') notes.push(...effectiveLimits(setting, policy.limits).lowered);
  const refused = envRefused(setting, policy);
  if (refused.length) notes.push(`sandbox.env: ${refused.join(', ')} not passed: this worker does not allow ${refused.length > 1 ? 'them' : 'it'} (WEAVER_SANDBOX_ENV)`);
  if (setting.kind === 'bubblewrap' && setting.networkWarning && (networkFor(setting, policy, 'setup') || networkFor(setting, policy, 'test'))) {
    notes.push(setting.networkWarning);
  }
  return notes;
}

/** The command wrapped in the sandbox the worker has, with its env and its limits. */
export async function sandboxed(req: SandboxRunRequest): Promise<SandboxedCommand> {
  const { setting, policy } = req;
  const { limits } = effectiveLimits(setting, policy.limits);
  const argv = typeof req.command === 'string' ? ['/bin/sh', '-c', req.command] : req.command;
  const boxed = setting.kind === 'bubblewrap';
  if (!boxed) await mkdir(req.scratchHome, { recursive: true });
  const env = sandboxEnv(req, boxed ? HOME_IN_SANDBOX : req.scratchHome);
  // No sandbox, no limits: only the environment is kept clean.
  if (!boxed) return { command: argv, env, finish: async () => undefined, dispose: async () => undefined };

  const uid = uidFor(setting, req.dir);
  if (uid !== undefined) await handOver(req.dir, uid);
  const network = networkFor(setting, policy, req.phase);
  const slirp = network ? setting.slirp4netns : undefined;
  // Beside the workspace, so under the hidden workspace root: the sandbox never sees it.
  const ctl = await Control.create(path.dirname(req.dir), !!slirp);
  const cgroup = setting.cgroup ? await Cgroup.create(setting.cgroup, limits).catch(() => undefined) : undefined;
  try {
    return await start(req, { limits, uid, network, slirp, ctl, cgroup, argv, env });
  } catch (err) {
    await ctl.close();
    await cgroup?.remove();
    throw err;
  }
}

interface Prepared {
  limits: SandboxLimits;
  uid?: number;
  network: boolean;
  slirp?: string;
  ctl: Control;
  cgroup?: Cgroup;
  argv: string[];
  env: Record<string, string>;
}

async function start(req: SandboxRunRequest, { limits, uid, network, slirp, ctl, cgroup, argv, env }: Prepared): Promise<SandboxedCommand> {
  const { setting } = req;
  const rlimits = [
    `--nproc=${limits.processes}`,
    `--nofile=${limits.openFiles}`,
    `--fsize=${limits.fileSizeMb * MIB}`,
    `--cpu=${limits.cpuSec}`,
    '--core=0',
    // Without a memory cgroup, private writable memory is capped (address space would break V8/JVM reservations).
    ...(cgroup?.limitsMemory ? [] : [`--data=${limits.memoryMb * MIB}`]),
  ];
  // tmpfs is memory: no bigger than the memory limit either.
  const scratchMb = Math.min(limits.diskMb, limits.memoryMb);
  const mounts: string[] = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];
  const hidden = hiddenPaths(setting);
  for (const p of hidden) mounts.push(...(SCRATCH.has(p) ? ['--size', String(scratchMb * MIB)] : []), '--tmpfs', p);
  for (const p of setting.readOnly) if (existsSync(p) && hidden.some((h) => isInside(p, h))) mounts.push('--ro-bind', p, p);
  let resolv = '';
  if (slirp) {
    await writeFile(path.join(ctl.dir, 'resolv.conf'), slirpResolv());
    resolv = ` 5<${shq(path.join(ctl.dir, 'resolv.conf'))}`;
    mounts.push('--ro-bind-data', '5', resolvTarget());
  } else if (network) {
    mounts.push(...resolvConf(hidden));
  }
  mounts.push('--dir', HOME_IN_SANDBOX, '--bind', req.dir, req.dir);
  const git = path.join(req.dir, '.git');
  if (existsSync(git)) mounts.push('--ro-bind', git, git);
  // Last, after the mount points inside them exist: hiding tmpfs and /dev take no writes.
  for (const p of hidden) if (!SCRATCH.has(p)) mounts.push('--remount-ro', p);
  mounts.push('--remount-ro', '/dev');
  const bwrap = [setting.bwrap!, ...NAMESPACES, ...(network && !slirp ? ['--share-net'] : []), ...ctl.bwrapArgs, ...mounts, '--chdir', req.dir, '--', ...argv];
  const inner = ['prlimit', ...rlimits, '--', ...dropPrivileges(uid), ...bwrap];
  // Joins the cgroup before anything runs, so nothing escapes its limits; the fds bwrap reports on and waits on.
  const command = ['/bin/sh', '-c', `${cgroup ? `${cgroup.attachScript}; ` : ''}exec "$@" ${ctl.redirections}${resolv}`, 'weaver-sandbox', ...inner];

  const kill = async () => {
    await ctl.killSandbox();
    await cgroup?.killAll();
  };
  const net = slirp ? attachNetwork(ctl, slirp, kill) : undefined;
  const disk = await DiskWatch.start(req.dir, limits.diskMb, kill);
  let done = false;
  const dispose = async () => {
    if (done) return;
    done = true;
    disk.stop();
    await net?.stop();
    await ctl.close();
    await cgroup?.remove();
  };
  return {
    command,
    env,
    dispose,
    finish: async (r) => {
      disk.stop();
      const grown = disk.killedAt ?? (await disk.measure());
      const netError = await net?.stop();
      const hit =
        disk.killedAt !== undefined
          ? `killed: disk limit ${size(limits.diskMb)} (the workspace grew by ${size(Math.ceil(grown / MIB))})`
          : grown > limits.diskMb * MIB
            ? `disk limit ${size(limits.diskMb)} exceeded: the workspace grew by ${size(Math.ceil(grown / MIB))}`
            : netError
              ? `killed: the sandbox's network could not be set up (${netError})`
              : await limitHit(r, limits, cgroup, network, scratchMb);
      await dispose();
      return hit;
    },
  };
}

/** A shell word for a path the worker made. */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Where the sandbox's resolv.conf goes: the real file behind /etc/resolv.conf (often in /run, hidden). */
function resolvTarget(): string {
  try {
    return realpathSync('/etc/resolv.conf');
  } catch {
    return '/etc/resolv.conf';
  }
}

/** /etc/resolv.conf often links into /run, which is hidden: keep the target readable when there is network. */
function resolvConf(hidden: string[]): string[] {
  try {
    const target = realpathSync('/etc/resolv.conf');
    return hidden.some((h) => isInside(target, h)) ? ['--ro-bind', target, target] : [];
  } catch {
    return [];
  }
}

/** PATH, locale and time zone from the worker, a private HOME, CI=true, and what the policy names and the worker allows — never a secret. */
function sandboxEnv(req: SandboxRunRequest, home: string): Record<string, string> {
  const out: Record<string, string> = {};
  const never = new Set([...(req.secretEnvNames ?? []), ...envRefused(req.setting, req.policy)]);
  for (const [name, value] of Object.entries(req.env)) {
    if (value === undefined || never.has(name)) continue;
    if (/^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM)$/.test(name) || req.policy.env.includes(name)) out[name] = value;
  }
  out.HOME = home;
  out.TMPDIR = req.setting.kind === 'bubblewrap' ? '/tmp' : home;
  out.CI = 'true';
  return out;
}

/** Which uid each workspace's sandbox runs as, and which workspace holds each uid (this process). */
const uidOfDir = new Map<string, number>();
const dirOfUid = new Map<number, string>();

/**
 * A workspace's own uid: from a hash of its path, so every command of a task (and a restarted
 * worker) gets the same one; a uid another workspace of this worker holds is skipped.
 */
export function uidFor(setting: SandboxSetting, dir: string): number | undefined {
  if (!setting.uids) return setting.runAs;
  const key = path.resolve(dir);
  const { first, last } = setting.uids;
  const known = uidOfDir.get(key);
  if (known !== undefined && known >= first && known <= last) return known;
  const n = last - first + 1;
  let i = Number(BigInt(`0x${createHash('sha256').update(key).digest('hex').slice(0, 16)}`) % BigInt(n));
  for (let k = 0; k < n && dirOfUid.has(first + i); k++) i = (i + 1) % n;
  const uid = first + i;
  uidOfDir.set(key, uid);
  dirOfUid.set(uid, key);
  return uid;
}

/**
 * A root worker's sandbox runs as an unprivileged uid: the workspace's files (not its `.git`,
 * which stays root's and read-only) are handed to it before each command.
 */
async function handOver(dir: string, uid: number): Promise<void> {
  await makeTraversable(dir);
  await run('chown', ['-h', `${uid}:${uid}`, dir]);
  await run('find', [dir, '-mindepth', '1', '-maxdepth', '1', '!', '-name', '.git', '-exec', 'chown', '-R', '-h', `${uid}:${uid}`, '{}', '+']);
}

/**
 * bwrap, running as the sandbox's uid, must reach `dir`: its parents get search (x) permission
 * for others — never read, so nobody can list them.
 */
async function makeTraversable(dir: string): Promise<void> {
  for (let p = path.dirname(path.resolve(dir)); ; p = path.dirname(p)) {
    const st = await stat(p);
    if (!(st.mode & 0o001)) await chmod(p, (st.mode & 0o7777) | 0o001);
    if (p === path.dirname(p)) break;
  }
}

/**
 * A command's control files, beside its workspace: `info`, where bwrap writes the sandbox's pid
 * (--info-fd 3), and `block`, a FIFO bwrap waits on (--block-fd 4) until its network is up. The
 * worker holds the FIFO open read-write, so the shell's open never blocks.
 */
class Control {
  private constructor(
    readonly dir: string,
    private readonly block?: FileHandle,
  ) {}

  static async create(parent: string, block: boolean): Promise<Control> {
    const dir = await mkdtemp(path.join(parent, '.sandbox-'));
    if (!block) return new Control(dir);
    await run('mkfifo', ['-m', '600', path.join(dir, 'block')]);
    return new Control(dir, await open(path.join(dir, 'block'), 'r+'));
  }

  get bwrapArgs(): string[] {
    return ['--info-fd', '3', ...(this.block ? ['--block-fd', '4'] : [])];
  }

  /** For `exec "$@" …` in the wrapping shell. */
  get redirections(): string {
    return `3>${shq(path.join(this.dir, 'info'))}${this.block ? ` 4<${shq(path.join(this.dir, 'block'))}` : ''}`;
  }

  /** The sandbox's first process (host pid) and its PID namespace, once bwrap has said. */
  async info(): Promise<{ pid: number; pidns: number } | undefined> {
    try {
      const j = JSON.parse(await readFile(path.join(this.dir, 'info'), 'utf8')) as Record<string, number>;
      return Number.isInteger(j['child-pid']) ? { pid: j['child-pid'], pidns: j['pid-namespace'] } : undefined;
    } catch {
      return undefined; // not written yet, or half
    }
  }

  /** Lets the sandbox's command start (bwrap reads one byte). */
  async release(): Promise<void> {
    await this.block?.write('x').catch(() => undefined);
  }

  /** SIGKILL to the sandbox's first process ends its PID namespace: everything in it dies. */
  async killSandbox(): Promise<void> {
    const info = await this.info();
    if (!info) return;
    // Only while the pid is still that sandbox's (never a reused one).
    const ns = await readlink(`/proc/${info.pid}/ns/pid`).catch(() => '');
    if (ns !== `pid:[${info.pidns}]`) return;
    try {
      process.kill(info.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }

  async close(): Promise<void> {
    await this.block?.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Gives the sandbox its own network: once bwrap says its pid, slirp4netns (run by the worker,
 * root) joins its network namespace, makes tap0 (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3)
 * and NATs to the internet with the host's loopback unreachable; then the command is let go.
 * `ready` resolves with the reason when that failed (the sandbox is then killed).
 */
function attachNetwork(ctl: Control, slirp: string, kill?: () => Promise<void>): { ready: Promise<string | undefined>; stop(): Promise<string | undefined> } {
  let stopped = false;
  let child: ChildProcess | undefined;
  const ready = (async (): Promise<string | undefined> => {
    let info = await ctl.info();
    for (const started = Date.now(); !info; info = await ctl.info()) {
      if (stopped) return undefined; // the command never got to bwrap
      await sleep(Date.now() - started < 1000 ? 5 : 50);
    }
    const args = ['--configure', '--mtu=65520', '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp', '--ready-fd=3', '--exit-fd=4'];
    // By path: the pid's own user namespace (a nested one bwrap makes) does not own the network namespace.
    child = spawn(slirp, [...args, '--netns-type=path', `/proc/${info.pid}/ns/net`, 'tap0'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    // The worker holds the other end of --exit-fd: if it dies, slirp4netns ends too.
    child.stdio[4]!.on('error', () => undefined);
    const error = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve('slirp4netns was not ready within 10 s'), 10_000);
      child!.stdio[3]!.once('data', () => (clearTimeout(timer), resolve(undefined)));
      child!.once('exit', (code, sig) => (clearTimeout(timer), resolve(`slirp4netns exited (${sig ?? code}): ${stderr.trim().split('\n').filter((l) => !/WARNING/.test(l)).slice(0, 2).join('; ')}`)));
      child!.once('error', (err) => (clearTimeout(timer), resolve(`slirp4netns: ${err.message}`)));
    });
    if (error) await kill?.();
    else await ctl.release();
    return error;
  })();
  return {
    ready,
    /** Ends slirp4netns; what went wrong setting the network up, if anything. */
    stop: async () => {
      stopped = true;
      const error = await ready.catch((err: Error) => err.message);
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      return error;
    },
  };
}

/**
 * The workspace's growth during a command, measured with `du` about every second (less often
 * when a walk is slow: at most a tenth of the time goes to it); over the limit, `kill`.
 */
class DiskWatch {
  /** Bytes the workspace had grown by when it was killed. */
  killedAt?: number;
  private stopped = false;

  private constructor(
    private readonly dir: string,
    private readonly base: number,
    private readonly limit: number,
    private readonly kill: () => Promise<void>,
  ) {}

  static async start(dir: string, limitMb: number, kill: () => Promise<void>): Promise<DiskWatch> {
    const w = new DiskWatch(dir, (await diskUse(dir)).bytes, limitMb * MIB, kill);
    void w.loop();
    return w;
  }

  /** Bytes grown since the start. */
  async measure(): Promise<number> {
    return Math.max(0, (await diskUse(this.dir)).bytes - this.base);
  }

  private async loop(): Promise<void> {
    let pause = 1000;
    while (!this.stopped) {
      await sleep(pause);
      if (this.stopped) return;
      const t = Date.now();
      const grown = Math.max(0, (await diskUse(this.dir)).bytes - this.base);
      pause = Math.max(1000, 10 * (Date.now() - t));
      // Again at every tick: the sandbox may not have told its pid yet.
      if (grown > this.limit || this.killedAt !== undefined) {
        this.killedAt ??= grown;
        await this.kill();
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }
}

/** Allocated bytes under `dir` (sparse files count what they use), on its file system only. */
async function diskUse(dir: string): Promise<{ bytes: number }> {
  // du exits 1 when files vanish mid-walk; its total still stands.
  const out = await run('du', ['-s', '-x', '-B1', dir], { maxBuffer: 1 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return { bytes: Number(/^(\d+)/.exec(out.stdout)?.[1] ?? 0) };
}

/** One command's cgroup(s): memory and process limits, and what was hit. */
class Cgroup {
  private constructor(
    private readonly dirs: { memory?: string; pids?: string },
    private readonly v2: boolean,
  ) {}

  get limitsMemory(): boolean {
    return !!this.dirs.memory;
  }

  get attachScript(): string {
    return [...new Set(Object.values(this.dirs))].map((d) => `echo $$ > '${d}/cgroup.procs'`).join('; ');
  }

  static async create(support: CgroupSupport, limits: SandboxPolicy['limits']): Promise<Cgroup> {
    const name = `weaver-${process.pid}-${randomUUID().slice(0, 8)}`;
    const bytes = String(limits.memoryMb * 1024 * 1024);
    if (support.version === 2) {
      const dir = path.join(support.parent, name);
      await mkdir(dir);
      await writeFile(path.join(dir, 'memory.max'), bytes);
      await writeFile(path.join(dir, 'memory.swap.max'), '0').catch(() => undefined);
      await writeFile(path.join(dir, 'pids.max'), String(limits.processes));
      return new Cgroup({ memory: dir, pids: dir }, true);
    }
    const dirs: { memory?: string; pids?: string } = {};
    if (support.memory) {
      dirs.memory = path.join(support.memory, name);
      await mkdir(dirs.memory);
      await writeFile(path.join(dirs.memory, 'memory.limit_in_bytes'), bytes);
      await writeFile(path.join(dirs.memory, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined);
    }
    if (support.pids) {
      dirs.pids = path.join(support.pids, name);
      await mkdir(dirs.pids);
      await writeFile(path.join(dirs.pids, 'pids.max'), String(limits.processes));
    }
    return new Cgroup(dirs, false);
  }

  /** How many processes the kernel's OOM killer ended, and how many forks were refused. */
  async counters(): Promise<{ oomKills: number; forksRefused: number }> {
    const field = async (file: string | undefined, key: string) => {
      if (!file) return 0;
      const text = await readFile(file, 'utf8').catch(() => '');
      return Number(new RegExp(`^${key} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    };
    const { memory, pids } = this.dirs;
    return {
      oomKills: await field(memory && path.join(memory, this.v2 ? 'memory.events' : 'memory.oom_control'), 'oom_kill'),
      forksRefused: await field(pids && path.join(pids, 'pids.events'), 'max'),
    };
  }

  /** SIGKILL to every process in the cgroup(s). */
  async killAll(): Promise<void> {
    for (const dir of new Set(Object.values(this.dirs))) {
      const procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }

  async remove(): Promise<void> {
    for (const dir of new Set(Object.values(this.dirs))) {
      // The PID namespace is gone with bwrap; its processes may take a moment to leave.
      for (let i = 0; i < 50; i++) {
        try {
          await rmdir(dir);
          break;
        } catch {
          await this.killAll();
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }
}

const SIGXCPU = 24;
const SIGXFSZ = 25;

function size(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

/** Which limit (if any) ended or hampered the command, in words for the result and the model. */
async function limitHit(r: RunCommandResult, limits: SandboxLimits, cgroup: Cgroup | undefined, network: boolean, scratchMb: number): Promise<string | undefined> {
  const sig = r.signal ?? (r.exitCode !== null && r.exitCode > 128 ? r.exitCode - 128 : undefined);
  const is = (n: number, name: string) => sig === n || sig === name;
  const counters = cgroup ? await cgroup.counters() : { oomKills: 0, forksRefused: 0 };
  if (counters.oomKills > 0) return `killed: memory limit ${size(limits.memoryMb)} (${counters.oomKills} process(es) ended by the OOM killer)`;
  if (is(SIGXFSZ, 'SIGXFSZ') || /File size limit exceeded/.test(r.tail)) return `killed: file size limit ${size(limits.fileSizeMb)}`;
  if (is(SIGXCPU, 'SIGXCPU') || /CPU time limit exceeded/.test(r.tail)) return `killed: CPU time limit ${limits.cpuSec} s`;
  if (counters.forksRefused > 0 || /Cannot fork|fork: retry|fork: Resource temporarily unavailable/i.test(r.tail)) {
    return `process limit ${limits.processes} reached: new processes were refused`;
  }
  if (/Too many open files|EMFILE/.test(r.tail)) return `open files limit ${limits.openFiles} reached`;
  if (/No space left on device|ENOSPC/.test(r.tail)) return `disk limit reached: no space left (the sandbox's /tmp holds ${size(scratchMb)}: sandbox.limits.diskMb, at most memoryMb)`;
  if (/MemoryError|Cannot allocate memory|std::bad_alloc|heap out of memory|ENOMEM/.test(r.tail)) return `memory limit ${size(limits.memoryMb)} reached: an allocation was refused`;
  if (!network && /ENETUNREACH|Network is unreachable|EAI_AGAIN|ENOTFOUND|Temporary failure in name resolution/.test(r.tail)) {
    return 'no network in the sandbox (sandbox.network allows it for the setup command by default; "all" for every command)';
  }
  return undefined;
}
