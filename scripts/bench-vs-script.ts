// Benchmark: what durability costs, measured from outside. Weaver (on its defaults: its own dev
// server, an in-process worker, the sandbox it detects) against a plain, non-durable Node script
// doing the same steps (scripts/bench/plainTask.ts: clone → model → write → test → commit →
// push) against the same OpenAI-compatible endpoint (the scripted model server, in its own
// process, answering after a set delay). Runs interleave (Weaver, script, Weaver, script…);
// figures are medians. Prints a Markdown table for the README and the min–max behind it.
//
//   npx tsx scripts/bench-vs-script.ts
//
// BENCH_N           single-task runs per side and delay (default 5)
// BENCH_BATCH_N     batches per side and delay (default 5)
// BENCH_TASKS       tasks per batch (default 20); BENCH_CONCURRENCY in flight (default 4)
// BENCH_DELAYS_MS   the model's answer delays (default 200,2000)
// BENCH_QUICK=1     a smoke run: 1 run, 1 batch of 4 at concurrency 2
//
// CPU: each side's cgroup (./bench/cgroupCpu.ts): Weaver's holds this process (worker, client),
// the Temporal server, the spawn helper and every process they start, the sandbox's included; the
// script's holds its process and what it starts; the model server is in neither. Without cgroups
// (not root), /proc trees, which miss the sandboxed commands (their PID namespace's init is never
// waited for): the run says so. Both sides are long-lived processes, so neither pays a process
// start per task. Exits non-zero when any task of either side fails; stops what it
// started and removes its temp dir on every exit.
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createExampleRepo, exampleTask } from './demo/example';
import { benchModel } from './bench/answer';
import { startLineChild, type LineChild } from './bench/children';
import { PlainSide } from './bench/plainSide';
import type { PlainTask } from './bench/plainTask';
import { watchLoop } from './bench/loop';
import { cpuGroups } from './bench/cgroupCpu';
import { stopOnExit } from './bench/exit';
import { treeCpuMs } from './bench/procStat';
import { comparisonTable, detail, type Scenario, type Window } from './bench/report';
import { exitWith, pool } from './bench/stats';
import { WeaverSide, type HistoryFigures } from './bench/weaverSide';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import type { WorkflowHandle } from '@temporalio/client';

const quick = process.env.BENCH_QUICK === '1';
const int = (name: string, dflt: number, quickValue: number) => Math.max(1, Number(process.env[name] || (quick ? quickValue : dflt)));
const N = int('BENCH_N', 5, 1);
const BATCH_N = int('BENCH_BATCH_N', 5, 1);
const TASKS = int('BENCH_TASKS', 20, 4);
const CONCURRENCY = int('BENCH_CONCURRENCY', 4, 2);
const DELAYS = (process.env.BENCH_DELAYS_MS || '200,2000').split(',').map(Number).filter((d) => d >= 0);

const IDLE_MS = 5000;

