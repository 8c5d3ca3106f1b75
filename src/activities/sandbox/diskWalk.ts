// A small tree's disk use walked in this process, without a `du` (and, at a command's end,
// without the `find` for a file stopped at the size limit): a task's workspace is often a few
// dozen files, and each process start costs more than their lstat calls. Counted exactly as
// `du -s -x -c -B1 --exclude=<path> -- <dirs>` counts: allocated blocks (512 bytes each) of every
// entry, directories included, symlinks not followed, each inode once (du hashes them all when
// given several folders), nothing on another file system, the excluded paths and what is under
// them left out. Past SMALL_TREE_ENTRIES entries, or on an error other than a file vanishing mid-walk,
// it answers undefined: `du` (and `find`) walk it, as before.
import type { BigIntStats, Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { SMALL_TREE_ENTRIES, walkSmall } from './smallTree';

/** Trees seen too big lately (their first folder): not walked here again, a hint only. */
const big = new Set<string>();

export interface AtLimitQuery {
  /** The folder to look in (one of the walked ones; its .git excluded too). */
  dir: string;
  /** The file size limit, in bytes. */
  bytes: number;
  /** Only files modified after this (whole seconds, as `find -newermt @<s>`). */
  afterSec: number;
}

export interface SmallWalk {
  bytes: number;
  each: number[];
  /** With an AtLimitQuery: the first regular file there of exactly that size, changed since; null for none. */
  atLimit?: string | null;
}

/** What `du` (and `find`) would answer for `dirs`, or undefined when the tree is not small. */
export async function walkSmallTree(dirs: string[], exclude: string[], query?: AtLimitQuery): Promise<SmallWalk | undefined> {
  if (!dirs.length || big.has(dirs[0])) return undefined;
  const excluded = new Set(exclude);
  const seen = new Set<string>();
  const each = dirs.map(() => 0);
  let entries = 0;
  let atLimit: string | null = null;
  const count = (st: Stats, i: number) => {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    each[i] += st.blocks * 512;
  };
  const limitHit = async (p: string, st: Stats) => {
    if (!query || atLimit !== null || !st.isFile() || st.size !== query.bytes || !isInside(p, query.dir)) return;
    // Whole nanoseconds: a float of milliseconds can round a time just past the second onto it.
    const exact = (await lstat(p, { bigint: true }).catch(() => undefined)) as BigIntStats | undefined;
    if (exact && exact.mtimeNs > BigInt(query.afterSec) * 1_000_000_000n) atLimit = p;
  };
  try {
    for (let i = 0; i < dirs.length; i++) {
      if (excluded.has(dirs[i])) continue;
      // A folder that is not there has no line in du's answer (its figure unknown): du's to say.
      const top = await lstat(dirs[i]);
      count(top, i);
      if (!top.isDirectory()) continue;
      const walked = await walkSmall(
        dirs[i],
        async (p, st) => {
          // -x: nothing on another file system, not even its mount point.
          if (st.dev !== top.dev) return false;
          count(st, i);
          await limitHit(p, st);
          return true;
        },
        { max: SMALL_TREE_ENTRIES - entries, skip: (p) => excluded.has(p), passVanished: true },
      );
      if (walked === undefined) {
        if (big.size > 1024) big.clear();
        big.add(dirs[0]);
        return undefined;
      }
      entries += walked;
    }
  } catch {
    return undefined;
  }
  return { bytes: each.reduce((a, b) => a + b, 0), each, ...(query ? { atLimit } : {}) };
}

const isInside = (p: string, dir: string) => p.startsWith(dir.endsWith(path.sep) ? dir : `${dir}${path.sep}`);
