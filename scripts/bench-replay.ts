// Benchmark: the workflow code's CPU per task, apart from everything else — a recorded history
// (test/fixtures/replay) replayed N times by the SDK's replay worker with the worker's own bundle
// options (reused V8 context, the workflow thread), after a warm-up. Replaying a history runs the
// same workflow code, activation by activation, as the live run did, without the server or any
// activity: what the workflow thread costs a task.
//
//   npx tsx scripts/bench-replay.ts [fixture (default commit-with-checks)] [N (default 200)]
//
// BENCH_PROFILE=<file> adds a CPU profile of the main thread (the workflow thread is not in it).
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { historyFromJSONCompat } from '../test/support/histories';
import { bundleWeaverWorkflows } from '../src/workflowBundle';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const fixture = process.argv[2] ?? 'commit-with-checks';
  const n = Math.max(1, Number(process.argv[3] ?? 200));
  const history = historyFromJSONCompat(JSON.parse(readFileSync(path.join(__dirname, '..', 'test', 'fixtures', 'replay', `${fixture}.json`), 'utf8')));
  const workflowBundle = await bundleWeaverWorkflows({ logger: new DefaultLogger('ERROR') });
  const replay = async (count: number) => {
    async function* histories() {
      for (let i = 0; i < count; i++) yield { workflowId: `replay-${i}`, history };
    }
    for await (const r of Worker.runReplayHistories({ workflowBundle }, histories())) if (r.error) throw r.error;
  };
  await replay(20);
  const session = process.env.BENCH_PROFILE ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await replay(n);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  if (session) writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify((await session.post('Profiler.stop')).profile));
  console.log(`${fixture}: ${history.events?.length ?? 0} events, ${n} replays: ${((cpu.user + cpu.system) / 1000 / n).toFixed(2)} ms CPU (all threads) and ${(wall / n).toFixed(2)} ms wall per replay`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
