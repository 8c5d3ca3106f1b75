// Confinement for commands that run repository code (design rule 7): bubblewrap on Linux.
//
// Every setup and test command runs as
//   [cgroup attach] prlimit <rlimits> [setpriv <uid>] bwrap <namespaces, mounts> -- <command>
// - bwrap: a read-only view of the host, the workspace writable but its `.git` read-only, a
//   private /tmp and $HOME, the worker's home, cwd, workspaces, artifact store, /run and /root
//   hidden; new user, PID, IPC, UTS and (unless allowed) network namespaces; a fresh /proc;
//   `--die-with-parent`, so killing bwrap (timeout, cancel, the worker dying) kills everything
//   inside, whatever it did with setsid.
// - a root worker runs the sandbox as an unprivileged uid (WEAVER_SANDBOX_UID, default 65534):
//   a sandbox mapped to root could still read root's files and write /proc/sys.
// - limits: rlimits always (processes, open files, file size, CPU time; memory as RLIMIT_DATA),
//   and a cgroup for memory and processes when the worker can make one (v1 as root, or a
//   delegated v2 parent named by WEAVER_CGROUP_PARENT), which also tells an OOM kill apart.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { SandboxMode } from '../config';
import type { Command, SandboxPolicy } from '../domain/schema';
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
  /** A root worker runs commands as this unprivileged uid/gid. */
  runAs?: number;
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
  /** Env: WEAVER_BWRAP, WEAVER_SANDBOX_UID, WEAVER_CGROUP_PARENT, PATH. */
  env?: NodeJS.ProcessEnv;
}

export const INSTALL_HINT =
  'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap; Alpine: apk add bubblewrap)';

/**
 * Finds and tries bwrap. `required` without a working one throws, naming the fix; `auto` falls
 * back to no sandbox with a warning; `off` never sandboxes.
 */
export async function detectSandbox(opts: DetectOptions): Promise<SandboxSetting> {
  const env = opts.env ?? process.env;
  const maxNetwork = (env.WEAVER_SANDBOX_NETWORK || 'setup') as SandboxPolicy['network'];
  if (!NETWORK_ORDER.includes(maxNetwork)) throw new Error(`WEAVER_SANDBOX_NETWORK must be one of ${NETWORK_ORDER.join(', ')}, got "${maxNetwork}"`);
  const base = { maxNetwork, mode: opts.mode, hide: opts.hide.map((p) => path.resolve(p)), readOnly: (opts.readOnly ?? []).map((p) => path.resolve(p)) };
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
  const runAs = process.getuid?.() === 0 ? Number(env.WEAVER_SANDBOX_UID || 65534) : undefined;
  if (runAs !== undefined && !(Number.isInteger(runAs) && runAs > 0)) throw new Error(`WEAVER_SANDBOX_UID must be a positive integer, got "${env.WEAVER_SANDBOX_UID}"`);
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
  return { ...base, kind: 'bubblewrap', bwrap, version, runAs, cgroup: await detectCgroup(env) };
}

/** The sandbox in words, for the worker's banner, results and the progress query. */
export function describeSandbox(s: SandboxSetting): string {
  return s.kind === 'none' ? 'none' : (s.version ?? 'bubblewrap');
}

export function enforcementOf(s: SandboxSetting): string {
  if (s.kind === 'none') return 'none';
  return s.cgroup ? `cgroup v${s.cgroup.version} + rlimit` : 'rlimit';
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
  /** After the command: which limit it hit (if one), and the cgroup removed. */
  finish(r: RunCommandResult): Promise<string | undefined>;
}

const HOME_IN_SANDBOX = '/tmp/home';

