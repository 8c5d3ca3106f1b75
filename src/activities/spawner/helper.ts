// The worker's side of the spawn helper (./script.ts): starting it, the processes it starts
// (HelperProcess: the parts of ChildProcess Weaver uses), its death. One helper per worker
// process, started on first use (the worker starts it before it polls); if it dies, the commands it ran have their groups
// killed by the worker, their calls fail (an infrastructure error, retried), and the next call
// starts a new helper — both said on stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { HELPER_ARGV_TAG, HELPER_SCRIPT } from './script';

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** setsid(): the process leads a new process group (its pid is the group's id). */
  detached?: boolean;
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** With `detached`: the helper kills the group if the worker dies before `release()`. */
  guard?: boolean;
  /**
   * Files the helper writes `<pgid> <start time>` into before the process may run (its
   * `PID_IN_RECORD` replaced by the pid). The process must wait at a gate that reads "go" on fd 3
   * (commands.ts GATE): the record then exists before the command's first instruction.
   */
  records?: string[];
}

/** In a record's path: replaced by the process's pid. */
export const PID_IN_RECORD = '%PID%';

/** The failure of a process whose helper died under it: not the process's outcome. */
export class SpawnHelperLost extends Error {
  constructor(readonly helperPid: number | undefined, why: string) {
    super(`the spawn helper (pid ${helperPid ?? '?'}) died (${why}) while a process it started ran; that process's group was killed`);
    this.name = 'SpawnHelperLost';
  }
}

/** A process started by the helper: the parts of ChildProcess that Weaver uses. */
export class HelperProcess extends EventEmitter {
  readonly stdout: Readable;
  readonly stderr: Readable;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Set when the helper died while this process ran (its group was killed). */
  lost?: SpawnHelperLost;
  private readonly paused = { 1: false, 2: false };
  /**
   * How the process ended, and once its output is all pushed. Promises, not only events: the
   * helper's messages can all arrive before the caller's `await` of the start resumes.
   */
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  readonly closed: Promise<[number | null, NodeJS.Signals | null]>;

  constructor(
    readonly pid: number,
    private readonly helper: Helper,
    private readonly id: number,
    private readonly groupId: number | undefined,
  ) {
    super();
    this.exited = new Promise((r) => this.once('exit', (code, sig) => r([code, sig])));
    this.closed = new Promise((r) => this.once('close', (code, sig) => r([code, sig])));
    // Flow control: a full buffer pauses the child's pipe in the helper, a read resumes it.
    const stream = (fd: 1 | 2) =>
      new Readable({
        read: () => {
          if (!this.paused[fd]) return;
          this.paused[fd] = false;
          helper.send({ op: 'resume', id, fd });
        },
      });
    this.stdout = stream(1);
    this.stderr = stream(2);
  }

