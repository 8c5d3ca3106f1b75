// Losing the workspace within one attempt (issue 17, item 3): real dev server, real workers, real
// git, real test processes, the scripted model server. While each rebuilt workspace gets the paid
// answer applied again, nothing bounds the rebuilds; losses in a row before the answer could be
// applied stop the task, saying so, and the failed result lists its attempt with its call and
// spend, naming no workspace on the lost host.
import { rm } from 'node:fs/promises';
import { workspaceDirFor } from '../src/activities/workspace';
import { resultOf } from '../src/client';
import { MAX_LOSSES_WITHOUT_PROGRESS } from '../src/domain/rebuilds';
import { wholeFile } from './support/answers';
import { eventsOf } from './support/calls';
import { activitiesOf, processesWith, waitUntil } from './support/processes';
import { closeTestConnections, startRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const USAGE = { prompt_tokens: 300, completion_tokens: 100 };

const rigs: Rig[] = [];
afterAll(async () => {
  for (const r of rigs) await r.close().catch(() => undefined);
  await closeTestConnections();
});

async function newRig(opts: Parameters<typeof startRig>[0] = { deps: { queueCheckSec: 1 } }): Promise<Rig> {
  // A workspace queue nobody takes from is found lost after 1 s + the 3 s liveness ping.
  const rig = await startRig(opts);
  rigs.push(rig);
  return rig;
}

test('a workspace lost 5 times in one attempt while its checks run: rebuilt each time, the paid answer re-applied, the task succeeds with one paid answer', async () => {
  const rig = await newRig();
  const LOSSES = 5;
  rig.model.script('m-five', [{ content: wholeFile('src/slugify.js', GOOD, 'slugify'), usage: USAGE }]);
  const marker = `1.${Date.now() % 1_000_000}`; // a unique `sleep` argument: the test run, seen from /proc
  const id = `rebuild-five-${Date.now()}`;
  const handle = await rig.start(rig.task(await rig.newRepo(), [rig.provider('m-five')], { testCommand: ['sh', '-c', `sleep ${marker}; node --test test/`], push: true }), id);
  // Each time the checks run on a (re)built workspace, its disk is wiped under them, as a lost host's is.
  for (let i = 0; i < LOSSES; i++) {
    await waitUntil(`check run ${i + 1}`, () => processesWith(`sleep ${marker}`).length > 0, 120_000, 50);
    // Retried: the sandbox may be writing its control files there as it is removed (ENOTEMPTY).
    await rm(workspaceDirFor(rig.workspaceRoot, id), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    await waitUntil(`check run ${i + 1} to end`, () => processesWith(`sleep ${marker}`).length === 0, 60_000, 50);
  }
  const result = await resultOf(handle);
  expect({ status: result.status, reason: result.reason }).toMatchObject({ status: 'succeeded' });
  // One answer, bought once, applied on six workspaces (the first and five rebuilds).
  expect(rig.model.count('m-five')).toBe(1);
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].calls).toHaveLength(1);
  expect(result.attempts[0].notes?.filter((n) => /applied again on a rebuilt workspace/.test(n))).toHaveLength(LOSSES);
  expect((await eventsOf(result, rig.artifactDir)).map((e) => e.outcome)).toEqual(['ok']);
  const activities = await activitiesOf(rig.client, id);
  expect(activities.filter((a) => a.type === 'prepareWorkspace')).toHaveLength(LOSSES + 1);
  // Applied and checked in one activity on each: lost in the check five times (the workspace gone), then passed.
  const folds = activities.filter((a) => a.type === 'applyChangeAndCheck').map((a) => a.closed);
  expect(folds).toHaveLength(LOSSES + 1);
  expect(folds.slice(0, LOSSES).filter((c) => /^failed workspace .* is gone from this worker/.test(c ?? ''))).toHaveLength(LOSSES);
  expect(folds.at(-1)).toBe('completed');
}, 300_000);

