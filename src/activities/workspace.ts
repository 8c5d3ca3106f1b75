// Git workspaces: one isolated clone per task on the worker that prepared it (design rule 4).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { simpleGit, type SimpleGit, type SimpleGitOptions } from 'simple-git';
import { redact } from '../domain/redact';
import { stripUrlCredentials } from '../domain/repoUrl';
import type { ArtifactRef } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import { runCommand, type RunCommandResult } from './commands';
import { killRecordedGroup } from './processGroups';
import { configArgs, gitAuth, isPolicyRefusal, resolveCloneSource, resolvePushRemote, type GitAuth, type RepoPolicy } from './repoPolicy';
import type { ActivityDeps, CommitRequest, CommitResult, PrepareWorkspaceRequest, WorkspaceHandle } from './types';

const GIT_IDENTITY = ['-c', 'user.name=Weaver', '-c', 'user.email=weaver@localhost'];

/**
 * Env vars simple-git refuses to pass to git unless the matching `unsafe` flag is set (its
 * guard against untrusted input). Here they come from the worker's own environment, which the
 * operator controls (e.g. GIT_SSH_COMMAND for a deploy key), so the flag is set exactly for the
 * vars present; the argument checks (`--upload-pack`, `-c core.sshCommand=…`) stay on otherwise.
 */
const UNSAFE_ENV_FLAGS: Record<string, keyof NonNullable<SimpleGitOptions['unsafe']>> = {
  editor: 'allowUnsafeEditor',
  git_askpass: 'allowUnsafeAskPass',
  git_config_global: 'allowUnsafeConfigPaths',
  git_config_system: 'allowUnsafeConfigPaths',
  git_config_count: 'allowUnsafeConfigEnvCount',
  git_config: 'allowUnsafeConfigPaths',
  git_editor: 'allowUnsafeEditor',
  git_exec_path: 'allowUnsafeConfigPaths',
  git_external_diff: 'allowUnsafeDiffExternal',
  git_pager: 'allowUnsafePager',
  git_proxy_command: 'allowUnsafeGitProxy',
  git_template_dir: 'allowUnsafeTemplateDir',
  git_sequence_editor: 'allowUnsafeEditor',
  git_ssh: 'allowUnsafeSshCommand',
  git_ssh_command: 'allowUnsafeSshCommand',
  pager: 'allowUnsafePager',
  prefix: 'allowUnsafeConfigPaths',
  ssh_askpass: 'allowUnsafeAskPass',
};

/**
 * What git may see of the worker's environment: what it needs to run and to reach a remote the
 * way the operator set up (ssh agent or command, proxies, CA files) — never provider keys or
 * anything else the worker holds.
 */
const GIT_ENV_PASSED =
  /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|EDITOR|SSH_AUTH_SOCK|GIT_SSH|GIT_SSH_COMMAND|GIT_SSL_CAINFO|GIT_SSL_CAPATH|GIT_SSL_NO_VERIFY|GIT_CONFIG_GLOBAL|XDG_CONFIG_HOME|SSL_CERT_FILE|SSL_CERT_DIR|(?:HTTPS?|ALL|NO)_PROXY|(?:https?|all|no)_proxy)$/;

/**
 * Configuration no repository can override (command-line level, above `.git/config`): code
 * written by a model or run by its tests must not get git to execute anything — no hooks, no
 * fsmonitor command. Filter, diff and merge drivers can only be defined in `.git/config`, which
 * commands cannot change: read-only in the sandbox, and checked and restored after each command
 * without one (src/activities/gitGuard.ts).
 */
const GIT_HARDENING: [string, string][] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
  // No transport that runs a command named by a URL (`ext::sh -c …`).
  ['protocol.ext.allow', 'never'],
  // A root worker hands the workspace's files to the sandbox's uid (src/activities/sandbox.ts);
  // its own git must still work there. The workspaces are Weaver's own clones.
  ['safe.directory', '*'],
];

