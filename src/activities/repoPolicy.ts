// Which repositories a worker clones and where it pushes (issue 8, item 4); how git gets
// credentials for them is ./gitCredentials.ts's.
//
//   WEAVER_REPO_ROOTS=/srv/repos:/home/ci/src   local paths only under these (symlinks resolved);
//                                                unset: local paths refused unless WEAVER_DEV=1
//   WEAVER_PUSH_REMOTES=https://github.com/acme/,git@github.com:acme/
//                                                push targets besides the task's own repository
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { locateRepo, stripUrlCredentials } from '../domain/repoUrl';
import { gitAuth, hasCredentials, type GitAuth } from './gitCredentials';
import { hasDotSegments } from './gitTokens';
import { isInside } from './paths';

export {
  checkGitCredentials,
  chooseGitCredential,
  configArgs,
  GIT_CREDENTIALS_INVALID,
  gitAuth,
  GitCredentialsError,
  hasCredentials,
  hostEnvKey,
  loadGitCredentialsFile,
  type ChosenCredential,
  type GitAuth,
  type GitCredentialScope,
} from './gitCredentials';

export interface RepoPolicy {
  /** WEAVER_DEV: without repoRoots, local paths are allowed anywhere. */
  dev?: boolean;
  /** WEAVER_REPO_ROOTS: the only directories local repositories may be cloned from. */
  repoRoots?: string[];
  /** WEAVER_PUSH_REMOTES: URL (or path) prefixes a task may push to besides its own repository. */
  pushRemotes?: string[];
  /** Where the git credential settings (WEAVER_GIT_CREDENTIALS, WEAVER_GIT_TOKEN/SCOPE/USER_<HOST>, WEAVER_DEV) are read from. */
  env: Record<string, string | undefined>;
}

export const REPO_NOT_ALLOWED = 'RepoNotAllowed';
export const PUSH_REMOTE_NOT_ALLOWED = 'PushRemoteNotAllowed';

const refuse = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

/** Whether `err` is one of this module's refusals (RepoNotAllowed, PushRemoteNotAllowed). */
export function isPolicyRefusal(err: unknown): err is ApplicationFailure {
  return err instanceof ApplicationFailure && (err.type === REPO_NOT_ALLOWED || err.type === PUSH_REMOTE_NOT_ALLOWED);
}

/**
 * The real path of `p`, also when its last components do not exist yet: the deepest existing
 * ancestor is resolved (symlinks followed) and the rest appended. What git is then given is
 * exactly what the policy looked at.
 */
