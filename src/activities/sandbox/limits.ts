// Limits beyond the rlimits: a cgroup per command (memory, processes; v1 as root, or a
// delegated v2 parent) that also tells an OOM kill apart, the workspace's disk growth watched
// with `du`, the sandbox's scratch tmpfs watched for being full, and which limit ended or
// hampered a command, in words — from this accounting and the exit status, never from what the
// command printed (a test that prints "No space left on device" has hit nothing).
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SandboxLimits, SandboxPolicy } from '../../domain/schema';
import type { RunCommandResult } from '../commands';
import { sleep } from '../processGroups';
import type { CgroupSupport } from './setting';
import { execFileVia } from '../spawner';

// Through the spawn helper: the worker itself never forks.
const run = execFileVia;

export const MIB = 1024 * 1024;

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

export async function detectCgroup(env: NodeJS.ProcessEnv): Promise<CgroupSupport | undefined> {
  if (env.WEAVER_CGROUP_PARENT) {
    const parent = path.resolve(env.WEAVER_CGROUP_PARENT);
    const enabled = await readFile(path.join(parent, 'cgroup.subtree_control'), 'utf8').catch(() => '');
    if (!/\bmemory\b/.test(enabled) || !/\bpids\b/.test(enabled) || !(await writable(parent))) {
      throw new Error(`WEAVER_CGROUP_PARENT=${parent} must be a writable cgroup v2 directory with "memory pids" in its cgroup.subtree_control`);
    }
    return { version: 2, parent };
  }
  const v1: { version: 1; memory?: string; pids?: string; cpuacct?: string } = { version: 1 };
  for (const controller of ['memory', 'pids', 'cpuacct'] as const) {
    const own = ownV1Path(controller);
    const dir = own === undefined ? undefined : path.join('/sys/fs/cgroup', controller, own);
    if (dir && existsSync(path.join(dir, 'cgroup.procs')) && (await writable(dir))) v1[controller] = dir;
  }
  // cpuacct alone limits nothing: without memory or pids, the sandbox is rlimit-only (and sampled).
  return v1.memory || v1.pids ? v1 : undefined;
}

/**
 * The workspace's growth during a command, measured with `du` about every second (less often
 * when a walk is slow: at most a tenth of the time goes to it); over the limit, `kill`.
 */
export class DiskWatch {
  /** Bytes the workspace had grown by when it was killed. */
  killedAt?: number;
  /** A scratch tmpfs of the sandbox (`/tmp`) seen full: its size bounded the command. */
  scratchFull?: string;
  private stopped = false;

  private constructor(
    private readonly dirs: string[],
    private readonly base: number,
    private readonly limit: number,
    private readonly kill: () => Promise<void>,
  ) {}

  /** `dirs`: the workspace, and the repository's cache when the command has one (its growth counts too). */
  static async start(dirs: string[], limitMb: number, kill: () => Promise<void>): Promise<DiskWatch> {
    const w = new DiskWatch(dirs, (await diskUse(dirs)).bytes, limitMb * MIB, kill);
    void w.loop();
    return w;
  }

  /** Bytes grown since the start. */
  async measure(): Promise<number> {
    return Math.max(0, (await diskUse(this.dirs)).bytes - this.base);
  }

  private async loop(): Promise<void> {
    let pause = 1000;
    while (!this.stopped) {
      await sleep(pause, { unref: true });
      if (this.stopped) return;
      const t = Date.now();
      const grown = Math.max(0, (await diskUse(this.dirs)).bytes - this.base);
      pause = Math.max(1000, 10 * (Date.now() - t));
      // Again at every tick: the sandbox may not have told its pid yet.
      if (grown > this.limit || this.killedAt !== undefined) {
        this.killedAt ??= grown;
        await this.kill();
      }
    }
  }

