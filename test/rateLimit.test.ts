// Rate limits enforced by Temporal (issue 19 item 4): a provider with `rateLimit` in the
// registry has its calls sent to its own task queue (weaver-provider-<id>), whose workers set
// maxTaskQueueActivitiesPerSecond. Two real worker processes poll it; the limit holds across
// them, as the request timestamps at the scripted model server show.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { resultOf } from '../src/client';
import { maxDispatchedIn, providerTaskQueue, TEMPORAL_BURST_SEC } from '../src/domain/quota';
import { activitiesOf, killStartedWorkers, sleep, startWorkerProcess, waitUntil } from './support/processes';
import { answer, GOOD } from './support/replayShapes';
import { testAddress, workflowBundle } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));
afterAll(() => killStartedWorkers());

const RPS = 2;
/**
 * Temporal's limit (server 1.32, its default priority matcher: service/matching
 * ratelimit_manager.go, matcher_data.go) is a GCRA limiter per task-queue partition: each of P
 * partitions gets RPS / P a second with a burst duration of 1 s, hard-coded (defaultBurstDuration,
 * no dynamic config), so a partition dispatches at most ⌊RPS / P × (T + 1)⌋ + 1 tasks in any
 * T-second window (maxDispatchedIn). The test dev server gives every queue one partition
 * (test/globalSetup.ts, as the README asks of a production server for these queues), so at most
 * ⌊RPS × (T + 1)⌋ + 1 =
 * BURST + RPS × T with BURST = RPS × 1 s + 1 = 3: 5 in any second, RPS a second sustained.
 * (At the default P = 4: P × (⌊RPS × (T + 1) / P⌋ + 1), 8 in a second.)
 */
const maxDispatched = (sec: number) => maxDispatchedIn(RPS, sec);
/**
 * A call's start time in history trails its dispatch by one history write, so start times may
 * crowd by as much. 0.25 s left the bound of a whole second unchanged (5 at 2/s) and runs reached
 * it exactly; 0.5 s (6 in a second) keeps a loaded CI machine's slower writes from failing a
 * limit that held — still 2 below the 8 of the default 4 partitions.
 */
const START_LAG_SEC = 0.5;
/**
 * Between Temporal dispatching a call and its request reaching the server: reading the prompt,
 * a fresh process's first connection, a loaded machine (seen: calls dispatched within 3 s
 * arriving within 2.3 s). The exact bound is asserted on the dispatch times; at the server a
 * T-second window holds calls dispatched within T + JITTER_SEC.
 */
const JITTER_SEC = 1;

/**
 * The environment of a worker process whose registry has provider `id` (the scripted server)
 * with `rateLimit`. Its shared and workspace queues are its own (idle here): the provider's
 * queue is what the processes share with the rig; the rig's store is theirs, so the prompts are
 * read and the answers kept where the workflows' workers find them.
 */
async function hostEnv(id: string, rateLimit: { requestsPerSecond: number }) {
  const registryFile = path.join(rig.tmp, `providers-${id}.json`);
  await writeFile(registryFile, JSON.stringify({ providers: { [id]: { baseURL: rig.model.url, apiKeyEnv: 'TEST_API_KEY', models: [id], pricing: { inputPerMTok: 1, outputPerMTok: 2 }, rateLimit } } }));
  workflowBundle(); // throws why there is none
  return (n: number, extra: Record<string, string> = {}) => ({
    TEST_API_KEY: 'sk-test-secret-key-123456789',
    WEAVER_PROVIDERS: registryFile,
    TEMPORAL_ADDRESS: testAddress(),
    TEMPORAL_NAMESPACE: 'default',
    WEAVER_TASK_QUEUE: `${rig.taskQueue}-${id}-host${n}`,
    WEAVER_WORKSPACE_ROOT: path.join(rig.tmp, `${id}-host${n}`),
    WEAVER_ARTIFACT_DIR: rig.artifactDir,
    WEAVER_WORKFLOW_BUNDLE: process.env.WEAVER_TEST_WORKFLOW_BUNDLE!,
    WEAVER_SANDBOX: 'off',
    WEAVER_LOG_LEVEL: 'WARN',
    ...extra,
  });
}

/** The most requests that arrived within any `sec`-second window. */
function busiest(times: number[], sec: number): number {
  const t = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] > sec * 1000) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

