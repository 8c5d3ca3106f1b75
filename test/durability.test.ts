// Durability against a REAL worker crash: a worker process is SIGKILLed (its whole process
// group) while a provider call is on the wire. A replacement worker on the same queues takes
// over; the run completes, and the call whose answer was lost is booked as ESTIMATED spend
// (the reservation), never as known tokens (design rules 4 and 5). And a worker killed right
// after the answer arrived: the answer it kept is delivered, never bought again (issue 17) — on
// the same host, and on another host that shares only Temporal and an S3 bucket with it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { simpleGit } from 'simple-git';
import type { CallBeat } from '../src/activities/answers';
import { startCodingTask } from '../src/client';
import { createExampleRepo, exampleTask } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import type { ActivityDeps } from '../src/activities/types';
import type { ProviderSpec } from '../src/domain/schema';
import { createWorkers } from '../src/worker';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { closeTestConnections, testAddress, testClient, testNativeConnection, uniqueQueue, workflowBundle } from './support/temporal';
import { wholeFile } from './support/answers';
import { eventsOf } from './support/calls';
import { activitiesOf, startWorkerProcess, type WorkerProcess } from './support/processes';
import { useS3Server, type S3Server } from './support/s3';

const MODEL = 'crash-model';
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const USAGE = { prompt_tokens: 100, completion_tokens: 200 };
const PRICING = { inputPerMTok: 10, outputPerMTok: 10 };
const API_KEY_ENV = { TEST_API_KEY: 'sk-test-secret-key-123456789' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Live (non-zombie) processes of a process group, from /proc; falls back to kill(-pgid, 0) elsewhere. */
function liveMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const live: number[] = [];
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') live.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return live;
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

const spawned: WorkerProcess[] = [];

/** A worker process in its own process group (pid = pgid), killed whole after the tests. */
async function spawnWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const w = await startWorkerProcess(env);
  spawned.push(w);
  return w;
}
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  // Whatever happened in the test, no spawned worker outlives it.
  for (const w of spawned) killGroup(w.pid);
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closeTestConnections();
});

/** A temp dir, the scripted model server, a provider registry file and a worker process's env on fresh queues. */
async function crashRig(name: string, extraEnv: Record<string, string> = {}) {
  const tmp = sandboxableTempDir(`weaver-${name}-`);
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const artifactDir = path.join(tmp, 'artifacts');
  const workspaceRoot = path.join(tmp, 'workspaces');
  const model = await ScriptedModelServer.start();
  cleanups.push(() => model.close());
  const taskQueue = uniqueQueue(name);
  const workspaceQueue = `${taskQueue}-ws`;
  const bundleFile = process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
  if (!bundleFile) workflowBundle(); // throws the reason there is no bundle
  // The worker's provider registry in a file (WEAVER_PROVIDERS): the key is the worker's.
  const registry = { providers: { [MODEL]: { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: [MODEL], pricing: PRICING } } };
  const registryFile = path.join(tmp, 'providers.json');
  await writeFile(registryFile, JSON.stringify(registry));
  const env = {
    ...API_KEY_ENV,
    WEAVER_PROVIDERS: registryFile,
    TEMPORAL_ADDRESS: testAddress(),
    TEMPORAL_NAMESPACE: 'default',
    WEAVER_TASK_QUEUE: taskQueue,
    WEAVER_WORKSPACE_QUEUE: workspaceQueue,
    WEAVER_WORKSPACE_ROOT: workspaceRoot,
    WEAVER_ARTIFACT_DIR: artifactDir,
    WEAVER_REPO_ROOTS: tmp,
    WEAVER_HEARTBEAT_MS: '50',
    WEAVER_RETRY_DELAY_SCALE: '0.01',
    WEAVER_WORKFLOW_BUNDLE: bundleFile!,
    ...extraEnv,
  };
  /**
   * A replacement worker in this process on the same queues, workspace root and artifact store;
   * `host`: another host's instead (its own workspace queue, root and artifact directory, the store given).
   */
  const replace = async (host?: { name: string; deps: Partial<ActivityDeps> }) => {
    const own = host ? { artifactDir: path.join(tmp, host.name, 'artifacts'), workspaceRoot: path.join(tmp, host.name, 'workspaces') } : { artifactDir, workspaceRoot };
    const replacement = await createWorkers({
      connection: await testNativeConnection(),
      taskQueue,
      workspaceQueue: host ? `${workspaceQueue}-${host.name}` : workspaceQueue,
      workflowBundle: workflowBundle(),
      providers: registry,
      deps: { ...own, env: { ...process.env, ...API_KEY_ENV }, heartbeatMs: 50, retryDelayScale: 0.01, repoRoots: [tmp], ...host?.deps },
    });
    const running = replacement.run();
    cleanups.push(async () => {
      replacement.shutdown();
      await running;
    });
  };
  return { tmp, artifactDir, model, taskQueue, env, replace };
}

/** SIGKILLs a worker's whole process group and waits until nothing of it is left. */
async function killWorker(w: WorkerProcess): Promise<void> {
  killGroup(w.pid);
  // A hang guard, not a speed bound: nothing of a SIGKILLed group ends by itself, so only the kill empties it.
  for (let i = 0; i < 300 && liveMembers(w.pid).length; i++) await sleep(100);
  expect(liveMembers(w.pid)).toEqual([]);
}

