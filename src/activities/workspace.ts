// Git workspaces: one isolated clone per task on the worker that prepared it (design rule 4).
// This file: where a workspace lives, its clone (prepareWorkspace), rollback, diff and release.
// The git it runs is set up in ./git.ts; commit, push, bundle and merge are in ./branches.ts.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { redact } from '../domain/redact';
import type { ArtifactStore } from './artifacts';
import type { WrittenFile } from './changeDiff';
import { runCommand, type RunCommandResult } from './commands';
import { gitEnv, gitFor, openWorkspace, type Git } from './git';
import { configArgs } from './gitCredentials';
import { readHead } from './gitFiles';
import { killRecordedGroup } from './processGroups';
import { resolveCloneSource, resolvePushRemote } from './repoPolicy';
import { restoreSetupState } from './setupState';
import { forgetTestedChange, stageChange } from './testedTree';
import { withBundlePrerequisites } from './branches';
import type { ActivityDeps, PrepareWorkspaceRequest, WorkspaceHandle } from './types';

export { bundleBranch, commitAndPush, mergeBranches, type MergeResult, type MergeSource } from './branches';
export { gitEnv, gitFor, openWorkspace } from './git';
export { recordSetupState } from './setupState';

/** Longest readable part of a workspace directory name (the hash keeps it unique). */
const MAX_DIR_NAME = 100;

/** In a workspace's folder: the workflow id it belongs to (its name keeps only a readable part and a hash), for the sweep at worker start. */
export const RUN_MARKER = '.weaver-run.json';

/** The workflow id a workspace folder under `root` belongs to: its marker's, else its name's when that is the whole id; undefined when unknown. */
export async function workflowIdOfWorkspace(root: string, name: string): Promise<string | undefined> {
  const marked = await readFile(path.join(root, name, RUN_MARKER), 'utf8').then((t) => (JSON.parse(t) as { workflowId?: unknown }).workflowId, () => undefined);
  if (typeof marked === 'string') return marked;
  // Made before the marker: an id of only [A-Za-z0-9._-] is its own readable part.
  const readable = name.replace(/-[0-9a-f]{8}$/, '');
  return workspaceDirFor(root, readable) === path.join(root, name) ? readable : undefined;
}

/** The repository a workspace's checkout was cloned from, as its marker says (beside the checkout, out of the sandbox's reach); undefined for one made before. */
export async function repoOfWorkspace(dir: string): Promise<string | undefined> {
  const repo = await readFile(path.join(path.dirname(dir), RUN_MARKER), 'utf8').then((t) => (JSON.parse(t) as { repo?: unknown }).repo, () => undefined);
  return typeof repo === 'string' && repo ? repo : undefined;
}

export function workspaceDirFor(root: string, workflowId: string): string {
  // Workflow IDs may contain '/', ':' etc.: a readable part, plus a short hash of the exact ID
  // so that IDs differing only in such characters (`a/b`, `a_b`, `a:b`) never share a directory.
  const readable = workflowId.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_').slice(0, MAX_DIR_NAME);
  const hash = createHash('sha256').update(workflowId).digest('hex').slice(0, 8);
  return path.join(root, `${readable}-${hash}`);
}

/**
 * The checkout folder's name: the repository's own, as `git clone` would name it (build files
 * that take the project name from their folder — CMake, some Go/Java/monorepo set-ups — need it).
 */
export function repoDirName(repo: string): string {
  const last = repo.replace(/[\\/]+$/, '').split(/[\\/:]/).pop() ?? '';
  const name = last.replace(/\.git$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, MAX_DIR_NAME);
  return name && !name.startsWith('.') ? name : 'repo';
}

export interface PrepareOptions {
  /** The activity's cancellation signal: aborting it kills the running git process. */
  signal?: AbortSignal;
  /** A git bundle file holding the branch to restore (a rebuild after a commit). */
  restore?: string;
}

