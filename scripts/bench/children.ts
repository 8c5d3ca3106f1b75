// The benchmark's helper processes (the model server, the plain script): TypeScript run through
// tsx's loader, spoken to in JSON lines, each in its own process group so that a stop takes
// whatever it started with it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { killProcessGroup, stopProcessGroup } from '../../src/devtools/devServer';

export interface LineChild {
  pid: number;
  /** The first line the child writes (its "ready" message), parsed. */
  ready: Promise<unknown>;
  send(msg: unknown): void;
  /** Every later line, parsed, to this handler. */
  onMessage(handler: (msg: unknown) => void): void;
  stop(): Promise<void>;
  /** Synchronous last resort (process exit). */
  kill(): void;
}

export function startLineChild(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): LineChild {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', file, ...args], { env, detached: true, stdio: 'pipe' });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${file}`);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let handler: (msg: unknown) => void = () => undefined;
  let first: ((msg: unknown) => void) | undefined;
  const ready = new Promise<unknown>((resolve, reject) => {
    first = resolve;
    child.once('exit', (code, signal) => reject(new Error(`${file} exited (${code ?? signal}) before it was ready: ${stderr.trim()}`)));
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg: unknown = JSON.parse(line);
    if (first) {
      first(msg);
      first = undefined;
    } else handler(msg);
  });
  child.once('exit', (code, signal) => {
    if (!stopping) handler({ crashed: `${file} exited (${code ?? signal}): ${stderr.trim()}` });
  });
  let stopping = false;
  return {
    pid,
    ready,
    send: (msg) => child.stdin.write(JSON.stringify(msg) + '\n'),
    onMessage: (h) => (handler = h),
    stop: async () => {
      stopping = true;
      child.stdin.end();
      await stopProcessGroup(pid, 3000);
    },
    kill: () => killProcessGroup(pid, 'SIGKILL'),
  };
}
