// A command's own network: slirp4netns joins the sandbox's network namespace once bwrap reports
// its pid (--info-fd), and bwrap waits (--block-fd) until the tap device is up. The same control
// files let the worker kill the sandbox (the disk watch does).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, readlink, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { sleep } from '../processGroups';

const run = promisify(execFile);

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
    return ['--info-fd', '3', ...(this.block ? ['--block-fd', '4'] : [])];
  }

  /** For `exec "$@" …` in the wrapping shell. */
  get redirections(): string {
    return `3>${shq(path.join(this.dir, 'info'))}${this.block ? ` 4<${shq(path.join(this.dir, 'block'))}` : ''}`;
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

/**
 * Gives the sandbox its own network: once bwrap says its pid, slirp4netns (run by the worker,
 * root) joins its network namespace, makes tap0 (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3)
 * and NATs to the internet with the host's loopback unreachable; then the command is let go.
 * `ready` resolves with the reason when that failed (the sandbox is then killed).
 */
export function attachNetwork(ctl: Control, slirp: string, kill?: () => Promise<void>): { ready: Promise<string | undefined>; stop(): Promise<string | undefined> } {
  let stopped = false;
  let child: ChildProcess | undefined;
  const ready = (async (): Promise<string | undefined> => {
    let info = await ctl.info();
    for (const started = Date.now(); !info; info = await ctl.info()) {
      if (stopped) return undefined; // the command never got to bwrap
      await sleep(Date.now() - started < 1000 ? 5 : 50, { unref: true });
    }
    const args = ['--configure', '--mtu=65520', '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp', '--ready-fd=3', '--exit-fd=4'];
    // By path: the pid's own user namespace (a nested one bwrap makes) does not own the network namespace.
    child = spawn(slirp, [...args, '--netns-type=path', `/proc/${info.pid}/ns/net`, 'tap0'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    // The worker holds the other end of --exit-fd: if it dies, slirp4netns ends too.
    child.stdio[4]!.on('error', () => undefined);
    const error = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve('slirp4netns was not ready within 10 s'), 10_000);
      child!.stdio[3]!.once('data', () => (clearTimeout(timer), resolve(undefined)));
      child!.once('exit', (code, sig) => (clearTimeout(timer), resolve(`slirp4netns exited (${sig ?? code}): ${stderr.trim().split('\n').filter((l) => !/WARNING/.test(l)).slice(0, 2).join('; ')}`)));
      child!.once('error', (err) => (clearTimeout(timer), resolve(`slirp4netns: ${err.message}`)));
    });
    if (error) await kill?.();
    else await ctl.release();
    return error;
  })();
  return {
    ready,
    /** Ends slirp4netns; what went wrong setting the network up, if anything. */
    stop: async () => {
      stopped = true;
      const error = await ready.catch((err: Error) => err.message);
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      return error;
    },
  };
}