/** A clone of `repo` on a fresh task branch. Idempotent: a retry starts from a clean clone. */
export async function prepareWorkspace(
  deps: ActivityDeps,
  req: PrepareWorkspaceRequest,
  opts: PrepareOptions = {},
): Promise<WorkspaceHandle> {
  const { signal } = opts;
  // The worker's policy first (nothing touched before): local paths only under WEAVER_REPO_ROOTS,
  // pushes only to the repository itself or WEAVER_PUSH_REMOTES — refused before any model is paid.
  // git is given the clean URL (credentials come from the helper) or the checked real path.
  const { source, display, local, auth } = await resolveCloneSource(deps, req.repo);
  if (req.pushRemote) await resolvePushRemote(deps, req.pushRemote, source);
  // <workspace root>/<unique id>/<repository name>: unique per task, named like the repository.
  const home = workspaceDirFor(deps.workspaceRoot, req.workflowId);
  const dir = path.join(home, repoDirName(display));
  // A command of an earlier try may still run there (its worker was given up on): it goes first.
  await killRecordedGroup(commandLockFile(dir));
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  // The repository too (without credentials): its commands share its toolchain caches (repoOfWorkspace).
  await writeFile(path.join(home, RUN_MARKER), JSON.stringify({ workflowId: req.workflowId, repo: display }));
  const cancelled = async (detail: string): Promise<never> => {
    await rm(home, RM_RETRIED).catch(() => undefined);
    throw new CancelledFailure(`workspace preparation cancelled; ${detail}`);
  };
  // The clone is the long, networked part. It runs through runCommand, not a buffered git call: git
  // forks transport helpers (git-remote-http, ssh) that outlive a killed `git`, so a cancel must
  // kill the whole process group (design rule 7). In its own session git has no terminal to
  // prompt on either; gitEnv() turns the prompts and askpass helpers off explicitly.
  const logFile = path.join(home, 'clone.log');
  let r: RunCommandResult;
  try {
    r = await runCommand({
      // --no-local for a local path: objects come through upload-pack (only what the refs reach),
      // never hardlinked to or copied wholesale from the source repository.
      command: ['git', ...configArgs(auth), 'clone', ...(local ? ['--no-local'] : []), ...(req.baseBranch ? ['--branch', req.baseBranch] : []), '--', source, dir],
      cwd: home,
      timeoutSec: Infinity,
      logFile,
      signal,
      env: { ...gitEnv(), ...auth?.env },
      killGraceMs: 1000,
      // git's transport helpers die with the worker too.
      dieWithWorker: true,
    });
  } finally {
    await rm(logFile, { force: true }).catch(() => undefined);
  }
  if (r.cancelled) return cancelled('git clone killed');
  if (r.exitCode !== 0) {
    // The folder removed under the clone (a worker's start-up sweep took it for a lost host's
    // leftover, a disk wiped): not the repository's fault, tried again (seen in the crash campaign).
    const vanished = !existsSync(path.join(home, RUN_MARKER));
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    const tail = r.tail.trim().split('\n').slice(-5).join('\n') || r.error || `git exited with ${r.exitCode ?? r.signal}`;
    const why = redact(tail, auth ? [auth.env.WEAVER_GIT_CRED_PASSWORD] : []);
    // A network hiccup is retried by Temporal; a repo or branch that does not exist is final.
    const transient = vanished || /could not resolve host|connection (refused|reset|timed out)|timed out|early eof|remote end hung up|rpc failed|http [5]\d\d|\b50[234]\b/i.test(why);
    throw ApplicationFailure.create({
      type: transient ? 'CloneUnavailable' : 'CloneFailed',
      nonRetryable: !transient,
      message: `cannot clone ${display}${req.baseBranch ? ` (branch ${req.baseBranch})` : ''}: ${vanished ? 'the workspace folder was removed during the clone; ' : ''}${why}`,
    });
  }
  // The clone's commit and its branch's name: from the files clone just wrote, else one rev-parse.
  const read = await readHead(dir);
  const [cloned, base] = read ? [read.commit, read.branch] : (await gitFor(dir).raw(['rev-parse', 'HEAD', '--abbrev-ref', 'HEAD'])).trim().split('\n');
  if (base === req.branch) {
    // Weaver force-pushes its branch: it must never be the branch the work is based on.
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    throw ApplicationFailure.nonRetryable(`branch "${req.branch}" is the base branch of ${display}; choose another branch name`, 'InvalidBranch');
  }
  try {
    const git = gitFor(dir, signal);
    // A rebuild starts from the lost workspace's base, so a re-applied change makes the same tree.
    const pinned = req.baseCommit && (await hasCommit(git, req.baseCommit)) ? [req.baseCommit] : [];
    await git.raw(['checkout', '-B', req.branch, ...pinned]);
    // The pinned commit was checked to be one (hasCommit); it is in full, as every recorded id.
    const baseCommit = pinned.length ? (await git.raw(['rev-parse', `${req.baseCommit}^{commit}`])).trim() : cloned;
    if (opts.restore) {
      // The commit the lost workspace made, from its bundle: nothing committed is redone.
      await withBundlePrerequisites(gitFor(dir, signal, auth), opts.restore);
      await git.raw(['fetch', '--no-tags', opts.restore, `+refs/heads/${req.branch}:refs/weaver/restored`]);
      await git.raw(['reset', '-q', '--hard', 'refs/weaver/restored']);
    }
    return { id: path.basename(home), dir, taskQueue: deps.workspaceQueue, branch: req.branch, baseCommit };
  } catch (err) {
    if (signal?.aborted) return cancelled(`git killed (${(err as Error).message})`);
    throw err;
  }
}

