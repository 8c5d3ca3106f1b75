// A process the spawn helper started, as the worker sees it (HelperProcess: the parts of
// ChildProcess Weaver uses), the helper's messages about it, and the error of a helper lost under it.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';

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
    private readonly helper: { send(m: object): void; release(id: number): void },
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
      if (!s.push(bytes(m.data)) && !this.paused[m.fd]) {
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

export type HelperEvent =
  | { id: number; ev: 'spawn'; pid: number }
  | { id: number; ev: 'error'; code?: string; message: string }
  | { id: number; ev: 'data'; fd: 1 | 2; data: Uint8Array }
  | { id: number; ev: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { id: number; ev: 'close' }
  | { id: number; ev: 'done'; code: number | null; signal: NodeJS.Signals | null; stdout: Uint8Array; stderr: Uint8Array; over?: string };

/** How a buffered process (`execProcess`) ended, and all it wrote. */
export interface ExecOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** Set when the helper killed it for writing more than `maxBuffer` to that stream. */
  over?: string;
}

/** A message's bytes as a Buffer, without a copy. */
export const bytes = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
