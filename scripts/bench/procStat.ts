// CPU time from /proc, in milliseconds. A process's utime+stime is its own; cutime+cstime holds
// the children it has waited for (git, node --test, bwrap…). A long-lived child (a spawn helper,
// the model server, the plain script) is never waited for during a run, so a tree is counted as
// the root's own and waited-for time plus every live descendant's, leaving out excluded subtrees.
import { readdirSync, readFileSync } from 'node:fs';
import { ticksPerSecond } from '../../src/activities/processUsage';

interface ProcTimes {
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

function readStat(pid: number): ProcTimes | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  // The command name (field 2) may hold spaces and parentheses: fields count from its closing one.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
}

/** utime+stime (own) and cutime+cstime (reaped children) of a process or a thread, in ms. */
export function statTimes(statFile: string): { name: string; own: number; reaped: number } | undefined {
  let text: string;
  try {
    text = readFileSync(statFile, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { name, own: (Number(f[11]) + Number(f[12])) * (1000 / ticksPerSecond()), reaped: (Number(f[13]) + Number(f[14])) * (1000 / ticksPerSecond()) };
}

/** `root` and its live descendants, leaving out `exclude`'s subtrees, with their /proc stat figures. */
function tree(root: number, exclude: number[] = []): Map<number, ProcTimes> {
  const all = new Map<number, ProcTimes>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const t = readStat(Number(name));
    if (t) all.set(Number(name), t);
  }
  const kids = new Map<number, number[]>();
  for (const [pid, t] of all) kids.set(t.ppid, [...(kids.get(t.ppid) ?? []), pid]);
  const skip = new Set(exclude);
  const found = new Map<number, ProcTimes>();
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (skip.has(pid)) continue;
    const t = all.get(pid);
    if (t) found.set(pid, t);
    stack.push(...(kids.get(pid) ?? []));
  }
  return found;
}

/** CPU ms of `root` and its live descendants (with everything they waited for), minus `exclude`'s subtrees. */
export function treeCpuMs(root: number, exclude: number[] = []): number {
  let ticks = 0;
  for (const t of tree(root, exclude).values()) ticks += t.ticks;
  return (ticks * 1000) / ticksPerSecond();
}

/** Resident memory (VmRSS) of one process, in bytes (0 once it is gone). */
export function processRssBytes(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Resident memory of `root` and its live descendants, in bytes (pages shared between them count in each). */
export function treeRssBytes(root: number): number {
  let bytes = 0;
  for (const pid of tree(root).keys()) bytes += processRssBytes(pid);
  return bytes;
}

/** `root`'s tree, one `name:MiB` per process other than `root` (what the rest of its RSS is). */
export function treeMembers(root: number): string {
  const name = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  return [...tree(root).keys()]
    .filter((pid) => pid !== root)
    .map((pid) => `${name(pid)}:${(processRssBytes(pid) / 2 ** 20).toFixed(0)}`)
    .join(' ');
}

export interface RssBreakdown {
  /** Mapped files (node, shared libraries, the Temporal core's .node): their pages in RSS. */
  file: number;
  /** glibc's main arena (the brk [heap]). */
  brk: number;
  /** glibc's other arenas: anonymous 64 MiB-aligned reservations (rw part + PROT_NONE rest = 64 MiB), one per thread contending for malloc, up to 8 × cores. */
  arenas: number;
  arenaCount: number;
  /** Every other anonymous mapping: V8's heaps (main and workflow thread), thread stacks, large mallocs (mmap'd). */
  otherAnon: number;
}

/** One process's RSS by kind of mapping, from /proc/<pid>/smaps (zeros once it is gone). */
export function rssBreakdown(pid: number): RssBreakdown {
  const out: RssBreakdown = { file: 0, brk: 0, arenas: 0, arenaCount: 0, otherAnon: 0 };
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  interface Mapping { start: bigint; end: bigint; perms: string; name: string; rss: number }
  const maps: Mapping[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) maps.push({ start: BigInt('0x' + head[1]), end: BigInt('0x' + head[2]), perms: head[3], name: head[4], rss: 0 });
    else if (line.startsWith('Rss:')) maps[maps.length - 1].rss = Number(/(\d+)/.exec(line)![1]) * 1024;
  }
  const ARENA = 64n * 2n ** 20n;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    if (m.name.startsWith('/')) out.file += m.rss;
    else if (m.name === '[heap]') out.brk += m.rss;
    else if (m.name === '' && m.start % ARENA === 0n && m.perms.startsWith('rw')) {
      // An arena: its used part, then (maybe) the PROT_NONE remainder of the 64 MiB reservation.
      const next = maps[i + 1];
      const total = next && next.start === m.end && next.perms === '---p' && next.name === '' ? next.end - m.start : m.end - m.start;
      if (total === ARENA) {
        out.arenas += m.rss;
        out.arenaCount++;
      } else out.otherAnon += m.rss;
    } else out.otherAnon += m.rss;
  }
  return out;
}

export const describeRss = (b: RssBreakdown) => {
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  return `file ${mib(b.file)}, brk heap ${mib(b.brk)}, ${b.arenaCount} malloc arenas ${mib(b.arenas)}, other anon ${mib(b.otherAnon)} MiB`;
};

/** The pid of the process under `root` whose command line holds `tag` (e.g. the spawn helper's). */
export function findInTree(root: number, tag: string): number | undefined {
  for (const pid of tree(root).keys()) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(tag)) return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}
