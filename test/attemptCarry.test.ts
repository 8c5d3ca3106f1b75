// The attempt loop across continue-as-new: 30 attempts with a low history threshold run in
// several runs, and the ledger comes out exact — every call the scripted server answered is
// booked once, with its spend, under the attempt it belongs to.
import { resultOf } from '../src/client';
import { readArtifact } from '../src/inspect';
import type { Progress } from '../src/domain/schema';
import { progressQuery } from '../src/workflows/messages';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { byTitle, fix, multiRepo, sub } from './support/modules';
import { answer, BAD, GOOD } from './support/replayShapes';
import { runHistories } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const ATTEMPTS = 30;
const HISTORY_EVENTS = 150;

test('30 attempts with historyEvents 150: continues as new, the ledger exact across runs, progress never goes back', async () => {
  const repo = await multiRepo(rig, ['a']);
  const title = 'fix a after many tries';
  // 29 answers that fail the test, then one that passes.
  rig.model.setDefault('carry-model', byTitle({ [title]: [...Array.from({ length: ATTEMPTS - 1 }, () => fix('a', 'not yet')), fix('a')] }));
  const handle = await rig.start({
    repo,
    baseBranch: 'main',
    task: sub(title, 'a'),
    testCommand: ['node', '--test', 'test/a.test.js'],
    providers: [rig.provider('carry-model')],
    limits: { maxAttempts: ATTEMPTS, testTimeoutSec: 60, historyEvents: HISTORY_EVENTS },
    decomposition: 'never',
    push: false,
  });
  const firstRunId = (await handle.describe()).runId;

  // `progress`, asked all along, is answered by whichever run is current and never goes back.
  const seen: Progress[] = [];
  let done = false;
  const polling = (async () => {
    while (!done) {
      const p = await handle.query(progressQuery).catch(() => undefined);
      if (p) seen.push(p);
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  const result = await resultOf(handle);
  done = true;
  await polling;

  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.attempt)).toEqual(Array.from({ length: ATTEMPTS }, (_, i) => i + 1));
  expect(result.attempts.slice(0, -1).every((a) => a.outcome === 'tests_failed')).toBe(true);
  // One call per attempt, booked once: the scripted server's count, and each attempt holds its own.
  expect(rig.model.count('carry-model')).toBe(ATTEMPTS);
  expect(result.usage.calls).toBe(ATTEMPTS);
  expect(result.attempts.map((a) => a.calls.length)).toEqual(Array.from({ length: ATTEMPTS }, () => 1));
  // 100 tokens in at $1/M and 100 out at $2/M a call.
  expect(result.usage.tokensIn).toBe(100 * ATTEMPTS);
  expect(result.usage.tokensOut).toBe(100 * ATTEMPTS);
  expect(result.usage.costUsd).toBeCloseTo(0.0003 * ATTEMPTS, 9);
  const events = result.artifacts.find((a) => a.kind === 'events')!;
  const lines = (await readArtifact(events, { artifactDir: rig.artifactDir, artifacts: undefined })).trim().split('\n');
  expect(lines.map((l) => (JSON.parse(l) as { attempt: number }).attempt)).toEqual(Array.from({ length: ATTEMPTS }, (_, i) => i + 1));

  const runs = await runHistories(rig.client, handle.workflowId, firstRunId);
  expect(runs.length).toBeGreaterThanOrEqual(3);
  // Each run stops at the first attempt boundary past the threshold: one attempt's events over it at most.
  const perAttempt = Math.max(...runs.map((r) => r.events)) - HISTORY_EVENTS;
  expect(perAttempt).toBeLessThan(80);

  expect(seen.length).toBeGreaterThan(3);
  for (let i = 1; i < seen.length; i++) {
    expect(seen[i].attempt).toBeGreaterThanOrEqual(seen[i - 1].attempt);
    expect(seen[i].usage.calls).toBeGreaterThanOrEqual(seen[i - 1].usage.calls);
  }
  // After the end, the last run answers for the whole task; its logs list is bounded.
  const last = await handle.query(progressQuery);
  expect(last).toMatchObject({ attempt: ATTEMPTS, status: 'succeeded' });
  expect(last.usage.calls).toBe(ATTEMPTS);
  expect(last.logs!.length).toBeLessThanOrEqual(20);
  console.log(`${ATTEMPTS} attempts in ${runs.length} runs: ${runs.map((r) => r.events).join(', ')} events`);
}, 180_000);

test('a person in the loop across runs: an early approval refused in the first run is still listed, a hint sent then reaches the last prompt, the approval in the last run pushes', async () => {
  const repo = await rig.newRepo();
  // The first answer is slow enough to signal while the first run is still on it.
  rig.model.script('carry-gate', [answer(BAD, 1500), answer(BAD), answer(GOOD)]);
  const h = await rig.start(rig.task(repo, [rig.provider('carry-gate')], { push: true, requireApproval: true, limits: { maxAttempts: 3, testTimeoutSec: 60, historyEvents: 50 }, decomposition: 'never' }));
  const firstRunId = (await h.describe()).runId;
  await h.signal('approvePush', { approved: true, by: 'too-early' });
  await h.signal('addGuidance', 'the hint from the first run');
  for (;;) {
    const p = await h.query(progressQuery);
    if (p.phase === 'awaiting_approval') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { runId } = await h.describe();
  expect(runId).not.toBe(firstRunId);
  const commit = (await h.query(progressQuery)).commit!;
  expect(await h.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana', commit }] })).toBe('approved: pushing now');
  const r = await resultOf(h);
  expect(r).toMatchObject({ status: 'succeeded', pushed: true, commit, approval: { approved: true, by: 'ana', via: 'update' } });
  expect(r.refusedApprovals?.map((x) => x.by)).toEqual(['too-early']);
  expect(r.usage.calls).toBe(3);
  expect(rig.model.count('carry-gate')).toBe(3);
  expect(lastUserText(rig.model.requestsFor('carry-gate')[2])).toContain('the hint from the first run');
}, 120_000);
