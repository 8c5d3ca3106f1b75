// Git workspaces: one isolated clone per task on the worker that prepared it (design rule 4).
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { ArtifactStore } from './artifacts';
import type { ActivityDeps, CommitRequest, CommitResult, PrepareWorkspaceRequest, WorkspaceHandle } from './types';

const GIT_IDENTITY = ['-c', 'user.name=Weaver', '-c', 'user.email=weaver@localhost'];

export function workspaceDirFor(root: string, workflowId: string): string {
  // Workflow IDs may contain '/', ':' etc.; keep the name readable and unique.
  return path.join(root, workflowId.replace(/[^A-Za-z0-9._-]+/g, '_'));
}

/** A clone of `repo` on a fresh task branch. Idempotent: a retry starts from a clean clone. */
export async function prepareWorkspace(deps: ActivityDeps, req: PrepareWorkspaceRequest): Promise<WorkspaceHandle & { dirExisted: boolean }> {
  const dir = workspaceDirFor(deps.workspaceRoot, req.workflowId);
  const dirExisted = existsSync(dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  const source = /^[a-z+]+:\/\//i.test(req.repo) || /^[^/]+@[^:]+:/.test(req.repo) ? req.repo : path.resolve(req.repo);
  try {
    await simpleGit().clone(source, dir, req.baseBranch ? ['--branch', req.baseBranch] : []);
  } catch (err) {
    // A repo or branch that does not exist will not appear on retry.
    throw ApplicationFailure.nonRetryable(`cannot clone ${req.repo}${req.baseBranch ? ` (branch ${req.baseBranch})` : ''}: ${(err as Error).message}`, 'CloneFailed');
  }
  const git = simpleGit(dir);
  await git.checkout(['-B', req.branch]);
  const baseCommit = (await git.revparse(['HEAD'])).trim();
  return { id: path.basename(dir), dir, taskQueue: deps.workspaceQueue, branch: req.branch, baseCommit, dirExisted };
}

/** Throws WorkspaceLost when this worker no longer has the workspace: the workflow rebuilds it. */
export function openWorkspace(ws: WorkspaceHandle): SimpleGit {
  if (!existsSync(path.join(ws.dir, '.git'))) {
    throw ApplicationFailure.nonRetryable(`workspace ${ws.dir} is gone from this worker`, 'WorkspaceLost');
  }
  return simpleGit(ws.dir);
}

/** Back to the branch head before another attempt: drop the last attempt's edits. */
export async function rollbackWorkspace(ws: WorkspaceHandle): Promise<void> {
  const git = openWorkspace(ws);
  await git.reset(['--hard', 'HEAD']);
  await git.clean('f', ['-d']);
}

/** The staged diff of the workspace, stored as an artifact for the record. */
export async function diffWorkspace(store: ArtifactStore, ws: WorkspaceHandle) {
  const git = openWorkspace(ws);
  await git.add(['-A']);
  const diff = await git.diff(['--cached', '--no-color']);
  return diff ? store.put('diff', diff) : undefined;
}

export async function commitAndPush(req: CommitRequest): Promise<CommitResult> {
  const git = openWorkspace(req.workspace);
  await git.add(['-A']);
  const staged = (await git.diff(['--cached', '--name-only'])).trim();
  const head = (await git.revparse(['HEAD'])).trim();
  // Idempotent on retry: if a previous try already committed, don't commit again.
  if (staged || head === req.workspace.baseCommit) {
    await git.raw([...GIT_IDENTITY, 'commit', '--allow-empty', '-m', req.message]);
  }
  const commit = (await git.revparse(['HEAD'])).trim();
  if (!req.pushRemote) return { commit, pushed: false };
  try {
    await git.push(req.pushRemote, `${req.workspace.branch}:refs/heads/${req.workspace.branch}`, ['--force']);
  } catch (err) {
    // A rejected push is reported, not retried forever: the commit is safe in the workspace.
    return { commit, pushed: false, pushError: (err as Error).message.trim().split('\n').slice(-3).join(' ') };
  }
  return { commit, pushed: true };
}

export async function releaseWorkspace(ws: WorkspaceHandle): Promise<void> {
  await rm(ws.dir, { recursive: true, force: true });
}

export interface MergeSource {
  workflowId: string;
  title: string;
  /** Where to fetch the child's branch from: a remote name/URL or a workspace path. */
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
export async function mergeBranches(ws: WorkspaceHandle, sources: MergeSource[]): Promise<MergeResult[]> {
  const git = openWorkspace(ws);
  const results: MergeResult[] = [];
  for (const [i, s] of sources.entries()) {
    const ref = `refs/weaver/merge-${i + 1}`;
    try {
      await git.raw(['fetch', '--no-tags', s.source, `+${s.branch}:${ref}`]);
    } catch (err) {
      results.push({ workflowId: s.workflowId, merged: false, conflict: `could not fetch ${s.branch} from ${s.source}: ${(err as Error).message}` });
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
