// Test rig for workflow tests: a real worker (prebuilt bundle) on unique queues against the
// one test dev server, real temp git repos, and the scripted model server over HTTP.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { startCodingTask } from '../../src/client';
import { createExampleRepo, exampleTask } from '../../src/devtools/demo';
import { ScriptedModelServer } from '../../src/devtools/scriptedModelServer';
import type { ActivityDeps } from '../../src/activities/types';
import type { CodingTaskInput, CodingTaskResult, ProviderSpec } from '../../src/domain/schema';
import { createWorkers } from '../../src/worker';
import type { codingTask } from '../../src/workflows';
import { closeTestConnections, testClient, testNativeConnection, uniqueQueue, workflowBundle } from './temporal';

export interface Rig {
  client: Client;
  model: ScriptedModelServer;
  taskQueue: string;
  tmp: string;
  artifactDir: string;
  workspaceRoot: string;
  /** A fresh copy of the example repo (failing slugify tests) on branch main. */
  newRepo(name?: string): Promise<string>;
  provider(model: string, extra?: Partial<ProviderSpec>): ProviderSpec;
  task(repo: string, providers: ProviderSpec[], extra?: Partial<CodingTaskInput>): CodingTaskInput;
  start(input: CodingTaskInput, workflowId?: string): Promise<WorkflowHandle<typeof codingTask>>;
  run(input: CodingTaskInput, workflowId?: string): Promise<CodingTaskResult>;
  close(): Promise<void>;
}

let seq = 0;

export async function startRig(opts: { deps?: Partial<ActivityDeps> } = {}): Promise<Rig> {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weaver-test-'));
  const artifactDir = path.join(tmp, 'artifacts');
  const workspaceRoot = path.join(tmp, 'workspaces');
  const client = await testClient();
  const model = await ScriptedModelServer.start();
  const taskQueue = uniqueQueue('weaver');
  const worker = await createWorkers({
    connection: await testNativeConnection(),
    taskQueue,
    workspaceQueue: `${taskQueue}-ws`,
    workflowBundle: workflowBundle(),
    deps: { artifactDir, workspaceRoot, env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789' }, retryDelayScale: 0.01, heartbeatMs: 50, ...opts.deps },
  });
  const running = worker.run();
  const rig: Rig = {
    client,
    model,
    taskQueue,
    tmp,
    artifactDir,
    workspaceRoot,
    newRepo: async (name = `repo-${++seq}`) => createExampleRepo(path.join(tmp, name)),
    provider: (m, extra = {}) => ({ id: m, model: m, baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', pricing: { inputPerMTok: 1, outputPerMTok: 2 }, ...extra }),
    task: (repo, providers, extra = {}) => ({ ...exampleTask(repo, providers[0]), providers, push: false, ...extra }),
    start: (input, workflowId) => startCodingTask(input, { client, taskQueue, workflowId: workflowId ?? `test-${taskQueue}-${++seq}` }),
    run: async (input, workflowId) => (await rig.start(input, workflowId)).result(),
    close: async () => {
      worker.shutdown();
      await running;
      await model.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
  return rig;
}

/** One rig per test file: started before its tests, closed (with the connections) after. */
export function useRig(set: (rig: Rig) => void, opts: Parameters<typeof startRig>[0] = {}): void {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig(opts);
    set(rig);
  });
  afterAll(async () => {
    await rig?.close();
    await closeTestConnections();
  });
}

export { closeTestConnections };