/** Whether the clone has `sha` (a base commit force-pushed away upstream is not fetched by sha). */
async function hasCommit(git: Git, sha: string): Promise<boolean> {
  return git
    .raw(['cat-file', '-e', `${sha}^{commit}`])
    .then(() => true)
    .catch(() => false);
}

/**
 * The pid file of the command running in a workspace (tests, setup): beside the checkout, never
 * in it, so no command can touch it and no commit picks it up. A rerun kills a live older run.
 */
export function commandLockFile(dir: string): string {
  return path.join(path.dirname(dir), 'command.pid');
}

/**
 * Back to the workspace as setup left it before another attempt (setupState.ts): the last
 * attempt's edits and everything its commands made go, setup's outputs stay. A workspace made
 * before that state was recorded rolls back to the branch head the old way.
 */
export async function rollbackWorkspace(ws: WorkspaceHandle, wrote?: (paths: string[]) => void): Promise<void> {
  const git = openWorkspace(ws);
  await forgetTestedChange(ws);
  if (await restoreSetupState(ws, wrote)) return;
  await git.raw(['reset', '--hard', 'HEAD']);
  await git.raw(['clean', '-f', '-d']);
}

/**
 * Stages the applied change — exactly `files`, ignored ones included — and stores its diff (against
 * the state after setup) as an artifact: for the record and for the next prompt if it fails.
 */
export async function diffWorkspace(store: ArtifactStore, ws: WorkspaceHandle, files: string[], written?: WrittenFile[]) {
  openWorkspace(ws);
  const { diff } = await stageChange(ws, files, written);
  return diff ? store.put('diff', diff) : undefined;
}

/**
 * Where the result of the commit that released a workspace waits for a retry of that activity: a
 * worker killed between removing the pushed clone and reporting its result would otherwise leave
 * the retry with no workspace and fail a task whose branch is pushed. Beside the worker's root
 * (a dot-folder the sweep leaves alone and prunes by age).
 */
function releasedRecordPath(ws: WorkspaceHandle): string {
  const home = path.dirname(ws.dir);
  const root = path.basename(home) === ws.id ? path.dirname(home) : home;
  return path.join(root, RELEASED_DIR, `${ws.id}.json`);
}

/** The dot-folder under a workspace root holding released workspaces' commit results. */
export const RELEASED_DIR = '.released';

export async function recordReleasedCommit<T>(ws: WorkspaceHandle, result: T): Promise<void> {
  const file = releasedRecordPath(ws);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(result));
}

/** The recorded result of the commit that released `ws`, when its checkout is gone (a retry after the release). */
export async function releasedCommit<T>(ws: WorkspaceHandle): Promise<T | undefined> {
  if (existsSync(ws.dir)) return undefined;
  const text = await readFile(releasedRecordPath(ws), 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as T) : undefined;
}

export async function releaseWorkspace(ws: WorkspaceHandle): Promise<void> {
  // Retried: a command just killed there may still be finishing a write (ENOTEMPTY, EBUSY).
  await rm(ws.dir, RM_RETRIED);
  // The task's own folder around the checkout (workspaces made before it existed have none).
  const home = path.dirname(ws.dir);
  if (path.basename(home) === ws.id) await rm(home, RM_RETRIED);
}
const RM_RETRIED = { recursive: true, force: true, maxRetries: 5, retryDelay: 100 } as const;
