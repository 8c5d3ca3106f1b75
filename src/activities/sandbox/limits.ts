// Limits beyond the rlimits: a cgroup (./cgroup.ts; memory, processes) that also tells an OOM
// kill apart, the workspace's disk growth watched with `du`, the sandbox's scratch tmpfs watched for being full, and which limit ended or
// hampered a command, in words — from this accounting and the exit status, never from what the
// command printed (a test that prints "No space left on device" has hit nothing).
import { statfs } from 'node:fs/promises';
import type { SandboxLimits } from '../../domain/schema';
import type { RunCommandResult } from '../commands';
import { sleep } from '../processGroups';
import type { Cgroup } from './cgroup';
import { walkSmallTree, type AtLimitQuery } from './diskWalk';
import { execFileVia } from '../spawner';

// Through the spawn helper: the worker itself never forks.
const run = execFileVia;

export const MIB = 1024 * 1024;

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

  /** What the last measurement found under each of `dirs` (the next command's baseline, while nothing else writes there). */
  measured?: number[];

  private constructor(
    private readonly dirs: string[],
    private readonly exclude: string[],
    private readonly base: number,
    private readonly limit: number,
    private readonly kill: () => Promise<void>,
  ) {}

  /**
   * `dirs`: the workspace, and the repository's cache when the command has one (its growth
   * counts too); `exclude`: what the command cannot write (the workspace's read-only .git);
   * `base`: what they held at the start when that is known already (the last command's end
   * measurement, still valid), else measured now.
   */
  static async start(dirs: string[], limitMb: number, kill: () => Promise<void>, opts: { exclude?: string[]; base?: number } = {}): Promise<DiskWatch> {
    const exclude = opts.exclude ?? [];
    const w = new DiskWatch(dirs, exclude, opts.base ?? (await diskUse(dirs, exclude)).bytes, limitMb * MIB, kill);
    void w.loop();
    return w;
  }

  /**
   * A file `fileAtLimit` would find, when the last measurement could look for it in the same
   * walk (a small tree): its path, or null for none; undefined when it did not look.
   */
  atLimit?: string | null;

  /** Bytes grown since the start; with `query`, also looks for a file stopped at the size limit (atLimit). */
  async measure(query?: AtLimitQuery): Promise<number> {
    const use = await diskUse(this.dirs, this.exclude, query);
    this.measured = use.each;
    this.atLimit = use.atLimit;
    return Math.max(0, use.bytes - this.base);
  }

  private async loop(): Promise<void> {
    let pause = 1000;
    while (!this.stopped) {
      await sleep(pause, { unref: true });
      if (this.stopped) return;
      const t = Date.now();
      const grown = Math.max(0, (await diskUse(this.dirs, this.exclude)).bytes - this.base);
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

/** What fileAtLimit looks for, for a walk that can look for it too (DiskWatch.measure). */
export const atLimitQuery = (dir: string, bytes: number, sinceMs: number): AtLimitQuery => ({ dir, bytes, afterSec: Math.floor(sinceMs / 1000) - 1 });

/** A regular file in `dir` (not .git) changed since `sinceMs` whose size is exactly `bytes`: one that RLIMIT_FSIZE stopped. */
export async function fileAtLimit(dir: string, bytes: number, sinceMs: number): Promise<string | undefined> {
  const args = [dir, '-xdev', '-path', `${dir}/.git`, '-prune', '-o', '-type', 'f', '-size', `${bytes}c`, '-newermt', `@${atLimitQuery(dir, bytes, sinceMs).afterSec}`, '-print', '-quit'];
  const out = await run('find', args, { maxBuffer: 1 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return out.stdout.split('\n')[0] || undefined;
}

/**
 * Allocated bytes under `dirs` (sparse files count what they use), each on its file system
 * only, without `exclude` (absolute paths): the total and each dir's.
 */
export async function diskUse(dirs: string[], exclude: string[] = [], query?: AtLimitQuery): Promise<{ bytes: number; each: number[]; atLimit?: string | null }> {
  // A small tree is walked here, as du would (no process start).
  const small = await walkSmallTree(dirs, exclude, query);
  if (small) return small;
  // --exclude takes a glob, matched against the whole path du built from its argument.
  const excluded = exclude.map((p) => `--exclude=${p.replace(/[*?[\]\\]/g, '\\$&')}`);
  // du exits 1 when files vanish mid-walk; its total (-c, the last line) still stands.
  const out = await run('du', ['-s', '-x', '-c', '-B1', ...excluded, '--', ...dirs], { maxBuffer: 1 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const lines = out.stdout.split('\n').filter(Boolean);
  // A directory du could not read has no line of its own: NaN, never taken for a measurement.
  const each = dirs.map((d) => Number(/^(\d+)\t/.exec(lines.find((l) => l.endsWith(`\t${d}`)) ?? '')?.[1] ?? NaN));
  return { bytes: Number(/^(\d+)\ttotal$/m.exec(out.stdout)?.[1] ?? 0), each };
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
