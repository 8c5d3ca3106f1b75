// What this worker process knows of a workspace between two of its commands, so the next one
// starts without walking the tree: that the tree is its sandbox uid's already (handed over
// whole once) and which paths the worker itself wrote since (handed over one by one), and how
// much disk the tree held at the last command's end (the next disk watch's baseline), kept exact
// by counting what those writes added. Anything else that writes the tree (a rollback, a merge,
// a rebuild) forgets the workspace: its next command walks the tree again, as the first one did.
// The repository's cache has its baseline too, valid while its host-wide generation
// (./cacheLease.ts) has not moved since this workspace's last command ended.
import { lchown, lstat } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from '../paths';
import type { CacheLease } from './cacheLease';
import { handOver } from './uids';

interface WorkspaceState {
  /** The uid the whole tree was handed to. */
  uid?: number;
  /** Paths the worker wrote since (absolute), to hand over before the next command. */
  written: Set<string>;
  /** Bytes the tree held (its .git left out) at the last command's end, plus what the worker's writes added since. */
  bytes?: number;
  /** The repository cache's bytes at that end, its generation then, and its inode (gc's eviction makes a new folder). */
  cache?: { dir: string; bytes: number; generation: number; ino: number };
}

/** A command's repository cache: its folder (and inode), and its lease. */
export interface CacheUse {
  dir: string;
  ino: number;
  lease?: CacheLease;
}

const states = new Map<string, WorkspaceState>();
/** Commands running per workspace: a second one at once (an earlier attempt's, still ending) makes every baseline unsure. */
const running = new Map<string, number>();

/**
 * What command starts did (this process), for tests and the benchmark: whole-tree hand-overs,
 * paths handed over one by one, disk watches started from the last measurement (no `du`).
 */
export const startCounts = { wholeTree: 0, paths: 0, diskFromBaseline: 0 };

function stateOf(dir: string): WorkspaceState {
  const key = path.resolve(dir);
  let s = states.get(key);
  if (!s) states.set(key, (s = { written: new Set() }));
  return s;
}

/**
 * The workspace's files made the sandbox uid's: the whole tree (`find`/`chown`) the first time
 * and whenever the worker does not know what changed; else only what the worker wrote since.
 */
export async function handOverWorkspace(dir: string, uid: number, workspaceRoot?: string): Promise<void> {
  const s = stateOf(dir);
  const rootOwner = s.uid === uid ? await lstat(dir).then((st) => st.uid, () => undefined) : undefined;
  if (rootOwner !== uid) {
    await handOver(dir, uid, workspaceRoot);
    startCounts.wholeTree++;
    s.uid = uid;
    s.written.clear();
    return;
  }
  const top = path.resolve(dir);
  const seen = new Set<string>();
  for (const file of s.written) {
    const rel = path.relative(top, file);
    // .git stays the worker's (read-only in the sandbox); nothing outside the workspace is touched.
    if (!rel || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel) || rel.split(path.sep)[0] === '.git') continue;
    // From the workspace down, each folder the write may have made, then the file; never through
    // a symlink (a command may have planted one where a change path leads).
    let p = top;
    for (const part of rel.split(path.sep)) {
      p = path.join(p, part);
      const st = await lstat(p).catch(() => undefined);
      if (!st) break;
      if (!seen.has(p)) {
        seen.add(p);
        if (st.uid !== uid || st.gid !== uid) await lchown(p, uid, uid);
      }
      if (!st.isDirectory()) break;
    }
  }
  startCounts.paths += seen.size;
  s.written.clear();
}

/**
 * Runs `write` (the worker writing `paths` of the workspace): they are handed over before the
 * next command, and the disk they took or freed — the files and the folders made or removed
 * for them — moves the workspace's baseline, so it stays what `du` would find.
 */
export async function trackWrites<T>(dir: string, paths: string[], write: () => Promise<T>): Promise<T> {
  const s = states.get(path.resolve(dir));
  if (!s) return write();
  const top = path.resolve(dir);
  const touched = new Set<string>();
  for (const rel of paths) {
    for (let p = path.resolve(top, rel); isInside(p, top); p = path.dirname(p)) {
      touched.add(p);
      if (p === top) break;
    }
  }
  const before = await allocated(touched);
  try {
    return await write();
  } finally {
    const after = await allocated(touched);
    if (s.bytes !== undefined) s.bytes += after - before;
    for (const rel of paths) s.written.add(path.resolve(top, rel));
  }
}

/** The worker wrote `paths` (absolute or workspace-relative) without counting their size: handed over next time, the disk measured again. */
export function noteWritten(dir: string, paths: string[]): void {
  const s = states.get(path.resolve(dir));
  if (!s) return;
  for (const p of paths) s.written.add(path.resolve(dir, p));
  s.bytes = undefined;
}

/** The worker rewrote the workspace in ways it does not list (rollback, merge, rebuild): the next command starts from nothing known. */
export function forgetWorkspace(dir: string): void {
  states.delete(path.resolve(dir));
}

/**
 * A command starts (recordDiskUse says it ended): what its disk watch may start from — the
 * tree's and the cache's bytes when both are still known and no other command runs there.
 */
export function diskBaseline(dir: string, cache?: CacheUse): number | undefined {
  const key = path.resolve(dir);
  running.set(key, (running.get(key) ?? 0) + 1);
  const s = states.get(key);
  if (s?.bytes === undefined || running.get(key)! > 1) return undefined;
  const known = s.cache;
  if (cache && (!known || known.dir !== cache.dir || known.ino !== cache.ino || !cache.lease || known.generation !== cache.lease.before)) return undefined;
  startCounts.diskFromBaseline++;
  return s.bytes + (cache ? known!.bytes : 0);
}

/** A command ended; its end measurement (`each`: the tree's bytes, then the cache's; none: unknown) is the next one's baseline. */
export function recordDiskUse(dir: string, each: number[] | undefined, cache?: CacheUse): void {
  const key = path.resolve(dir);
  const others = (running.get(key) ?? 1) - 1;
  if (others > 0) running.set(key, others);
  else running.delete(key);
  const s = stateOf(dir);
  // Another command still writing there, or a directory du could not read: this measurement is no baseline.
  if (others > 0 || each?.some((n) => !Number.isFinite(n))) each = undefined;
  s.bytes = each?.[0];
  const generation = each?.[1] !== undefined ? cache?.lease?.alone() : undefined;
  s.cache = cache && each?.[1] !== undefined && generation !== undefined ? { dir: cache.dir, bytes: each[1], generation, ino: cache.ino } : undefined;
}

async function allocated(paths: Iterable<string>): Promise<number> {
  let bytes = 0;
  for (const p of paths) bytes += await lstat(p).then((st) => st.blocks * 512, () => 0);
  return bytes;
}
