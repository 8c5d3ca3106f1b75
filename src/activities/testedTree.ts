// The commit is the tree that was tested (design rule 9; issue 14). When a change applies, its
// paths — and only its paths, ignored ones included — are staged onto the branch head before any
// command runs, and that tree is recorded beside the checkout with the ignore rules the change
// went against. The commit is made from that tree, and checked against it once made: a commit
// that leaves out, adds or alters a path is refused (CommitMismatch), never reported as done.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { changeDiff, CHANGE_DIFF_FLAGS, type WrittenFile } from './changeDiff';
import { gitRun } from './git';
import { headCommit, looseCommitTree } from './gitFiles';
import { readSetupState, stateDirOf } from './setupState';

export interface IgnoredPath {
  path: string;
  /** The rule that ignores it, as `git check-ignore -v` names it: `.gitignore:1:generated/`. */
  rule: string;
}

export interface TestedChange {
  /** The branch head the change was staged onto. */
  head: string;
  /** That head plus the change's paths as they were written: the tree the tests ran on. */
  tree: string;
  paths: string[];
  /** Paths of the change the repository's ignore rules cover: committed all the same. */
  ignored: IgnoredPath[];
  /** Set just before the commit: paths kept out of it because they hold a secret of the worker. */
  refused?: string[];
}

interface Located {
  dir: string;
  id: string;
}

const fileOf = (ws: Located) => {
  const dir = stateDirOf(ws);
  return dir && path.join(dir, 'tested.json');
};

/**
 * Stages exactly `paths` (written or deleted by the change) onto the branch head, records the
 * tree, and returns the diff of those paths against the state after setup (against the head
 * without one): what the attempt changed, never what setup built. With the change's `written`
 * contents the diff is made in-process when the indexes vouch for them (./changeDiff.ts), else by git.
 */
export async function stageChange(ws: Located, paths: string[], written?: WrittenFile[]): Promise<{ diff: string; tested?: TestedChange }> {
  const dir = ws.dir;
  await gitRun(dir, ['read-tree', '--reset', 'HEAD']);
  if (!paths.length) return { diff: '' };
  const list = paths.join('\0') + '\0';
  // Asked before staging: a path in the index is never "ignored".
  const ignored = parseCheckIgnore(await gitRun(dir, ['check-ignore', '-v', '-z', '--stdin'], { input: list, okCodes: [1] }));
  // update-index adds what it is given, ignore rules or not; --remove stages a deletion.
  await gitRun(dir, ['update-index', '--add', '--remove', '-z', '--stdin'], { input: list });
  const tree = (await gitRun(dir, ['write-tree'])).trim();
  const head = await headCommit(dir);
  const tested: TestedChange = { head, tree, paths, ignored };
  const file = fileOf(ws);
  if (file) await writeFile(file, JSON.stringify(tested));
  const setup = await readSetupState(ws);
  const against = setup && setup.head === head ? [setup.tree] : [];
  const mine = written && setup && against.length ? written.filter((f) => paths.includes(f.path)) : [];
  const inProcess = mine.length === paths.length ? await changeDiff(dir, mine, setup!.indexFile, path.join(dir, '.git', 'index')) : undefined;
  const diff = inProcess ?? (await gitRun(dir, ['diff', '--cached', ...CHANGE_DIFF_FLAGS, ...against, '--', ...paths.map(literal)]));
  return { diff, tested };
}

/**
 * After a command: the change's paths it rewrote or removed, put back as the change wrote them
 * (the tested tree), so every later step checks — and the commit holds — the same content.
 * Returns those paths (empty: none, or no tested change recorded).
 */
export async function restoreTestedPaths(ws: Located): Promise<string[]> {
  const tested = await readTestedChange(ws);
  if (!tested?.paths.length) return [];
  // The worktree against the tested tree, for the change's paths that tree holds: a path it
  // does not hold (the change deleted it) can only show as added (filter `a`), and stays as it is.
  const altered = (await gitRun(ws.dir, ['diff', '--name-only', '--no-renames', '--diff-filter=a', '-z', tested.tree, '--', ...tested.paths.map(literal)])).split('\0').filter(Boolean);
  if (altered.length) await gitRun(ws.dir, ['checkout', tested.tree, '--', ...altered.map(literal)]);
  return altered;
}

export async function readTestedChange(ws: Located): Promise<TestedChange | undefined> {
  const file = fileOf(ws);
  if (!file) return undefined;
  return readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as TestedChange)
    .catch(() => undefined);
}

export async function saveTestedChange(ws: Located, tested: TestedChange): Promise<void> {
  const file = fileOf(ws);
  if (file) await writeFile(file, JSON.stringify(tested));
}

