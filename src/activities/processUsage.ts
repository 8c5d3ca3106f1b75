// CPU time and peak memory of a command's whole process tree by sampling /proc, for when no
// cgroup counts them (no sandbox, or a sandbox without cgroups: see sandbox/limits.ts Cgroup.usage).
//
// Every `intervalMs` (less often for a long command) the tree under the command's pid is walked through
// /proc/<pid>/task/<tid>/children, and each process's /proc/<pid>/stat and status are read:
// - CPU: the sum over the tree of utime+stime+cutime+cstime, the largest such sum seen. A child
//   reaped by a process of the tree moves its time into that parent's cutime/cstime, so short-
//   lived children are counted even if no sample saw them. What it misses: the time used after
//   the last sample before the command's own process is reaped (by Node, which is outside the
//   tree; at most about one interval of work), and time of processes that left the tree and were
//   reaped by someone else (an orphan reaped by init) after their last sample. A child seen as a
//   zombie and then, in the same walk, in its parent's cutime counts twice for that sample.
// - memory: the largest sum over the tree, at one sample, of each process's resident anonymous
//   and shared-memory pages (RssAnon + RssShmem): what a memory cgroup would charge it, without
//   the program's own file pages (a node binary's 40 MB, mostly shared with every other node),
//   so the figure compares with the cgroup's and with `limits.memoryMb`. Pages shared between
//   processes (copy-on-write after fork) count once per process, so a sum can overstate; memory
//   a process takes and frees (or exits) between two samples is missed.
// Linux only; elsewhere it measures nothing (the result's fields are then absent).
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';

export interface SampledUsage {
  cpuMs: number;
  peakMemoryMb: number;
  /** The most processes one walk found in the tree (the process limit's own accounting, without a pids cgroup). */
  peakProcesses?: number;
  /** How many walks of the tree were taken. */
  samples: number;
}

let clockTicks: number | undefined;
/** The auxiliary vector's entry for USER_HZ (what `getconf CLK_TCK` reads). */
const AT_CLKTCK = 17;

/**
 * USER_HZ, the unit of /proc/<pid>/stat times (100 on every common Linux): from the kernel's
 * auxiliary vector (/proc/self/auxv), as `getconf CLK_TCK` has it — without starting a process
 * from the worker's main thread.
 */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const auxv = readFileSync('/proc/self/auxv');
      const wide = !['arm', 'ia32', 'mips', 'mipsel', 'ppc'].includes(process.arch);
      const size = wide ? 8 : 4;
      const le = endianness() === 'LE';
      const word = (at: number) => (wide ? Number(le ? auxv.readBigUInt64LE(at) : auxv.readBigUInt64BE(at)) : le ? auxv.readUInt32LE(at) : auxv.readUInt32BE(at));
      for (let at = 0; at + 2 * size <= auxv.length && clockTicks === undefined; at += 2 * size) {
        if (word(at) === AT_CLKTCK) clockTicks = word(at + size) || undefined;
      }
    } catch {
      // no /proc: the common value below
    }
    clockTicks ??= 100;
  }
  return clockTicks;
}

interface Proc {
  /** utime + stime + cutime + cstime, in ticks. */
  cpu: number;
  /** RssAnon + RssShmem. */
  rssKb: number;
  threads: number;
  /** Start time (ticks since boot): tells a reused pid apart. */
  start: string;
}

async function readProc(pid: number): Promise<Proc | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid … — comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    // A zombie has no Rss* lines: its memory is gone, its times are still there.
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { cpu, rssKb: kb('RssAnon') + kb('RssShmem'), threads: Number(f[17]) || 1, start: f[19] };
  } catch {
    return undefined; // gone
  }
}

/** The children of `pid`, of all its threads (a child belongs to the thread that forked it). */
async function childrenOf(pid: number, threads: number): Promise<number[]> {
  const tids = threads > 1 ? await readdir(`/proc/${pid}/task`).catch(() => [String(pid)]) : [String(pid)];
  const out: number[] = [];
  for (const tid of tids) {
    const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const c of text.split(' ')) if (c.trim()) out.push(Number(c));
  }
  return out;
}

const MAX_INTERVAL_MS = 500;

/** Samples the process tree under `pid` until `stop()`. */
export class TreeSampler {
  private cpuTicks = 0;
  private peakKb = 0;
  private peakProcs = 0;
  private samples = 0;
  private stopped = false;
  private wake?: () => void;
  /** Every process seen (pid → start time): one reparented out of the tree is still followed. */
  private readonly seen = new Map<number, string>();
  private readonly loop: Promise<void>;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    if (process.platform !== 'linux') return;
    const started = Date.now();
    while (!this.stopped) {
      await this.sample();
      if (this.stopped) return;
      // Every intervalMs at first, then less often as the command goes on (a twentieth of its
      // time so far, at most MAX_INTERVAL_MS): a long suite is not walked ten times a second,
      // and what the last interval misses stays a small part of the whole.
      const pause = Math.min(Math.max(this.intervalMs, (Date.now() - started) / 20), Math.max(this.intervalMs, MAX_INTERVAL_MS));
      // Ended early by stop(): the command's end does not wait out an interval.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pause);
        t.unref();
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** One walk: the tree under the root, plus processes seen before that are still the same ones. */
  async sample(): Promise<void> {
    const queue = [this.pid, ...this.seen.keys()];
    const visited = new Set<number>();
    let cpu = 0;
    let rss = 0;
    let procs = 0;
    while (queue.length) {
      const pid = queue.pop()!;
      if (visited.has(pid)) continue;
      visited.add(pid);
      const p = await readProc(pid);
      const known = this.seen.get(pid);
      if (!p || (known !== undefined && known !== p.start)) {
        this.seen.delete(pid);
        continue;
      }
      this.seen.set(pid, p.start);
      procs++;
      cpu += p.cpu;
      rss += p.rssKb;
      queue.push(...(await childrenOf(pid, p.threads)));
    }
    this.samples++;
    this.cpuTicks = Math.max(this.cpuTicks, cpu);
    this.peakKb = Math.max(this.peakKb, rss);
    this.peakProcs = Math.max(this.peakProcs, procs);
  }

  /** Stops sampling; what the tree used, as far as the samples saw. */
  async stop(): Promise<SampledUsage | undefined> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (!this.samples) return undefined;
    return { cpuMs: Math.round((this.cpuTicks * 1000) / ticksPerSecond()), peakMemoryMb: Math.round(this.peakKb / 1024), peakProcesses: this.peakProcs, samples: this.samples };
  }
}
