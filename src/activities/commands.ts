// Runs a command (tests, setup) confined in time and in its own process group (design rule 7):
// output is streamed, redacted (rule 6), into a log file of bounded size (the head and the tail
// past `maxOutputBytes`, with a marker of what was dropped) and a short tail; on timeout or
// cancel the whole group gets SIGTERM, then SIGKILL after a grace period. With `dieWithWorker`
// the group also dies with the worker (a parent-death signal and a watchdog), and `lockFile` /
// `recordDir` keep a rerun from overlapping an older run. Plain async functions; the activity
// wrappers live in ./index.ts.
// Over 300 lines because runCommand is one process's life (spawn, stream, time out, cancel,
// reap) over state its handlers share, and its options and result are documented field by field.
import { createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { secretsFromEnv, StreamRedactor } from '../domain/redact';
import type { Command } from '../domain/schema';
import { TreeSampler, type SampledUsage } from './processUsage';
import { hasPdeathsig, killGroup, killRecordedGroup, processGroupAlive, sleep, unrecordGroup } from './processGroups';
import { PID_IN_RECORD, startProcess, type HelperProcess } from './spawner';

export { processGroupAlive };

export interface RunCommandOptions {
  /** A string runs through `/bin/sh -c`; an array is argv, spawned directly (no shell). */
  command: Command;
  cwd: string;
  /** Wall-clock limit; `Infinity` for none. */
  timeoutSec: number;
  /** Receives stdout and stderr, interleaved and redacted. Created (parents too) or truncated. */
  logFile: string;
  /** Aborting it kills the process group; the promise then resolves with `cancelled: true`. */
  signal?: AbortSignal;
  /** Called about every `tickMs` while the command runs (the activity's heartbeat). */
  onTick?: () => void;
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Bytes of output kept for `tail` (default 4096). */
  tailBytes?: number;
  /**
   * Bytes of (redacted) output the log keeps (default 16 MiB): past it, the first half stays in
   * the file, the last half is kept in memory, and a marker line says how much was dropped in
   * between. The command keeps running: a chatty suite still gets its verdict.
   */
  maxOutputBytes?: number;
  /**
   * Literal values to redact from the log and the tail, on top of the secret-looking vars of
   * `process.env` and `env` (see secretsFromEnv) and the generic credential patterns.
   */
  secrets?: string[];
  /** Between SIGTERM and SIGKILL (default 2000 ms). */
  killGraceMs?: number;
  /** Period of `onTick` (default 1000 ms). */
  tickMs?: number;
  /**
   * The group dies with this process even on `kill -9`: the command gets a parent-death signal
   * (`setpriv --pdeathsig KILL`, when util-linux has it: its parent is the spawn helper) and the
   * helper, outside the group, kills the whole group when the worker's end of its channel closes. Linux.
   */
  dieWithWorker?: boolean;
  /**
   * A pid file naming the running group (outside the repository: the workspace's parent). A run
   * that finds a live older run recorded there kills that group first: reruns never overlap.
   */
  lockFile?: string;
  /** A directory where the group is recorded while it runs: a worker restarted on the same slot kills what its predecessor left (src/workerSlot.ts). */
  recordDir?: string;
  /**
   * Sample the CPU time and memory of the command's process tree from /proc every this many ms
   * (see processUsage.ts), for a caller that has no cgroup counting them; the figures come back
   * as `usage`. Off by default: sampling costs the worker a little CPU per command.
   */
  sampleUsageMs?: number;
}

export interface RunCommandResult {
  /** null when the process was killed by a signal or could not start. */
  exitCode: number | null;
  /** The signal that ended the process, e.g. `SIGTERM`. */
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  /** The last ≤ tailBytes bytes of the (redacted) output, valid UTF-8. */
  tail: string;
  /** Bytes the command wrote to stdout + stderr (before redaction). */
  outputBytes: number;
  /** Bytes of (redacted) output dropped from the middle of the log (past `maxOutputBytes`); 0 when all of it is there. */
  droppedBytes: number;
  /** Pid of the command, which is also its process group id. */
  pid?: number;
  /** Why the command could not start (then exitCode is 127 or 126, as a shell would say). */
  error?: string;
  /** With `sampleUsageMs`: what the process tree used, as far as the samples saw. */
  usage?: SampledUsage;
}

const DEFAULT_TAIL_BYTES = 4096;
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** A cut moves to a line boundary when one is this close: the kept parts read as whole lines. */
const LINE_SNAP_BYTES = 4096;
/** Output handled between two turns given to the event loop (about 5 ms of redaction). */
const YIELD_BYTES = 256 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * What a recorded command is started through: it reads "go" on fd 3 (written once its group is
 * recorded) and becomes the command (exec: same pid, same group). Without "go" (the worker died
 * first) it does not run.
 */
const GATE = 'IFS= read -r go <&3; exec 3<&-; [ "$go" = go ] || exit 125; exec "$@"';

/** Keeps the last `capacity` bytes written to it. */
class ByteRing {
  private readonly buf: Buffer;
  private start = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  push(chunk: Buffer): void {
    const cap = this.capacity;
    if (cap === 0 || chunk.length === 0) return;
    if (chunk.length >= cap) {
      chunk.copy(this.buf, 0, chunk.length - cap);
      this.start = 0;
      this.size = cap;
      return;
    }
    let end = (this.start + this.size) % cap;
    const first = Math.min(chunk.length, cap - end);
    chunk.copy(this.buf, end, 0, first);
    chunk.copy(this.buf, 0, first);
    end = (end + chunk.length) % cap;
    const size = this.size + chunk.length;
    if (size > cap) {
      this.start = end;
      this.size = cap;
    } else {
      this.size = size;
    }
  }

  toBuffer(): Buffer {
    const cap = this.capacity;
    if (this.start + this.size <= cap) return Buffer.from(this.buf.subarray(this.start, this.start + this.size));
    return Buffer.concat([this.buf.subarray(this.start), this.buf.subarray(0, (this.start + this.size) % cap)]);
  }
}

/** The bytes of what a list holds, for people (`3.5 MiB`): what `weaver gc` freed. */
export const totalBytes = (xs: readonly { bytes?: number }[]) => formatBytes(xs.reduce((n, x) => n + (x.bytes ?? 0), 0));

/** `1008 MiB`, `3.5 KiB`: sizes in the marker a person and the model read. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** The line that stands for the output dropped from the middle of a log. */
export function droppedMarker(dropped: number, keptEach: number): string {
  return `\n… ${formatBytes(dropped)} of output dropped (output limit: the first and the last ${formatBytes(keptEach)} are kept) …\n`;
}

/**
 * The log's size bound: the first `headCap` bytes go to the file as they come, the rest through
 * a ring of `tailCap` bytes (allocated only once the head is full) written after a marker at the
 * end. Cuts fall on UTF-8 character boundaries, and on line boundaries when one is near.
 */
class BoundedLog {
  private logged = 0;
  private ring?: ByteRing;
  private overflow = 0;
  readonly headCap: number;
  readonly tailCap: number;

  constructor(bound: number) {
    this.headCap = Math.ceil(bound / 2);
    this.tailCap = Math.max(0, bound - this.headCap);
  }

  /** What of `bytes` goes to the file now (the rest is held for the end). */
  take(bytes: Buffer): Buffer | undefined {
    if (!this.ring) {
      if (this.logged + bytes.length <= this.headCap) {
        this.logged += bytes.length;
        return bytes;
      }
      let cut = this.headCap - this.logged;
      while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
      const nl = cut > 0 ? bytes.lastIndexOf(0x0a, cut - 1) : -1;
      if (nl >= 0 && cut - (nl + 1) < LINE_SNAP_BYTES) cut = nl + 1;
      this.logged += cut;
      this.ring = new ByteRing(this.tailCap);
      this.ring.push(bytes.subarray(cut));
      this.overflow = bytes.length - cut;
      return cut > 0 ? bytes.subarray(0, cut) : undefined;
    }
    this.ring.push(bytes);
    this.overflow += bytes.length;
    return undefined;
  }

  /** The end of the log: the held tail, after a marker when some was dropped; and how much was. */
  end(): { bytes: Buffer; dropped: number } {
    if (!this.ring) return { bytes: Buffer.alloc(0), dropped: 0 };
    const held = this.ring.toBuffer();
    if (this.overflow <= this.tailCap) return { bytes: held, dropped: 0 };
    let start = 0;
    while (start < held.length && start < 3 && (held[start] & 0xc0) === 0x80) start++;
    const nl = held.indexOf(0x0a, start);
    if (nl >= 0 && nl - start < LINE_SNAP_BYTES) start = nl + 1;
    const kept = held.subarray(start);
    const dropped = this.overflow - kept.length;
    return { bytes: Buffer.concat([Buffer.from(droppedMarker(dropped, this.headCap), 'utf8'), kept]), dropped };
  }
}

/** Decodes a byte tail that may start inside a multi-byte character. */
export function decodeTail(bytes: Buffer): string {
  let i = 0;
  while (i < bytes.length && i < 3 && (bytes[i] & 0xc0) === 0x80) i++;
  return bytes.subarray(i).toString('utf8');
}


/**
 * Runs `command` in a new process group, streaming redacted output to `logFile`. Resolves (never
 * rejects) for anything the command does — non-zero exit, timeout, cancel, failure to start;
 * rejects only if `cwd` is unusable or the log cannot be written.
 *
 * Leftover processes in the group after the command itself exits (background jobs) are
 * terminated too — SIGTERM, SIGKILL after the grace — so nothing outlives the call.
 */
export async function runCommand(opts: RunCommandOptions): Promise<RunCommandResult> {
  const tailBytes = Math.max(0, Math.floor(opts.tailBytes ?? DEFAULT_TAIL_BYTES));
  const graceMs = opts.killGraceMs ?? 2000;
  const tickMs = opts.tickMs ?? 1000;
  if (!(opts.timeoutSec > 0)) throw new TypeError(`timeoutSec must be positive, got ${opts.timeoutSec}`);
  if (typeof opts.command === 'string' ? opts.command.length === 0 : opts.command.length === 0) {
    throw new TypeError('empty command');
  }
  const cwdStat = await stat(opts.cwd).catch((err: Error) => {
    throw new Error(`cannot run command in ${opts.cwd}: ${err.message}`);
  });
  if (!cwdStat.isDirectory()) throw new Error(`cannot run command in ${opts.cwd}: not a directory`);

  await mkdir(path.dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'w' });
  await new Promise<void>((resolve, reject) => {
    log.once('open', () => resolve());
    log.once('error', reject);
  });

  const secrets = [...secretsFromEnv(process.env), ...(opts.env ? secretsFromEnv(opts.env) : []), ...(opts.secrets ?? [])];
  const redactor = new StreamRedactor(secrets);
  const ring = new ByteRing(tailBytes);
  const bounded = new BoundedLog(Math.max(2, Math.floor(opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES)));
  const started = Date.now();
  let outputBytes = 0;
  let droppedBytes = 0;
  let logError: Error | undefined;
  log.on('error', (err) => {
    logError ??= err;
  });

  const emit = (text: string): boolean => {
    if (!text) return true;
    const bytes = Buffer.from(text, 'utf8');
    ring.push(bytes);
    const now = bounded.take(bytes);
    if (logError || !now) return true;
    return log.write(now);
  };

  /** Our own notes go through the redactor too, so they keep their place in the output. */
  const note = (text: string) => emit(redactor.push(text));

  const finishLog = async (): Promise<void> => {
    emit(redactor.flush());
    const end = bounded.end();
    droppedBytes = end.dropped;
    if (end.bytes.length && !logError) log.write(end.bytes);
    if (logError || log.destroyed) {
      log.destroy();
    } else {
      await new Promise<void>((resolve) => {
        log.once('error', () => resolve());
        log.end(() => resolve());
      });
    }
    if (logError) throw new Error(`cannot write command log ${opts.logFile}: ${logError.message}`);
  };

  const result = (over: Partial<RunCommandResult>): RunCommandResult => ({
    exitCode: null,
    signal: null,
    timedOut: false,
    cancelled: false,
    durationMs: Date.now() - started,
    tail: decodeTail(ring.toBuffer()),
    outputBytes,
    droppedBytes,
    ...over,
  });

  if (opts.signal?.aborted) {
    note('weaver: command cancelled before it started\n');
    await finishLog();
    return result({ cancelled: true });
  }

  // A live older run in the same place (its worker was given up on, or died) goes first.
  if (opts.lockFile && (await killRecordedGroup(opts.lockFile))) note('weaver: killed an older run of a command still running here\n');
  let [file, args]: [string, string[]] =
    typeof opts.command === 'string' ? ['/bin/sh', ['-c', opts.command]] : [opts.command[0], opts.command.slice(1)];
  // A recorded command waits at the gate until the helper has recorded its group.
  const recordsAt = [opts.lockFile, opts.recordDir && path.join(opts.recordDir, `${PID_IN_RECORD}.pid`)].filter((f): f is string => !!f);
  const gated = recordsAt.length > 0;
  if (gated) [file, args] = ['/bin/sh', ['-c', GATE, 'weaver-gate', file, ...args]];
  // setpriv execs the command: the pid (and the group we kill) stays the command's own.
  if (opts.dieWithWorker && (await hasPdeathsig())) [file, args] = ['setpriv', ['--pdeathsig', 'KILL', '--', file, ...args]];
  let child: HelperProcess;
  try {
    // Started by the spawn helper (./spawner), never by forking the worker. With `guard`, the
    // helper kills the group if the worker dies first: the watchdog outside the group.
    child = await startProcess(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true, // setsid(): the command leads a new process group we can kill as a whole
      guard: opts.dieWithWorker,
      // Recorded by the helper before the command runs (it waits at the gate): a worker killed
      // at any moment after the spawn leaves the group to its successor and to a rerun. Written
      // after the spawn returned, with no gate, the record could come too late (the shutdown
      // test's orphan, under load).
      ...(gated ? { records: recordsAt } : {}),
    });
  } catch (err) {
    // E.g. ENOENT, or EINVAL for a NUL in an argument.
    const message = (err as Error).message;
    note(`weaver: cannot start command: ${message}\n`);
    await finishLog();
    return result({ exitCode: (err as NodeJS.ErrnoException).code === 'EACCES' ? 126 : 127, error: message });
  }

  const pid = child.pid;
  const records = recordsAt.map((f) => f.replace(PID_IN_RECORD, String(pid)));
  const sampler = opts.sampleUsageMs ? new TreeSampler(pid, opts.sampleUsageMs) : undefined;

  return new Promise<RunCommandResult>((resolve, reject) => {
    const stdout = child.stdout!;
    const stderr = child.stderr!;
    let timedOut = false;
    let cancelled = false;
    let exited = false;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let termSentAt: number | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    // ---- output: decode per stream, redact, tee into ring + log, with backpressure ----
    let paused = false;
    // libuv reads a pipe up to 32 times per turn of the event loop: a flood would run ~40 ms of
    // redaction at a time. A pause every YIELD_BYTES lets timers and heartbeats in between.
    let yielding = false;
    let sinceYield = 0;
    const onDrain = () => {
      paused = false;
      if (yielding) return;
      stdout.resume();
      stderr.resume();
    };
    log.on('drain', onDrain);
    const pipeFrom = (stream: NodeJS.ReadableStream) => {
      const decoder = new StringDecoder('utf8');
      stream.on('data', (chunk: Buffer) => {
        outputBytes += chunk.length;
        if (!emit(redactor.push(decoder.write(chunk))) && !paused) {
          paused = true;
          stdout.pause();
          stderr.pause();
        }
        sinceYield += chunk.length;
        if (sinceYield >= YIELD_BYTES && !yielding) {
          yielding = true;
          sinceYield = 0;
          stdout.pause();
          stderr.pause();
          setImmediate(() => {
            yielding = false;
            if (paused) return;
            stdout.resume();
            stderr.resume();
          });
        }
      });
      stream.on('end', () => {
        emit(redactor.push(decoder.end()));
      });
      stream.on('error', () => undefined);
    };
    pipeFrom(stdout);
    pipeFrom(stderr);
    const streamsClosed = Promise.all([
      new Promise<void>((r) => (stdout.closed ? r() : stdout.once('close', () => r()))),
      new Promise<void>((r) => (stderr.closed ? r() : stderr.once('close', () => r()))),
    ]);

    // ---- termination ----
    const terminate = () => {
      if (termSentAt !== undefined) return;
      termSentAt = Date.now();
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    };

    const tick = opts.onTick
      ? setInterval(() => {
          try {
            opts.onTick?.();
          } catch {
            // A failing heartbeat must not kill the command.
          }
        }, tickMs)
      : undefined;
    const timeoutMs = Number.isFinite(opts.timeoutSec) ? Math.min(opts.timeoutSec * 1000, MAX_TIMER_MS) : undefined;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (exited || cancelled) return;
            timedOut = true;
            note(`\nweaver: command timed out after ${opts.timeoutSec}s; killing its process group\n`);
            terminate();
          }, timeoutMs);
    const onAbort = () => {
      if (exited || timedOut) return;
      cancelled = true;
      note('\nweaver: command cancelled; killing its process group\n');
      terminate();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // A log we cannot write is an infrastructure failure: stop the command, then reject.
    const onLogError = () => terminate();
    log.once('error', onLogError);

    const cleanup = () => {
      if (tick) clearInterval(tick);
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      log.off('drain', onDrain);
      log.off('error', onLogError);
    };

    const settle = async (over: Partial<RunCommandResult>) => {
      if (settled) return;
      settled = true;
      cleanup();
      // The group is gone: stand the watchdog down and drop the records.
      child.release();
      await Promise.all(records.map((f) => unrecordGroup(f, pid)));
      // Stopped once the leftovers are gone too: their CPU and memory count.
      const usage = await sampler?.stop();
      // The helper died under the command (its group was killed): not the command's outcome.
      if (child.lost) note(`\nweaver: ${child.lost.message}\n`);
      try {
        await finishLog();
        if (child.lost) return reject(child.lost);
        resolve(result({ pid, timedOut, cancelled, ...(usage ? { usage } : {}), ...over }));
      } catch (err) {
        reject(err);
      }
    };

    void child.exited.then(([code, sig]) => {
      exited = true;
      exitCode = code;
      exitSignal = sig;
      void (async () => {
        // Anything left in the group (background jobs, a grandchild holding the pipe) goes too.
        if (await processGroupAlive(pid)) {
          const since = termSentAt ?? Date.now();
          if (termSentAt === undefined) {
            termSentAt = since;
            killGroup(pid, 'SIGTERM');
          }
          while (Date.now() - since < graceMs && (await processGroupAlive(pid))) await sleep(50);
          killGroup(pid, 'SIGKILL');
        }
        // Drain what is left in the pipes — output still on its way from the helper keeps coming
        // after the exit — and give up on a pipe held open by an escaped process: 1 s without
        // output, or 10 s of it.
        let drained = false;
        void streamsClosed.then(() => (drained = true));
        const drainFrom = Date.now();
        for (let seen = -1; !drained && seen !== outputBytes && Date.now() - drainFrom < 10_000; ) {
          seen = outputBytes;
          await Promise.race([streamsClosed, sleep(1000)]);
        }
        if (!drained) {
          stdout.destroy();
          stderr.destroy();
        }
        await settle({ exitCode, signal: exitSignal });
      })();
    });
  });
}