test('a worker SIGKILLed mid provider call: the run completes elsewhere and the lost call is estimated spend', async () => {
  const { tmp, artifactDir, model, taskQueue, env, replace } = await crashRig('durability');
  // 1. A real worker process.
  const doomed = await spawnWorker(env);

  // 2. The first call never answers (it is on the wire when the worker dies); the next one does.
  model.script(MODEL, [{ hang: true }, { content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
  const provider: ProviderSpec = { id: MODEL, model: MODEL, maxTokens: 10_000 };
  const repo = await createExampleRepo(path.join(tmp, 'repo'));
  const input = {
    ...exampleTask(repo, provider),
    push: true,
    strategy: { mode: 'sequential' as const, retry: { maxTries: 3, initialIntervalMs: 10, maxIntervalMs: 50 } },
  };
  const handle = await startCodingTask(input, { client: await testClient(), taskQueue, workflowId: `durability-${taskQueue}` });

  // 3. Kill the worker's whole process group while the call is in flight.
  await model.waitFor((m) => m.count(MODEL) === 1 && m.inFlightFor(MODEL) === 1, 30_000);
  const killedAt = Date.now();
  await killWorker(doomed);
  await model.waitFor((m) => m.abortedCount(MODEL) === 1, 10_000); // the socket died with the process

  // 4. A replacement worker on the same queues, workspace root and artifact store.
  await replace();

  await model.waitFor((m) => m.count(MODEL) === 2, 90_000);
  const detectedMs = model.requestsFor(MODEL)[1].receivedAt - killedAt;
  const result = await handle.result();
  const totalMs = Date.now() - killedAt;
  process.stderr.write(`[durability] crash detected and call retried ${detectedMs} ms after SIGKILL; run finished ${totalMs} ms after it\n`);

  // 5. The run completed on the replacement, with the change committed and pushed.
  expect(result.status).toBe('succeeded');
  expect(result.commit).toBeTruthy();
  expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
  expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);

  // 6. Exactly one event per HTTP request: the lost one (estimated) and the answered one (known).
  const events = await eventsOf(result, artifactDir);
  expect(events).toHaveLength(model.count(MODEL));
  expect(events).toHaveLength(2);
  const lost = events.filter((e) => e.outcome === 'lost');
  const ok = events.filter((e) => e.outcome === 'ok');
  expect(lost).toHaveLength(1);
  expect(ok).toHaveLength(1);
  expect(lost[0]).toMatchObject({ provider: MODEL, errorFamily: 'timeout', tokensIn: 0, tokensOut: 0, costUsd: 0 });
  expect(lost[0].estimatedCostUsd).toBeGreaterThan(0);
  // The estimate is the reservation: at least maxTokens of output at $10/MTok.
  expect(lost[0].estimatedCostUsd).toBeGreaterThanOrEqual(0.1);
  expect(ok[0]).toMatchObject({ tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(ok[0].costUsd).toBeCloseTo(((USAGE.prompt_tokens + USAGE.completion_tokens) * 10) / 1e6, 9);
  expect(ok[0].estimatedCostUsd ?? 0).toBe(0);

  // Known tokens and cost count only the answered call; the lost one is estimated spend only.
  expect(result.usage.estimatedCostUsd).toBeCloseTo(lost[0].estimatedCostUsd!, 9);
  expect(result.usage.tokensIn).toBe(USAGE.prompt_tokens);
  expect(result.usage.tokensOut).toBe(USAGE.completion_tokens);
  expect(result.usage.costUsd).toBeCloseTo(ok[0].costUsd, 9);
  expect(result.usage.calls).toBe(2);
  expect(result.usage.byProvider[MODEL]).toMatchObject({ calls: 2, failures: { timeout: 1 }, tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(result.usage.byProvider[MODEL].estimatedCostUsd).toBeCloseTo(lost[0].estimatedCostUsd!, 9);

  // Nothing of the killed worker is left.
  expect(liveMembers(doomed.pid)).toEqual([]);
}, 120_000);

/** The generateChange heartbeat details Temporal holds for a run's pending call (the last beat that reached the server). */
async function pendingCallBeat(handle: WorkflowHandle): Promise<CallBeat | undefined> {
  const { raw } = await handle.describe();
  const pending = (raw.pendingActivities ?? []).find((a) => a.activityType?.name === 'generateChange');
  const payload = pending?.heartbeatDetails?.payloads?.[0];
  return payload ? (defaultPayloadConverter.fromPayload(payload) as CallBeat) : undefined;
}

/** Polls the pending call's heartbeat details (every 50 ms, 600 times at most) until they name the kept answer. */
async function keptAnswerBeat(handle: WorkflowHandle): Promise<CallBeat | undefined> {
  let beat: CallBeat | undefined;
  for (let i = 0; i < 600 && !beat?.answer; i++) {
    beat = await pendingCallBeat(handle);
    if (!beat?.answer) await sleep(50);
  }
  return beat;
}

test('a worker SIGKILLed right after the answer arrived: the kept answer is delivered by the retry, not asked again, booked once as a real call', async () => {
  // The worker holds (fault injection) between keeping the answer and completing: where it is killed.
  const { tmp, artifactDir, model, taskQueue, env, replace } = await crashRig('kept-answer', { WEAVER_FAULT_HOLD_AFTER_ANSWER_MS: '600000' });
  const doomed = await spawnWorker(env);
  // One answer scripted: a second request would get the server's "script ran out" 400.
  model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
  const repo = await createExampleRepo(path.join(tmp, 'repo'));
  const input = { ...exampleTask(repo, { id: MODEL, model: MODEL, maxTokens: 10_000 }), push: true };
  // The server signals the answer went out; then the heartbeat naming the kept answer reaches Temporal.
  let sentAt = 0;
  model.once('response', () => (sentAt = Date.now()));
  const handle = await startCodingTask(input, { client: await testClient(), taskQueue, workflowId: `kept-answer-${taskQueue}` });
  await model.waitFor((m) => m.requestsFor(MODEL)[0]?.status === 200, 60_000);
  const beat = await keptAnswerBeat(handle);
  const beatSeenMs = Date.now() - sentAt;
  expect(beat).toMatchObject({ provider: MODEL, tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens, answer: { kind: 'answer' } });
  const killedAt = Date.now();
  await killWorker(doomed);
  await replace();
  const result = await handle.result();
  process.stderr.write(`[durability] answer sent → its reference seen in Temporal's heartbeat details: ${beatSeenMs} ms (polled every 50 ms); run finished ${Date.now() - killedAt} ms after the kill\n`);

  expect(result.status).toBe('succeeded');
  expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);
  // Asked once: one request at the server, one call booked at the tokens the provider reported.
  expect(model.count(MODEL)).toBe(1);
  const events = await eventsOf(result, artifactDir);
  expect(events.map((e) => e.outcome)).toEqual(['ok']);
  expect(events[0]).toMatchObject({ tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(events[0].estimatedCostUsd ?? 0).toBe(0);
  expect(result.usage).toMatchObject({ calls: 1, tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(result.usage.estimatedCostUsd ?? 0).toBe(0);
  // The same call, its second execution (Temporal's retry after the heartbeat timeout) delivered it.
  const calls = (await activitiesOf(await testClient(), handle.workflowId)).filter((a) => a.type === 'generateChange');
  expect(calls.map((c) => ({ attempt: c.attempt, closed: c.closed, lastFailure: c.lastFailure }))).toEqual([{ attempt: 2, closed: 'completed', lastFailure: 'timeout HEARTBEAT' }]);
}, 150_000);

describe('two hosts sharing only Temporal and an S3 bucket', () => {
  let s3: S3Server;
  useS3Server((server) => (s3 = server));

  test('host A keeps the answer in the bucket and is SIGKILLed; host B (its own disk) delivers it from there: asked once, booked once', async () => {
    const store = { WEAVER_ARTIFACTS: 's3://weaver-kept/answers', ...s3.env };
    const { tmp, model, taskQueue, env, replace } = await crashRig('kept-s3', { WEAVER_FAULT_HOLD_AFTER_ANSWER_MS: '600000', ...store });
    const hostA = await spawnWorker(env);
    model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
    const repo = await createExampleRepo(path.join(tmp, 'repo'));
    const input = { ...exampleTask(repo, { id: MODEL, model: MODEL, maxTokens: 10_000 }), push: true };
    const handle = await startCodingTask(input, { client: await testClient(), taskQueue, workflowId: `kept-s3-${taskQueue}` });
    await model.waitFor((m) => m.requestsFor(MODEL)[0]?.status === 200, 60_000);
    const beat = await keptAnswerBeat(handle);
    expect(beat?.answer).toMatchObject({ kind: 'answer' });
    await killWorker(hostA);
    // Host B: nothing of host A's disk (its workspace and its cache of the store are elsewhere).
    await replace({ name: 'host-b', deps: { artifacts: store.WEAVER_ARTIFACTS, env: { ...process.env, ...API_KEY_ENV, ...s3.env } } });
    const result = await handle.result();

    expect(result.status).toBe('succeeded');
    expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);
    expect(model.count(MODEL)).toBe(1);
    expect(result.usage).toMatchObject({ calls: 1, tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
    expect(result.usage.estimatedCostUsd ?? 0).toBe(0);
    // Delivered by the call's retry, on host B, from the bucket: host B's own cache holds it now.
    const calls = (await activitiesOf(await testClient(), handle.workflowId)).filter((a) => a.type === 'generateChange');
    expect(calls.map((c) => ({ attempt: c.attempt, closed: c.closed, lastFailure: c.lastFailure }))).toEqual([{ attempt: 2, closed: 'completed', lastFailure: 'timeout HEARTBEAT' }]);
    const hex = beat!.answer!.ref.slice('sha256:'.length);
    expect(existsSync(path.join(tmp, 'host-b', 'artifacts', 'sha256', hex.slice(0, 2), hex))).toBe(true);
  }, 180_000);
});
