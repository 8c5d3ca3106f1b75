// How git gets credentials: from the worker's environment through a credential helper set per
// command — never from the task, never written to a workspace's .git/config. Which token goes to
// which repository is ./gitTokens.ts's.
//
//   WEAVER_GIT_CREDENTIALS=/etc/weaver/git.yaml  URL prefixes → the env var holding each one's token
//   WEAVER_GIT_TOKEN_<HOST>=…                   a token for https://<host> …
//   WEAVER_GIT_SCOPE_<HOST>=https://<host>/acme/,…   … sent only for repositories under these prefixes
//   WEAVER_GIT_USER_<HOST>=…                    its user name (default x-access-token)
import { ApplicationFailure } from '@temporalio/activity';
import { locateRepo, stripUrlCredentials, urlCredentials } from '../domain/repoUrl';
import { chooseGitCredential, GitCredentialsError, LOOPBACK, type ChosenCredential } from './gitTokens';

export {
  checkGitCredentials,
  chooseGitCredential,
  GitCredentialsError,
  hostEnvKey,
  loadGitCredentialsFile,
  type ChosenCredential,
  type GitCredentialScope,
} from './gitTokens';

/** Extra `-c` settings and env for one git command that talks to a remote needing credentials. */
export interface GitAuth {
  config: string[];
  env: Record<string, string>;
}

export const GIT_CREDENTIALS_INVALID = 'GitCredentialsInvalid';

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
    if (err instanceof GitCredentialsError) throw ApplicationFailure.create({ type: GIT_CREDENTIALS_INVALID, message: err.message, nonRetryable: true });
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

/** `-c key=value` arguments for a git command line. */
export function configArgs(auth: GitAuth | undefined): string[] {
  return (auth?.config ?? []).flatMap((c) => ['-c', c]);
}
