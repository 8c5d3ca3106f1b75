// Benchmark: what one task costs in Temporal round trips, read from finished runs' histories.
//
//   npx tsx scripts/bench-round-trips.ts                 (BENCH_N tasks, default 5)
//   BENCH_WORKFLOWS=/path/to/other/src/workflows npx tsx scripts/bench-round-trips.ts
//
// It starts what the tests start (test/globalSetup.ts: a throwaway dev server and the workflow
// bundle — of BENCH_WORKFLOWS if given, e.g. a checkout of an earlier commit with node_modules
// linked, to compare before and after with the same activities; test/support/weaver.ts: a real
// worker, real repositories, the scripted model server) and runs one-attempt pushed codingTasks.
// Prints medians per task: workflow tasks, activities scheduled, local activities, events,
// history bytes, search-attribute upserts (Weaver's, and all with the SDK's TemporalChangeVersion
// ones for patches). Timings are scripts/bench.ts's.
import { temporal } from '@temporalio/proto';
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { historyShape } from '../test/support/histories';
import { answer, GOOD } from '../test/support/replayShapes';
import { closeTestConnections, startRig } from '../test/support/weaver';

const N = Math.max(1, Number(process.env.BENCH_N || 5));
process.env.WEAVER_TEST_LOG_LEVEL ??= 'ERROR';
if (process.env.BENCH_WORKFLOWS) process.env.WEAVER_TEST_WORKFLOWS_PATH = process.env.BENCH_WORKFLOWS;

const sum = (r: Record<string, number>) => Object.values(r).reduce((s, n) => s + n, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function measure(): Promise<Record<string, number[]>> {
  const rig = await startRig();
  const rows: Record<string, number[]> = {};
  try {
    for (let i = 0; i < N; i++) {
      rig.model.script('trips', [answer(GOOD)]);
      const result = await rig.run(rig.task(await rig.newRepo(), [rig.provider('trips')], { push: true }));
      if (result.status !== 'succeeded' || result.attempts.length !== 1) throw new Error(`${result.workflowId}: ${result.status} in ${result.attempts.length} attempts: ${result.reason}`);
      const history = await rig.client.workflow.getHandle(result.workflowId).fetchHistory();
      const shape = historyShape(history);
      const figures: Record<string, number> = {
        'workflow tasks': shape.workflowTasks,
        'activities scheduled': sum(shape.activities),
        'local activities': sum(shape.localActivities),
        events: history.events?.length ?? 0,
        'history bytes': temporal.api.history.v1.History.encode(history).finish().length,
        "upserts of Weaver's search attributes": shape.upserts.length,
        "upserts in all (with patches' TemporalChangeVersion)": (history.events ?? []).filter((e) => e.upsertWorkflowSearchAttributesEventAttributes).length,
      };
      for (const [k, v] of Object.entries(figures)) (rows[k] ??= []).push(v);
    }
  } finally {
    await rig.close().catch(() => undefined);
    await closeTestConnections();
  }
  return rows;
}

async function main(): Promise<void> {
  await globalSetup();
  try {
    const rows = await measure();
    console.log(`per one-attempt pushed task, median of ${N} (workflows from ${process.env.BENCH_WORKFLOWS ?? 'this checkout'}):`);
    for (const [k, xs] of Object.entries(rows)) console.log(`  ${k.padEnd(56)} ${String(median(xs)).padStart(7)}   (min ${Math.min(...xs)}, max ${Math.max(...xs)})`);
  } finally {
    await globalTeardown();
  }
}

void main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
