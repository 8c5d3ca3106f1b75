// Real worker processes for operations tests: `node --import tsx src/worker.ts`, so the pid a test
// signals or kills -9 is the worker itself (the `tsx` binary would put a wrapper process in between).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const ROOT = path.resolve(__dirname, '..', '..');
/** The `weaver` CLI as users run it (bin/weaver.mjs → tsx → src/cli.ts). */
export const WEAVER_BIN = path.join(ROOT, 'bin', 'weaver.mjs');

export interface Exit {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a process to completion; never rejects on a non-zero exit (the test looks at `code`). */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 90_000): Promise<Exit> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const ms = Date.now() - started;
      if (err && typeof err.code !== 'number') {
        // Spawn failure or killed by the timeout: nothing sensible to assert on.
        reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr, ms });
    });
  });
}

/** Shows a failed child's output in the jest failure message. */
export function explain(r: Exit): string {
  return `exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}


export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process is gone. */
  exited: Promise<number | string | null>;
}

const started: WorkerProcess[] = [];

/** Starts a worker process with `env` on top of this one's; resolves once it printed its banner. */
export async function startWorkerProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<WorkerProcess> {
  const w = spawnWorkerProcess(env);
  await bannerOf(w, timeoutMs);
  return w;
}

/** Starts a worker process with `env` on top of this one's, without waiting for anything. */
export function spawnWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  if (child.pid === undefined) throw new Error('could not spawn the worker');
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const w: WorkerProcess = { child, pid: child.pid, output: () => out, exited };
  started.push(w);
  return w;
}

/** Resolves once the worker printed its banner (it is polling); throws if it exits first or `timeoutMs` passes. */
export async function bannerOf(w: WorkerProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!w.output().includes('\n  operations:')) {
    if (w.child.exitCode !== null || w.child.signalCode !== null) throw new Error(`worker exited early (${w.child.exitCode ?? w.child.signalCode}):\n${w.output()}`);
    if (Date.now() > deadline) throw new Error(`worker printed no banner within ${timeoutMs} ms:\n${w.output()}`);
    await sleep(50);
  }
}

/** Kills (SIGKILL) every worker process a test started and not yet gone; use in afterAll. */
export function killStartedWorkers(): void {
  for (const w of started) {
    try {
      process.kill(w.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Live (non-zombie) processes whose command line contains `marker`, from /proc. */
/** The parent pid of `pid` (undefined once it is gone). */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmdline.includes(marker)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X' && Number(pid) !== process.pid) found.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface ActivityStart {
  type: string;
  /** Scheduled, and started (for a retried activity: its last attempt's start). */
  scheduledAt: number;
  startedAt?: number;
  attempt?: number;
  taskQueue?: string;
  /** For a retried activity: why its previous attempt ended, e.g. "timeout HEARTBEAT" (history keeps the last one). */
  lastFailure?: string;
  /** How it ended, if it did: "completed", "failed <message>", "timed out <TYPE>" (its last attempt). */
  closed?: string;
}

/** Every activity of a workflow run, from its history, in the order they were scheduled. */
export async function activitiesOf(client: Client, workflowId: string): Promise<ActivityStart[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const byId = new Map<string, ActivityStart>();
  const timeoutName = (f: temporal.api.failure.v1.IFailure | null | undefined) => {
    const t = f?.timeoutFailureInfo?.timeoutType ?? f?.cause?.timeoutFailureInfo?.timeoutType;
    return t ? temporal.api.enums.v1.TimeoutType[t].replace('TIMEOUT_TYPE_', '') : undefined;
  };
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
  for (const e of history.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) byId.set(String(e.eventId), { type: scheduled.activityType?.name ?? '?', scheduledAt: ms(e.eventTime), taskQueue: scheduled.taskQueue?.name ?? undefined });
    const startedEvent = e.activityTaskStartedEventAttributes;
    if (startedEvent) {
      const a = byId.get(String(startedEvent.scheduledEventId));
      const last = startedEvent.lastFailure;
      const timeout = timeoutName(last);
      const lastFailure = timeout ? `timeout ${timeout}` : (last?.message ?? undefined);
      if (a) Object.assign(a, { startedAt: ms(e.eventTime), attempt: startedEvent.attempt ?? undefined, lastFailure });
    }
    const ends: [{ scheduledEventId?: unknown; failure?: temporal.api.failure.v1.IFailure | null } | null | undefined, string][] = [
      [e.activityTaskCompletedEventAttributes, 'completed'],
      [e.activityTaskFailedEventAttributes, 'failed'],
      [e.activityTaskTimedOutEventAttributes, 'timed out'],
      [e.activityTaskCanceledEventAttributes, 'cancelled'],
    ];
    for (const [end, how] of ends) {
      const a = end && byId.get(String(end.scheduledEventId));
      if (a) a.closed = how === 'timed out' ? `${how} ${timeoutName(end.failure) ?? '?'}` : how === 'failed' ? `${how} ${end.failure?.message ?? ''}`.trim() : how;
    }
  }
  return [...byId.values()];
}
