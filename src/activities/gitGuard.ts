// What a command may not change in a workspace's `.git` (design rule 7): the files through
// which git would run code or read objects from elsewhere. The sandbox mounts `.git`
// read-only; this catches it where there is no sandbox (WEAVER_SANDBOX=off/auto) and undoes it.
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Relative to `.git`: files and directories (all their files) that must not change. */
// refs too: a command that commits on its own would otherwise get its commit pushed.
const GUARDED = ['config', 'HEAD', 'commondir', 'hooks', 'info', 'objects/info/alternates', 'objects/info/http-alternates', 'modules', 'refs', 'packed-refs'];
const MAX_BYTES = 1024 * 1024;

export type GitSnapshot = Map<string, Buffer>;

/**
 * Adds what `rel` holds to `out`. Synchronous: ~20 small local files, each a few syscalls, where
 * fs/promises costs the worker's main thread far more (a round trip to the thread pool per call).
 * A file that is not regular (a FIFO, which would block) is left to `later`, read asynchronously.
 */
function collect(root: string, rel: string, out: GitSnapshot, later: string[]): void {
  const abs = path.join(root, rel);
  let st: Stats | undefined;
  try {
    st = lstatSync(abs, { throwIfNoEntry: false });
  } catch {
    return;
  }
  if (!st) return;
  if (st.isDirectory()) {
    for (const name of readdirSync(abs)) collect(root, path.join(rel, name), out, later);
  } else if (st.size > MAX_BYTES) {
    out.set(rel, Buffer.from(`large:${st.size}:${st.mtimeMs}`));
  } else if (st.isSymbolicLink()) {
    out.set(rel, Buffer.from(`symlink`));
  } else if (st.isFile()) {
    out.set(rel, readFileSync(abs));
  } else {
    out.set(rel, Buffer.alloc(0)); // its place in the order; its content below
    later.push(rel);
  }
}

/** The guarded files of `<dir>/.git`, by content. */
export async function snapshotGit(dir: string): Promise<GitSnapshot> {
  const snap: GitSnapshot = new Map();
  const root = path.join(dir, '.git');
  const later: string[] = [];
  for (const rel of GUARDED) collect(root, rel, snap, later);
  for (const rel of later) snap.set(rel, await readFile(path.join(root, rel)));
  return snap;
}

/**
 * Compares `.git` with `before`; puts back what changed (removes what was added) and returns
 * the paths that changed, e.g. `.git/config`, `.git/hooks/pre-commit` — empty if none.
 */
export async function restoreGit(dir: string, before: GitSnapshot): Promise<string[]> {
  const root = path.join(dir, '.git');
  const after = await snapshotGit(dir);
  const changed: string[] = [];
  for (const [rel, content] of after) {
    if (before.get(rel)?.equals(content)) continue;
    changed.push(rel);
    await rm(path.join(root, rel), { force: true, recursive: true });
    const old = before.get(rel);
    if (old) await writeFile(path.join(root, rel), old);
  }
  for (const [rel, content] of before) {
    if (after.has(rel)) continue;
    changed.push(rel);
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
  }
  return changed.sort().map((rel) => `.git/${rel}`);
}
