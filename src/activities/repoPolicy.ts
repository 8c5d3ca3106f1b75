// Which repositories a worker clones and where it pushes (issue 8, item 4), and how git gets
// credentials: from the worker's environment through a credential helper set per command —
// never from the task, never written to a workspace's .git/config.
//
//   WEAVER_REPO_ROOTS=/srv/repos:/home/ci/src   local paths only under these (symlinks resolved);
//                                                unset: local paths refused unless WEAVER_DEV=1
//   WEAVER_PUSH_REMOTES=https://github.com/acme/,git@github.com:acme/
//                                                push targets besides the task's own repository
//   WEAVER_GIT_TOKEN_<HOST>=…                   password/token git is given for https://<host>
//   WEAVER_GIT_USER_<HOST>=…                    its user name (default x-access-token)
// <HOST> is the URL's host (with its port, if the URL names one), upper-cased, every other
// character than A-Z and 0-9 replaced by '_': github.com → GITHUB_COM, 127.0.0.1:8080 → 127_0_0_1_8080.
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { locateRepo, stripUrlCredentials, urlCredentials } from '../domain/repoUrl';
import { isInside } from './paths';

export interface RepoPolicy {
  /** WEAVER_DEV: without repoRoots, local paths are allowed anywhere. */
  dev?: boolean;
  /** WEAVER_REPO_ROOTS: the only directories local repositories may be cloned from. */
  repoRoots?: string[];
  /** WEAVER_PUSH_REMOTES: URL (or path) prefixes a task may push to besides its own repository. */
  pushRemotes?: string[];
  /** Where WEAVER_GIT_TOKEN_<HOST> / WEAVER_GIT_USER_<HOST> are read from. */
  env: Record<string, string | undefined>;
}

/** Extra `-c` settings and env for one git command that talks to a remote needing credentials. */
export interface GitAuth {
  config: string[];
  env: Record<string, string>;
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

/** `.` / `..` segments (also %-encoded): curl and ssh servers resolve them, walking out of a prefix. */
function hasDotSegments(s: string): boolean {
  const decoded = s.replace(/%2e/gi, '.').replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
  return decoded.split(/[/\\:]/).some((seg) => seg === '.' || seg === '..');
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
  if (target && own && target.kind === own.kind && sameRepo(target.value, own.value)) return { remote: 'origin', auth: gitAuth(remote, policy.env) ?? originAuth() };
  for (const prefix of policy.pushRemotes ?? []) {
    const p = await canonical(prefix);
    if (target && p && p.kind === target.kind && underPrefix(target.value, p.value, p.kind)) {
      return { remote: target.value, auth: target.kind === 'url' ? gitAuth(remote, policy.env) : undefined };
    }
  }
  throw notAllowed('it is neither the task\'s repository nor under WEAVER_PUSH_REMOTES');
}

/** The `<HOST>` part of WEAVER_GIT_TOKEN_<HOST>: upper case, anything but A-Z0-9 as '_'. */
export function hostEnvKey(host: string): string {
  return host.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

/**
 * A git credential helper that answers only for the protocol and host of the command's remote
 * (a redirect elsewhere gets nothing), from env set for that one git process.
 */
const HELPER =
  '!f() { test "$1" = get || exit 0; p=; h=; while IFS= read -r l; do case "$l" in protocol=*) p="${l#protocol=}";; host=*) h="${l#host=}";; esac; done; ' +
  'test "$p" = "$WEAVER_GIT_CRED_PROTOCOL" && test "$h" = "$WEAVER_GIT_CRED_HOST" || exit 0; ' +
  'printf "username=%s\\npassword=%s\\n" "$WEAVER_GIT_CRED_USERNAME" "$WEAVER_GIT_CRED_PASSWORD"; }; f';

/**
 * How git authenticates to `url`: WEAVER_GIT_TOKEN_<HOST> (and WEAVER_GIT_USER_<HOST>) from
 * the worker's env, through HELPER, for https — and for plain http only on loopback, so a
 * token never crosses a network in clear text. A URL that still carries `user:password` (a run
 * started before credentials were stripped) supplies them the same way when the worker has
 * none. The helper replaces any other (`credential.helper=` first) for that command only.
 */
export function gitAuth(url: string, env: Record<string, string | undefined>): GitAuth | undefined {
  const loc = locateRepo(url);
  if (loc.kind !== 'url' || (loc.scheme !== 'https' && loc.scheme !== 'http')) return undefined;
  const host = /^[a-z]+:\/\/([^/?#]+)/i.exec(stripUrlCredentials(url))?.[1];
  if (!host || (loc.scheme === 'http' && !LOOPBACK.test(host))) return undefined;
  const key = hostEnvKey(host);
  let password = env[`WEAVER_GIT_TOKEN_${key}`];
  let username = env[`WEAVER_GIT_USER_${key}`] || 'x-access-token';
  if (!password) {
    const fromUrl = urlCredentials(url);
    if (!fromUrl?.password) return undefined;
    password = fromUrl.password;
    username = fromUrl.username || username;
  }
  if (/[\r\n\0]/.test(password + username)) return undefined;
  return {
    config: ['credential.helper=', `credential.helper=${HELPER}`],
    env: { WEAVER_GIT_CRED_PROTOCOL: loc.scheme, WEAVER_GIT_CRED_HOST: host, WEAVER_GIT_CRED_USERNAME: username, WEAVER_GIT_CRED_PASSWORD: password },
  };
}

/** `-c key=value` arguments for a git command line. */
export function configArgs(auth: GitAuth | undefined): string[] {
  return (auth?.config ?? []).flatMap((c) => ['-c', c]);
}
