// Reads of the file system that note what their answers depend on, so that a result computed
// from them (./root.ts: the sandbox's root, ~500 lstat calls) is reused until one of those
// changes, checked in a few dozen stat calls:
//   - a directory's entries (lstat, readdir, readlink of a name in it: whether the name is
//     there and which inode it is): any entry created, removed or renamed changes the
//     directory's mtime and ctime; stat follows symlinks, so the directory a path leads to
//     being another also shows (another dev/ino);
//   - realpath's answer, asked again (it depends on every symlink along the way).
import { lstatSync, readdirSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * A directory whose mtime and ctime are both this recent when a computation starts may change
 * again within the same tick of the file system's coarse clock and keep both (racy, as git
 * calls it): such a result is not kept. With either older, any later change shows.
 */
export const RACY_MS = 2000;

/** What of a directory's stat tells its entries changed (undefined: not there). */
type Stamp = [dev: number, ino: number, mode: number, mtimeMs: number, ctimeMs: number] | undefined;
const stampOf = (st: Stats | undefined): Stamp => st && [st.dev, st.ino, st.mode, st.mtimeMs, st.ctimeMs];
const sameStamp = (a: Stamp, b: Stamp) => (a && b ? a.every((v, i) => v === b[i]) : a === b);

/** stat of a directory (undefined: not there, a file on the way too); throws when it cannot be told (EACCES), which keeps nothing. */
function statDir(dir: string): Stats | undefined {
  try {
    return statSync(dir, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Whether nothing at all is at `p`, not even a dangling symlink. */
function absent(p: string): boolean {
  try {
    return !lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTDIR';
  }
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** What a computation read, stamped: `unchanged()` while every answer it got would be the same. */
export class ReadStamps {
  constructor(
    private readonly dirs: Map<string, Stamp>,
    private readonly realpaths: Map<string, string | undefined>,
  ) {}

  unchanged(): boolean {
    try {
      for (const [dir, stamp] of this.dirs) if (!sameStamp(stampOf(statDir(dir)), stamp)) return false;
    } catch {
      return false;
    }
    for (const [p, real] of this.realpaths) if (realOrUndefined(p) !== real) return false;
    return true;
  }
}

/** The fs calls a cached computation makes, each noting what its answer depends on. */
export class FsReads {
  private readonly dirs = new Set<string>();
  private readonly realpaths = new Map<string, string | undefined>();
  private readonly started = Date.now();

  /** lstat, or undefined when there is nothing there. */
  lstat(p: string): Stats | undefined {
    this.dirs.add(path.dirname(path.resolve(p)));
    try {
      return lstatSync(p, { throwIfNoEntry: false });
    } catch {
      return undefined; // not a directory on the way, no access: nothing there for the sandbox either
    }
  }

  readdir(dir: string): string[] {
    this.dirs.add(path.resolve(dir));
    return readdirSync(dir);
  }

  readlink(p: string): string {
    this.dirs.add(path.dirname(path.resolve(p)));
    return readlinkSync(p);
  }

  /** realpath, or undefined when `p` is gone. */
  realpath(p: string): string | undefined {
    const real = realOrUndefined(p);
    this.realpaths.set(p, real);
    return real;
  }

  /** The stamps of what was read; undefined when one was changed too recently to tell a later change (RACY_MS) or cannot be stat'ed. */
  stamps(): ReadStamps | undefined {
    const dirs = new Map<string, Stamp>();
    for (const dir of this.dirs) {
      let st: Stats | undefined;
      try {
        st = statDir(dir);
      } catch {
        return undefined;
      }
      if (st && Math.min(st.mtimeMs, st.ctimeMs) >= this.started - RACY_MS) return undefined;
      dirs.set(dir, stampOf(st));
    }
    // A directory not there (a tree's etc/) can only appear as an entry of its parent: when that
    // one is stamped, it says so. Not a dangling symlink, whose target could appear elsewhere.
    for (const [dir, stamp] of dirs) if (!stamp && dirs.get(path.dirname(dir)) && absent(dir)) dirs.delete(dir);
    return new ReadStamps(dirs, new Map(this.realpaths));
  }
}
