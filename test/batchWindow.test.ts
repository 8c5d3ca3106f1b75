// A batch of thousands, scaled down: 300 tasks uploaded to the artifact store, a window of 8,
// continue-as-new every 100 children, results paged 25 at a time. Most tasks are tiny on purpose
// (a provider the worker does not allow: the child fails at its first activity), so the test stays
// fast; every 50th is a real task (clone, model, tests, commit) that succeeds.
import { getBatchResult, startTaskBatch } from '../src/client';
import type { BatchProgress, CodingTaskInput } from '../src/domain/schema';
import { batchProgressQuery } from '../src/workflows/messages';
import { batchChildId } from '../src/workflows/batchChild';
import { byTitle, fix, multiRepo, sub } from './support/modules';
import { runHistories } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const TOTAL = 300;
const CONTINUE_AFTER = 100;
/** A run of 100 children needs ≈ 9 events each plus its pages and reads; the old one-run batch needed ≈ 2,700 events for 300. */
const MAX_EVENTS_PER_RUN = CONTINUE_AFTER * 12;
const MAX_BYTES_PER_RUN = 1024 * 1024;

test('300 stored tasks, continue-as-new every 100: every result in input order, progress across runs, bounded histories, each child started once', async () => {
  const repo = await multiRepo(rig, ['a']);
  const real = (i: number) => i % 50 === 0;
  const titles = Array.from({ length: TOTAL }, (_, i) => (real(i) ? `real ${i}` : `tiny ${i}`));
  rig.model.setDefault('bw-model', byTitle(Object.fromEntries(titles.filter((_, i) => real(i)).map((t) => [t, fix('a')]))));
  const provider = rig.provider('bw-model');
  const tasks: CodingTaskInput[] = titles.map((title, i) => ({
    repo,
    baseBranch: 'main',
    task: sub(title, 'a'),
    testCommand: ['node', '--test', 'test/a.test.js'],
    providers: real(i) ? [provider] : [{ id: 'not-in-the-registry', model: 'nobody' }],
    limits: { maxAttempts: 1, testTimeoutSec: 60 },
    decomposition: 'never',
    push: false,
  }));
  const id = `batch-window-${Date.now()}`;
  const store = { artifactDir: rig.artifactDir, artifacts: undefined };
  const handle = await startTaskBatch(
    { tasks, concurrency: 8, pageSize: 25, continueAfter: CONTINUE_AFTER },
    { client: rig.client, taskQueue: rig.taskQueue, workflowId: id, upload: true, store },
  );

  // The input names the uploaded list instead of carrying it.
  const first = await runHistories(rig.client, id, handle.firstExecutionRunId);
  const input = first[0].history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!;
  expect(Buffer.from(input).toString()).toMatch(/"tasksRef":\{"ref":"sha256:/);
  expect(Buffer.from(input).length).toBeLessThan(1000);

  // Progress asked during the second run counts what the first finished.
  let during: BatchProgress | undefined;
  for (;;) {
    const p = await handle.query(batchProgressQuery).catch(() => undefined);
    if (p && (p.run ?? 1) >= 2) {
      during = p;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(during.total).toBe(TOTAL);
  expect(during.finished).toBeGreaterThanOrEqual(CONTINUE_AFTER);

  const batch = await getBatchResult(id, { client: rig.client, store });
  expect(batch.results).toHaveLength(TOTAL);
  expect(batch.results.map((r) => r.workflowId)).toEqual(titles.map((t, i) => batchChildId(id, i, t)));
  expect(batch.results.map((r) => r.status)).toEqual(titles.map((_, i) => (real(i) ? 'succeeded' : 'failed')));
  for (const r of batch.results.filter((_, i) => !real(i))) expect(r.reason).toMatch(/not allowed/);
  expect(batch.aggregate).toMatchObject({ total: TOTAL, successCount: 6, failureCount: TOTAL - 6 });
  // Every call the real tasks made is counted once across the runs.
  expect(batch.aggregate.usage.calls).toBe(rig.model.count('bw-model'));
  expect(batch.aggregate.usage.calls).toBe(6);
  expect(batch.pages!.length).toBeGreaterThanOrEqual(TOTAL / 25);

  // The last run answers for the whole batch after it ended.
  expect(await handle.query(batchProgressQuery)).toMatchObject({ total: TOTAL, finished: TOTAL, running: 0, successCount: 6, run: 3 });

  const runs = await runHistories(rig.client, id, handle.firstExecutionRunId);
  expect(runs).toHaveLength(TOTAL / CONTINUE_AFTER);
  for (const r of runs) {
    expect(r.events).toBeLessThanOrEqual(MAX_EVENTS_PER_RUN);
    expect(r.bytes).toBeLessThanOrEqual(MAX_BYTES_PER_RUN);
  }
  // Each slot's child was started by exactly one run: no child started twice across a boundary.
  const started = runs.flatMap((r) => r.history.events!.flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []));
  expect(started).toHaveLength(TOTAL);
  expect(new Set(started).size).toBe(TOTAL);
  console.log(`batch of ${TOTAL}: ${runs.length} runs, largest ${Math.max(...runs.map((r) => r.events))} events / ${Math.max(...runs.map((r) => r.bytes))} bytes`);
}, 180_000);