  /**
   * Watches the sandbox's sized tmpfs (`dirs`, through /proc/<its pid>/root) every quarter
   * second: one with less than 1% or 64 KiB free was full — writes there were refused.
   */
  watchScratch(pidOf: () => Promise<number | undefined>, dirs: string[]): void {
    void (async () => {
      while (!this.stopped && !this.scratchFull) {
        const pid = await pidOf();
        for (const dir of pid ? dirs : []) {
          const fs = await statfs(`/proc/${pid}/root${dir}`).catch(() => undefined);
          if (this.stopped || !fs || fs.blocks === 0) continue;
          if (fs.bfree < Math.max(fs.blocks / 100, (64 * 1024) / fs.bsize)) this.scratchFull = dir;
        }
        await sleep(250, { unref: true });
      }
    })();
  }

  stop(): void {
    this.stopped = true;
  }
}

/** A regular file in `dir` (not .git) changed since `sinceMs` whose size is exactly `bytes`: one that RLIMIT_FSIZE stopped. */
export async function fileAtLimit(dir: string, bytes: number, sinceMs: number): Promise<string | undefined> {
  const args = [dir, '-xdev', '-path', `${dir}/.git`, '-prune', '-o', '-type', 'f', '-size', `${bytes}c`, '-newermt', `@${Math.floor(sinceMs / 1000) - 1}`, '-print', '-quit'];
  const out = await run('find', args, { maxBuffer: 1 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return out.stdout.split('\n')[0] || undefined;
}

/** Allocated bytes under `dir` (sparse files count what they use), on its file system only. */
export async function diskUse(dirs: string[]): Promise<{ bytes: number }> {
  // du exits 1 when files vanish mid-walk; its total (-c, the last line) still stands.
  const out = await run('du', ['-s', '-x', '-c', '-B1', ...dirs], { maxBuffer: 1 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return { bytes: Number(/^(\d+)\ttotal$/m.exec(out.stdout)?.[1] ?? 0) };
}

/** One command's cgroup(s): memory and process limits, what was hit, and what was used. */
export class Cgroup {
  private constructor(
    private readonly dirs: { memory?: string; pids?: string; cpuacct?: string },
    private readonly v2: boolean,
  ) {}

  get limitsMemory(): boolean {
    return !!this.dirs.memory;
  }

  /** Whether refused forks are counted (pids.events). */
  get countsForks(): boolean {
    return !!this.dirs.pids;
  }

  /** `cgroup v1` or `cgroup v2`: how `usage()` measured. */
  get kind(): string {
    return this.v2 ? 'cgroup v2' : 'cgroup v1';
  }

  /** Whether `usage()` has both figures; else the command's tree is sampled from /proc too. */
  get measuresAll(): boolean {
    return this.v2 ? existsSync(path.join(this.dirs.memory!, 'memory.peak')) : !!(this.dirs.memory && this.dirs.cpuacct);
  }

  /**
   * CPU time (user+sys) and peak memory of everything that ran in the cgroup(s), children and
   * reaped processes included; read before `remove()`. v1: cpuacct.usage and
   * memory.max_usage_in_bytes; v2: cpu.stat usage_usec and memory.peak (Linux 5.19+). Memory is
   * what the memory limit counts: page cache and tmpfs the command filled included.
   */
  async usage(): Promise<{ cpuMs?: number; peakMemoryMb?: number }> {
    const read = (dir: string | undefined, file: string) => (dir ? readFile(path.join(dir, file), 'utf8').catch(() => undefined) : Promise.resolve(undefined));
    const mb = (text: string | undefined) => (text === undefined || !/^\d+/.test(text) ? undefined : Math.round(Number.parseInt(text, 10) / MIB));
    if (this.v2) {
      const usec = /^usage_usec (\d+)/m.exec((await read(this.dirs.memory, 'cpu.stat')) ?? '')?.[1];
      return { cpuMs: usec === undefined ? undefined : Math.round(Number(usec) / 1000), peakMemoryMb: mb(await read(this.dirs.memory, 'memory.peak')) };
    }
    const ns = await read(this.dirs.cpuacct, 'cpuacct.usage');
    return { cpuMs: ns === undefined || !/^\d+/.test(ns) ? undefined : Math.round(Number.parseInt(ns, 10) / 1e6), peakMemoryMb: mb(await read(this.dirs.memory, 'memory.max_usage_in_bytes')) };
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
    const dirs: { memory?: string; pids?: string; cpuacct?: string } = {};
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
    if (support.cpuacct) {
      // Only measures: without it the CPU time is sampled, so a failure here is no reason to lose the limits.
      const dir = path.join(support.cpuacct, name);
      if (await mkdir(dir).then(() => true, () => false)) dirs.cpuacct = dir;
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

export function size(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

/** What the sandbox's own accounting saw of a command, besides its cgroup and exit status. */
export interface Observed {
  /** A scratch tmpfs seen full (DiskWatch.scratchFull). */
  scratchFull?: string;
  /** A file the command left at exactly the file size limit (fileAtLimit). */
  fileAtLimit?: string;
}

/**
 * Which limit (if any) ended or hampered the command, in words for the result and the model:
 * from the cgroup's counters, the exit status, the tmpfs and file sizes the sandbox measured
 * and the process tree's samples — never from the output, which the command controls.
 */
export async function limitHit(r: RunCommandResult, limits: SandboxLimits, cgroup: Cgroup | undefined, network: boolean, scratchMb: number, seen: Observed = {}): Promise<string | undefined> {
  const sig = r.signal ?? (r.exitCode !== null && r.exitCode > 128 ? r.exitCode - 128 : undefined);
  const is = (n: number, name: string) => sig === n || sig === name;
  const counters = cgroup ? await cgroup.counters() : { oomKills: 0, forksRefused: 0 };
  if (counters.oomKills > 0) return `killed: memory limit ${size(limits.memoryMb)} (${counters.oomKills} process(es) ended by the OOM killer)`;
  // A writer past RLIMIT_FSIZE gets SIGXFSZ (or EFBIG): its file stays at exactly the limit.
  if (is(SIGXFSZ, 'SIGXFSZ') || seen.fileAtLimit) return `killed: file size limit ${size(limits.fileSizeMb)}`;
  if (is(SIGXCPU, 'SIGXCPU')) return `killed: CPU time limit ${limits.cpuSec} s`;
  // Without a pids cgroup: the most processes the samples saw, near RLIMIT_NPROC (which counts threads too).
  const sampledProcs = cgroup?.countsForks ? 0 : (r.usage?.peakProcesses ?? 0);
  if (counters.forksRefused > 0 || sampledProcs >= 0.9 * limits.processes) return `process limit ${limits.processes} reached: new processes were refused`;
  if (seen.scratchFull) return `disk limit reached: the sandbox's ${seen.scratchFull} (${size(scratchMb)}) was full (sandbox.limits.diskMb, at most memoryMb)`;
  // Without a memory cgroup (RLIMIT_DATA) nothing counts a refused allocation: the tree's sampled
  // peak near the limit, or — only to explain a command that failed — its own out-of-memory words
  // (a sampler misses a process that dies within one interval).
  if (!cgroup?.limitsMemory && r.usage && r.usage.peakMemoryMb >= 0.9 * limits.memoryMb) return `memory limit ${size(limits.memoryMb)} reached: an allocation was refused`;
  const failed = r.exitCode !== 0 && !r.timedOut;
  if (!cgroup?.limitsMemory && failed && /out of memory|Cannot allocate memory|MemoryError|std::bad_alloc|allocation failed|\bENOMEM\b/i.test(r.tail)) {
    return `memory limit ${size(limits.memoryMb)} reached: an allocation was refused (RLIMIT_DATA; the command failed saying so)`;
  }
  // Not a limit hit but the policy, said only to explain a failure that looks like it.
  if (!network && r.exitCode !== 0 && /ENETUNREACH|Network is unreachable|EAI_AGAIN|ENOTFOUND|Temporary failure in name resolution/.test(r.tail)) {
    return 'no network in the sandbox (sandbox.network allows it for the setup command by default; "all" for every command)';
  }
  return undefined;
}
