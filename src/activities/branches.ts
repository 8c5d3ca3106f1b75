// A workspace's branch leaving it: committed (exactly the tree that was tested, checked once
// made; never a file holding a key of the worker) and pushed under the worker's push policy,
// bundled into the artifact store for a parent on another worker, and children's branches
// merged into a parent's.
import { statSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { redact } from '../domain/redact';
import { stripUrlCredentials } from '../domain/repoUrl';
import type { ArtifactRef } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import { GIT_IDENTITY, gitFor, gitRun, openWorkspace, stagedBlobs, type Git } from './git';
import { gitAuth } from './gitCredentials';
import { headCommit } from './gitFiles';
import { isPolicyRefusal, resolvePushRemote, type RepoPolicy } from './repoPolicy';
import { unchangedSinceSetup } from './setupState';
import { readTestedChange, saveTestedChange, verifyCommit, type TestedChange } from './testedTree';
import type { CommitRequest, CommitResult, WorkspaceHandle } from './types';

/**
 * `policy`: the worker's push policy (repoPolicy.ts): a remote that is neither the task's own
 * repository nor under WEAVER_PUSH_REMOTES is not pushed to (reported as `pushError`), and git
 * authenticates through the worker's credential helper.
 */
export async function commitAndPush(req: CommitRequest, secrets: string[] = [], policy: RepoPolicy = { env: process.env }): Promise<CommitResult> {
  const git = openWorkspace(req.workspace);
  const ws = req.workspace;
  const head = await headCommit(ws.dir);
  // What the accepted change wrote, not whatever setup, tests and builds left in the tree: the
  // tree staged when the change applied, before any command ran (testedTree.ts).
  const tested = req.paths ? await testedFor(ws, req.paths, head) : undefined;
  const committedBefore = tested && tested.head !== head;
  if (!req.paths) await git.raw(['add', '-A']);
  else if (tested && !committedBefore) await gitRun(ws.dir, ['read-tree', '--reset', tested.tree]);
  else if (!tested) {
    // A workspace from before the tested tree was recorded: the index as staged then.
    const keep = new Set(req.paths);
    const stagedNow = (await git.raw(['diff', '--cached', '--name-only', '--no-renames', '-z'])).split('\0').filter(Boolean);
    const drop = stagedNow.filter((p) => !keep.has(p));
    if (drop.length) await git.raw(['reset', '-q', '--', ...drop.map((p) => `:(literal)${p}`)]);
  }
  // One status for what is staged (to commit, to look for secrets in) and what is left out.
  const status = await workspaceStatus(git);
  // A file that holds a key of the worker never leaves it, whoever wrote it.
  const refusedSecrets = committedBefore ? (tested.refused ?? []) : await unstageSecrets(git, ws.dir, status.staged, secrets);
  const leftBehind = req.paths ? (await uncommitted(status.unstaged, ws)).filter((p) => !refusedSecrets.includes(p)) : [];
  // A refused path is back at HEAD's version in the index: no longer staged.
  const staged = status.staged.some((e) => !refusedSecrets.includes(e.path));
  let commit = head;
  // Idempotent on retry: if a previous try already committed, don't commit again.
  if (!committedBefore && (staged || head === ws.baseCommit)) {
    // Recorded first: a retry after this commit knows what it left out.
    if (tested) await saveTestedChange(ws, { ...tested, refused: refusedSecrets });
    commit = await commitIndex(git, req.message, head.length);
  }
  if (tested) await verifyOrUndo(ws.dir, commit, { ...tested, refused: refusedSecrets });
  const ignored = (tested?.ignored ?? []).filter((i) => !refusedSecrets.includes(i.path)).map((i) => `${i.path} (${i.rule})`);
  const extra = {
    ...(leftBehind.length ? { leftBehind } : {}),
    ...(refusedSecrets.length ? { refusedSecrets } : {}),
    ...(ignored.length ? { ignored } : {}),
  };
  if (!req.pushRemote) return { commit, pushed: false, ...extra };
  // An approved push carries exactly the commit the person looked at, or nothing.
  if (req.approvedCommit && commit !== req.approvedCommit) {
    return { commit, pushed: false, ...extra, pushError: `the branch is at ${commit.slice(0, 12)}, not at the approved commit ${req.approvedCommit.slice(0, 12)}; nothing was pushed` };
  }
  const ref = `refs/heads/${req.workspace.branch}`;
  let remote = stripUrlCredentials(req.pushRemote);
  try {
    const target = await resolvePushRemote(policy, req.pushRemote, (await git.raw(['remote', 'get-url', 'origin'])).trim());
    remote = target.remote;
    if (target.auth) secrets = [...secrets, target.auth.env.WEAVER_GIT_CRED_PASSWORD];
    const net = gitFor(req.workspace.dir, undefined, target.auth);
    // The lease pushes only onto exactly the tip named: onto nothing first (the branch is new, the
    // usual case, so no look at the remote before). A branch that exists is overwritten only if
    // this task made it — the remote's tip carries our trailer — and then only over that tip.
    const push = (tip: string) => net.raw(['push', `--force-with-lease=${ref}:${tip}`, '--', remote, `${req.workspace.branch}:${ref}`]);
    try {
      await push('');
    } catch (ontoNothing) {
      const owner = req.workflowId ?? /^Weaver-Workflow: (.+)$/m.exec(req.message)?.[1];
      const tip = (await net.raw(['ls-remote', '--', remote, ref])).split(/\s/)[0] ?? '';
      if (!tip) throw ontoNothing;
      await net.raw(['fetch', '--no-tags', '--', remote, `+${ref}:refs/weaver/remote-tip`]);
      const made = (await git.raw(['log', '-1', '--format=%(trailers:key=Weaver-Workflow,valueonly)', 'refs/weaver/remote-tip'])).trim();
      if (!owner || made.split('\n').every((m) => m.trim() !== owner)) {
        return { commit, pushed: false, ...extra, pushError: `branch ${req.workspace.branch} already exists on ${remote} and was not made by this task; it was not overwritten` };
      }
      await push(tip);
    }
  } catch (err) {
    // A refused remote or a rejected push is reported, not retried forever: the commit is safe in the workspace.
    if (isPolicyRefusal(err)) return { commit, pushed: false, ...extra, pushError: err.message };
    return { commit, pushed: false, ...extra, pushError: redact((err as Error).message.trim().split('\n').slice(-3).join(' '), secrets) };
  }
  return { commit, pushed: true, ...extra };
}

/**
 * Commits the index; the new commit's id from git's own summary line (`[branch <id>] …`, in
 * full with core.abbrev at the id's length), or, should that not show it, from rev-parse.
 */
async function commitIndex(git: Git, message: string, idLength: number): Promise<string> {
  // No auto-maintenance after it (a `git maintenance run --auto` per commit): the clone is short-lived.
  const out = await git.raw([...GIT_IDENTITY, '-c', `core.abbrev=${idLength}`, '-c', 'maintenance.auto=false', '-c', 'gc.auto=0', 'commit', '--allow-empty', '-m', message]);
  const id = /^\[.*? ([0-9a-f]+)\]/m.exec(out)?.[1];
  return id?.length === idLength ? id : (await git.raw(['rev-parse', 'HEAD'])).trim();
}

interface WorkspaceStatus {
  /** Paths whose index differs from HEAD, with how (`A`, `M`, `D`, …). */
  staged: { path: string; how: string }[];
  /** Paths whose work tree differs from the index, untracked ones included. */
  unstaged: string[];
}

/** `git status --porcelain=v2 -z`: the index against HEAD and the work tree against the index, in one run. */
async function workspaceStatus(git: Git): Promise<WorkspaceStatus> {
  const out = await git.raw(['status', '--porcelain=v2', '-z', '--untracked-files=all', '--no-renames']);
  const staged: WorkspaceStatus['staged'] = [];
  const unstaged: string[] = [];
  // `1 XY sub mH mI mW hH hI path`, `u XY sub m1 m2 m3 mW h1 h2 h3 path`, `? path`.
  for (const e of out.split('\0')) {
    if (e.startsWith('? ')) unstaged.push(e.slice(2));
    if (e[0] !== '1' && e[0] !== 'u') continue;
    const fields = e.split(' ');
    const p = fields.slice(e[0] === '1' ? 8 : 10).join(' ');
    const [x, y] = fields[1];
    if (x !== '.') staged.push({ path: p, how: x });
    if (y !== '.') unstaged.push(p);
  }
  return { staged, unstaged };
}

/** Unstages every staged file whose content holds one of `secrets`; returns their paths. */
async function unstageSecrets(git: Git, dir: string, staged: WorkspaceStatus['staged'], secrets: string[]): Promise<string[]> {
  if (!secrets.length) return [];
  const written = staged.filter((e) => e.how === 'A' || e.how === 'M').map((e) => e.path);
  // The staged blobs (what would be committed), never the worktree files: those may since have
  // been rewritten, or replaced by links to a FIFO or a device.
  const blobs = await stagedBlobs(dir, written);
  const needles = secrets.map((s) => Buffer.from(s, 'utf8'));
  const refused = written.filter((rel) => needles.some((n) => blobs.get(rel)?.includes(n)));
  // Back to HEAD's version in the index (a new file leaves it): the commit neither adds nor deletes it.
  if (refused.length) await git.raw(['reset', '-q', '--', ...refused.map((p) => `:(literal)${p}`)]);
  return refused;
}

/**
 * The tested change for a commit of `paths` on `head`: staged on it, or already committed on it
 * by an earlier try (HEAD's parent is its head). A change set other than the one applied and
 * tested is refused; none recorded (an older workspace, or a branch restored from its bundle):
 * undefined.
 */
async function testedFor(ws: WorkspaceHandle, paths: string[], head: string): Promise<TestedChange | undefined> {
  const tested = await readTestedChange(ws);
  if (!tested) return undefined;
  const parent = tested.head === head ? head : (await gitRun(ws.dir, ['rev-parse', '-q', '--verify', 'HEAD^1'], { okCodes: [1] })).trim();
  if (parent !== tested.head) return undefined;
  const want = new Set(paths);
  if (want.size !== new Set(tested.paths).size || tested.paths.some((p) => !want.has(p))) {
    throw ApplicationFailure.nonRetryable(
      `the change set to commit (${paths.slice(0, 10).join(', ')}) is not the one applied and tested (${tested.paths.slice(0, 10).join(', ')})`,
      'CommitMismatch',
    );
  }
  return tested;
}

/** verifyCommit; a commit that fails it is taken off the branch (kept at refs/weaver/rejected) and never pushed. */
async function verifyOrUndo(dir: string, commit: string, tested: TestedChange): Promise<void> {
  try {
    await verifyCommit(dir, commit, tested);
  } catch (err) {
    if (commit !== tested.head) {
      await gitRun(dir, ['update-ref', 'refs/weaver/rejected', commit]);
      await gitRun(dir, ['reset', '-q', '--soft', tested.head]);
    }
    throw err;
  }
}

/**
 * Changed or new files not staged for the commit (at most 50 named, then a count); files as
 * setup left them are not the run's (setupState.ts).
 */
async function uncommitted(unstaged: string[], ws: WorkspaceHandle): Promise<string[]> {
  if (!unstaged.length) return [];
  const setupLeft = await unchangedSinceSetup(ws);
  const paths = unstaged.filter((p) => !setupLeft?.has(p));
  return paths.length > 50 ? [...paths.slice(0, 50), `… and ${paths.length - 50} more`] : paths;
}

/** The branch as a git bundle in the artifact store: how a child hands its work to a parent
 *  on another worker without a push (the store is shared by the workers). */
export async function bundleBranch(store: ArtifactStore, ws: WorkspaceHandle): Promise<ArtifactRef> {
  const git = openWorkspace(ws);
  const file = await store.scratchPath('branch.bundle');
  // Thin: only the commits since the task's base (whoever restores or merges it has that base,
  // or fetches it: withBundlePrerequisites). A branch still at its base has nothing to exclude.
  const head = (await git.raw(['rev-parse', ws.branch])).trim();
  // Only when origin has the base on a branch (what a reader fetches): a base no branch of
  // origin holds (a force-push since the clone) goes into the bundle too.
  const onOrigin = ws.baseCommit ? (await git.raw(['for-each-ref', '--count=1', '--contains', ws.baseCommit, 'refs/remotes/origin']).catch(() => '')).trim() !== '' : false;
  const thin = ws.baseCommit && ws.baseCommit !== head && onOrigin ? [`^${ws.baseCommit}`] : [];
  await git.raw(['bundle', 'create', file, ws.branch, ...thin]);
  return store.adoptFile('git-bundle', file);
}

/**
 * A thin bundle needs its base commit in the repository that reads it: a clone made from a base
 * branch that has moved on since may lack it, and then gets it from `origin` first.
 */
export async function withBundlePrerequisites(git: Git, bundle: string): Promise<void> {
  const verified = await git.raw(['bundle', 'verify', '--quiet', bundle]).then(
    () => true,
    () => false,
  );
  if (!verified) await git.raw(['fetch', '--no-tags', '--quiet', 'origin']);
}

export interface MergeSource {
  workflowId: string;
  title: string;
  /** Where to fetch the child's branch from: a remote name/URL, a bundle file or a workspace path. */
  source: string;
  branch: string;
}

export interface MergeResult {
  workflowId: string;
  merged: boolean;
  /** Set when the merge conflicted (the merge was aborted; the branch is left as before it). */
  conflict?: string;
}

/** Merges each source branch into the workspace branch in order; a conflict is reported, not fatal. */
export async function mergeBranches(ws: WorkspaceHandle, sources: MergeSource[], env: Record<string, string | undefined> = process.env): Promise<MergeResult[]> {
  const git = openWorkspace(ws);
  const results: MergeResult[] = [];
  for (const [i, s] of sources.entries()) {
    const ref = `refs/weaver/merge-${i + 1}`;
    // A pushed child's branch is on the remote: fetched with the worker's credentials for it.
    const url = s.source === 'origin' ? (await git.raw(['remote', 'get-url', 'origin'])).trim() : s.source;
    const auth = gitAuth(url, env);
    const source = s.source === 'origin' ? 'origin' : stripUrlCredentials(s.source);
    try {
      if (isFile(source)) await withBundlePrerequisites(gitFor(ws.dir, undefined, gitAuth((await git.raw(['remote', 'get-url', 'origin'])).trim(), env)), source);
      await gitFor(ws.dir, undefined, auth).raw(['fetch', '--no-tags', '--', source, `+${s.branch}:${ref}`]);
    } catch (err) {
      const why = redact((err as Error).message, auth ? [auth.env.WEAVER_GIT_CRED_PASSWORD] : []);
      results.push({ workflowId: s.workflowId, merged: false, conflict: `could not fetch ${s.branch} from ${source}: ${why}` });
      continue;
    }
    let error: string | undefined;
    try {
      await git.raw([...GIT_IDENTITY, 'merge', '--no-ff', '-m', `Merge subtask ${i + 1}: ${s.title}\n\nWeaver-Child: ${s.workflowId}`, ref]);
    } catch (err) {
      error = (err as Error).message.split('\n')[0];
    }
    // A conflict is told by the unmerged paths, not by the merge's exit code and words.
    const unmerged = (await git.raw(['diff', '--name-only', '--diff-filter=U'])).trim().split('\n').filter(Boolean);
    if (!unmerged.length && !error) {
      results.push({ workflowId: s.workflowId, merged: true });
      continue;
    }
    await git.raw(['merge', '--abort']).catch(() => undefined);
    results.push({
      workflowId: s.workflowId,
      merged: false,
      conflict: unmerged.length ? `merge conflict in ${unmerged.join(', ')}` : `merge failed: ${error}`,
    });
  }
  return results;
}

function isFile(p: string): boolean {
  try {
    return path.isAbsolute(p) && statSync(p).isFile();
  } catch {
    return false;
  }
}
