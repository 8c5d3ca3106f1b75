// Every child process of the worker starts in the spawn helper (./helper.ts, ./script.ts), never
// by forking the worker itself: `startProcess` for a streamed process (commands), `execFileVia`
// for a buffered one (git, the sandbox's small tools).
import { execProcess, SpawnHelperLost, type ExecOutcome } from './helper';

export { helperProcessCount, HelperProcess, PID_IN_RECORD, setSpawnHelperLog, SpawnHelperLost, spawnHelperPid, startProcess, startSpawnHelper, type StartOptions } from './helper';

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Bytes of stdout (and of stderr) kept; past it the process is killed and the call fails (default 16 MiB). */
  maxBuffer?: number;
  /** The process is killed (SIGTERM) after this long; the call fails. */
  timeout?: number;
  /** Aborting kills the process; the call fails. */
  signal?: AbortSignal;
}

/** Like execFile's error: `code` the exit code (or the spawn error's code), `stdout`/`stderr` what came. */
export interface ExecError extends Error {
  code?: number | string;
  signal?: string | null;
  killed?: boolean;
  stdout: string;
  stderr: string;
}

/**
 * `execFile` through the helper, promisified: resolves with stdout and stderr (UTF-8) on exit 0,
 * rejects with an ExecError otherwise.
 */
export async function execFileVia(file: string, args: string[], opts: ExecOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await execFileBytes(file, args, opts);
  return { stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

/** execFileVia with stdout and stderr as bytes (the error's are decoded all the same). */
export async function execFileBytes(file: string, args: string[], opts: ExecOptions = {}): Promise<{ stdout: Buffer; stderr: Buffer }> {
  const maxBuffer = opts.maxBuffer ?? 16 * 1024 * 1024;
  const fail = (message: string, extra: Partial<ExecError>): ExecError => Object.assign(new Error(message), { stdout: '', stderr: '', ...extra });
  if (opts.signal?.aborted) throw fail(`${file} aborted before it started`, { code: 'ABORT_ERR', killed: true });
  // Buffered in the helper: one message back at the end (execProcess), not a stream per output.
  const child = execProcess(file, args, { cwd: opts.cwd, env: opts.env, input: opts.input, maxBuffer });
  let killedWhy: string | undefined;
  const kill = (why: string) => {
    killedWhy ??= why;
    child.kill();
  };
  const timer = opts.timeout ? setTimeout(() => kill(`timed out after ${opts.timeout} ms`), opts.timeout) : undefined;
  const onAbort = () => kill('aborted');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let r: ExecOutcome;
  try {
    r = await child.done;
  } catch (err) {
    if (err instanceof SpawnHelperLost) throw err;
    throw fail((err as Error).message, { code: (err as NodeJS.ErrnoException).code });
  } finally {
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
  killedWhy ??= r.over;
  if (r.code === 0 && !killedWhy) return { stdout: r.stdout, stderr: r.stderr };
  const stdout = r.stdout.toString('utf8');
  const stderr = r.stderr.toString('utf8');
  const what = killedWhy ?? (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
  throw fail(`Command failed: ${file} ${args.join(' ')} (${what})\n${stderr}`, { code: r.code ?? undefined, signal: r.signal, killed: !!killedWhy, stdout, stderr });
}
