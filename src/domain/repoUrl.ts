// What a task's `repo` or `push.remote` names, read the way git reads it, and credentials taken
// out of URLs before anything is recorded (issue 8, item 4). Pure: the client, the workflow and
// the activities all use it.
//
// Forms (git's own rules, see `git help clone`, GIT URLS):
//   scheme://[user[:password]@]host[:port]/path   a URL (http, https, ssh, git, git+ssh, ssh+git)
//   [user@]host:path                              scp-like ssh, when no '/' comes before the first ':'
//   /abs, ./rel, ../rel, rel                      a local path
//   file:///abs, file://host/abs, file:abs        a local path too (git ignores a file URL's host)
//   transport::address                            a remote helper (ext::, fd::…): refused

export type RepoLocation =
  | { kind: 'url'; scheme: string }
  | { kind: 'scp' }
  | { kind: 'local'; path: string }
  | { kind: 'unsupported'; why: string };

/** URL schemes git may be sent to; any other would run a `git-remote-<scheme>` helper. */
export const REPO_URL_SCHEMES = ['http', 'https', 'ssh', 'git', 'git+ssh', 'ssh+git'] as const;

const SCHEME_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const REMOTE_HELPER = /^[A-Za-z][A-Za-z0-9+.-]*::/;

/** What `repo` (or a push remote) names: a URL, scp-like ssh, a local path, or something refused. */
export function locateRepo(repo: string): RepoLocation {
  if (REMOTE_HELPER.test(repo)) {
    return { kind: 'unsupported', why: 'remote-helper addresses (transport::address, e.g. ext::) are not allowed' };
  }
  if (/^file:/i.test(repo)) {
    // file://<anything>/path: git ignores the host part (credentials included) and decodes %XX.
    const rest = repo.slice('file:'.length);
    if (!rest.startsWith('//')) return { kind: 'local', path: rest };
    const slash = rest.indexOf('/', 2);
    const encoded = slash < 0 ? '' : rest.slice(slash);
    if (!encoded) return { kind: 'unsupported', why: 'a file:// URL needs an absolute path (file:///path/to/repo)' };
    return { kind: 'local', path: decodePercent(encoded) };
  }
  const scheme = SCHEME_URL.exec(repo)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (!(REPO_URL_SCHEMES as readonly string[]).includes(scheme)) {
      return { kind: 'unsupported', why: `the URL scheme "${scheme}" is not allowed (use ${REPO_URL_SCHEMES.join(', ')}, or a local path)` };
    }
    return { kind: 'url', scheme };
  }
  // git: "only recognized if there are no slashes before the first colon".
  const colon = repo.indexOf(':');
  const slash = repo.indexOf('/');
  if (colon > 0 && (slash < 0 || colon < slash)) return { kind: 'scp' };
  return { kind: 'local', path: repo };
}

/** `%XX` decoded, leaving malformed escapes as they are (as git does). */
function decodePercent(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

interface Authority {
  /** Everything up to and including `://`. */
  prefix: string;
  /** user[:password] (without the '@'), if any. */
  userinfo?: string;
  /** host[:port] and the rest of the URL. */
  rest: string;
}

/** Splits `scheme://userinfo@rest` the way git does: userinfo ends at the last '@' before the first '/'. */
function splitAuthority(url: string): Authority | undefined {
  const m = SCHEME_URL.exec(url);
  if (!m) return undefined;
  const prefix = m[0];
  const after = url.slice(prefix.length);
  const end = after.search(/[/?#]/);
  const authority = end < 0 ? after : after.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at < 0) return { prefix, rest: after };
  return { prefix, userinfo: authority.slice(0, at), rest: after.slice(at + 1) };
}

/** SSH URLs name the login user (`ssh://git@host/…`): not a secret, and needed. */
const KEEPS_USERNAME = new Set(['ssh', 'git+ssh', 'ssh+git']);

/**
 * `url` without credentials: `https://user:token@host/x` → `https://host/x` (for http(s) and
 * file URLs the whole userinfo goes — a token is often given as the user name); an ssh URL keeps
 * its login user and loses a password. Anything else is returned as it is.
 */
export function stripUrlCredentials(url: string): string {
  const a = splitAuthority(url);
  if (!a || a.userinfo === undefined) return url;
  const scheme = a.prefix.slice(0, -3).toLowerCase();
  if (KEEPS_USERNAME.has(scheme)) {
    const user = a.userinfo.split(':')[0];
    return `${a.prefix}${user ? `${user}@` : ''}${a.rest}`;
  }
  return `${a.prefix}${a.rest}`;
}

/** Whether `url` carries credentials that `stripUrlCredentials` would remove. */
export function hasUrlCredentials(url: string): boolean {
  return stripUrlCredentials(url) !== url;
}

/** The user name and password in a URL's userinfo, `%XX` decoded (undefined when there is none). */
export function urlCredentials(url: string): { username: string; password?: string } | undefined {
  const a = splitAuthority(url);
  if (!a?.userinfo) return undefined;
  const colon = a.userinfo.indexOf(':');
  const username = decodePercent(colon < 0 ? a.userinfo : a.userinfo.slice(0, colon));
  const password = colon < 0 ? undefined : decodePercent(a.userinfo.slice(colon + 1));
  return { username, password };
}

/** The fields of a task input that can hold a URL. */
interface RepoFields {
  repo: string;
  push?: boolean | { remote: string };
}

/**
 * A copy of `input` with credentials taken out of `repo` and `push.remote`, and which of the
 * two had some. The client does this before starting a task, the workflow at its entry (for
 * tasks started around the client), so no credential reaches history, search attributes,
 * memo or the workspace's `.git/config`.
 */
export function stripTaskCredentials<T extends RepoFields>(input: T): { input: T; stripped: ('repo' | 'push.remote')[] } {
  const stripped: ('repo' | 'push.remote')[] = [];
  let out = input;
  const repo = stripUrlCredentials(input.repo);
  if (repo !== input.repo) {
    out = { ...out, repo };
    stripped.push('repo');
  }
  const push = input.push;
  if (push && typeof push === 'object') {
    const remote = stripUrlCredentials(push.remote);
    if (remote !== push.remote) {
      out = { ...out, push: { ...push, remote } };
      stripped.push('push.remote');
    }
  }
  return { input: out, stripped };
}

/** One line saying what was taken out and how git gets credentials instead. */
export function strippedCredentialsNote(stripped: readonly string[]): string {
  return (
    `credentials were removed from ${stripped.join(' and ')} before anything was recorded (they would end up in ` +
    'the workflow history, search attributes and .git/config); the worker supplies git credentials from its ' +
    'environment instead (WEAVER_GIT_TOKEN_<HOST>, see the README)'
  );
}
