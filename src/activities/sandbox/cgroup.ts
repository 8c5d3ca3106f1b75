// The sandbox's cgroups (memory, processes; v1 as root, or a delegated v2 parent): found at
// start; one serves a workspace's commands one after the other (./cgroupPool.ts), so between
// two it is checked empty, its limits set, its peak reset and its counters taken as the new
// baseline: what a command is told it used and hit is its own.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SandboxPolicy } from '../../domain/schema';
import { sleep } from '../processGroups';
import { MIB } from './limits';
import type { CgroupSupport } from './setting';

/** Our own cgroup in the v1 hierarchy of `controller` (`4:memory:/a/b` in /proc/self/cgroup). */
export function ownV1Path(controller: string): string | undefined {
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


type Dirs = { memory?: string; pids?: string; cpuacct?: string };
export const NAME_PREFIX = 'weaver-';

/** A command's cgroup(s): memory and process limits, what was hit, and what was used. */
export class Cgroup {
  /** Counters at the start of the current command: a reused cgroup's earlier commands are not this one's. */
  private base = { oomKills: 0, forksRefused: 0, cpuMs: 0 };
  /** Commands that have run in it (1 while its first one runs). */
  uses = 1;
  /** v2 keeps memory.peak since creation (no reset before Linux 6.12): a reused one's peak is sampled instead. */
  private peakValid = true;

  private constructor(
    private readonly dirs: Dirs,
    private readonly v2: boolean,
    private limits: SandboxPolicy['limits'],
  ) {}

  /** The cgroup's directory (the memory controller's, else the first), for records and tests. */
  get path(): string {
    return (this.dirs.memory ?? this.dirs.pids ?? this.dirs.cpuacct)!;
  }

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
    return this.v2 ? this.peakValid && existsSync(path.join(this.dirs.memory!, 'memory.peak')) : !!(this.dirs.memory && this.dirs.cpuacct);
  }

  /**
   * CPU time (user+sys) and peak memory of everything that ran in the cgroup(s) during this
   * command, children and reaped processes included. v1: cpuacct.usage and
   * memory.max_usage_in_bytes (reset before each command); v2: cpu.stat usage_usec and
   * memory.peak (Linux 5.19+). Memory is what the memory limit counts: page cache and tmpfs
   * the command filled included (and page cache an earlier command left, until reclaimed).
   */
  async usage(): Promise<{ cpuMs?: number; peakMemoryMb?: number }> {
    const mb = (text: string | undefined) => (text === undefined || !/^\d+/.test(text) ? undefined : Math.round(Number.parseInt(text, 10) / MIB));
    const cpu = await this.cpuMs();
    const peak = this.v2 ? (this.peakValid ? await read(this.dirs.memory, 'memory.peak') : undefined) : await read(this.dirs.memory, 'memory.max_usage_in_bytes');
    return { cpuMs: cpu === undefined ? undefined : cpu - this.base.cpuMs, peakMemoryMb: mb(peak) };
  }

  private async cpuMs(): Promise<number | undefined> {
    if (this.v2) {
      const usec = /^usage_usec (\d+)/m.exec((await read(this.dirs.memory, 'cpu.stat')) ?? '')?.[1];
      return usec === undefined ? undefined : Math.round(Number(usec) / 1000);
    }
    const ns = await read(this.dirs.cpuacct, 'cpuacct.usage');
    return ns === undefined || !/^\d+/.test(ns) ? undefined : Math.round(Number.parseInt(ns, 10) / 1e6);
  }

  get attachScript(): string {
    return [...new Set(Object.values(this.dirs))].map((d) => `echo $$ > '${d}/cgroup.procs'`).join('; ');
  }

  static async create(support: CgroupSupport, limits: SandboxPolicy['limits']): Promise<Cgroup> {
    const name = `${NAME_PREFIX}${process.pid}-${randomUUID().slice(0, 8)}`;
    if (support.version === 2) {
      const dir = path.join(support.parent, name);
      await mkdir(dir);
      const cg = new Cgroup({ memory: dir, pids: dir }, true, limits);
      await cg.writeLimits();
      return cg;
    }
    const dirs: Dirs = {};
    if (support.memory) {
      dirs.memory = path.join(support.memory, name);
      await mkdir(dirs.memory);
    }
    if (support.pids) {
      dirs.pids = path.join(support.pids, name);
      await mkdir(dirs.pids);
    }
    if (support.cpuacct) {
      // Only measures: without it the CPU time is sampled, so a failure here is no reason to lose the limits.
      const dir = path.join(support.cpuacct, name);
      if (await mkdir(dir).then(() => true, () => false)) dirs.cpuacct = dir;
    }
    const cg = new Cgroup(dirs, false, limits);
    await cg.writeLimits();
    return cg;
  }

  private async writeLimits(): Promise<void> {
    const bytes = String(this.limits.memoryMb * MIB);
    const { memory, pids } = this.dirs;
    if (this.v2) {
      await writeFile(path.join(memory!, 'memory.max'), bytes);
      await writeFile(path.join(memory!, 'memory.swap.max'), '0').catch(() => undefined);
      await writeFile(path.join(pids!, 'pids.max'), String(this.limits.processes));
      return;
    }
    if (memory) {
      // The kernel keeps memsw ≥ memory: a lower limit goes to memory first, a higher one to memsw first.
      const order = ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'];
      const current = Number.parseInt((await read(memory, 'memory.limit_in_bytes')) ?? '0', 10);
      for (const file of Number(bytes) < current ? order : order.reverse()) {
        await writeFile(path.join(memory, file), bytes).catch((err: unknown) => {
          if (file === 'memory.limit_in_bytes') throw err;
        });
      }
    }
    if (pids) await writeFile(path.join(pids, 'pids.max'), String(this.limits.processes));
  }

  /**
   * Ready for the workspace's next command: nothing left running in it (else false: not
   * reusable), its limits the command's, its peak reset and its counters the new baseline.
   */
  async reuse(limits: SandboxPolicy['limits']): Promise<boolean> {
    if (!(await this.empty())) return false;
    if (limits.memoryMb !== this.limits.memoryMb || limits.processes !== this.limits.processes) {
      this.limits = limits;
      if (!(await this.writeLimits().then(() => true, () => false))) return false;
    }
    if (this.v2) this.peakValid = false;
    else if (this.dirs.memory && !(await writeFile(path.join(this.dirs.memory, 'memory.max_usage_in_bytes'), '0').then(() => true, () => false))) return false;
    const counters = await this.rawCounters();
    this.base = { ...counters, cpuMs: (await this.cpuMs()) ?? 0 };
    this.uses++;
    return true;
  }

  /** No process left in it (a straggler is killed; the PID namespace ended with bwrap, so only a moment's wait). */
  async empty(): Promise<boolean> {
    for (let i = 0; i < 50; i++) {
      if (!(await this.pids()).length) return true;
      await this.killAll();
      await sleep(20);
    }
    return false;
  }

  private async pids(): Promise<number[]> {
    const out: number[] = [];
    for (const dir of new Set(Object.values(this.dirs))) {
      out.push(...((await read(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number));
    }
    return out;
  }

  /** How many processes the kernel's OOM killer ended, and how many forks were refused, during this command. */
  async counters(): Promise<{ oomKills: number; forksRefused: number }> {
    const now = await this.rawCounters();
    return { oomKills: now.oomKills - this.base.oomKills, forksRefused: now.forksRefused - this.base.forksRefused };
  }

  private async rawCounters(): Promise<{ oomKills: number; forksRefused: number }> {
    const field = async (dir: string | undefined, file: string, key: string) => {
      const text = (await read(dir, file)) ?? '';
      return Number(new RegExp(`^${key} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    };
    const { memory, pids } = this.dirs;
    return {
      oomKills: await field(memory, this.v2 ? 'memory.events' : 'memory.oom_control', 'oom_kill'),
      forksRefused: await field(pids, 'pids.events', 'max'),
    };
  }

  /** SIGKILL to every process in the cgroup(s). */
  async killAll(): Promise<void> {
    for (const pid of await this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  async remove(): Promise<void> {
    await removeDirs(Object.values(this.dirs));
  }

  /** At process exit (no event loop left): rmdir only, for a cgroup known to be empty. */
  removeNow(): void {
    for (const dir of new Set(Object.values(this.dirs))) {
      try {
        rmdirSync(dir);
      } catch {
        // gone, or not empty: the next worker's sweep removes it
      }
    }
  }
}

const read = (dir: string | undefined, file: string) => (dir ? readFile(path.join(dir, file), 'utf8').catch(() => undefined) : Promise.resolve(undefined));

/** rmdir each cgroup directory, killing what is left in it; the PID namespace is gone with bwrap, its processes may take a moment to leave. */
export async function removeDirs(dirs: string[]): Promise<void> {
  for (const dir of new Set(dirs)) {
    for (let i = 0; i < 50; i++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        for (const pid of ((await read(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
        }
        await sleep(20);
      }
    }
  }
}
