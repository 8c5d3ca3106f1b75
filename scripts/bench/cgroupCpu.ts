// A side's CPU as the kernel's cgroup accounting counts it: every process the side started,
// however it ends. /proc trees (./procStat.ts) count a process's children only once it has
// waited for them. bwrap's init (pid 1 of the command's PID namespace, which reaps the command)
// is never waited for by the bwrap that started it: that one exits once init reports the
// status, init is reparented to the machine's init and reaped there, so a sandboxed command's
// CPU (the test run's `node`s) reaches no ancestor of the worker. Each side runs in a cgroup of its own under the bench's;
// with cgroup v1, Weaver's sandbox makes its per-workspace cgroups under the one its worker is
// in, so they count too (v2 as well, unless WEAVER_CGROUP_PARENT puts them elsewhere: refused).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { processAlive, sleepSync } from '../../src/activities/processGroups';
import { ownV1Path } from '../../src/activities/sandbox/cgroup';

export interface CpuGroup {
  /** CPU used by every process that was ever in this group or one below it, in ms. */
  ms(): number;
  /** Moves a process (all its threads) here; what it starts from now on stays here. */
  adopt(pid: number): void;
}

export interface CpuGroups {
  /** `cgroup v1 cpuacct` or `cgroup v2`. */
  kind: string;
  groups: Record<string, CpuGroup>;
  /** Moves every process left back where the bench started and removes the groups. */
  remove(): void;
}

interface Hierarchy {
  kind: string;
  /** Where this process is now. */
  home: string;
  usageMs(dir: string): number;
}

function hierarchy(): Hierarchy | string {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  } catch {
    return 'no /proc/self/cgroup (not Linux)';
  }
  const own = ownV1Path('cpuacct');
  const v1 = own === undefined ? undefined : path.join('/sys/fs/cgroup/cpuacct', own);
  if (v1 && existsSync(path.join(v1, 'cpuacct.usage'))) return { kind: 'cgroup v1 cpuacct', home: v1, usageMs: (dir) => Number(readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1e6 };
  const unified = lines.find((l) => l.startsWith('0::'));
  if (unified && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const home = path.join('/sys/fs/cgroup', unified.slice(3));
    const usageMs = (dir: string) => Number(/^usage_usec (\d+)/m.exec(readFileSync(path.join(dir, 'cpu.stat'), 'utf8'))?.[1] ?? NaN) / 1000;
    return { kind: 'cgroup v2', home, usageMs };
  }
  return 'no cgroup v1 cpuacct hierarchy and no cgroup v2 mounted';
}

/** Empties `dir` and every group below it into `home`, deepest first, and removes them. */
function removeTree(dir: string, home: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(path.join(dir, entry.name), home);
  for (let tries = 0; tries < 50; tries++) {
    for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        writeFileSync(path.join(home, 'cgroup.procs'), pid);
      } catch {
        // exited meanwhile
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch {
      // A process killed a moment ago stays in its group until it has torn down: wait a little.
      sleepSync(20);
    }
  }
}

/** Groups left by a bench that died without removing them (its pid is gone). */
function removeStale(home: string): void {
  for (const name of readdirSync(home)) {
    const pid = /^weaver-bench-(\d+)$/.exec(name)?.[1];
    if (pid && !processAlive(Number(pid))) removeTree(path.join(home, name), home);
  }
}

/** A cgroup per name under the bench's own, or why there can be none (then: /proc trees). */
export function cpuGroups(names: string[]): CpuGroups | string {
  const h = hierarchy();
  if (typeof h === 'string') return h;
  if (h.kind === 'cgroup v2' && process.env.WEAVER_CGROUP_PARENT) return 'WEAVER_CGROUP_PARENT puts the sandbox\'s cgroups outside the bench\'s';
  removeStale(h.home);
  const base = path.join(h.home, `weaver-bench-${process.pid}`);
  try {
    mkdirSync(base);
  } catch (e) {
    return `cannot make a cgroup under ${h.home} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): root, or a delegated cgroup v2 subtree, is needed`;
  }
  const remove = () => removeTree(base, h.home);
  const groups: Record<string, CpuGroup> = {};
  try {
    for (const name of names) {
      const dir = path.join(base, name);
      mkdirSync(dir);
      groups[name] = { ms: () => h.usageMs(dir), adopt: (pid) => writeFileSync(path.join(dir, 'cgroup.procs'), String(pid)) };
    }
    // Probe: a group that cannot take this process (cgroup v2's rules on inner groups) is no use.
    groups[names[0]].adopt(process.pid);
    writeFileSync(path.join(h.home, 'cgroup.procs'), String(process.pid));
    if (!Number.isFinite(groups[names[0]].ms())) throw new Error('no CPU usage figure');
  } catch (e) {
    remove();
    return `cannot use cgroups under ${h.home} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  return { kind: h.kind, groups, remove };
}