/**
 * The environment of every git process run here: a minimal copy of the worker's (see
 * GIT_ENV_PASSED), repository-controlled execution off (GIT_HARDENING; no system config), and
 * git never asks for a credential — no terminal prompt (GIT_TERMINAL_PROMPT=0), no askpass
 * helper (an empty GIT_ASKPASS also overrides `core.askPass`). A clone or push that needs
 * credentials the worker does not have fails at once instead of hanging the activity.
 */
export function gitEnv(base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value !== undefined && GIT_ENV_PASSED.test(name)) env[name] = value;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_ASKPASS = '';
  env.GIT_CONFIG_NOSYSTEM = '1';
  env.GIT_CONFIG_COUNT = String(GIT_HARDENING.length);
  GIT_HARDENING.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * A simple-git instance with `gitEnv()`; `signal` aborting kills the running git process.
 * `auth` (repoPolicy.ts gitAuth): the credential helper and its env, for commands that talk to a remote.
 */
export function gitFor(baseDir: string | undefined, signal?: AbortSignal, auth?: GitAuth): SimpleGit {
  const env = { ...gitEnv(), ...auth?.env };
  // simple-git refuses any core.hooksPath / core.fsmonitor setting unless told; ours switch them off.
  const unsafe: NonNullable<SimpleGitOptions['unsafe']> = { allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true, allowUnsafeProtocolOverride: true };
  for (const name of Object.keys(env)) {
    const flag = UNSAFE_ENV_FLAGS[name.toLowerCase().trim()];
    if (flag) unsafe[flag] = true;
  }
  if (auth) unsafe.allowUnsafeCredentialHelper = true;
  const config = auth?.config.length ? { config: auth.config } : {};
  return simpleGit({ ...(baseDir ? { baseDir } : {}), ...(signal ? { abort: signal } : {}), ...config, unsafe }).env(env);
}