/** The command wrapped in the sandbox the worker has, with its env and its limits. */
export async function sandboxed(req: SandboxRunRequest): Promise<SandboxedCommand> {
  const { setting, policy } = req;
  const limits = policy.limits;
  const argv = typeof req.command === 'string' ? ['/bin/sh', '-c', req.command] : req.command;
  const boxed = setting.kind === 'bubblewrap';
  if (!boxed) await mkdir(req.scratchHome, { recursive: true });
  const env = sandboxEnv(req, boxed ? HOME_IN_SANDBOX : req.scratchHome);
  // No sandbox, no limits: only the environment is kept clean.
  if (!boxed) return { command: argv, env, finish: async () => undefined };

  if (setting.runAs !== undefined) await handOver(req.dir, setting.runAs);
  const cgroup = setting.cgroup ? await Cgroup.create(setting.cgroup, limits).catch(() => undefined) : undefined;
  const mib = 1024 * 1024;
  const rlimits = [
    `--nproc=${limits.processes}`,
    `--nofile=${limits.openFiles}`,
    `--fsize=${limits.fileSizeMb * mib}`,
    `--cpu=${limits.cpuSec}`,
    '--core=0',
    // Without a memory cgroup, private writable memory is capped (address space would break V8/JVM reservations).
    ...(cgroup?.limitsMemory ? [] : [`--data=${limits.memoryMb * mib}`]),
  ];
  // A task gets at most the network the worker allows: asking for `all` does not lift the cap.
  const allowed = NETWORK_ORDER[Math.min(NETWORK_ORDER.indexOf(policy.network), NETWORK_ORDER.indexOf(setting.maxNetwork ?? 'setup'))];
  const network = allowed === 'all' || (allowed === 'setup' && req.phase === 'setup');
  const mounts: string[] = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];
  const hidden = hiddenPaths(setting);
  for (const p of hidden) mounts.push('--tmpfs', p);
  for (const p of setting.readOnly) if (existsSync(p) && hidden.some((h) => isInside(p, h))) mounts.push('--ro-bind', p, p);
  if (network) mounts.push(...resolvConf(hidden));
  mounts.push('--dir', HOME_IN_SANDBOX, '--bind', req.dir, req.dir);
  const git = path.join(req.dir, '.git');
  if (existsSync(git)) mounts.push('--ro-bind', git, git);
  const bwrap = [setting.bwrap!, ...NAMESPACES, ...(network ? ['--share-net'] : []), ...mounts, '--chdir', req.dir, '--', ...argv];
  const inner = ['prlimit', ...rlimits, '--', ...dropPrivileges(setting.runAs), ...bwrap];
  // Joins the cgroup before anything runs, so nothing escapes its limits.
  const command = cgroup ? ['/bin/sh', '-c', `${cgroup.attachScript}; exec "$@"`, 'weaver-sandbox', ...inner] : inner;
  return {
    command,
    env,
    finish: async (r) => {
      const hit = await limitHit(r, limits, cgroup, network);
      await cgroup?.remove();
      return hit;
    },
  };
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

/** PATH, locale and time zone from the worker, a private HOME, CI=true, and what the policy names — never a secret. */
function sandboxEnv(req: SandboxRunRequest, home: string): Record<string, string> {
  const out: Record<string, string> = {};
  const never = new Set(req.secretEnvNames ?? []);
  for (const [name, value] of Object.entries(req.env)) {
    if (value === undefined || never.has(name)) continue;
    if (/^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM)$/.test(name) || req.policy.env.includes(name)) out[name] = value;
  }
  out.HOME = home;
  out.TMPDIR = req.setting.kind === 'bubblewrap' ? '/tmp' : home;
  out.CI = 'true';
  return out;
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

  async remove(): Promise<void> {
    for (const dir of new Set(Object.values(this.dirs))) {
      // The PID namespace is gone with bwrap; its processes may take a moment to leave.
      for (let i = 0; i < 50; i++) {
        try {
          await rmdir(dir);
          break;
        } catch {
          const procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
          for (const pid of procs.split('\n').filter(Boolean)) {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              // gone
            }
          }
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
async function limitHit(r: RunCommandResult, limits: SandboxPolicy['limits'], cgroup: Cgroup | undefined, network: boolean): Promise<string | undefined> {
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
  if (/MemoryError|Cannot allocate memory|std::bad_alloc|heap out of memory|ENOMEM/.test(r.tail)) return `memory limit ${size(limits.memoryMb)} reached: an allocation was refused`;
  if (!network && /ENETUNREACH|Network is unreachable|EAI_AGAIN|ENOTFOUND|Temporary failure in name resolution/.test(r.tail)) {
    return 'no network in the sandbox (sandbox.network allows it for the setup command by default; "all" for every command)';
  }
  return undefined;
}