const delayLabel = (ms: number) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-vs-');
  let model: LineChild | undefined;
  let weaver: WeaverSide | undefined;
  let plain: PlainSide | undefined;
  let serverPid: number | undefined;
  // Before anything starts: what this process starts from now on is Weaver's.
  const cg = cpuGroups(['weaver', 'plain', 'model']);
  if (typeof cg !== 'string') cg.groups.weaver.adopt(process.pid);
  const cleanup = async () => {
    await plain?.stop().catch(() => undefined);
    await weaver?.stop().catch(() => undefined);
    await model?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    if (typeof cg !== 'string') cg.remove();
  };
  // Ctrl-C or a crash: no server, helper or temp dir left behind.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  stopOnExit(() => ({ children: [plain, model], serverPid, tmp, groups: cg }));

  try {
    const loadBefore = load();
    model = startLineChild(path.join(__dirname, 'bench/modelServer.ts'), DELAYS.map(String));
    if (typeof cg !== 'string') cg.groups.model.adopt(model.pid);
    const { url } = (await model.ready) as { url: string };
    const models = DELAYS.map(benchModel);
    // The scripted models are the bench worker's registry providers (a task names no endpoint).
    const providers = { providers: Object.fromEntries(models.map((m) => [m, { baseURL: url, models: [m], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } }])) };
    weaver = await WeaverSide.start(tmp, (pid) => (serverPid = pid), providers);
    plain = await PlainSide.start(url);
    if (typeof cg !== 'string') cg.groups.plain.adopt(plain.pid);
    const w = weaver;
    const p = plain;
    const helpers = [model.pid, p.pid];

    let seq = 0;
    const repo = () => createExampleRepo(path.join(tmp, 'repos', `r${++seq}`));
    const weaverTask = async (delay: number) => exampleTask(await repo(), { id: benchModel(delay), model: benchModel(delay) });
    let plainSeq = 0;
    const plainTask = async (delay: number): Promise<PlainTask> => {
      const id = `p${++plainSeq}`; // before the await: tasks are made concurrently
      const t = exampleTask(await repo(), { id: benchModel(delay), model: benchModel(delay) });
      const testCommand = t.testCommand as string[];
      return { id, repo: t.repo, baseBranch: 'main', branch: `plain/${id}`, model: benchModel(delay), title: t.task.title, description: t.task.description, files: t.task.relatedFiles ?? [], testCommand, workDir: path.join(tmp, 'plain') };
    };

    // The dev server is this process's child: in /proc trees left out of the worker's and counted once on its own.
    const weaverCpuMs = () => (typeof cg === 'string' ? treeCpuMs(process.pid, [...helpers, serverPid!]) + treeCpuMs(serverPid!) : cg.groups.weaver.ms());
    const plainCpuMs = () => (typeof cg === 'string' ? treeCpuMs(p.pid) : cg.groups.plain.ms());
    // The worker's event loop (it runs in this process).
    const loop = watchLoop();
    const handles: WorkflowHandle[] = [];
    // One side's run of `tasks` (made beforehand: making a repo is neither side's work).
    const weaverWindow = async (delay: number, tasks: number, concurrency: number): Promise<Window> => {
      const inputs = await Promise.all(Array.from({ length: tasks }, () => weaverTask(delay)));
      const weaver0 = weaverCpuMs();
      const server0 = treeCpuMs(serverPid!);
      loop.reset();
      const t0 = Date.now();
      const runs = await pool(inputs, concurrency, (input) => w.run(input));
      const wallMs = Date.now() - t0;
      const serverCpuMs = treeCpuMs(serverPid!) - server0;
      const cpuMs = weaverCpuMs() - weaver0;
      handles.push(...runs.map((r) => r.handle));
      return { tasks, wallMs, cpuMs, serverCpuMs, loop: loop.read() };
    };
    const plainWindow = async (delay: number, tasks: number, concurrency: number): Promise<Window> => {
      const inputs = await Promise.all(Array.from({ length: tasks }, () => plainTask(delay)));
      const cpu0 = plainCpuMs();
      p.loopReset();
      const t0 = Date.now();
      await pool(inputs, concurrency, (t) => p.run(t));
      const wallMs = Date.now() - t0;
      const cpuMs = plainCpuMs() - cpu0;
      return { tasks, wallMs, cpuMs, loop: await p.loopRead() };
    };

    console.log(
      `Weaver vs a plain script — node ${process.version}, ${os.cpus().length} CPU (${os.cpus()[0]?.model.trim() ?? '?'}), ${os.platform()} ${os.arch()}\n` +
        `Weaver's sandbox (its default, detected): ${w.sandbox}\n` +
        `CPU counted by ${typeof cg === 'string' ? `/proc process trees — WITHOUT the sandboxed commands' CPU (${cg})` : `${cg.kind}: every process of each side`}\n` +
        `${N} single-task runs and ${BATCH_N} batches of ${TASKS} at concurrency ${CONCURRENCY} per side and model delay (${DELAYS.map(delayLabel).join(', ')}), interleaved; load average before: ${loadBefore}`,
    );

    // Warm-up (JIT, git's and node's caches, the first workflow's module load): not counted.
    await weaverWindow(DELAYS[0], 1, 1);
    await plainWindow(DELAYS[0], 1, 1);
    handles.length = 0;
    // What each side burns doing nothing (polls, timers), part of its CPU per task for as long as a task lasts.
    const idle = [weaverCpuMs() - treeCpuMs(serverPid!), treeCpuMs(serverPid!), plainCpuMs()];
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const idleRate = (i: number, now: number) => `${((now - idle[i]) / (IDLE_MS / 1000)).toFixed(0)} ms/s`;
    console.log(
      `idle CPU over ${IDLE_MS / 1000} s: Weaver less its server ${idleRate(0, weaverCpuMs() - treeCpuMs(serverPid!))}, Temporal server ${idleRate(1, treeCpuMs(serverPid!))}, plain script ${idleRate(2, plainCpuMs())}`,
    );

    const scenarios: Scenario[] = [];
    for (const delay of DELAYS) {
      const s: Scenario = { label: `1 task, 1 attempt, model ${delayLabel(delay)}`, single: true, weaver: [], plain: [] };
      for (let i = 0; i < N; i++) {
        s.weaver.push(await weaverWindow(delay, 1, 1));
        s.plain.push(await plainWindow(delay, 1, 1));
      }
      scenarios.push(s);
      console.log(`  done: ${s.label} (load ${load()})`);
    }
    for (const delay of DELAYS) {
      const s: Scenario = { label: `${TASKS} tasks at concurrency ${CONCURRENCY}, model ${delayLabel(delay)}`, single: false, weaver: [], plain: [] };
      for (let i = 0; i < BATCH_N; i++) {
        s.weaver.push(await weaverWindow(delay, TASKS, CONCURRENCY));
        s.plain.push(await plainWindow(delay, TASKS, CONCURRENCY));
      }
      scenarios.push(s);
      console.log(`  done: ${s.label} (load ${load()})`);
    }

    const history: HistoryFigures[] = [];
    for (const h of handles) history.push(await w.history(h));
    const children = Math.max(...history.map((h) => h.children));
    console.log(`\nload average after: ${load()}${children ? `; note: tasks started up to ${children} child workflows (their histories are not counted)` : ''}\n`);
    console.log(comparisonTable(scenarios, history));
    console.log(`\n${detail(scenarios)}`);
  } finally {
    await cleanup();
  }
}

exitWith(main());
