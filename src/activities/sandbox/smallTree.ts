// Walking a small tree in this process instead of starting `find` or `du` for it: a task's
// workspace is often a few dozen files, and a process start costs more than their lstat calls.
// Past SMALL_TREE_ENTRIES the caller leaves the tree to `find`/`du`, as before.
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Entries a tree may have to be walked here. */
export const SMALL_TREE_ENTRIES = 256;

const vanished = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR';

export interface SmallTreeWalk {
  /** Entries it may see (default SMALL_TREE_ENTRIES): past them it stops and answers undefined. */
  max?: number;
  /** An entry left out with what is under it (still counted). */
  skip?: (p: string) => boolean;
  /** Pass over an entry that vanishes mid-walk, instead of throwing. */
  passVanished?: boolean;
}

/**
 * `visit` for each entry under the folder `top` (not `top` itself), symlinks not followed, a
 * folder entered when `visit` answers true. The entries seen, or undefined past `max` (what was
 * visited then is partial). Errors other than a passed-over vanished entry throw.
 */
export async function walkSmall(top: string, visit: (p: string, st: Stats) => boolean | Promise<boolean>, opts: SmallTreeWalk = {}): Promise<number | undefined> {
  const max = opts.max ?? SMALL_TREE_ENTRIES;
  const pass = <T>(fallback: T) => (err: unknown): T => {
    if (opts.passVanished && vanished(err)) return fallback;
    throw err;
  };
  let seen = 0;
  const dirs = [top];
  for (let d = dirs.pop(); d !== undefined; d = dirs.pop()) {
    for (const name of await readdir(d).catch(pass<string[]>([]))) {
      if (++seen > max) return undefined;
      const p = path.join(d, name);
      if (opts.skip?.(p)) continue;
      const st = await lstat(p).catch(pass<Stats | undefined>(undefined));
      if (st && (await visit(p, st)) && st.isDirectory()) dirs.push(p);
    }
  }
  return seen;
}
