// Benchmark: where a task's CPU goes. The same tasks as scripts/bench-vs-script.ts (the example
// repository, the scripted model at 200 ms, a batch at concurrency 4), Weaver then the plain
// script, and per task: the Temporal server; the worker process by thread (main thread with the
// workflow threads and libuv's, which all read "node"; the SDK core's tokio threads); the spawn
// helper's own CPU and that of the processes it started; the script's tree. With BSD process
// accounting (root and `accton`, from Debian's `acct`), the processes each side started, by
// command (counts exact; CPU only where the kernel's 10 ms resolution sees it). Each side's total
// is its cgroup's (./bench/cgroupCpu.ts: the sandboxed commands' CPU, which no /proc tree holds,
// included); without cgroups (not root) the /proc trees', and the run says what it left out.
//
//   npx tsx scripts/bench-cpu.ts
//
// BENCH_TASKS          tasks per side (default 30), BENCH_CONCURRENCY (default 4)
// BENCH_PROFILE=<file> also a CPU profile of the worker's main thread over Weaver's tasks
//                      (a .cpuprofile: Chrome DevTools or speedscope open it)
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { createExampleRepo, exampleTask } from './demo/example';
import { benchModel } from './bench/answer';
import { startLineChild, type LineChild } from './bench/children';
import { PlainSide } from './bench/plainSide';
import type { PlainTask } from './bench/plainTask';
import { cpuGroups } from './bench/cgroupCpu';
import { stopOnExit } from './bench/exit';
import { statTimes, treeCpuMs } from './bench/procStat';
import { exitWith, pool } from './bench/stats';
import { WeaverSide } from './bench/weaverSide';
import { helperProcessCount, spawnHelperPid } from '../src/activities/spawner';
import { freePort } from '../src/devtools/devServer';
import { sandboxableTempDir } from '../src/devtools/tempDir';

const TASKS = Math.max(1, Number(process.env.BENCH_TASKS || 30));
const CONCURRENCY = Math.max(1, Number(process.env.BENCH_CONCURRENCY || 4));
const DELAY_MS = 200;

/** This process's threads' CPU, by thread name without its number. */
function threadsMs(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    const t = statTimes(`/proc/${process.pid}/task/${tid}/stat`);
    if (t) out.set(`${t.name}#${tid}`, t.own);
  }
  return out;
}

function byThreadName(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, ms] of after) {
    const name = key.split('#')[0].replace(/[-\d]+$/, '');
    out.set(name, (out.get(name) ?? 0) + ms - (before.get(key) ?? 0));
  }
  return out;
}

