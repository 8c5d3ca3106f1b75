// The worker's git tokens and the repositories each may be sent to (its scope): read from
// WEAVER_GIT_CREDENTIALS (a YAML or JSON file) and WEAVER_GIT_TOKEN/SCOPE/USER_<HOST>, checked at
// worker start, and the one token chosen for a repository.
// <HOST> is the URL's host (with its port, if the URL names one), upper-cased, every other
// character than A-Z and 0-9 replaced by '_': github.com → GITHUB_COM, 127.0.0.1:8080 → 127_0_0_1_8080.
// A token goes to the repositories its scope covers (the longest matching prefix wins), never to
// the rest of its host; a host token without a scope is used host-wide only in dev mode
// (WEAVER_DEV=1) and stops a production worker's start.
import path from 'node:path';
import { z } from 'zod';
import { truthy } from '../config';
import { isSecretEnvName } from '../domain/redact';
import { formatZodIssues } from '../domain/schema';
import { readSettingsFile } from './configFile';

/** The `<HOST>` part of WEAVER_GIT_TOKEN_<HOST>: upper case, anything but A-Z0-9 as '_'. */
export function hostEnvKey(host: string): string {
  return host.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

export const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

export /** `.` / `..` segments (also %-encoded): curl and ssh servers resolve them, walking out of a prefix. */
function hasDotSegments(s: string): boolean {
  const decoded = s.replace(/%2e/gi, '.').replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
  return decoded.split(/[/\\:]/).some((seg) => seg === '.' || seg === '..');
}

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
  const raw = readSettingsFile(abs, (issue) => new GitCredentialsError(source, [issue]));
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
