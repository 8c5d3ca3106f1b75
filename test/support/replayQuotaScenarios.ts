// Replay scenarios of provider quotas and rate limits (issue 19 items 3 and 4): a batch that
// launches its children within the quota its provider reported, whose calls wait in the
// provider's rate-limited task queue (polled here by a second worker that serves only that queue).
import path from 'node:path';
import type { AnswerStep } from '../../scripts/demo/scriptedModelServer';
import type { CodingTaskResult } from '../../src/domain/schema';
import { providerTaskQueue } from '../../src/domain/quota';
import { startTaskBatch } from '../../src/client';
import { createWorkers } from '../../src/worker';
import { activitiesOf } from './processes';
import { byTitle, fix, multiRepo, parentTask, sub } from './modules';
import { check, type ReplayScenario } from './replayShapes';
import { testNativeConnection, workflowBundle } from './temporal';
import type { Rig } from './weaver';

/** Workers for `model`'s rate-limited queue (and an idle shared queue of their own), on the rig's store. */
async function providerQueueHost(rig: Rig, model: string, requestsPerSecond: number) {
  const entry = { baseURL: rig.model.url, apiKeyEnv: 'TEST_API_KEY', models: [model], rateLimit: { requestsPerSecond } };
  const host = await createWorkers({
    connection: await testNativeConnection(),
    taskQueue: `${rig.taskQueue}-${model}`,
    workspaceQueue: `${rig.taskQueue}-${model}-ws`,
    workflowBundle: workflowBundle(),
    providers: { providers: { [model]: entry } },
    deps: { artifactDir: rig.artifactDir, workspaceRoot: path.join(rig.tmp, `host-${model}`), env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789' }, heartbeatMs: 50, sandbox: rig.sandbox },
  });
  const running = host.run();
  return { stop: async () => (host.shutdown(), await running) };
}

export const QUOTA_SCENARIOS: ReplayScenario[] = [
  {
    name: 'quota-batch',
    about: 'taskBatch since quota-window and provider-rate-queues: the quota read before the children are launched (a reading serves the launches of one second), the children\'s calls in the provider\'s rate-limited queue',
    expect: { closed: 'COMPLETED', workflowType: 'taskBatch', children: 2, activities: { readQuotas: 1 }, patches: ['quota-window', 'batch-window'] },
    run: async (rig, id) => {
      const model = 'rs-quota';
      const host = await providerQueueHost(rig, model, 5);
      try {
        const repo = await multiRepo(rig, ['a', 'b']);
        const headers = { 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '2s' };
        const answers = byTitle({ 'fix a': fix('a'), 'fix b': fix('b') });
        rig.model.setDefault(model, (req) => ({ ...(answers(req) as AnswerStep), headers }));
        const tasks = ['a', 'b'].map((n) => ({ ...parentTask(rig, repo, model, {}), task: sub(`fix ${n}`, n), testCommand: ['node', '--test', `test/${n}.test.js`], decomposition: 'never' as const }));
        // Registered last: parentTask registers the model without a limit.
        rig.provider(model, { rateLimit: { requestsPerSecond: 5 } });
        const h = await startTaskBatch({ tasks, concurrency: 2 }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: id });
        const results = ((await h.result()) as { results: CodingTaskResult[] }).results;
        check(results.every((r) => r.status === 'succeeded'), 'both succeeded', results.map((r) => r.status));
        const queues = (await Promise.all(results.map((r) => activitiesOf(rig.client, r.workflowId)))).flat().filter((a) => a.type === 'generateChange').map((a) => a.taskQueue);
        check(queues.length === 2 && queues.every((q) => q === providerTaskQueue(model)), 'calls in the provider queue', queues);
        return [id, ...results.map((r) => r.workflowId)];
      } finally {
        await host.stop();
      }
    },
  },
];
