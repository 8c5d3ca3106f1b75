// The batch benchmark's worker as its own process, as users run it (`node --import tsx
// src/worker.ts`, settings from the environment), with the memory probe preloaded: its RSS is
// then the worker's alone, not the harness's nor the model server's.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { stopProcessGroup, killProcessGroup } from '../../src/devtools/devServer';

const ROOT = path.resolve(__dirname, '..', '..');

export interface WorkerMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Committed MiB per V8 space. */
  spaces: Record<string, number>;
  /** Each other thread's (the workflow thread's) heap after its own full GC. */
  threads: { threadId: number; heapUsed: number; heapTotal: number; external: number; spaces: Record<string, number> }[];
}

export interface BenchWorker {
  pid: number;
  /** process.memoryUsage() inside the worker and its threads' heaps, each after a full garbage collection. */
  memory(): Promise<WorkerMemory>;
  stop(): Promise<void>;
  kill(): void;
}

/** The benchmarks' worker settings: its folders under `tmp`, the dev server at `address`, a prebuilt bundle. */
export function benchWorkerEnv(o: { tmp: string; address: string; taskQueue: string; registry: string; bundle: string; artifactDir?: string }): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: o.address,
    TEMPORAL_NAMESPACE: 'default',
    WEAVER_TASK_QUEUE: o.taskQueue,
    WEAVER_ARTIFACT_DIR: o.artifactDir ?? path.join(o.tmp, 'artifacts'),
    WEAVER_WORKSPACE_ROOT: path.join(o.tmp, 'workspaces'),
    WEAVER_CACHE_DIR: path.join(o.tmp, 'cache'),
    WEAVER_REPO_ROOTS: o.tmp,
    WEAVER_PROVIDERS: o.registry,
    WEAVER_WORKFLOW_BUNDLE: o.bundle,
    // bubblewrap when the machine has it, as the tests' rig (the production default is `required`).
    WEAVER_SANDBOX: 'auto',
    WEAVER_LOG_LEVEL: 'WARN',
    // As `npm run worker`, the image and the compose file start it (src/mallocArenas.ts); set
    // MALLOC_ARENA_MAX=16 (glibc's default on 2 cores: 8 per core) around the bench to compare.
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
  };
}

/** Starts the worker with `env` on top of this process's; resolves once it printed its banner (it polls). */
export async function startBenchWorker(env: Record<string, string>, timeoutMs = 120_000): Promise<BenchWorker> {
  // BENCH_NODE_FLAGS: extra node flags for the worker alone (e.g. V8 heap sizes), to try settings.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...flags, '--expose-gc', '--import', 'tsx', '--require', path.join(__dirname, 'memProbe.cjs'), 'src/worker.ts'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the worker');
  let out = '';
  let mains: Omit<WorkerMemory, 'threads'>[] = [];
  let threads: WorkerMemory['threads'] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('memprobe ')) mains.push(JSON.parse(line.slice(9)) as Omit<WorkerMemory, 'threads'>);
    else if (line.startsWith('memprobe-thread ')) threads.push(JSON.parse(line.slice(16)) as WorkerMemory['threads'][number]);
    else out = (out + line + '\n').slice(-20_000);
  });
  child.stderr.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
  const w: BenchWorker = {
    pid,
    memory: async () => {
      mains = [];
      threads = [];
      process.kill(pid, 'SIGUSR2');
      // The threads collect first, the main thread half a second later: given a second and a half.
      await new Promise((r) => setTimeout(r, 1500));
      if (!mains[0]) throw new Error(`the worker's memory probe did not answer:\n${out.slice(-2000)}`);
      return { ...mains[0], threads };
    },
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
