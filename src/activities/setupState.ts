// What a workspace looked like right after setup (design rule 9; issue 14): every file setup
// left — tracked, untracked and ignored (a venv, generated sources, build/) — so that a rollback
// returns there, and only there, before the next attempt. Kept beside the checkout, never in it
// (no command sees or changes it): an index file (git's stat cache makes a rollback cost a few
// lstat calls per file, not a hash), the empty directories git cannot hold, and a ref to the
// snapshot's tree that keeps its objects alive (refs/weaver/setup: gc keeps what any ref reaches,
// a tree as well as a commit; pushed and bundled never: only the task branch is) — or, where no
// command ran in the checkout, its own index and head commit (nothing to snapshot).
import { copyFile, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gitRun } from './git';
import { headCommit } from './gitFiles';

export interface SetupState {
  /** HEAD when the state was recorded: a rollback to it is only sound on that commit. */
  head: string;
  /**
   * The tree of everything setup left (tracked files as setup left them included): a tree-ish,
   * the head commit itself when nothing ran after the checkout (recordSetupState's `untouched`).
   */
  tree: string;
  /** Directories setup left empty (git holds files only). */
  emptyDirs: string[];
  /**
   * What git could not snapshot (a nested repository without a commit, a file it could not
   * read): spared by every rollback as it is — it cannot be restored.
   */
  spared?: string[];
}

interface Located {
  dir: string;
  id: string;
}

/**
 * The workspace's own folder beside its checkout: `<root>/<id>/.weaver-state`. Undefined for a
 * workspace made before the checkout had a folder of its own (its parent is shared).
 */
export function stateDirOf(ws: Located): string | undefined {
  const home = path.dirname(ws.dir);
  return path.basename(home) === ws.id ? path.join(home, '.weaver-state') : undefined;
}

const SETUP_REF = 'refs/weaver/setup';

/**
 * Records the workspace as setup left it. Costs one hash of every file, once per workspace
 * (scripts/bench-rollback.ts measures it); a rollback then only compares stat data.
 * `untouched`: nothing ran in the checkout since git wrote it (no setup step): the state is the
 * head commit and its index as they are, recorded without a git process (four before).
 */
export async function recordSetupState(ws: Located, opts: { untouched?: boolean } = {}): Promise<void> {
  const dir = stateDirOf(ws);
  if (!dir) return;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const indexFile = path.join(dir, 'setup.index');
  // Starting from the checkout's index reuses its stat data: tracked files are not hashed again.
  const copied = await copyFile(path.join(ws.dir, '.git', 'index'), indexFile).then(
    () => true,
    () => false,
  );
  if (opts.untouched && copied) {
    // A fresh checkout holds its tracked files only (git makes no empty directory, nothing
    // untracked), and the head commit keeps their objects: no snapshot tree or ref to make.
    const head = await headCommit(ws.dir);
    const state: SetupState = { head, tree: head, emptyDirs: [] };
    await writeFile(path.join(dir, 'setup.json'), JSON.stringify(state));
    return;
  }
  const run = (args: string[], okCodes?: number[]) => gitRun(ws.dir, args, { indexFile, okCodes });
  // -f: ignored files too (a venv, node_modules) — they are what setup is for. What git cannot
  // add (exit 1) is listed below, not a failed setup.
  await run(['add', '-A', '-f', '--ignore-errors'], [1]).catch((err: Error) => {
    throw new Error(`recording the workspace as setup left it: ${err.message}`);
  });
  const tree = (await run(['write-tree'])).trim();
  const head = await headCommit(ws.dir);
  // The tree itself, no commit around it: nothing reads the ref, it only keeps the objects.
  await run(['update-ref', SETUP_REF, tree]);
  // What the snapshot does not hold: directories with no file in them, and what git could not add.
  // One listing: a directory in it holding no file at any depth is empty (what
  // --no-empty-directory would leave out); anything else in it is spared.
  const others = (await run(['ls-files', '-o', '--directory', '-z'])).split('\0').filter(Boolean);
  const emptyDirs: string[] = [];
  const spared: string[] = [];
  for (const p of others) {
    const leaves = p.endsWith('/') ? await leafDirs(ws.dir, p.slice(0, -1)) : undefined;
    if (leaves) emptyDirs.push(...leaves);
    else spared.push(p);
  }
  const state: SetupState = { head, tree, emptyDirs, ...(spared.length ? { spared } : {}) };
  await writeFile(path.join(dir, 'setup.json'), JSON.stringify(state));
}

