// Every child process of the worker starts in the spawn helper (./helper.ts, ./script.ts), never
// by forking the worker itself: `startProcess` for a streamed process (commands), `execFileVia`
// for a buffered one (git, the sandbox's small tools).
import type { Readable } from 'node:stream';
import { startProcess } from './helper';

export { HelperProcess, PID_IN_RECORD, setSpawnHelperLog, SpawnHelperLost, spawnHelperPid, startProcess, startSpawnHelper, type StartOptions } from './helper';

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
  const child = await startProcess(file, args, { cwd: opts.cwd, env: opts.env, input: opts.input }).catch((err: NodeJS.ErrnoException) => {
    throw fail(err.message, { code: err.code });
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let over: string | undefined;
  let killedWhy: string | undefined;
  const kill = (why: string) => {
    killedWhy ??= why;
    child.kill('SIGTERM');
  };
  const collect = (into: Buffer[], name: string) => {
    let n = 0;
    return (d: Buffer) => {
      n += d.length;
      if (n > maxBuffer) {
        over ??= `${name} maxBuffer length exceeded`;
        kill(over);
      } else into.push(d);
    };
  };
  child.stdout.on('data', collect(out, 'stdout'));
  child.stderr.on('data', collect(err, 'stderr'));
  const timer = opts.timeout ? setTimeout(() => kill(`timed out after ${opts.timeout} ms`), opts.timeout) : undefined;
  const onAbort = () => kill('aborted');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  // The output as well as the end: the chunks may still wait in the streams when 'close' came.
  const ended = (s: Readable) => new Promise<void>((r) => (s.readableEnded ? r() : s.once('end', () => r())));
  const [[code, sig]] = await Promise.all([child.closed, ended(child.stdout), ended(child.stderr)]);
  if (timer) clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  const bytes = { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  if (code === 0 && !killedWhy && !child.lost) return bytes;
  const stdout = bytes.stdout.toString('utf8');
  const stderr = bytes.stderr.toString('utf8');
  if (child.lost) throw Object.assign(child.lost, { stdout, stderr });
  const what = killedWhy ?? (sig ? `killed by ${sig}` : `exit code ${code}`);
  throw fail(`Command failed: ${file} ${args.join(' ')} (${what})\n${stderr}`, { code: code ?? undefined, signal: sig, killed: !!killedWhy, stdout, stderr });
}