export async function realpathLoose(p: string): Promise<string> {
  const rest: string[] = [];
  let cur = path.resolve(p);
  for (;;) {
    try {
      return path.join(await realpath(cur), ...rest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const parent = path.dirname(cur);
      if (parent === cur) return path.resolve(p);
      rest.unshift(path.basename(cur));
      cur = parent;
    }
  }
}

export interface CloneSource {
  /** What git clones: the clean URL, or the real path of a local repository. */
  source: string;
  /** The repository as it may be shown (no credentials). */
  display: string;
  local: boolean;
  auth?: GitAuth;
}

/**
 * Where a task's `repo` is cloned from, once the worker's policy allows it: a local path must
 * resolve (symlinks followed) under WEAVER_REPO_ROOTS, or the worker be in dev mode without
 * roots; remote-helper addresses and unknown URL schemes are refused. Throws RepoNotAllowed
 * (non-retryable) naming the setting and the fix.
 */
export async function resolveCloneSource(policy: RepoPolicy, repo: string): Promise<CloneSource> {
  const display = stripUrlCredentials(repo);
  const loc = locateRepo(repo);
  if (loc.kind === 'unsupported') throw refuse(REPO_NOT_ALLOWED, `repository ${display}: ${loc.why}`);
  if (loc.kind !== 'local') return { source: display, display, local: false, auth: gitAuth(repo, policy.env) };
  const real = await realpathLoose(loc.path);
  const roots = policy.repoRoots?.filter(Boolean) ?? [];
  if (roots.length) {
    const realRoots = await Promise.all(roots.map((r) => realpathLoose(r)));
    if (!realRoots.some((root) => isInside(real, root))) {
      throw refuse(
        REPO_NOT_ALLOWED,
        `local repository ${display}${real !== path.resolve(loc.path) ? ` (resolves to ${real})` : ''} is outside WEAVER_REPO_ROOTS ` +
          `(${roots.join(':')}): this worker clones local paths only under those directories. Add its directory to ` +
          `WEAVER_REPO_ROOTS on the worker, or give a clone URL.`,
      );
    }
  } else if (!policy.dev) {
    throw refuse(
      REPO_NOT_ALLOWED,
      `local repository ${display} refused: this worker allows no local paths (WEAVER_REPO_ROOTS is not set). Set ` +
        `WEAVER_REPO_ROOTS on the worker to the directories local repositories may be cloned from (':'-separated), ` +
        `or WEAVER_DEV=1 on a development machine, or give a clone URL.`,
    );
  }
  return { source: real, display, local: true };
}

export interface PushTarget {
  /** What git pushes to: `origin`, a clean URL, or a real path. */
  remote: string;
  auth?: GitAuth;
}

/** A comparable form: real path for local ones, credential-free URL with lower-case scheme otherwise. */
async function canonical(s: string): Promise<{ kind: 'path' | 'url'; value: string } | undefined> {
  const loc = locateRepo(s);
  if (loc.kind === 'unsupported') return undefined;
  if (loc.kind === 'local') return { kind: 'path', value: await realpathLoose(loc.path) };
  const clean = stripUrlCredentials(s);
  return { kind: 'url', value: loc.kind === 'url' ? clean.replace(/^[^:]+/, (m) => m.toLowerCase()) : clean };
}

const sameRepo = (a: string, b: string) => a.replace(/\/+$/, '').replace(/\.git$/i, '') === b.replace(/\/+$/, '').replace(/\.git$/i, '');

function underPrefix(value: string, prefix: string, kind: 'path' | 'url'): boolean {
  if (kind === 'path') return isInside(value, prefix);
  if (value === prefix) return true;
  return value.startsWith(prefix) && (/[/:]$/.test(prefix) || value[prefix.length] === '/');
}
/**
 * Where a task may push: `origin` (the repository it was cloned from), the same repository
 * named by URL or path, or a remote under one of WEAVER_PUSH_REMOTES. `origin` is the
 * workspace's origin (its clean clone URL or real path). Throws PushRemoteNotAllowed
 * (non-retryable) naming the setting and the fix.
 */
export async function resolvePushRemote(policy: RepoPolicy, remote: string, origin: string): Promise<PushTarget> {
  const originAuth = () => gitAuth(origin, policy.env);
  if (remote === 'origin') return { remote: 'origin', auth: originAuth() };
  const display = stripUrlCredentials(remote);
  const notAllowed = (why: string) =>
    refuse(
      PUSH_REMOTE_NOT_ALLOWED,
      `push remote ${display} refused: ${why}. A task pushes to its own repository (push: true) or to a remote under ` +
        `WEAVER_PUSH_REMOTES on the worker (${policy.pushRemotes?.length ? policy.pushRemotes.join(', ') : 'not set'}); add a prefix there to allow it.`,
    );
  const loc = locateRepo(remote);
  if (loc.kind === 'unsupported') throw notAllowed(loc.why);
  if (loc.kind === 'local' && !/^file:/i.test(remote) && !remote.includes('/')) {
    // A bare name is a remote of the workspace; a fresh clone has only origin (git would read it as a path).
    throw notAllowed('the workspace has no remote of that name (only origin)');
  }
  if (hasDotSegments(loc.kind === 'local' ? '' : display)) throw notAllowed('a remote URL may not contain "." or ".." path segments');
  const target = await canonical(remote);
  const own = await canonical(origin);
  if (target && own && target.kind === own.kind && sameRepo(target.value, own.value)) {
    // The remote's own credentials (a URL that still carries some) first, else origin's.
    const named = gitAuth(remote, policy.env);
    return { remote: 'origin', auth: named && hasCredentials(named) ? named : originAuth() };
  }
  for (const prefix of policy.pushRemotes ?? []) {
    const p = await canonical(prefix);
    if (target && p && p.kind === target.kind && underPrefix(target.value, p.value, p.kind)) {
      return { remote: target.value, auth: target.kind === 'url' ? gitAuth(remote, policy.env) : undefined };
    }
  }
  throw notAllowed('it is neither the task\'s repository nor under WEAVER_PUSH_REMOTES');
}
