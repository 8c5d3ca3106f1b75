// Benchmark: what a worker pays to start and what a fresh workflow pays before its first command.
//
//   npx tsx scripts/bench-workflow-start.ts [sdk|lean]   (BENCH_N workers, default 5; BENCH_M workflows each, default 6)
//   BENCH_WORKFLOWS=/path/to/other/src/workflows npx tsx scripts/bench-workflow-start.ts sdk   (other workflow code)
//
// Self-contained: its own Temporal dev server; workflow-only workers (no activities) on fresh
// queues. `sdk` bundles with the SDK's default options, `lean` (default) with src/workflowBundle.ts.
// Per worker: Worker.create (the bundle parsed, the V8 context built), a workflow started before
// the worker → its first workflow task's start (worker start to first poll), then BENCH_M
// codingTasks one after another whose input is refused, so their one workflow task is module
// initialisation + input validation only (the history's WorkflowTaskStarted → Completed). And,
// in this process, the CPU time of initialising the workflow modules for one workflow as the SDK's
// reused V8 context does it (a module cache of its own over the modules loaded with the bundle),
// which a loaded machine's scheduling does not blur as it does the wall times.
// Prints figures; asserts nothing.
import { rmSync } from 'node:fs';
import vm from 'node:vm';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { weaverLogger } from '../src/logging';
import { startDevServer, stopProcessGroup, temporalCliPath } from '../src/devtools/devServer';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { bundleWeaverWorkflows } from '../src/workflowBundle';

const N = Math.max(1, Number(process.env.BENCH_N || 5));
const M = Math.max(1, Number(process.env.BENCH_M || 6));
const variant = process.argv[2] === 'sdk' ? 'sdk' : 'lean';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}, n=${xs.length})`;
const ms = (t: temporal.api.history.v1.IHistoryEvent) => Number(t.eventTime!.seconds) * 1000 + (t.eventTime!.nanos ?? 0) / 1e6;

/** The first workflow task's start and its duration (started → completed), from the history. */
async function firstTask(client: Client, workflowId: string): Promise<{ startedAt: number; durationMs: number }> {
  for (;;) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const started = events.find((e) => e.workflowTaskStartedEventAttributes);
    const done = events.find((e) => e.workflowTaskCompletedEventAttributes || e.workflowTaskFailedEventAttributes);
    if (started && done) return { startedAt: ms(started), durationMs: ms(done) - ms(started) };
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * CPU ms (user + system) of `importWorkflows()` with a fresh module cache, then of validating
 * `input` as codingTask does first (its schema built then, if lazily), BENCH_K times after 5 unmeasured.
 */
function moduleInitCpuMs(code: string, input: unknown): { init: number[]; firstParse: number[] } {
  let own: Record<string, unknown> | undefined;
  const shared: Record<string, unknown> = {};
  const context = vm.createContext({});
  Object.defineProperty(context, '__webpack_module_cache__', {
    value: new Proxy({}, {
      get: (_, p: string) => shared[p] ?? own?.[p],
      set: (_, p: string, v) => ((own ?? shared)[p] = v, true),
      deleteProperty: (_, p: string) => (own ? delete own[p] : delete shared[p]),
    }),
  });
  new vm.Script(code).runInContext(context);
  // Outside a workflow's activation the SDK's Math.random throws; a module may call it at import.
  vm.runInContext('Math.random = () => 0.5', context);
  const load = vm.compileFunction('return __TEMPORAL__.importWorkflows()', [], { parsingContext: context });
  const out = { init: [] as number[], firstParse: [] as number[] };
  const cpuMs = (c0: NodeJS.CpuUsage) => {
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000;
  };
  const k = Math.max(1, Number(process.env.BENCH_K || 30));
  for (let i = 0; i < k + 5; i++) {
    own = {};
    const c0 = process.cpuUsage();
    load();
    const init = cpuMs(c0);
    // The webpack module of src/domain/schema.ts in this workflow's cache (ids are paths in development mode).
    const schema = Object.entries(own).find(([id]) => id.endsWith('src/domain/schema.ts'))?.[1] as { exports: { CodingTaskInputSchema: { safeParse(v: unknown): unknown } } };
    const c1 = process.cpuUsage();
    schema.exports.CodingTaskInputSchema.safeParse(input);
    const parse = cpuMs(c1);
    if (i >= 5) {
      out.init.push(init);
      out.firstParse.push(init + parse);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-start-');
  Runtime.install({ logger: weaverLogger('ERROR') });
  const server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'temporal-server.log') });
  try {
    const t0 = Date.now();
    const logger = new DefaultLogger('WARN');
    const workflowsPath = process.env.BENCH_WORKFLOWS ? path.resolve(process.env.BENCH_WORKFLOWS) : require.resolve('../src/workflows');
    const { code } = variant === 'sdk' ? await bundleWorkflowCode({ workflowsPath, logger }) : await bundleWeaverWorkflows({ workflowsPath, logger });
    const bundleMs = Date.now() - t0;
    const mapAt = code.lastIndexOf('//# sourceMappingURL=');
    console.log(`workflows from ${path.relative(process.cwd(), workflowsPath)}; workflow bundle (${variant}): ${(code.length / 1024).toFixed(0)} KiB = code ${(mapAt / 1024).toFixed(0)} KiB + inline source map ${((code.length - mapAt) / 1024).toFixed(0)} KiB, built in ${bundleMs} ms`);
    // Refused at validation (no providers): the run's only workflow task, no activity scheduled.
    const refused = { repo: '/nowhere', task: { title: 'bench', description: 'bench' }, providers: [] };
    const cpu = moduleInitCpuMs(code, refused);
    console.log(`workflow modules initialised for one workflow (CPU):    ${fmt(cpu.init)}`);
    console.log(`… and the task's input validated the first time (CPU):   ${fmt(cpu.firstParse)}`);
    const connection = await NativeConnection.connect({ address: server.address });
    const clientConn = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConn, namespace: 'default' });
    const create: number[] = [];
    const toFirstPoll: number[] = [];
    const firstOfWorker: number[] = [];
    const fresh: number[] = [];
    for (let i = 0; i < N; i++) {
      const taskQueue = `bench-start-${process.pid}-${i}`;
      const id = (k: number | string) => `${taskQueue}-${k}`;
      await client.workflow.start('codingTask', { taskQueue, workflowId: id('waiting'), args: [refused] });
      const started = Date.now();
      const worker = await Worker.create({ connection, taskQueue, workflowBundle: { code } });
      create.push(Date.now() - started);
      await worker.runUntil(async () => {
        const first = await firstTask(client, id('waiting'));
        toFirstPoll.push(first.startedAt - started);
        firstOfWorker.push(first.durationMs);
        for (let k = 0; k < M; k++) {
          await client.workflow.start('codingTask', { taskQueue, workflowId: id(k), args: [refused] });
          fresh.push((await firstTask(client, id(k))).durationMs);
        }
      });
    }
    console.log(`Worker.create:                            ${fmt(create)}`);
    console.log(`worker start → first workflow task taken: ${fmt(toFirstPoll)}`);
    console.log(`first workflow task, worker's first run:  ${fmt(firstOfWorker)}`);
    console.log(`first workflow task, a fresh workflow:    ${fmt(fresh)}`);
    await clientConn.close();
    await connection.close();
  } finally {
    await stopProcessGroup(server.pid);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
