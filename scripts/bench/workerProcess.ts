// The batch benchmark's worker as its own process, as users run it (`node --import tsx
// src/worker.ts`, settings from the environment), with the memory probe preloaded: its RSS is
// then the worker's alone, not the harness's nor the model server's.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { stopProcessGroup, killProcessGroup } from '../../src/devtools/devServer';

const ROOT = path.resolve(__dirname, '..', '..');

export interface WorkerMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface BenchWorker {
  pid: number;
  /** process.memoryUsage() inside the worker, after a full garbage collection. */
  memory(): Promise<WorkerMemory>;
  stop(): Promise<void>;
  kill(): void;
}

/** Starts the worker with `env` on top of this process's; resolves once it printed its banner (it polls). */
export async function startBenchWorker(env: Record<string, string>, timeoutMs = 120_000): Promise<BenchWorker> {
  const probe = path.join(__dirname, 'memProbe.cjs');
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--require', probe, 'src/worker.ts'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the worker');
  let out = '';
  const probes: ((m: WorkerMemory) => void)[] = [];
  child.stdout.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
    for (const m of b.toString().matchAll(/^memprobe (.+)$/gm)) probes.shift()?.(JSON.parse(m[1]) as WorkerMemory);
  });
  child.stderr.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
  const w: BenchWorker = {
    pid,
    memory: () =>
      new Promise((resolve) => {
        probes.push(resolve);
        process.kill(pid, 'SIGUSR2');
      }),
    stop: () => stopProcessGroup(pid, 10_000),
    kill: () => killProcessGroup(pid, 'SIGKILL'),
  };
  const deadline = Date.now() + timeoutMs;
  while (!out.includes('\n  operations:')) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      w.kill();
      throw new Error(`the worker did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return w;
}
