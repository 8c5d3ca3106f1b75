// One cgroup per workspace (this process): made at its first command, reused by the next ones
// (mkdir, limit writes and rmdir once per workspace, not per command), removed when the
// workspace is released; what a dead worker process left is removed by the sweep at start.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { SandboxPolicy } from '../../domain/schema';
import { Cgroup, NAME_PREFIX, removeDirs } from './cgroup';
import type { CgroupSupport } from './setting';

/** Each workspace's cgroup while no command of it runs. */
const idle = new Map<string, Cgroup>();
// A process that ends with workspaces unreleased (a test, a worker shut down mid-batch) leaves
// no empty cgroup behind; one killed outright leaves them to the next worker's sweep.
process.once('exit', () => {
  for (const cgroup of idle.values()) cgroup.removeNow();
});
/** Workspaces with a command running in their cgroup. */
const busy = new Set<string>();
/** Workspaces released while a command held their cgroup: it goes when the command ends. */
const released = new Set<string>();

/**
 * The cgroup for a command in workspace `dir`: the workspace's own from its last command when
 * that one is empty and ready (Cgroup.reuse), else a new one, kept for the next command; `done`
 * gives it back (or removes it, when something is left inside).
 */
export async function cgroupFor(support: CgroupSupport, dir: string, limits: SandboxPolicy['limits']): Promise<{ cgroup: Cgroup; done: () => Promise<void> }> {
  const key = path.resolve(dir);
  if (busy.has(key)) {
    // A second command at once in one workspace (an earlier attempt's, still ending): one of its own, removed after it.
    const own = await Cgroup.create(support, limits);
    return { cgroup: own, done: () => own.remove() };
  }
  busy.add(key);
  released.delete(key);
  const kept = idle.get(key);
  idle.delete(key);
  let cgroup: Cgroup;
  try {
    if (kept && (await kept.reuse(limits))) cgroup = kept;
    else {
      await kept?.remove();
      cgroup = await Cgroup.create(support, limits);
    }
  } catch (err) {
    busy.delete(key);
    throw err;
  }
  const done = async () => {
    busy.delete(key);
    if (released.delete(key) || !(await cgroup.empty())) return cgroup.remove();
    idle.set(key, cgroup);
  };
  return { cgroup, done };
}

/** The workspace is released: its cgroup goes (now, or when its running command ends). */
export async function releaseCgroup(dir: string): Promise<void> {
  const key = path.resolve(dir);
  if (busy.has(key)) released.add(key);
  const kept = idle.get(key);
  idle.delete(key);
  await kept?.remove();
}

/** The cgroup a workspace's next command would reuse, if any (for tests). */
export function keptCgroup(dir: string): string | undefined {
  return idle.get(path.resolve(dir))?.path;
}

/**
 * Removes the cgroups a dead worker process left (named `weaver-<its pid>-…`): a worker killed
 * mid-task never released its workspaces' cgroups. Run at worker start; returns what went.
 */
export async function sweepCgroups(support: CgroupSupport | undefined): Promise<string[]> {
  if (!support) return [];
  const parents = support.version === 2 ? [support.parent] : [support.memory, support.pids, support.cpuacct].filter((d): d is string => !!d);
  const gone: string[] = [];
  for (const parent of parents) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const pid = Number(new RegExp(`^${NAME_PREFIX}(\\d+)-`).exec(name)?.[1]);
      if (!pid || alive(pid)) continue;
      await removeDirs([path.join(parent, name)]);
      if (!existsSync(path.join(parent, name))) gone.push(path.join(parent, name));
    }
  }
  return gone;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
