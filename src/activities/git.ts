// The git that Weaver runs on workspaces: a minimal environment, configuration no repository
// can override (no hooks, no fsmonitor, no ext:: transport), no credential prompts, and a
// workspace's repository opened (or WorkspaceLost when this worker no longer has it).
// Every git runs in the spawn helper (./spawner), not forked from the worker.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { configArgs, type GitAuth } from './gitCredentials';
import { execFileBytes, type ExecError } from './spawner';
import type { WorkspaceHandle } from './types';

export const GIT_IDENTITY = ['-c', 'user.name=Weaver', '-c', 'user.email=weaver@localhost'];

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
  // The names, then only the values passed: each value read from process.env is a getenv() and
  // a string made; all of them (Object.entries) cost ~3x more, at every git call.
  for (const name of Object.keys(base)) {
    const value = GIT_ENV_PASSED.test(name) ? base[name] : undefined;
    if (value !== undefined) env[name] = value;
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

/** git in one repository, with `gitEnv()` and the options it was opened with. */
export interface Git {
  /** Runs `git <args>`; resolves with stdout, rejects with git's last words on a non-zero exit. */
  raw(args: string[]): Promise<string>;
}

/**
 * git in `baseDir` with `gitEnv()`; `signal` aborting kills the running git process.
 * `auth` (gitCredentials.ts gitAuth): the credential helper and its env, for commands that talk to a remote.
 */
export function gitFor(baseDir: string | undefined, signal?: AbortSignal, auth?: GitAuth): Git {
  return { raw: (args) => gitRun(baseDir, args, { signal, auth }) };
}

/** Throws WorkspaceLost when this worker no longer has the workspace: the workflow rebuilds it. */
export function openWorkspace(ws: WorkspaceHandle): Git {
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
  /** Aborting kills git. */
  signal?: AbortSignal;
  /** The credential helper and its env (a remote). */
  auth?: GitAuth;
  /** More environment on top of gitEnv(). */
  env?: Record<string, string>;
}

/**
 * Options that make git run a program they name: never from Weaver's callers, whose values (a
 * remote, a branch) might come from a task; refused before they reach git.
 */
const RUNS_A_PROGRAM = /^--(upload-pack|receive-pack|exec)(=|$)/;

/** git in `dir` with `gitEnv()` (see gitFor). Resolves with stdout. */
export async function gitRun(dir: string | undefined, args: string[], opts: GitRunOptions = {}): Promise<string> {
  return (await gitBytes(dir, args, opts)).toString('utf8');
}

/** gitRun, stdout as bytes (blobs). */
export async function gitBytes(dir: string | undefined, args: string[], opts: GitRunOptions = {}): Promise<Buffer> {
  const end = args.indexOf('--');
  const unsafe = (end < 0 ? args : args.slice(0, end)).find((a) => RUNS_A_PROGRAM.test(a));
  if (unsafe) throw new Error(`git ${subcommand(args)}: refusing the option ${unsafe.split('=')[0]}`);
  const env = { ...gitEnv(), ...opts.auth?.env, ...opts.env, ...(opts.indexFile ? { GIT_INDEX_FILE: opts.indexFile } : {}) };
  try {
    const out = await execFileBytes('git', [...configArgs(opts.auth), ...args], { cwd: dir, env, input: opts.input, maxBuffer: 256 * 1024 * 1024, signal: opts.signal });
    return out.stdout;
  } catch (e) {
    const err = e as ExecError;
    const code = typeof err.code === 'number' ? err.code : -1;
    if (opts.okCodes?.includes(code)) return Buffer.from(err.stdout, 'utf8');
    throw new Error(`git ${subcommand(args)} failed (${err.signal ?? code}): ${err.stderr?.trim().split('\n').slice(-3).join(' ') || err.message}`);
  }
}

/** `commit` in `-c user.name=… commit …`: what a message names. */
function subcommand(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c' || args[i] === '-C') i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return args[0] ?? '';
}

/**
 * The staged blobs of `paths` (`:path`), in one `git cat-file --batch`; a path not in the index
 * (or whose name holds a newline, which the batch cannot name) is left out.
 */
export async function stagedBlobs(dir: string, paths: string[]): Promise<Map<string, Buffer>> {
  const asked = paths.filter((p) => !p.includes('\n'));
  const blobs = new Map<string, Buffer>();
  if (!asked.length) return blobs;
  const out = await gitBytes(dir, ['cat-file', '--batch'], { input: asked.map((p) => `:${p}\n`).join('') });
  let at = 0;
  for (const p of asked) {
    const eol = out.indexOf(0x0a, at);
    if (eol < 0) break;
    const header = out.subarray(at, eol).toString('utf8');
    at = eol + 1;
    // `<sha> <type> <size>`, then the content and a newline; `<name> missing` otherwise.
    const found = / (\w+) (\d+)$/.exec(header);
    if (!found) continue;
    const size = Number(found[2]);
    if (found[1] === 'blob') blobs.set(p, out.subarray(at, at + size));
    at += size + 1;
  }
  return blobs;
}
