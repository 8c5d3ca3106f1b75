// A workspace's branch leaving it: committed (exactly the tree that was tested, checked once
// made; never a file holding a key of the worker) and pushed under the worker's push policy,
// bundled into the artifact store for a parent on another worker, and children's branches
// merged into a parent's.
import { statSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { SimpleGit } from 'simple-git';
import { redact } from '../domain/redact';
import { stripUrlCredentials } from '../domain/repoUrl';
import type { ArtifactRef } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import { GIT_IDENTITY, gitFor, gitRun, openWorkspace } from './git';
import { gitAuth } from './gitCredentials';
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
  const head = (await git.revparse(['HEAD'])).trim();
  // What the accepted change wrote, not whatever setup, tests and builds left in the tree: the
  // tree staged when the change applied, before any command ran (testedTree.ts).
  const tested = req.paths ? await testedFor(ws, req.paths, head) : undefined;
  const committedBefore = tested && tested.head !== head;
  if (!req.paths) await git.add(['-A']);
  else if (tested && !committedBefore) await gitRun(ws.dir, ['read-tree', '--reset', tested.tree]);
  else if (!tested) {
    // A workspace from before the tested tree was recorded: the index as staged then.
    const keep = new Set(req.paths);
    const stagedNow = (await git.raw(['diff', '--cached', '--name-only', '--no-renames', '-z'])).split('\0').filter(Boolean);
    const drop = stagedNow.filter((p) => !keep.has(p));
    if (drop.length) await git.raw(['reset', '-q', '--', ...drop.map((p) => `:(literal)${p}`)]);
  }
  // A file that holds a key of the worker never leaves it, whoever wrote it.
  const refusedSecrets = committedBefore ? (tested.refused ?? []) : await unstageSecrets(git, ws.dir, secrets);
  const leftBehind = req.paths ? (await uncommitted(git, ws)).filter((p) => !refusedSecrets.includes(p)) : [];
  const staged = (await git.diff(['--cached', '--name-only'])).trim();
  // Idempotent on retry: if a previous try already committed, don't commit again.
  if (!committedBefore && (staged || head === ws.baseCommit)) {
    // Recorded first: a retry after this commit knows what it left out.
    if (tested) await saveTestedChange(ws, { ...tested, refused: refusedSecrets });
    await git.raw([...GIT_IDENTITY, 'commit', '--allow-empty', '-m', req.message]);
  }
  const commit = (await git.revparse(['HEAD'])).trim();
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
    // Never overwrite a branch this task did not make: the remote's tip must carry our trailer.
    // The lease then pushes only over exactly that tip (or only onto nothing, for a new branch).
    const owner = req.workflowId ?? /^Weaver-Workflow: (.+)$/m.exec(req.message)?.[1];
    const tip = (await net.raw(['ls-remote', '--', remote, ref])).split(/\s/)[0] ?? '';
    if (tip) {
      await net.raw(['fetch', '--no-tags', '--', remote, `+${ref}:refs/weaver/remote-tip`]);
      const made = (await git.raw(['log', '-1', '--format=%(trailers:key=Weaver-Workflow,valueonly)', 'refs/weaver/remote-tip'])).trim();
      if (!owner || made.split('\n').every((m) => m.trim() !== owner)) {
        return { commit, pushed: false, ...extra, pushError: `branch ${req.workspace.branch} already exists on ${remote} and was not made by this task; it was not overwritten` };
      }
    }
    await net.push(remote, `${req.workspace.branch}:${ref}`, [`--force-with-lease=${ref}:${tip}`]);
  } catch (err) {
    // A refused remote or a rejected push is reported, not retried forever: the commit is safe in the workspace.
    if (isPolicyRefusal(err)) return { commit, pushed: false, ...extra, pushError: err.message };
    return { commit, pushed: false, ...extra, pushError: redact((err as Error).message.trim().split('\n').slice(-3).join(' '), secrets) };
  }
  return { commit, pushed: true, ...extra };
}

/** Unstages every staged file whose content holds one of `secrets`; returns their paths. */
async function unstageSecrets(git: SimpleGit, dir: string, secrets: string[]): Promise<string[]> {
  if (!secrets.length) return [];
  const staged = (await git.raw(['diff', '--cached', '--name-only', '--diff-filter=AM', '-z'])).split('\0').filter(Boolean);
  const refused: string[] = [];
  for (const rel of staged) {
    // The staged blob (what would be committed), never the worktree file: that may since have
    // been rewritten, or replaced by a link to a FIFO or a device.
    const text = await git.raw(['cat-file', 'blob', `:${rel}`]).catch(() => '');
    if (secrets.some((s) => text.includes(Buffer.from(s, 'utf8').toString('latin1')))) refused.push(rel);
  }
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
async function uncommitted(git: SimpleGit, ws: WorkspaceHandle): Promise<string[]> {
  const out = await git.raw(['status', '--porcelain=v1', '-z', '--untracked-files=all']);
  const setupLeft = await unchangedSinceSetup(ws);
  const paths = out
    .split('\0')
    .filter((e) => e.length > 3 && e[1] !== ' ')
    .map((e) => e.slice(3))
    .filter((p) => !setupLeft?.has(p));
  return paths.length > 50 ? [...paths.slice(0, 50), `… and ${paths.length - 50} more`] : paths;
}

/** The branch as a git bundle in the artifact store: how a child hands its work to a parent
 *  on another worker without a push (the store is shared by the workers). */
export async function bundleBranch(store: ArtifactStore, ws: WorkspaceHandle): Promise<ArtifactRef> {
  const git = openWorkspace(ws);
  const file = await store.scratchPath('branch.bundle');
  // Thin: only the commits since the task's base (whoever restores or merges it has that base,
  // or fetches it: withBundlePrerequisites). A branch still at its base has nothing to exclude.
  const head = (await git.revparse([ws.branch])).trim();
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
export async function withBundlePrerequisites(git: SimpleGit, bundle: string): Promise<void> {
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
      await gitFor(ws.dir, undefined, auth).raw(['fetch', '--no-tags', source, `+${s.branch}:${ref}`]);
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
    // git reports a conflict on stdout with exit 1, which simple-git does not always throw on:
    // the unmerged paths are the truth.
    const unmerged = (await git.diff(['--name-only', '--diff-filter=U'])).trim().split('\n').filter(Boolean);
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