test('a workspace lost again and again before the answer could be applied: failed with the reason, its attempt listed with its call and spend, no workspace named', async () => {
  const rig = await newRig();
  const [, workspaceWorker, livenessWorker] = rig.workers.workers;
  // The answer is paid; then this host's workspace queue goes silent (its worker and liveness
  // responder stop), while its shared-queue worker still prepares every rebuild — there.
  rig.model.setDefault('m-lost', () => {
    workspaceWorker.shutdown();
    livenessWorker.shutdown();
    return { content: wholeFile('src/slugify.js', GOOD, 'slugify'), usage: USAGE };
  });
  const result = await rig.run(rig.task(await rig.newRepo(), [rig.provider('m-lost')], { push: true }));
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(new RegExp(`^the workspace was lost ${MAX_LOSSES_WITHOUT_PROGRESS} times in a row before the answer could be applied on a rebuilt one \\(${MAX_LOSSES_WITHOUT_PROGRESS} lost in attempt 1; last: `));
  expect(rig.model.count('m-lost')).toBe(1);
  // The attempt it failed in, with its one paid call.
  expect(result.attempts).toHaveLength(1);
  const [attempt] = result.attempts;
  expect(attempt).toMatchObject({ attempt: 1, outcome: 'workspace_lost', decision: { action: 'fail', why: result.reason } });
  expect(attempt.calls).toHaveLength(1);
  expect(attempt.calls[0]).toMatchObject({ outcome: 'ok', tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(attempt.calls[0].costUsd).toBeGreaterThan(0);
  expect(result.usage.costUsd).toBeCloseTo(attempt.calls[0].costUsd, 9);
  // Its workspaces are on the lost host: none is named as live.
  expect(result.workspace).toBeUndefined();
  // The first workspace and two rebuilds, each lost before the answer could be applied on it.
  const activities = await activitiesOf(rig.client, result.workflowId);
  expect(activities.filter((a) => a.type === 'prepareWorkspace')).toHaveLength(MAX_LOSSES_WITHOUT_PROGRESS);
  expect(activities.filter((a) => a.type === 'applyChangeAndCheck').map((a) => a.closed)).toEqual(Array(MAX_LOSSES_WITHOUT_PROGRESS).fill('timed out SCHEDULE_TO_START'));
}, 300_000);

test('a busy worker is not taken for a dead one: a step queued behind a long check finds its worker alive and waits; no rebuild', async () => {
  // Default queue checks; one workspace activity at a time, so while task A's check runs this
  // worker takes nothing from its workspace queue (it does not even poll it) and B's steps queue.
  const rig = await newRig({ settings: { maxWorkspaceActivities: 1 } });
  rig.model.script('m-busy-a', [{ content: wholeFile('src/slugify.js', GOOD, 'slugify'), usage: USAGE }]);
  rig.model.script('m-busy-b', [{ content: wholeFile('src/slugify.js', GOOD, 'slugify'), usage: USAGE }]);
  const marker = `12.${Date.now() % 1_000_000}`; // a unique `sleep` argument, longer than B's wait for a first check
  const [idA, idB] = [`busy-a-${Date.now()}`, `busy-b-${Date.now()}`];
  const a = await rig.start(rig.task(await rig.newRepo(), [rig.provider('m-busy-a')], { testCommand: ['sh', '-c', `sleep ${marker}; node --test test/`] }), idA);
  await waitUntil("A's long check", () => processesWith(`sleep ${marker}`).length > 0, 120_000, 50);
  const b = await rig.start(rig.task(await rig.newRepo(), [rig.provider('m-busy-b')]), idB);
  const results = await Promise.all([resultOf(a), resultOf(b)]);
  expect(results.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
  for (const r of results) expect(r.attempts.flatMap((x) => x.notes ?? []).filter((n) => /lost/.test(n))).toEqual([]);
  const [actsA, actsB] = await Promise.all([activitiesOf(rig.client, idA), activitiesOf(rig.client, idB)]);
  // Never rebuilt: one workspace each.
  expect(actsA.filter((x) => x.type === 'prepareWorkspace')).toHaveLength(1);
  expect(actsB.filter((x) => x.type === 'prepareWorkspace')).toHaveLength(1);
  // B's step did wait out its first queue check, and the liveness ping answered every time.
  expect(actsB.filter((x) => x.closed === 'timed out SCHEDULE_TO_START').length).toBeGreaterThan(0);
  const pings = actsB.filter((x) => x.type === 'workspaceAlive');
  expect(pings.length).toBeGreaterThan(0);
  expect(pings.map((p) => p.closed)).toEqual(pings.map(() => 'completed'));
}, 300_000);
