/**
 * Proves the test harness: a real dev server is up on the address globalSetup
 * exported, Weaver's search attributes are registered with the right types and
 * usable (set, described, queried), historySizeBytes measures real history,
 * and — once src/workflows exists — a Worker runs the shared bundle.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import {
  TEST_NAMESPACE,
  WEAVER_SEARCH_ATTRIBUTES,
  closeTestConnections,
  historySizeBytes,
  testConnection,
  testNativeConnection,
  uniqueQueue,
  workflowBundle,
} from './support/temporal';

const { IndexedValueType } = temporal.api.enums.v1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(closeTestConnections);

test('globalSetup exported a fresh dev server, not the default 7233 one', async () => {
  const address = process.env.WEAVER_TEST_TEMPORAL_ADDRESS;
  expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(address).not.toBe('127.0.0.1:7233');
  const { client } = await testConnection();
  const info = await client.workflowService.getSystemInfo({});
  expect(info.serverVersion).toMatch(/^\d+\.\d+\.\d+/);
  expect(info.capabilities?.signalAndQueryHeader).toBe(true);
  // Memoised: the same objects every time.
  expect(await testConnection()).toBe(await testConnection());
});

test("Weaver's search attributes are registered with their types", async () => {
  const { connection } = await testConnection();
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: TEST_NAMESPACE });
  const expected: Record<keyof typeof WEAVER_SEARCH_ATTRIBUTES, number> = {
    WeaverStatus: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    WeaverPhase: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    WeaverRepo: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    WeaverCostUsd: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    WeaverAttempt: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  };
  for (const [name, type] of Object.entries(expected)) {
    expect({ name, type: customAttributes?.[name] }).toEqual({ name, type });
  }
});

test('search attributes can be set and queried, and historySizeBytes measures the history', async () => {
  const { client } = await testConnection();
  // No worker polls this queue: the executions just sit there with their
  // first events, which is all we need.
  const taskQueue = uniqueQueue('harness-noworker');
  const marker = `harness-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const status = defineSearchAttributeKey('WeaverStatus', SearchAttributeType.KEYWORD);
  const cost = defineSearchAttributeKey('WeaverCostUsd', SearchAttributeType.DOUBLE);
  const attempt = defineSearchAttributeKey('WeaverAttempt', SearchAttributeType.INT);

  const big = await client.workflow.start('weaverHarnessNeverRuns', {
    taskQueue,
    workflowId: `${marker}-big`,
    args: ['x'.repeat(200_000)],
    typedSearchAttributes: [
      { key: status, value: marker },
      { key: cost, value: 0.25 },
      { key: attempt, value: 3 },
    ],
  });
  const small = await client.workflow.start('weaverHarnessNeverRuns', {
    taskQueue,
    workflowId: `${marker}-small`,
    args: ['x'],
  });
  try {
    const desc = await big.describe();
    expect(desc.typedSearchAttributes.get(status)).toBe(marker);
    expect(desc.typedSearchAttributes.get(cost)).toBe(0.25);
    expect(desc.typedSearchAttributes.get(attempt)).toBe(3);

    // Indexed for visibility queries (eventually consistent: poll briefly).
    let ids: string[] = [];
    for (let i = 0; i < 50 && ids.length === 0; i++) {
      ids = [];
      for await (const wf of client.workflow.list({ query: `WeaverStatus = "${marker}" AND WeaverAttempt = 3` })) {
        ids.push(wf.workflowId);
      }
      if (ids.length === 0) await sleep(200);
    }
    expect(ids).toEqual([`${marker}-big`]);

    const bigSize = await historySizeBytes(client, big.workflowId);
    const smallSize = await historySizeBytes(client, small.workflowId, small.firstExecutionRunId);
    expect(smallSize).toBeGreaterThan(100);
    expect(smallSize).toBeLessThan(10_000);
    expect(bigSize).toBeGreaterThan(200_000);
    expect(bigSize - smallSize).toBeGreaterThanOrEqual(199_999);
    expect(bigSize).toBeLessThan(210_000);
  } finally {
    await Promise.all([big.terminate('harness test done'), small.terminate('harness test done')]);
  }
});

test('uniqueQueue never repeats', () => {
  const names = new Set(Array.from({ length: 1000 }, () => uniqueQueue('q')));
  expect(names.size).toBe(1000);
  expect([...names].every((n) => n.startsWith('q-'))).toBe(true);
});

// src/workflows exists: a missing or broken bundle fails this test with the reason.
test('a Worker runs the shared workflow bundle and polls its queue', async () => {
  const bundle = workflowBundle();
  expect(bundle.code.length).toBeGreaterThan(1000);
  const { client } = await testConnection();
  const taskQueue = uniqueQueue('harness-worker');
  const worker = await Worker.create({
    connection: await testNativeConnection(),
    namespace: TEST_NAMESPACE,
    taskQueue,
    workflowBundle: bundle,
  });
  const pollers = await worker.runUntil(async () => {
    for (let i = 0; i < 100; i++) {
      const res = await client.workflowService.describeTaskQueue({
        namespace: TEST_NAMESPACE,
        taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      if (res.pollers && res.pollers.length > 0) return res.pollers.length;
      await sleep(100);
    }
    return 0;
  });
  expect(pollers).toBeGreaterThan(0);
  expect(worker.getState()).toBe('STOPPED');
});