/** Process accounting on, when this machine allows it: the file it writes to, or why not. */
function accountingOn(file: string): string | undefined {
  try {
    writeFileSync(file, '');
    execFileSync('accton', [file], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return `no process accounting (${(e as Error).message.split('\n')[0]}): run as root with accton (apt-get install acct)`;
  }
}

/** The accounting file's records, by command: count and CPU (10 ms resolution). */
function accounted(file: string): Map<string, { n: number; ms: number }> {
  execFileSync('accton', ['off'], { stdio: 'ignore' });
  const out = new Map<string, { n: number; ms: number }>();
  for (const line of execFileSync('dump-acct', [file], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n')) {
    const f = line.split('|').map((s) => s.trim());
    if (f.length < 5 || f[0] === 'accton') continue;
    const e = out.get(f[0]) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += (Number(f[2]) + Number(f[3])) * 10; // AHZ ticks
    out.set(f[0], e);
  }
  return out;
}

const per = (ms: number) => `${(ms / TASKS).toFixed(1)} ms`;

/** The SDK's count of requests to the server by operation (`temporal_request`; long polls are `temporal_long_request`). */
async function serverRequests(address: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const text = await (await fetch(`http://${address}/metrics`)).text();
  for (const line of text.split('\n')) {
    const m = /^temporal_request\{[^}]*operation="([^"]+)"[^}]*\} (\d+)/.exec(line);
    if (m) out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]));
  }
  return out;
}

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-cpu-');
  let model: LineChild | undefined;
  let weaver: WeaverSide | undefined;
  let plain: PlainSide | undefined;
  let serverPid = 0;
  // Before anything starts: what this process starts from now on is Weaver's.
  const cg = cpuGroups(['weaver', 'plain', 'model']);
  if (typeof cg !== 'string') cg.groups.weaver.adopt(process.pid);
  stopOnExit(() => ({ children: [plain, model], serverPid, tmp, groups: cg }));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  try {
    model = startLineChild(path.join(__dirname, 'bench/modelServer.ts'), [String(DELAY_MS)]);
    if (typeof cg !== 'string') cg.groups.model.adopt(model.pid);
    const { url } = (await model.ready) as { url: string };
    const m = benchModel(DELAY_MS);
    const metrics = `127.0.0.1:${await freePort('127.0.0.1')}`;
    weaver = await WeaverSide.start(tmp, (pid) => (serverPid = pid), { providers: { [m]: { baseURL: url, models: [m], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } } }, metrics);
    plain = await PlainSide.start(url);
    if (typeof cg !== 'string') cg.groups.plain.adopt(plain.pid);
    const w = weaver;
    const p = plain;
    let seq = 0;
    const repo = () => createExampleRepo(path.join(tmp, 'repos', `r${++seq}`));
    const weaverTask = async () => exampleTask(await repo(), { id: m, model: m });
    const plainTask = async (): Promise<PlainTask> => {
      const id = `p${++seq}`;
      const t = exampleTask(await repo(), { id: m, model: m });
      return { id, repo: t.repo, baseBranch: 'main', branch: `plain/${id}`, model: m, title: t.task.title, description: t.task.description, files: t.task.relatedFiles ?? [], testCommand: t.testCommand as string[], workDir: path.join(tmp, 'plain') };
    };
    // Warm-up (JIT, caches, the first workflow's module load): not counted.
    await w.run(await weaverTask());
    await p.run(await plainTask());
    const outside = [model.pid, p.pid, serverPid];

    const groupMs = (side: 'weaver' | 'plain') => (typeof cg === 'string' ? NaN : cg.groups[side].ms());
    console.log(`${TASKS} tasks per side at concurrency ${CONCURRENCY}, model ${DELAY_MS} ms; CPU per task, totals by ${typeof cg === 'string' ? `/proc trees, WITHOUT the sandboxed commands (${cg})` : cg.kind}:`);
    {
      const inputs = await Promise.all(Array.from({ length: TASKS }, weaverTask));
      const acctFile = path.join(tmp, 'weaver.acct');
      const noAcct = accountingOn(acctFile);
      const profiling = process.env.BENCH_PROFILE ? new Session() : undefined;
      if (profiling) {
        profiling.connect();
        await profiling.post('Profiler.enable');
        await profiling.post('Profiler.start');
      }
      const helperPid = spawnHelperPid()!;
      const requests0 = await serverRequests(metrics);
      const [group0, tree0, server0, threads0, helper0, started0] = [groupMs('weaver'), treeCpuMs(process.pid, outside), treeCpuMs(serverPid), threadsMs(), statTimes(`/proc/${helperPid}/stat`)!, helperProcessCount()];
      await pool(inputs, CONCURRENCY, (input) => w.run(input));
      const [group1, tree1, server1, threads1, helper1, started1] = [groupMs('weaver'), treeCpuMs(process.pid, outside), treeCpuMs(serverPid), threadsMs(), statTimes(`/proc/${helperPid}/stat`)!, helperProcessCount()];
      if (profiling) {
        const { profile } = await profiling.post('Profiler.stop');
        writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify(profile));
      }
      const requests = await serverRequests(metrics);
      const worker = byThreadName(threads0, threads1);
      const workerMs = [...worker.values()].reduce((a, b) => a + b, 0);
      const trees = tree1 - tree0 + server1 - server0;
      console.log(`Weaver ${per(Number.isNaN(group0) ? trees : group1 - group0)}`);
      console.log(`  Temporal server   ${per(server1 - server0)}`);
      console.log(`  worker process    ${per(workerMs)}: ${[...worker].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]).map(([name, ms]) => `${name} ${per(ms)}`).join(', ')}`);
      // Node names every thread "node": the main thread is the process's own id, the rest by id.
      const busiest = [...threads1].map(([key, ms]) => [key.replace(`#${process.pid}`, '#main'), ms - (threads0.get(key) ?? 0)] as const).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
      console.log(`    by thread: ${busiest.slice(0, 8).map(([key, ms]) => `${key} ${per(ms)}`).join(', ')}`);
      console.log(`  spawn helper      ${per(helper1.own - helper0.own)} own, ${per(helper1.reaped - helper0.reaped)} in the processes it started and waited for (${((started1 - started0) / TASKS).toFixed(1)} per task, asked by the worker)`);
      if (!Number.isNaN(group0)) console.log(`  sandboxed commands, reaped outside the worker's tree: ${per(group1 - group0 - trees)} (the cgroup's total less the /proc trees')`);
      printAccounting(noAcct, acctFile);
      const rpcs = [...requests].map(([op, n]) => [op, n - (requests0.get(op) ?? 0)] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      console.log(`  the worker's requests to the server per task (SDK metrics, long polls apart): ${rpcs.map(([op, n]) => `${op} ${(n / TASKS).toFixed(1)}`).join(', ')}`);
    }
    {
      const inputs = await Promise.all(Array.from({ length: TASKS }, plainTask));
      const acctFile = path.join(tmp, 'plain.acct');
      const noAcct = accountingOn(acctFile);
      const [group0, own0, tree0] = [groupMs('plain'), statTimes(`/proc/${p.pid}/stat`)!, treeCpuMs(p.pid)];
      await pool(inputs, CONCURRENCY, (t) => p.run(t));
      const [group1, own1, tree1] = [groupMs('plain'), statTimes(`/proc/${p.pid}/stat`)!, treeCpuMs(p.pid)];
      console.log(`plain script ${per(Number.isNaN(group0) ? tree1 - tree0 : group1 - group0)}: its process ${per(own1.own - own0.own)}, the processes it started ${per(own1.reaped - own0.reaped)}`);
      printAccounting(noAcct, acctFile);
    }
  } finally {
    await plain?.stop().catch(() => undefined);
    await weaver?.stop().catch(() => undefined);
    await model?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    if (typeof cg !== 'string') cg.remove();
  }
}

function printAccounting(noAcct: string | undefined, file: string): void {
  if (noAcct) return console.log(`  ${noAcct}`);
  const rows = [...accounted(file)].sort((a, b) => b[1].n - a[1].n);
  console.log(`  processes per task (whole machine, while it ran): ${rows.map(([cmd, { n, ms }]) => `${cmd} ${(n / TASKS).toFixed(1)}${ms ? ` (${per(ms)})` : ''}`).join(', ')}`);
}

exitWith(main());
