// Which repositories a worker clones and where it pushes (issue 8, item 4), and how git gets
// credentials: from the worker's environment through a credential helper set per command —
// never from the task, never written to a workspace's .git/config.
//
//   WEAVER_REPO_ROOTS=/srv/repos:/home/ci/src   local paths only under these (symlinks resolved);
//                                                unset: local paths refused unless WEAVER_DEV=1
//   WEAVER_PUSH_REMOTES=https://github.com/acme/,git@github.com:acme/
//                                                push targets besides the task's own repository
//   WEAVER_GIT_CREDENTIALS=/etc/weaver/git.yaml  URL prefixes → the env var holding each one's token
//   WEAVER_GIT_TOKEN_<HOST>=…                   a token for https://<host> …
//   WEAVER_GIT_SCOPE_<HOST>=https://<host>/acme/,…   … sent only for repositories under these prefixes
//   WEAVER_GIT_USER_<HOST>=…                    its user name (default x-access-token)
// <HOST> is the URL's host (with its port, if the URL names one), upper-cased, every other
// character than A-Z and 0-9 replaced by '_': github.com → GITHUB_COM, 127.0.0.1:8080 → 127_0_0_1_8080.
// A token goes to the repositories its scope covers (the longest matching prefix wins), never to
// the rest of its host; a host token without a scope is used host-wide only in dev mode
// (WEAVER_DEV=1) and stops a production worker's start.
import { readFileSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { truthy } from '../config';
import { isSecretEnvName } from '../domain/redact';
import { locateRepo, stripUrlCredentials, urlCredentials } from '../domain/repoUrl';
import { formatZodIssues } from '../domain/schema';
import { isInside } from './paths';

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

/** Extra `-c` settings and env for one git command that talks to a remote needing credentials. */
export interface GitAuth {
  config: string[];
  env: Record<string, string>;
}

export const REPO_NOT_ALLOWED = 'RepoNotAllowed';
export const PUSH_REMOTE_NOT_ALLOWED = 'PushRemoteNotAllowed';
export const GIT_CREDENTIALS_INVALID = 'GitCredentialsInvalid';

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

/** The `<HOST>` part of WEAVER_GIT_TOKEN_<HOST>: upper case, anything but A-Z0-9 as '_'. */
export function hostEnvKey(host: string): string {
  return host.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

/**
 * A git credential helper that answers only for the protocol and host of the command's remote
 * (a redirect elsewhere gets nothing), from env set for that one git process. Without a
 * password it answers nothing and says on stderr why the worker has no token for this
 * repository (git prints it just before its own "could not read Username" failure).
 */
const HELPER =
  '!f() { test "$1" = get || exit 0; p=; h=; while IFS= read -r l; do case "$l" in protocol=*) p="${l#protocol=}";; host=*) h="${l#host=}";; esac; done; ' +
  'if test -z "$WEAVER_GIT_CRED_PASSWORD"; then test -z "$WEAVER_GIT_CRED_NOTE" || printf "weaver: %s\\n" "$WEAVER_GIT_CRED_NOTE" >&2; exit 0; fi; ' +
  'test "$p" = "$WEAVER_GIT_CRED_PROTOCOL" && test "$h" = "$WEAVER_GIT_CRED_HOST" || exit 0; ' +
  'printf "username=%s\\npassword=%s\\n" "$WEAVER_GIT_CRED_USERNAME" "$WEAVER_GIT_CRED_PASSWORD"; }; f';

/** Whether `auth` supplies a token (not only the note saying why there is none). */
export function hasCredentials(auth: GitAuth | undefined): boolean {
  return !!auth?.env.WEAVER_GIT_CRED_PASSWORD;
}

/**
 * How git authenticates to `url`: the token whose scope covers the repository (see
 * `chooseGitCredential`), from the worker's env, through HELPER, for https — and for plain http
 * only on loopback, so a token never crosses a network in clear text. A URL that still carries
 * `user:password` (a run started before credentials were stripped) supplies them the same way
 * when the worker has none for it. The helper replaces any other (`credential.helper=` first)
 * for that command only. With no token, the helper only explains (the note names the setting
 * that would give one) and is added after the worker user's own git helpers, if any.
 */
export function gitAuth(url: string, env: Record<string, string | undefined>): GitAuth | undefined {
  const loc = locateRepo(url);
  if (loc.kind !== 'url' || (loc.scheme !== 'https' && loc.scheme !== 'http')) return undefined;
  const clean = stripUrlCredentials(url);
  const host = /^[a-z]+:\/\/([^/?#]+)/i.exec(clean)?.[1];
  if (!host) return undefined;
  const explain = (note: string): GitAuth => ({
    config: [`credential.helper=${HELPER}`],
    env: { WEAVER_GIT_CRED_PROTOCOL: loc.scheme, WEAVER_GIT_CRED_HOST: host, WEAVER_GIT_CRED_USERNAME: '', WEAVER_GIT_CRED_PASSWORD: '', WEAVER_GIT_CRED_NOTE: note },
  });
  if (loc.scheme === 'http' && !LOOPBACK.test(host)) {
    return explain(`no git credentials for ${clean}: plain http, and the worker never sends a token in clear text (use https)`);
  }
  let chosen: ChosenCredential;
  try {
    chosen = chooseGitCredential(clean, env);
  } catch (err) {
    // Checked at worker start; a file that went bad since is the operator's to fix, not a retry's.
    if (err instanceof GitCredentialsError) throw refuse(GIT_CREDENTIALS_INVALID, err.message);
    throw err;
  }
  let password: string | undefined;
  let username = 'x-access-token';
  if (chosen.kind === 'token') ({ password, username } = chosen);
  else {
    const fromUrl = urlCredentials(url);
    if (!fromUrl?.password) return explain(chosen.note);
    password = fromUrl.password;
    username = fromUrl.username || username;
  }
  if (/[\r\n\0]/.test(password + username)) return explain(`no git credentials for ${clean}: the token or user name holds a line break`);
  return {
    config: ['credential.helper=', `credential.helper=${HELPER}`],
    env: { WEAVER_GIT_CRED_PROTOCOL: loc.scheme, WEAVER_GIT_CRED_HOST: host, WEAVER_GIT_CRED_USERNAME: username, WEAVER_GIT_CRED_PASSWORD: password },
  };
}

// ---- git tokens scoped per repository ---------------------------------------------------------

/** Where a token may go: `https://host/acme/` (everything under it), `https://host/acme/app.git` (that repository). */
interface Prefix {
  scheme: string;
  /** Lower case, with the port if named. */
  host: string;
  /** The path, trailing `/` and `.git` removed: `https://h/acme/` and `https://h/acme` are one prefix. */
  path: string;
}

/** One token of the worker and the repositories it may be sent to. */
export interface GitCredentialScope {
  /** The prefix as configured (empty for an unscoped host token). */
  prefix: string;
  /** The env var holding the token. */
  tokenEnv: string;
  username?: string;
  /** The setting it comes from: `WEAVER_GIT_CREDENTIALS`, `WEAVER_GIT_SCOPE_<HOST>`, or `WEAVER_GIT_TOKEN_<HOST>` (unscoped, dev mode). */
  source: string;
  /** An unscoped host token (dev mode only): every repository on the host of this key. */
  hostWide?: string;
}

/** A scope with its prefix parsed (absent: host-wide). */
type Scope = GitCredentialScope & { at?: Prefix };

/** An encoded `/` or `\`: a server may decode it and walk out of a prefix (like `..`, see hasDotSegments). */
const ENCODED_SLASH = /%2f|%5c/i;

/** `s` read as a URL prefix (or a repository's clean URL), or why it cannot be one. */
function parseUrlPrefix(s: string): Prefix | string {
  const m = /^(https?):\/\/([^/?#\s]+)(\/[^?#\s]*)?$/i.exec(s.trim());
  if (!m) return 'must be an http(s) URL without query or fragment, e.g. https://github.com/acme/ or https://github.com/acme/app.git';
  const [, scheme, host, rawPath = '/'] = m;
  if (host.includes('@')) return 'must not hold credentials (the token comes from the env var it names)';
  if (scheme.toLowerCase() === 'http' && !LOOPBACK.test(host)) return 'is plain http, allowed only to localhost/127.0.0.1 (a token never crosses a network in clear text): use https';
  if (hasDotSegments(rawPath) || ENCODED_SLASH.test(rawPath)) return 'must not contain "." or ".." segments or an encoded "/"';
  return { scheme: scheme.toLowerCase(), host: host.toLowerCase(), path: rawPath.replace(/\/+$/, '').replace(/\.git$/i, '').replace(/\/+$/, '') };
}

/** Whether `prefix` covers the repository `repo`: same scheme and host, then the path at a `/` boundary (`.git` ignored). */
function covers(prefix: Prefix, repo: Prefix): boolean {
  if (prefix.scheme !== repo.scheme || prefix.host !== repo.host) return false;
  return repo.path === prefix.path || repo.path.startsWith(`${prefix.path}/`);
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const TokenEnvSchema = z
  .string()
  .regex(ENV_NAME, 'must be an environment variable name')
  .refine(
    isSecretEnvName,
    'must be a name the worker treats as a secret — ending in _TOKEN, _PASSWORD, _SECRET or _API_KEY, or starting with WEAVER_GIT_TOKEN_ — so its value is redacted everywhere and kept out of every command',
  );

/**
 * WEAVER_GIT_CREDENTIALS: `credentials:` maps URL prefixes to the env var holding the token
 * (a name), or to `{ tokenEnv, username }`.
 */
const GitCredentialsFileSchema = z
  .object({
    credentials: z.record(
      z.string(),
      z.union([TokenEnvSchema, z.object({ tokenEnv: TokenEnvSchema, username: z.string().regex(/^[^\s:]+$/, 'must be a user name (no spaces or ":")').optional() }).strict()]),
    ),
  })
  .strict()
  .superRefine((f, ctx) => {
    for (const prefix of Object.keys(f.credentials)) {
      const p = parseUrlPrefix(prefix);
      if (typeof p === 'string') ctx.addIssue({ code: 'custom', path: ['credentials', prefix], message: `the prefix ${p}` });
    }
  });

/** A bad WEAVER_GIT_CREDENTIALS file or WEAVER_GIT_* setting: one line per problem, each naming the field. */
export class GitCredentialsError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`invalid git credentials (${source}):\n  - ${issues.join('\n  - ')}`);
    this.name = 'GitCredentialsError';
  }
}

/** The file's scopes, read once per path (the worker reads it at start; a bad one stops it there). */
const fileScopes = new Map<string, GitCredentialScope[]>();

/** The scopes of a WEAVER_GIT_CREDENTIALS file (YAML or JSON), validated; throws GitCredentialsError naming the field. */
export function loadGitCredentialsFile(file: string): GitCredentialScope[] {
  return loadScopes(file).map(({ at: _at, ...s }) => s);
}

function loadScopes(file: string): Scope[] {
  const abs = path.resolve(file);
  const cached = fileScopes.get(abs);
  if (cached) return cached;
  const source = `WEAVER_GIT_CREDENTIALS=${abs}`;
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new GitCredentialsError(source, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    // YAML is a superset of JSON: one parser reads both; .json files get JSON's stricter reading.
    raw = /\.json$/i.test(abs) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new GitCredentialsError(source, [`not valid ${/\.json$/i.test(abs) ? 'JSON' : 'YAML'}: ${(err as Error).message}`]);
  }
  const r = GitCredentialsFileSchema.safeParse(raw);
  if (!r.success) throw new GitCredentialsError(source, formatZodIssues(r.error));
  const scopes: Scope[] = Object.entries(r.data.credentials).map(([prefix, v]) => ({
    prefix,
    ...(typeof v === 'string' ? { tokenEnv: v } : v),
    source: 'WEAVER_GIT_CREDENTIALS',
    at: parseUrlPrefix(prefix) as Prefix,
  }));
  fileScopes.set(abs, scopes);
  return scopes;
}

/** The host keys with a WEAVER_GIT_TOKEN_<HOST> set (names ending in _SCOPE or _USER are other settings' only by prefix). */
function tokenHostKeys(env: Record<string, string | undefined>): string[] {
  return Object.keys(env)
    .filter((n) => n.startsWith('WEAVER_GIT_TOKEN_') && env[n])
    .map((n) => n.slice('WEAVER_GIT_TOKEN_'.length))
    .filter(Boolean);
}

const splitList = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Every token scope of the worker: the WEAVER_GIT_CREDENTIALS file's, then each
 * WEAVER_GIT_TOKEN_<HOST>'s WEAVER_GIT_SCOPE_<HOST> prefixes. An unscoped host token counts
 * (host-wide) in dev mode only; `unscoped` lists the others' host keys. Prefixes that do not
 * parse, or name another host than their token's, are in `issues`.
 */
function allScopes(env: Record<string, string | undefined>): { scopes: Scope[]; unscoped: string[]; issues: string[] } {
  const scopes: Scope[] = env.WEAVER_GIT_CREDENTIALS ? [...loadScopes(env.WEAVER_GIT_CREDENTIALS)] : [];
  const unscoped: string[] = [];
  const issues: string[] = [];
  for (const key of tokenHostKeys(env)) {
    const tokenEnv = `WEAVER_GIT_TOKEN_${key}`;
    const username = env[`WEAVER_GIT_USER_${key}`] || undefined;
    const listed = splitList(env[`WEAVER_GIT_SCOPE_${key}`]);
    if (!listed.length) {
      if (truthy(env.WEAVER_DEV)) scopes.push({ prefix: '', tokenEnv, username, source: tokenEnv, hostWide: key });
      else unscoped.push(key);
      continue;
    }
    for (const prefix of listed) {
      const p = parseUrlPrefix(prefix);
      if (typeof p === 'string') issues.push(`WEAVER_GIT_SCOPE_${key}: ${prefix}: the prefix ${p}`);
      else if (hostEnvKey(p.host) !== key) issues.push(`WEAVER_GIT_SCOPE_${key}: ${prefix} is on ${p.host}, not on the host ${tokenEnv} is for`);
      else scopes.push({ prefix, tokenEnv, username, source: `WEAVER_GIT_SCOPE_${key}`, at: p });
    }
  }
  return { scopes, unscoped, issues };
}

const unscopedProblem = (key: string) =>
  `WEAVER_GIT_TOKEN_${key} has no scope: outside dev mode (WEAVER_DEV=1) a host token is sent only to the repositories under ` +
  `WEAVER_GIT_SCOPE_${key} (','-separated URL prefixes, e.g. https://<host>/acme/, or https://<host>/ for the whole host); ` +
  'or map URL prefixes to tokens in a WEAVER_GIT_CREDENTIALS file';

export type ChosenCredential = { kind: 'token'; username: string; password: string; scope: GitCredentialScope } | { kind: 'none'; note: string };

/**
 * The worker's token for the repository at `url` (a clean http(s) URL): the scope with the
 * longest prefix covering it (the file's before a host scope of the same length; an unscoped
 * dev-mode host token last); none when no scope covers it, the chosen scope's variable is
 * unset, or the URL has `.`/`..` segments or an encoded `/` (a server may resolve those out of
 * a prefix). `note` says why, naming the setting that would give one.
 */
export function chooseGitCredential(url: string, env: Record<string, string | undefined>): ChosenCredential {
  const none = (why: string): ChosenCredential => ({ kind: 'none', note: `no git credentials for ${url}: ${why}` });
  const repo = parseUrlPrefix(url);
  if (typeof repo === 'string') return none(`the URL ${repo}`);
  const { scopes, unscoped, issues } = allScopes(env);
  if (issues.length) return none(issues[0]);
  const key = hostEnvKey(repo.host);
  let best: { s: Scope; length: number } | undefined;
  for (const s of scopes) {
    const length = s.at ? (covers(s.at, repo) ? s.at.path.length + 1 : -1) : s.hostWide === key ? 0 : -1;
    // Strictly longer: of equal lengths, the first listed (the file's) wins.
    if (length >= 0 && (!best || length > best.length)) best = { s, length };
  }
  if (!best) {
    if (unscoped.includes(key)) return none(unscopedProblem(key));
    const onHost = scopes.filter((s) => s.at?.host === repo.host);
    if (onHost.length) {
      return none(
        `it is outside the scopes of this worker's tokens for ${repo.host} (${onHost.map((s) => `${s.source}: ${s.prefix}`).join(', ')}); ` +
          `to give it one, add a prefix covering it to WEAVER_GIT_SCOPE_${key} or to the WEAVER_GIT_CREDENTIALS file on the worker`,
      );
    }
    return none(`this worker has no token for ${repo.host}; set WEAVER_GIT_TOKEN_${key} with WEAVER_GIT_SCOPE_${key}, or map a URL prefix to a token in a WEAVER_GIT_CREDENTIALS file, on the worker`);
  }
  const password = env[best.s.tokenEnv];
  if (!password) return none(`${best.s.prefix || `${repo.host} (unscoped)`} is mapped to ${best.s.tokenEnv} (${best.s.source}), which is not set on this worker`);
  const { at: _at, ...scope } = best.s;
  return { kind: 'token', username: best.s.username || 'x-access-token', password, scope };
}

/**
 * Checks the worker's git credential settings at start: the WEAVER_GIT_CREDENTIALS file (zod,
 * each problem naming its field), every WEAVER_GIT_SCOPE_<HOST> prefix, and — outside dev mode —
 * that no WEAVER_GIT_TOKEN_<HOST> is left without a scope. Throws GitCredentialsError; returns
 * one line for the start-up banner (prefixes and variable names, never values).
 */
export function checkGitCredentials(env: Record<string, string | undefined>): string {
  const { scopes, unscoped, issues } = allScopes(env);
  const problems = [...issues, ...unscoped.map(unscopedProblem)];
  if (problems.length) throw new GitCredentialsError(env.WEAVER_GIT_CREDENTIALS ? `WEAVER_GIT_CREDENTIALS=${path.resolve(env.WEAVER_GIT_CREDENTIALS)} and the worker's env` : "the worker's env", problems);
  if (!scopes.length) return 'none (WEAVER_GIT_CREDENTIALS, or WEAVER_GIT_TOKEN_<HOST> with WEAVER_GIT_SCOPE_<HOST>)';
  return scopes
    .map((s) => `${s.hostWide ? `its whole host (unscoped, dev mode only)` : s.prefix} → ${s.tokenEnv}${env[s.tokenEnv] ? '' : ' (NOT SET)'}`)
    .join(', ');
}

/** `-c key=value` arguments for a git command line. */
export function configArgs(auth: GitAuth | undefined): string[] {
  return (auth?.config ?? []).flatMap((c) => ['-c', c]);
}