  /** Signals the process itself (a syscall: nothing forks). */
  kill(sig: NodeJS.Signals = 'SIGTERM'): boolean {
    try {
      process.kill(this.pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The caller is done with the process (its group is over or killed): the helper no longer kills
   * the group when the worker dies, and a pipe an escaped process holds open keeps no one waiting.
   */
  release(): void {
    this.helper.release(this.id);
  }

  /** @internal a message from the helper about this process. */
  onMessage(m: HelperEvent): void {
    if (m.ev === 'data') {
      const s = m.fd === 2 ? this.stderr : this.stdout;
      if (!s.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)) && !this.paused[m.fd]) {
        this.paused[m.fd] = true;
        this.helper.send({ op: 'pause', id: this.id, fd: m.fd });
      }
    } else if (m.ev === 'exit') {
      this.exitCode = m.code;
      this.signalCode = m.signal;
      this.emit('exit', m.code, m.signal);
    } else if (m.ev === 'close') {
      this.stdout.push(null);
      this.stderr.push(null);
      this.emit('close', this.exitCode, this.signalCode);
    }
  }

  /** @internal the helper died: the group goes, and the process ends as killed. */
  onHelperLost(lost: SpawnHelperLost): void {
    this.lost = lost;
    if (this.groupId !== undefined) {
      try {
        process.kill(-this.groupId, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (this.exitCode === null && this.signalCode === null) this.onMessage({ id: this.id, ev: 'exit', code: null, signal: 'SIGKILL' });
    this.onMessage({ id: this.id, ev: 'close' });
  }
}

type HelperEvent =
  | { id: number; ev: 'spawn'; pid: number }
  | { id: number; ev: 'error'; code?: string; message: string }
  | { id: number; ev: 'data'; fd: 1 | 2; data: Uint8Array }
  | { id: number; ev: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { id: number; ev: 'close' };

interface Pending {
  resolve(p: HelperProcess): void;
  reject(err: Error): void;
  groupId?: boolean;
  proc?: HelperProcess;
}

/** The heap the helper may use: it holds only the bookkeeping of its children and their chunks in flight. */
const HELPER_HEAP_MB = 32;

class Helper {
  readonly child: ChildProcess;
  private readonly procs = new Map<number, Pending>();
  private nextId = 1;
  dead = false;

  constructor(private readonly onDeath: (h: Helper, why: string, running: number) => void) {
    this.child = spawn(process.execPath, [`--max-old-space-size=${HELPER_HEAP_MB}`, '-e', HELPER_SCRIPT, ...HELPER_ARGV_TAG], {
      detached: true, // outside the worker's group: a signal to that group leaves the watchdog standing
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      env: { PATH: process.env.PATH ?? '' },
    });
    this.child.on('message', (m: HelperEvent) => this.onMessage(m));
    this.child.on('error', () => undefined);
    this.child.once('exit', (code, sig) => this.died(sig ?? `exit ${code}`));
    this.idle();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(m: object): void {
    if (this.dead || !this.child.connected) return;
    this.child.send(m, undefined, undefined, () => undefined);
  }

  start(file: string, args: string[], opts: StartOptions): Promise<HelperProcess> {
    if (this.dead) return Promise.reject(new SpawnHelperLost(this.pid, 'before the start'));
    const id = this.nextId++;
    this.busy();
    return new Promise<HelperProcess>((resolve, reject) => {
      this.procs.set(id, { resolve, reject, groupId: opts.detached });
      const input = typeof opts.input === 'string' ? Buffer.from(opts.input, 'utf8') : opts.input;
      // A plain copy: an env that is a proxy (jest's process.env) cannot be cloned.
      const env = Object.fromEntries(Object.entries(opts.env ?? process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));
      try {
        this.send({ op: 'spawn', id, file, args: [...args], cwd: opts.cwd, env, detached: !!opts.detached, guard: !!opts.guard, ...(input ? { input } : {}), ...(opts.records?.length ? { records: opts.records, pidMark: PID_IN_RECORD } : {}) });
      } catch (err) {
        this.settle(id);
        reject(err as Error);
      }
    });
  }

  private onMessage(m: HelperEvent): void {
    const p = this.procs.get(m.id);
    if (!p) return;
    if (m.ev === 'spawn') {
      p.proc = new HelperProcess(m.pid, this, m.id, p.groupId ? m.pid : undefined);
      p.resolve(p.proc);
    } else if (m.ev === 'error') {
      this.settle(m.id);
      p.reject(Object.assign(new Error(m.message), { code: m.code }));
    } else {
      p.proc?.onMessage(m);
      if (m.ev === 'close') this.settle(m.id);
    }
  }

  release(id: number): void {
    this.send({ op: 'release', id });
    this.settle(id);
  }

  private settle(id: number): void {
    this.procs.delete(id);
    if (!this.procs.size) this.idle();
  }

  private died(why: string): void {
    if (this.dead) return;
    this.dead = true;
    const running = [...this.procs.values()];
    this.procs.clear();
    const lost = new SpawnHelperLost(this.pid, why);
    for (const p of running) {
      if (p.proc) p.proc.onHelperLost(lost);
      else p.reject(lost);
    }
    this.onDeath(this, why, running.length);
  }

  // Idle, the helper keeps no one alive (a test process, a CLI); busy, it does, like a child would.
  private idle(): void {
    this.child.unref();
    this.child.channel?.unref();
  }

  private busy(): void {
    this.child.ref();
    this.child.channel?.ref();
  }
}

let current: Helper | undefined;
let restarts = 0;
/** Where the helper's deaths and restarts are said (the worker points it at its logger). */
let say = (message: string): void => void process.stderr.write(`weaver: ${message}\n`);

export function setSpawnHelperLog(log: (message: string) => void): void {
  say = log;
}

function helper(): Helper {
  if (current && !current.dead) return current;
  const again = current !== undefined;
  current = new Helper((h, why, running) => {
    if (current === h) say(`spawn helper (pid ${h.pid}) died (${why})${running ? `; ${running} process(es) it ran were killed` : ''}; the next process starts a new one`);
  });
  if (again) {
    restarts += 1;
    say(`spawn helper restarted (pid ${current.pid}; restart ${restarts})`);
  }
  return current;
}

/** Starts the helper now (the worker does, before it polls); its pid. */
export function startSpawnHelper(): number | undefined {
  return helper().pid;
}

/** The running helper's pid, if one runs. */
export function spawnHelperPid(): number | undefined {
  return current && !current.dead ? current.pid : undefined;
}

/** Starts `file` with `args` in the helper; rejects (with the spawn error's `code`, e.g. ENOENT) if it cannot start. */
export function startProcess(file: string, args: string[], opts: StartOptions = {}): Promise<HelperProcess> {
  return helper().start(file, args, opts);
}
