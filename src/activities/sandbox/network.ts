// A command's control files: bwrap reports the sandbox's pid (--info-fd), and waits (--block-fd)
// until the worker has put its egress listener in the sandbox's network namespace (./egress.ts).
// The same pid lets the worker kill the sandbox (the disk watch does). bwrap's status
// (--json-status-fd) tells a command that ran from a sandbox that failed before it could.
import { mkdtemp, open, readFile, readlink, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { execFileVia } from '../spawner';

// Through the spawn helper: the worker itself never forks.
const run = execFileVia;

/** A shell word for a path the worker made. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A command's control files, beside its workspace: `info`, where bwrap writes the sandbox's pid
 * (--info-fd 3), and `block`, a FIFO bwrap waits on (--block-fd 4) until its network is up. The
 * worker holds the FIFO open read-write, so the shell's open never blocks.
 */
export class Control {
  private constructor(
    readonly dir: string,
    private readonly block?: FileHandle,
  ) {}

  static async create(parent: string, block: boolean): Promise<Control> {
    const dir = await mkdtemp(path.join(parent, '.sandbox-'));
    if (!block) return new Control(dir);
    await run('mkfifo', ['-m', '600', path.join(dir, 'block')]);
    return new Control(dir, await open(path.join(dir, 'block'), 'r+'));
  }

  get bwrapArgs(): string[] {
    return ['--info-fd', '3', '--json-status-fd', '5', ...(this.block ? ['--block-fd', '4'] : [])];
  }

  /** For `exec "$@" …` in the wrapping shell. */
  get redirections(): string {
    return `3>${shq(path.join(this.dir, 'info'))} 5>${shq(path.join(this.dir, 'status'))}${this.block ? ` 4<${shq(path.join(this.dir, 'block'))}` : ''}`;
  }

  /**
   * Whether the command itself ran: bwrap writes `{"exit-code": n}` to its status only when its
   * own set-up finished and the command was exec'd (bubblewrap's report_child_exit_status). Read
   * once bwrap is gone; absent, the sandbox failed before the command (or bwrap was killed).
   */
  async commandRan(): Promise<boolean> {
    const text = await readFile(path.join(this.dir, 'status'), 'utf8').catch(() => '');
    return /"exit-code"\s*:/.test(text);
  }

  /** The sandbox's first process (host pid) and its PID namespace, once bwrap has said. */
  async info(): Promise<{ pid: number; pidns: number } | undefined> {
    try {
      const j = JSON.parse(await readFile(path.join(this.dir, 'info'), 'utf8')) as Record<string, number>;
      return Number.isInteger(j['child-pid']) ? { pid: j['child-pid'], pidns: j['pid-namespace'] } : undefined;
    } catch {
      return undefined; // not written yet, or half
    }
  }

  /** Lets the sandbox's command start (bwrap reads one byte). */
  async release(): Promise<void> {
    await this.block?.write('x').catch(() => undefined);
  }

  /** SIGKILL to the sandbox's first process ends its PID namespace: everything in it dies. */
  async killSandbox(): Promise<void> {
    const info = await this.info();
    if (!info) return;
    // Only while the pid is still that sandbox's (never a reused one).
    const ns = await readlink(`/proc/${info.pid}/ns/pid`).catch(() => '');
    if (ns !== `pid:[${info.pidns}]`) return;
    try {
      process.kill(info.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }

  async close(): Promise<void> {
    await this.block?.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