/** A rolled-back attempt's change is no longer what the workspace holds (nor its apply result). */
export async function forgetTestedChange(ws: Located): Promise<void> {
  const file = fileOf(ws);
  if (file) await rm(file, { force: true });
  const applied = appliedFileOf(ws);
  if (applied) await rm(applied, { force: true });
}

const appliedFileOf = (ws: Located) => {
  const dir = stateDirOf(ws);
  return dir && path.join(dir, 'applied.json');
};

/**
 * What a try of an activity that applies and checks (./applyAndCheck.ts) left of `change` here:
 * `result` once applied, only `change` while it was being written. Undefined: nothing of it.
 */
export async function readAppliedChange<R, P = unknown>(ws: Located, change: string): Promise<AppliedRecord<R, P> | undefined> {
  const file = appliedFileOf(ws);
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const rec = JSON.parse(text) as AppliedRecord<R, P>;
    return rec.change === change ? rec : undefined;
  } catch {
    // Not ours to read (the record is written whole, by rename): what is written is unknown, so
    // the caller goes back to the state after setup before it applies.
    return { change };
  }
}

/** A try's record of a change: `result` once applied; `passed`, what its checks gave once every one passed. */
export interface AppliedRecord<R, P = unknown> {
  change: string;
  result?: R;
  passed?: P;
}

/**
 * Records `change` being applied (no `result`), applied, or applied with every check passed
 * (`passed`: its checks' results); false when the workspace has no folder of its own to keep it in.
 */
export async function recordAppliedChange<R, P = unknown>(ws: Located, change: string, result?: R, passed?: P): Promise<boolean> {
  const file = appliedFileOf(ws);
  if (!file) return false;
  // Whole or not at all: a kill mid-write must not leave a record a retry reads as "nothing applied".
  await writeFile(`${file}.tmp`, JSON.stringify({ change, ...(result ? { result } : {}), ...(passed ? { passed } : {}) }));
  await rename(`${file}.tmp`, file);
  return true;
}

/**
 * Checks that `commit` (made on `tested.head`) holds exactly the tested change: every path the
 * change set changed, as tested (a refused path as it was on the head), and nothing else.
 * Throws CommitMismatch naming each difference.
 */
export async function verifyCommit(dir: string, commit: string, tested: TestedChange): Promise<void> {
  const refused = new Set(tested.refused ?? []);
  // Nothing refused: the commit must hold the tested tree itself, and one that does holds every
  // path as tested and nothing else (the tested tree is the head plus the change's paths). Any
  // other tree is looked at path by path below, to name what differs.
  if (!refused.size && ((await looseCommitTree(dir, commit)) ?? (await gitRun(dir, ['rev-parse', '--verify', '-q', `${commit}^{tree}`], { okCodes: [1] })).trim()) === tested.tree) return;
  const kept = tested.paths.filter((p) => !refused.has(p));
  const problems: string[] = [];
  // The change's paths against the tested tree: A = in the commit only, D = left out, M/T = altered.
  if (kept.length) {
    for (const [status, p] of await nameStatus(dir, tested.tree, commit, kept)) {
      problems.push(status === 'D' ? `${p} left out` : status === 'A' ? `${p} committed though the change deleted it` : `${p} not as tested`);
    }
  }
  // Everything else against the head: nothing else may change (a refused path neither).
  const keptSet = new Set(kept);
  for (const [, p] of await nameStatus(dir, tested.head, commit, [])) {
    if (!keptSet.has(p)) problems.push(refused.has(p) ? `${p} committed though it holds a secret of the worker` : `${p} committed but not in the change set`);
  }
  if (!problems.length) return;
  const shown = problems.slice(0, 20).join('; ') + (problems.length > 20 ? `; … and ${problems.length - 20} more` : '');
  throw ApplicationFailure.nonRetryable(`the commit ${commit.slice(0, 12)} does not hold the tested change: ${shown}`, 'CommitMismatch');
}

async function nameStatus(dir: string, from: string, to: string, paths: string[]): Promise<[string, string][]> {
  const out = await gitRun(dir, ['diff-tree', '-r', '--no-renames', '--name-status', '-z', from, to, '--', ...paths.map(literal)]);
  const parts = out.split('\0');
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) pairs.push([parts[i][0], parts[i + 1]]);
  return pairs;
}

/** `git check-ignore -v -z` output: source, line, pattern, path, each NUL-terminated. */
function parseCheckIgnore(out: string): IgnoredPath[] {
  const f = out.split('\0');
  const found: IgnoredPath[] = [];
  for (let i = 0; i + 3 < f.length; i += 4) {
    // -v shows a negated pattern's match too: that path is not ignored.
    if (f[i] && !f[i + 2].startsWith('!')) found.push({ path: f[i + 3], rule: `${f[i]}:${f[i + 1]}:${f[i + 2]}` });
  }
  return found;
}

const literal = (p: string) => `:(literal)${p}`;