export async function readSetupState(ws: Located): Promise<(SetupState & { indexFile: string }) | undefined> {
  const dir = stateDirOf(ws);
  if (!dir) return undefined;
  try {
    const state = JSON.parse(await readFile(path.join(dir, 'setup.json'), 'utf8')) as SetupState;
    return { ...state, indexFile: path.join(dir, 'setup.index') };
  } catch {
    return undefined;
  }
}

/**
 * Back to the state after setup: whatever is not in the snapshot goes (test debris, an attempt's
 * new files, a planted `.gitignore`: -x, no ignore rule spares anything), whatever differs from
 * it is written back from it, and the index is the branch head again. False when there is no
 * snapshot for this HEAD (a workspace from before it existed): the caller rolls back the old way.
 * `wrote` is told the paths written back (files and the empty directories remade).
 */
export async function restoreSetupState(ws: Located, wrote?: (paths: string[]) => void): Promise<boolean> {
  const state = await readSetupState(ws);
  if (!state) return false;
  const head = await headCommit(ws.dir);
  if (head !== state.head) return false;
  const run = (args: string[], input?: string) => gitRun(ws.dir, args, { indexFile: state.indexFile, input });
  // Removal first: a directory planted where a setup file was must go before that file returns.
  // -ff: a nested repository a command made goes too.
  await run(['clean', '-ffdxq', ...(state.spared ?? []).flatMap((p) => ['-e', exactPattern(p)])]);
  // Files only touched (same content, new stat data) are re-read, not rewritten; exit 1 only
  // says some differ.
  await gitRun(ws.dir, ['update-index', '-q', '--refresh'], { indexFile: state.indexFile, okCodes: [1] });
  const changed = await run(['diff-files', '--name-only', '-z']);
  // -u: the index learns the rewritten files' stat data, so the next rollback stays a stat walk.
  if (changed) await run(['checkout-index', '-f', '-u', '-z', '--stdin'], changed);
  for (const rel of state.emptyDirs) await mkdirInside(ws.dir, rel);
  // The change set is staged onto the branch head (testedTree.ts), never onto setup's files.
  await gitRun(ws.dir, ['read-tree', '--reset', 'HEAD']);
  // What was written back (the rest was only removed): a root worker hands just these to the sandbox's uid.
  wrote?.([...changed.split('\0').filter(Boolean), ...state.emptyDirs]);
  return true;
}

/** Paths as setup left them now (in the snapshot, unchanged since): never "left behind" by a run. */
export async function unchangedSinceSetup(ws: Located): Promise<Set<string> | undefined> {
  const state = await readSetupState(ws);
  if (!state) return undefined;
  const run = (args: string[]) => gitRun(ws.dir, args, { indexFile: state.indexFile });
  const all = (await run(['ls-files', '-z'])).split('\0').filter(Boolean);
  const changed = new Set((await run(['diff-files', '--name-only', '-z'])).split('\0'));
  return new Set(all.filter((p) => !changed.has(p)));
}

/** mkdir -p of `rel` under `root`, never through a symlink (the clean removed any a command planted). */
async function mkdirInside(root: string, rel: string): Promise<void> {
  let at = root;
  for (const part of rel.split('/')) {
    at = path.join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st) await mkdir(at);
    else if (!st.isDirectory()) return;
  }
}

/**
 * The deepest directories under `rel` when it is a tree of directories only; undefined when it
 * holds anything else (a file, a symlink, a nested repository's .git). One git cannot read
 * counts as empty, as git counts it.
 */
async function leafDirs(root: string, rel: string): Promise<string[] | undefined> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true }).catch(() => []);
  if (entries.some((d) => !d.isDirectory())) return undefined;
  if (!entries.length) return [rel];
  const out: string[] = [];
  for (const d of entries) {
    const leaves = await leafDirs(root, `${rel}/${d.name}`);
    if (!leaves) return undefined;
    out.push(...leaves);
  }
  return out;
}

/** An ignore pattern matching exactly the path `rel` (`dir/` for a directory), from the top. */
function exactPattern(rel: string): string {
  return `/${rel.replace(/[\\*?[\]!# ]/g, '\\$&')}`;
}
