// The git that Weaver runs on workspaces: a minimal environment, configuration no repository
// can override (no hooks, no fsmonitor, no ext:: transport), no credential prompts, and a
// workspace's repository opened (or WorkspaceLost when this worker no longer has it).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { simpleGit, type SimpleGit, type SimpleGitOptions } from 'simple-git';
import type { GitAuth } from './gitCredentials';
import type { WorkspaceHandle } from './types';

export const GIT_IDENTITY = ['-c', 'user.name=Weaver', '-c', 'user.email=weaver@localhost'];

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
 * `auth` (gitCredentials.ts gitAuth): the credential helper and its env, for commands that talk to a remote.
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

/** Throws WorkspaceLost when this worker no longer has the workspace: the workflow rebuilds it. */
export function openWorkspace(ws: WorkspaceHandle): SimpleGit {
  if (!existsSync(path.join(ws.dir, '.git'))) {
    throw ApplicationFailure.nonRetryable(`workspace ${ws.dir} is gone from this worker`, 'WorkspaceLost');
  }
  return gitFor(ws.dir);
}

export interface GitRunOptions {
  /** Written to git's stdin (the `-z --stdin` forms: any path, no argv limit, no pathspec magic). */
  input?: string;
  /** Another index than `.git/index` (GIT_INDEX_FILE): the workspace's state after setup. */
  indexFile?: string;
  /** Exit codes that are answers, not errors (`check-ignore` says "none ignored" with 1). */
  okCodes?: number[];
}

/**
 * git in `dir` with `gitEnv()` (the same hardening as gitFor), for what simple-git cannot do:
 * stdin, another index file, exit codes that are answers. Resolves with stdout.
 */
export function gitRun(dir: string, args: string[], opts: GitRunOptions = {}): Promise<string> {
  const env = { ...gitEnv(), ...(opts.indexFile ? { GIT_INDEX_FILE: opts.indexFile } : {}) };
  return new Promise((resolve, reject) => {
    const child = execFile('git', args, { cwd: dir, env, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err && typeof err.code === 'number' ? err.code : err ? -1 : 0;
      if (code === 0 || opts.okCodes?.includes(code)) resolve(stdout);
      else reject(new Error(`git ${args[0]} failed (${code}): ${stderr.trim().split('\n').slice(-3).join(' ') || (err as Error).message}`));
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}
