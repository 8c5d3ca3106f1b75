/**
 * Determinism guard: histories of real codingTask runs replayed against the current workflow
 * bundle (the one globalSetup builds from src/workflows). A change to workflow code that would
 * break runs already in flight fails here with a DeterminismViolationError.
 *
 * test/fixtures/histories/coding-task-retry.json is a recorded run (attempt 1 fails its tests,
 * attempt 2 passes and commits), in the JSON format of `temporal workflow show --output json`.
 * It is committed on purpose: it pins the command sequence of runs recorded with older code.
 * Regenerate it ONLY when an incompatible workflow change is intended (and versioned with
 * patched()/deprecatePatch or a new workflow type) — otherwise a failure here is the bug:
 *
 *   WEAVER_RECORD_HISTORIES=1 npx jest test/replay.test.ts
 *
 * which re-runs the retry task under the fixed workflow id below and rewrites the file with
 * `temporal workflow show --output json` (the format every Temporal tool reads).
 *
 * The fixtures of every other path (strategies, waits, decomposition, batch, approval,
 * cancellation, rebuild, budget) are replayed by test/replayFixtures.test.ts; the same under
 * changed prices and defaults by test/replayConstants.test.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { temporalCliPath, testAddress, workflowBundle } from './support/temporal';
import { resultOf } from '../src/client';
import { useRig, type Rig } from './support/weaver';
import { wholeFile } from './support/answers';
import { historyFromJSONCompat } from './support/histories';

const FIXTURE = path.join(__dirname, 'fixtures', 'histories', 'coding-task-retry.json');
/** Histories carry no workflow id; the workflow reads it (branch name), so replay with the recorded one. */
const FIXTURE_WORKFLOW_ID = 'weaver-replay-fixture-coding-task-retry';
const RECORD = process.env.WEAVER_RECORD_HISTORIES === '1';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;
const answer = (content: string) => ({ content: wholeFile('src/slugify.js', content, 'edit slugify') });

let rig: Rig;
useRig((r) => (rig = r));

const replayOptions = () => ({ workflowBundle: workflowBundle() });

async function replayAll(histories: HistoryAndWorkflowId[]): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories(replayOptions(), histories)) results.push(r);
  return results;
}

const describeErrors = (results: ReplayResult[]) =>
  results.map((r) => ({ workflowId: r.workflowId, error: r.error ? `${r.error.name}: ${r.error.message}` : undefined }));

async function loadFixture(): Promise<unknown> {
  return JSON.parse(await readFile(FIXTURE, 'utf8')) as unknown;
}

test('live runs (retry then success; 401 failure) replay without determinism violations', async () => {
  const retryRepo = await rig.newRepo();
  rig.model.script('replay-retry', [answer(BAD), answer(GOOD)]);
  const retry = await rig.start(
    rig.task(retryRepo, [rig.provider('replay-retry')], { push: true }),
    RECORD ? FIXTURE_WORKFLOW_ID : undefined,
  );

  const authRepo = await rig.newRepo();
  rig.model.script('replay-401', [{ status: 401 }]);
  const auth = await rig.start(rig.task(authRepo, [rig.provider('replay-401')]));

  // The 401 run fails its workflow (TaskFailed) with its result as the failure's details.
  const [retryResult, authResult] = await Promise.all([resultOf(retry), resultOf(auth)]);
  // The runs took the paths this test means to cover.
  expect(retryResult.status).toBe('succeeded');
  expect(retryResult.attempts.map((a) => a.decision.action)).toEqual(['retry', 'commit']);
  expect(authResult.status).toBe('failed');
  expect(authResult.attempts.map((a) => a.outcome)).toEqual(['provider_failed']);

  const histories: HistoryAndWorkflowId[] = [
    { workflowId: retry.workflowId, history: await retry.fetchHistory() },
    { workflowId: auth.workflowId, history: await auth.fetchHistory() },
  ];
  const results = await replayAll(histories);
  expect(describeErrors(results)).toEqual([
    { workflowId: retry.workflowId, error: undefined },
    { workflowId: auth.workflowId, error: undefined },
  ]);

  if (RECORD) {
    const { stdout } = await promisify(execFile)(
      temporalCliPath(),
      ['workflow', 'show', '--workflow-id', FIXTURE_WORKFLOW_ID, '--output', 'json', '--address', testAddress(), '--namespace', 'default'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    await mkdir(path.dirname(FIXTURE), { recursive: true });
    await writeFile(FIXTURE, stdout.endsWith('\n') ? stdout : `${stdout}\n`);
    process.stderr.write(`[replay.test] recorded ${FIXTURE}\n`);
  }
});

test('the committed history of a retried run replays against the current workflow code', async () => {
  expect(existsSync(FIXTURE)).toBe(true);
  const history = historyFromJSONCompat(await loadFixture());
  // Sanity: it is the run this fixture is meant to be (two attempts, then commit and report).
  const scheduled = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes?.activityType?.name ? [e.activityTaskScheduledEventAttributes.activityType.name] : []));
  expect(scheduled.filter((n) => n === 'generateChange')).toHaveLength(2);
  expect(scheduled).toEqual(expect.arrayContaining(['prepareWorkspace', 'runTests', 'rollbackWorkspace', 'commitAndPush', 'storeArtifact']));

  await expect(Worker.runReplayHistory(replayOptions(), history, FIXTURE_WORKFLOW_ID)).resolves.toBeUndefined();
});

test('the guard is not vacuous: a history the code cannot have produced is a DeterminismViolationError', async () => {
  const json = (await loadFixture()) as { events: { activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[] };
  const first = json.events.find((e) => e.activityTaskScheduledEventAttributes);
  expect(first?.activityTaskScheduledEventAttributes?.activityType.name).toBe('prepareWorkspace');
  first!.activityTaskScheduledEventAttributes!.activityType.name = 'somethingElseEntirely';

  const err = await Worker.runReplayHistory(replayOptions(), historyFromJSONCompat(json), FIXTURE_WORKFLOW_ID).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DeterminismViolationError);
});