/** Longest readable part of a workspace directory name (the hash keeps it unique). */
const MAX_DIR_NAME = 100;

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
  const cancelled = async (detail: string): Promise<never> => {
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    throw new CancelledFailure(`workspace preparation cancelled; ${detail}`);
  };
  // The clone is the long, networked part. It runs through runCommand, not simple-git: git
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
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    const tail = r.tail.trim().split('\n').slice(-5).join('\n') || r.error || `git exited with ${r.exitCode ?? r.signal}`;
    const why = redact(tail, auth ? [auth.env.WEAVER_GIT_CRED_PASSWORD] : []);
    // A network hiccup is retried by Temporal; a repo or branch that does not exist is final.
    const transient = /could not resolve host|connection (refused|reset|timed out)|timed out|early eof|remote end hung up|rpc failed|http [5]\d\d|\b50[234]\b/i.test(why);
    throw ApplicationFailure.create({
      type: transient ? 'CloneUnavailable' : 'CloneFailed',
      nonRetryable: !transient,
      message: `cannot clone ${display}${req.baseBranch ? ` (branch ${req.baseBranch})` : ''}: ${why}`,
    });
  }
  const base = (await gitFor(dir).revparse(['--abbrev-ref', 'HEAD'])).trim();
  if (base === req.branch) {
    // Weaver force-pushes its branch: it must never be the branch the work is based on.
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    throw ApplicationFailure.nonRetryable(`branch "${req.branch}" is the base branch of ${display}; choose another branch name`, 'InvalidBranch');
  }
  try {
    const git = gitFor(dir, signal);
    // A rebuild starts from the lost workspace's base, so a re-applied change makes the same tree.
    const pinned = req.baseCommit && (await hasCommit(git, req.baseCommit)) ? [req.baseCommit] : [];
    await git.checkout(['-B', req.branch, ...pinned]);
    const baseCommit = (await git.revparse(['HEAD'])).trim();
    if (opts.restore) {
      // The commit the lost workspace made, from its bundle: nothing committed is redone.
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
async function hasCommit(git: SimpleGit, sha: string): Promise<boolean> {
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

/** Throws WorkspaceLost when this worker no longer has the workspace: the workflow rebuilds it. */
export function openWorkspace(ws: WorkspaceHandle): SimpleGit {
  if (!existsSync(path.join(ws.dir, '.git'))) {
    throw ApplicationFailure.nonRetryable(`workspace ${ws.dir} is gone from this worker`, 'WorkspaceLost');
  }
  return gitFor(ws.dir);
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

/**
 * `policy`: the worker's push policy (repoPolicy.ts): a remote that is neither the task's own
 * repository nor under WEAVER_PUSH_REMOTES is not pushed to (reported as `pushError`), and git
 * authenticates through the worker's credential helper.
 */
export async function commitAndPush(req: CommitRequest, secrets: string[] = [], policy: RepoPolicy = { env: process.env }): Promise<CommitResult> {
  const git = openWorkspace(req.workspace);
  // What the accepted change wrote, not whatever setup, tests and builds left in the tree: the
  // index holds the tree as it was right after the change applied (diffWorkspace staged it,
  // before any test ran, and .git is read-only to tests); only the change's paths stay staged,
  // as they were then — a test that rewrote one afterwards does not get its version committed.
  if (!req.paths) await git.add(['-A']);
  else {
    const keep = new Set(req.paths);
    const stagedNow = (await git.raw(['diff', '--cached', '--name-only', '--no-renames', '-z'])).split('\0').filter(Boolean);
    const drop = stagedNow.filter((p) => !keep.has(p));
    if (drop.length) await git.raw(['reset', '-q', '--', ...drop.map((p) => `:(literal)${p}`)]);
  }
  // A file that holds a key of the worker never leaves it, whoever wrote it.
  const refusedSecrets = await unstageSecrets(git, req.workspace.dir, secrets);
  const leftBehind = req.paths ? (await uncommitted(git)).filter((p) => !refusedSecrets.includes(p)) : [];
  const staged = (await git.diff(['--cached', '--name-only'])).trim();
  const head = (await git.revparse(['HEAD'])).trim();
  // Idempotent on retry: if a previous try already committed, don't commit again.
  if (staged || head === req.workspace.baseCommit) {
    await git.raw([...GIT_IDENTITY, 'commit', '--allow-empty', '-m', req.message]);
  }
  const commit = (await git.revparse(['HEAD'])).trim();
  const extra = { ...(leftBehind.length ? { leftBehind } : {}), ...(refusedSecrets.length ? { refusedSecrets } : {}) };
  if (!req.pushRemote) return { commit, pushed: false, ...extra };
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

/** Changed or new files not staged for the commit (at most 50 named, then a count). */
async function uncommitted(git: SimpleGit): Promise<string[]> {
  const out = await git.raw(['status', '--porcelain=v1', '-z', '--untracked-files=all']);
  const paths = out
    .split('\0')
    .filter((e) => e.length > 3 && e[1] !== ' ')
    .map((e) => e.slice(3));
  return paths.length > 50 ? [...paths.slice(0, 50), `… and ${paths.length - 50} more`] : paths;
}

/** The branch as a git bundle in the artifact store: how a child hands its work to a parent
 *  on another worker without a push (the store is shared by the workers). */
export async function bundleBranch(store: ArtifactStore, ws: WorkspaceHandle): Promise<ArtifactRef> {
  const git = openWorkspace(ws);
  const file = await store.scratchPath('branch.bundle');
  await git.raw(['bundle', 'create', file, ws.branch]);
  return store.adoptFile('git-bundle', file);
}

export async function releaseWorkspace(ws: WorkspaceHandle): Promise<void> {
  await rm(ws.dir, { recursive: true, force: true });
  // The task's own folder around the checkout (workspaces made before it existed have none).
  const home = path.dirname(ws.dir);
  if (path.basename(home) === ws.id) await rm(home, { recursive: true, force: true });
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
