/**
 * Determinism across deploys: every recorded history in test/fixtures/replay (one real run per
 * path the workflow code can take — each strategy, durable provider waits, decomposition with
 * merge and its children, a batch and its children, approval by update and by signal,
 * cancellation, a workspace rebuild, a budget refusal, a lost host given up on, a lost host found by
 * its silent check (no retry to its dead queue), a change queued on
 * a busy workspace worker, a decomposition since child-task-timeout) replays against the current workflow
 * bundle. A code change that would break workflows already running fails here with a
 * DeterminismViolationError naming the fixture; version it (patched()) instead of re-recording.
 *
 * Recorded by `npx tsx scripts/record-replay-fixtures.ts` (see there); the scenarios and what
 * each history must show are in test/support/replayScenarios.ts.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJSONCompat, historyShape, loadReplayFixture, readReplayManifest, REPLAY_FIXTURES_DIR, type RecordedHistory, type ReplayManifest } from './support/histories';
import { REPLAY_SCENARIOS, shapeProblems } from './support/replayScenarios';
import { workflowBundle } from './support/temporal';

let manifest: ReplayManifest;
const histories = new Map<string, RecordedHistory>();

beforeAll(async () => {
  manifest = await readReplayManifest();
  for (const s of manifest.scenarios) for (const f of s.histories) histories.set(f.file, await loadReplayFixture(f));
});

const describeResults = (results: ReplayResult[]) =>
  results.map((r) => ({ workflowId: r.workflowId, error: r.error ? `${r.error.name}: ${r.error.message}` : undefined }));

test('there is a fixture for every scenario, each the run it claims to be', () => {
  expect(manifest.scenarios.map((s) => s.name)).toEqual(REPLAY_SCENARIOS.map((s) => s.name));
  for (const scenario of REPLAY_SCENARIOS) {
    const record = manifest.scenarios.find((s) => s.name === scenario.name)!;
    for (const f of record.histories) expect(existsSync(path.join(REPLAY_FIXTURES_DIR, f.file))).toBe(true);
    const shapes = record.histories.map((f) => historyShape(histories.get(f.file)!.history));
    const [top, ...children] = shapes;
    expect({ scenario: scenario.name, problems: shapeProblems(top, scenario.expect) }).toEqual({ scenario: scenario.name, problems: [] });
    // A parent's (or batch's) children are all there, under the ids the parent started.
    expect(record.histories.slice(1).map((f) => f.workflowId)).toEqual(top.children);
    for (const c of children) expect(c.workflowType).toBe('codingTask');
    // Recorded by current code: every task's settings (defaults, prices) resolved by the worker at
    // start (a run continued from another has them in its carry).
    for (const [i, s] of shapes.entries()) {
      if (s.workflowType !== 'codingTask' || s.continued) continue;
      expect({ file: record.histories[i].file, patches: s.patches }).toEqual({ file: record.histories[i].file, patches: expect.arrayContaining(['settings-from-history']) });
    }
  }
});

test('every recorded history replays against the current workflow code', async () => {
  const all = manifest.scenarios.flatMap((s) => s.histories.map((f) => histories.get(f.file)!));
  expect(all.length).toBeGreaterThanOrEqual(REPLAY_SCENARIOS.length + 4);
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: workflowBundle() }, all)) results.push(r);
  expect(describeResults(results)).toEqual(all.map((h) => ({ workflowId: h.workflowId, error: undefined })));
});

test('the replay is not vacuous: a fixture changed to a path the code did not take is reported as non-determinism', async () => {
  const record = manifest.scenarios.find((s) => s.name === 'decomposition-merge')!.histories[0];
  const json = JSON.parse(await readFile(path.join(REPLAY_FIXTURES_DIR, record.file), 'utf8')) as { events: Record<string, { activityType?: { name: string } }>[] };
  const merge = json.events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'mergeBranches');
  merge!.activityTaskScheduledEventAttributes.activityType!.name = 'rebaseBranches';
  const results: ReplayResult[] = [];
  const tampered = { workflowId: record.workflowId, history: historyFromJSONCompat(json) };
  for await (const r of Worker.runReplayHistories({ workflowBundle: workflowBundle() }, [tampered])) results.push(r);
  expect(results).toHaveLength(1);
  expect(results[0].error).toBeInstanceOf(DeterminismViolationError);
});
