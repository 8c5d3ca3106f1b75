// The worker's side of the spawn helper (./script.ts): starting it, the processes it starts
// (HelperProcess: the parts of ChildProcess Weaver uses), its death. One helper per worker
// process, started on first use (the worker starts it before it polls); if it dies, the commands it ran have their groups
// killed by the worker, their calls fail (an infrastructure error, retried), and the next call
// starts a new helper — both said on stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import { bytes, HelperProcess, PID_IN_RECORD, SpawnHelperLost, type ExecOutcome, type HelperEvent } from './helperProcess';
import { HELPER_ARGV_TAG, HELPER_SCRIPT } from './script';

export { HelperProcess, PID_IN_RECORD, SpawnHelperLost, type ExecOutcome } from './helperProcess';

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

interface Pending {
  resolve(p: HelperProcess): void;
  reject(err: Error): void;
  groupId?: boolean;
  proc?: HelperProcess;
  /** A buffered process: its outcome's resolver and the output that came ahead of it. */
  exec?: { resolve(o: ExecOutcome): void; chunks: { 1: Buffer[]; 2: Buffer[] } };
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
    return new Promise<HelperProcess>((resolve, reject) => {
      const more = { detached: !!opts.detached, guard: !!opts.guard, ...(opts.records?.length ? { records: opts.records, pidMark: PID_IN_RECORD } : {}) };
      this.request('spawn', file, args, opts, more, { resolve, reject, groupId: opts.detached });
    });
  }

  /**
   * A process whose output the helper keeps and sends with its end, in one message (a big
   * output comes ahead in parts): no stream and no per-chunk message for the many short gits.
   * `kill` signals it through the helper.
   */
  exec(file: string, args: string[], opts: StartOptions & { maxBuffer: number }): { done: Promise<ExecOutcome>; kill(): void } {
    let id = 0;
    const done = new Promise<ExecOutcome>((resolve, reject) => {
      id = this.request('exec', file, args, opts, { maxBuffer: opts.maxBuffer }, { resolve: () => undefined, reject, exec: { resolve, chunks: { 1: [], 2: [] } } });
    });
    return { done, kill: () => this.send({ op: 'kill', id }) };
  }

  private request(op: 'spawn' | 'exec', file: string, args: string[], opts: StartOptions, more: object, pending: Pending): number {
    if (this.dead) {
      pending.reject(new SpawnHelperLost(this.pid, 'before the start'));
      return 0;
    }
    const id = this.nextId++;
    started++;
    this.busy();
    this.procs.set(id, pending);
    const input = typeof opts.input === 'string' ? Buffer.from(opts.input, 'utf8') : opts.input;
    // A plain copy: an env that is a proxy (jest's process.env) cannot be cloned.
    const env = Object.fromEntries(Object.entries(opts.env ?? process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));
    try {
      this.send({ op, id, file, args: [...args], cwd: opts.cwd, env, ...(input ? { input } : {}), ...more });
    } catch (err) {
      this.settle(id);
      pending.reject(err as Error);
    }
    return id;
  }

  private onMessage(m: HelperEvent): void {
    const p = this.procs.get(m.id);
    if (!p) return;
    if (p.exec && (m.ev === 'data' || m.ev === 'done')) {
      if (m.ev === 'data') return void p.exec.chunks[m.fd].push(bytes(m.data));
      this.settle(m.id);
      const { chunks } = p.exec;
      p.exec.resolve({ code: m.code, signal: m.signal, stdout: Buffer.concat([...chunks[1], bytes(m.stdout)]), stderr: Buffer.concat([...chunks[2], bytes(m.stderr)]), ...(m.over ? { over: m.over } : {}) });
    } else if (m.ev === 'spawn') {
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
      else if (p.exec) p.reject(Object.assign(new SpawnHelperLost(this.pid, why), { stdout: Buffer.concat(p.exec.chunks[1]).toString('utf8'), stderr: Buffer.concat(p.exec.chunks[2]).toString('utf8') }));
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
/** Processes asked of a helper by this process (tests and benchmarks count them). */
let started = 0;
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

/** Runs `file` in the helper, its output kept there and sent with its end (Helper.exec); rejects as startProcess does. */
export function execProcess(file: string, args: string[], opts: Pick<StartOptions, 'cwd' | 'env' | 'input'> & { maxBuffer: number }): { done: Promise<ExecOutcome>; kill(): void } {
  return helper().exec(file, args, opts);
}

/** How many processes this process has asked the spawn helper(s) to start. */
export function helperProcessCount(): number {
  return started;
}