test(`two worker processes share one ${RPS} requests/s limit: no window of the server's request times holds more than Temporal's token bucket lets through`, async () => {
  const id = `rl-${Date.now()}`;
  const rateLimit = { requestsPerSecond: RPS };
  const spec = rig.provider(id, { rateLimit });
  const env = await hostEnv(id, rateLimit);
  const hosts = await Promise.all([1, 2].map((n) => startWorkerProcess(env(n))));
  for (const h of hosts) expect(h.output()).toContain(`at most ${RPS} call(s)/s (queue ${providerTaskQueue(id)})`);
  rig.model.setDefault(id, answer(GOOD));

  // Two tasks drawing 6 samples each from the provider at once: 12 calls queued together.
  const strategy = { mode: 'consensus' as const, samples: 6, quorum: 6 };
  const handles = await Promise.all([1, 2].map(async () => rig.start(rig.task(await rig.newRepo(), [spec], { strategy, decomposition: 'never' }))));
  const results = await Promise.all(handles.map((h) => resultOf(h)));
  expect(results.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);

  const times = rig.model.requests.filter((r) => r.model === id).map((r) => r.receivedAt);
  expect(times).toHaveLength(12);
  // Every call went through the provider's queue, and both processes took some.
  const calls = (await Promise.all(handles.map((h) => activitiesOf(rig.client, h.workflowId)))).flat().filter((a) => a.type === 'generateChange');
  expect(calls).toHaveLength(12);
  expect(new Set(calls.map((a) => a.taskQueue))).toEqual(new Set([providerTaskQueue(id)]));
  // The server's own account of the limit: set by the workers, at RPS.
  const described = await rig.client.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: providerTaskQueue(id) },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportConfig: true,
  });
  expect(described.effectiveRateLimit?.requestsPerSecond).toBeCloseTo(RPS, 5);
  expect(described.effectiveRateLimit?.rateLimitSource).toBe(temporal.api.enums.v1.RateLimitSource.RATE_LIMIT_SOURCE_WORKER);
  const pollers = new Set((await rig.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: providerTaskQueue(id) }, taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY })).pollers?.map((p) => p.identity));
  expect(pollers.size).toBe(2);
  // One partition (the premise of the bound): the limit is not split.
  const partitions = await rig.client.workflowService.listTaskQueuePartitions({ namespace: 'default', taskQueue: { name: providerTaskQueue(id) } });
  expect(partitions.activityTaskQueuePartitions).toHaveLength(1);
  // The bound, for every window from 1 s to the whole run: exactly on Temporal's dispatch times
  // (the calls' start times in history), and at the server with the time a dispatched call
  // takes to reach it (JITTER_SEC).
  const dispatched = calls.map((a) => a.startedAt!);
  const spanSec = (Math.max(...times) - Math.min(...times)) / 1000;
  const figures: string[] = [];
  for (let sec = 1; sec <= Math.ceil(spanSec) + 1; sec++) {
    figures.push(`${sec}s: ${busiest(dispatched, sec)} dispatched (bound ${maxDispatched(sec)}), ${busiest(times, sec)} received`);
    expect(busiest(dispatched, sec)).toBeLessThanOrEqual(maxDispatched(sec + START_LAG_SEC));
    expect(busiest(times, sec)).toBeLessThanOrEqual(maxDispatched(sec + START_LAG_SEC + JITTER_SEC));
  }
  // Sustained: 12 calls cannot all start within less than (12 - 1) / RPS - TEMPORAL_BURST_SEC seconds.
  expect((Math.max(...dispatched) - Math.min(...dispatched)) / 1000).toBeGreaterThanOrEqual((12 - 1) / RPS - TEMPORAL_BURST_SEC - START_LAG_SEC);
  figures.push(`at once (within 50 ms): ${busiest(dispatched, 0.05)}`);
  console.log(`rate limit ${RPS}/s over 2 worker processes: 12 calls received over ${spanSec.toFixed(2)} s; busiest windows: ${figures.join('; ')}`);
});

test("a call on the provider's queue whose worker dies after keeping its answer is retried there and delivers that answer: one request, one booking", async () => {
  const id = `rl-kept-${Date.now()}`;
  const rateLimit = { requestsPerSecond: 5 };
  const spec = rig.provider(id, { rateLimit });
  const env = await hostEnv(id, rateLimit);
  // Host 1 keeps the answer, then holds (where a crash loses nothing but the completion).
  const first = await startWorkerProcess(env(1, { WEAVER_FAULT_HOLD_AFTER_ANSWER_MS: '120000' }));
  rig.model.setDefault(id, answer(GOOD));
  const handle = await rig.start(rig.task(await rig.newRepo(), [spec], { decomposition: 'never' }));
  await waitUntil('the call to be answered', () => rig.model.requests.some((r) => r.model === id && r.finishedAt !== undefined), 60_000);
  // Its answer kept: the LLM activity is past keepAnswer (it heartbeats while holding).
  await sleep(1000);
  process.kill(first.pid, 'SIGKILL');
  await first.exited;
  await startWorkerProcess(env(2));
  const result = await resultOf(handle);

  expect(result.status).toBe('succeeded');
  expect(rig.model.count(id)).toBe(1);
  expect(result.usage.calls).toBe(1);
  const [call] = (await activitiesOf(rig.client, handle.workflowId)).filter((a) => a.type === 'generateChange');
  // The retry ran on the provider's queue (after the lost worker's heartbeat timeout) and delivered the kept answer.
  expect(call).toMatchObject({ taskQueue: providerTaskQueue(id), attempt: 2, closed: 'completed' });
  expect(call.lastFailure).toMatch(/HEARTBEAT/);
});
