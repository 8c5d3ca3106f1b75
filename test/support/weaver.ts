// Test rig for workflow tests: a real worker (prebuilt bundle) on unique queues against the
// one test dev server, real temp git repos, and the scripted model server over HTTP.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { resultOf, startCodingTask } from '../../src/client';
import { createExampleRepo, exampleTask } from '../../scripts/demo/example';
import { ScriptedModelServer } from '../../scripts/demo/scriptedModelServer';
import type { SandboxSetting } from '../../src/activities/sandbox';
import type { ActivityDeps } from '../../src/activities/types';
import { registryEntry, type ProviderRegistry } from '../../src/domain/registry';
import type { CodingTaskInput, CodingTaskResult, ProviderChoice, ProviderSpec } from '../../src/domain/schema';
import type { SandboxMode } from '../../src/config';
import { createWorkers, workerSandbox, type WeaverWorkerOptions, type WeaverWorkers } from '../../src/worker';
import type { codingTask } from '../../src/workflows';
import { sandboxableTempDir } from '../../src/devtools/tempDir';
import { closeTestConnections, testClient, testNativeConnection, uniqueQueue, workflowBundle } from './temporal';

export interface Rig {
  client: Client;
  model: ScriptedModelServer;
  taskQueue: string;
  tmp: string;
  artifactDir: string;
  workspaceRoot: string;
  /** The worker's sandbox setting (the same object its activities use: a test may inject faults in it). */
  sandbox: SandboxSetting;
  /** A fresh copy of the example repo (failing slugify tests) on branch main. */
  newRepo(name?: string): Promise<string>;
  /** The rig's workers (shared, workspace and liveness queues): a test may stop some of them, as a lost host would. */
  workers: WeaverWorkers;
  /** The worker's provider registry (mutable): `provider()` registers into it. */
  providers: ProviderRegistry;
  /**
   * Registers `model` under provider id `extra.id ?? model` in the worker's registry (the scripted
   * server, key TEST_API_KEY, the given settings) and returns what a task names: `{ id, model }`
   * (plus maxTokens/temperature). With `extra.baseURL`: a keyless inline endpoint, not registered —
   * refused at start unless the rig's worker allows it (`deps.inlineEndpoints`, WEAVER_INLINE_ENDPOINTS).
   */
  provider(model: string, extra?: Partial<ProviderSpec>): ProviderSpec;
  task(repo: string, providers: ProviderChoice[], extra?: Partial<CodingTaskInput>): CodingTaskInput;
  start(input: CodingTaskInput, workflowId?: string): Promise<WorkflowHandle<typeof codingTask>>;
  /** Starts and awaits the result, whatever its status (a failed task's from its failure details). */
  run(input: CodingTaskInput, workflowId?: string): Promise<CodingTaskResult>;
  /** The rig's worker (its workers: main, workspace queue, liveness queue). */
  worker: WeaverWorkers;
  close(): Promise<void>;
}

let seq = 0;

/**
 * The worker clones local repositories only under the rig's temp dir (WEAVER_REPO_ROOTS), where
 * newRepo makes them. `workflowBundle`: other workflow code than globalSetup's (a variant bundle).
 */
export async function startRig(
  opts: { deps?: Partial<ActivityDeps>; sandbox?: SandboxMode; workflowBundle?: { code: string }; settings?: WeaverWorkerOptions['settings'] } = {},
): Promise<Rig> {
  const tmp = sandboxableTempDir('weaver-test-');
  const artifactDir = path.join(tmp, 'artifacts');
  const workspaceRoot = path.join(tmp, 'workspaces');
  const client = await testClient();
  const model = await ScriptedModelServer.start();
  const taskQueue = uniqueQueue('weaver');
  const providers: ProviderRegistry = { providers: {} };
  const registrations = new WeakMap<object, () => void>();
  // bubblewrap when the machine has it (the escape suite asks for `required`).
  const sandbox = opts.deps?.sandbox ?? (await workerSandbox({ workspaceRoot, artifactDir }, opts.sandbox ?? 'auto'));
  const worker = await createWorkers({
    connection: await testNativeConnection(),
    taskQueue,
    workspaceQueue: `${taskQueue}-ws`,
    workflowBundle: opts.workflowBundle ?? workflowBundle(),
    settings: opts.settings,
    // The tag cache in the rig's temp dir, not the host's (WEAVER_CACHE_DIR's default is under the home).
    deps: { artifactDir, workspaceRoot, cacheDir: path.join(tmp, 'cache'), env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789' }, retryDelayScale: 0.01, heartbeatMs: 50, providers, repoRoots: [tmp], sandbox, ...opts.deps },
  });
  const running = worker.run();
  const rig: Rig = {
    client,
    model,
    taskQueue,
    tmp,
    artifactDir,
    workspaceRoot,
    sandbox,
    workers: worker,
    newRepo: async (name = `repo-${++seq}`) => createExampleRepo(path.join(tmp, name)),
    providers,
    provider: (m, extra = {}) => {
      const { id = m, model: _model, baseURL, maxTokens, temperature, ...settings } = extra;
      if (baseURL) return { ...extra, id, model: m };
      const register = () => {
        const models = [...new Set([...(registryEntry(providers, id)?.models ?? []), m])];
        providers.providers[id] = { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', pricing: { inputPerMTok: 1, outputPerMTok: 2 }, ...settings, models };
      };
      register();
      const spec = { id, model: m, ...(maxTokens === undefined ? {} : { maxTokens }), ...(temperature === undefined ? {} : { temperature }) };
      // The settings a spec was made with win when a task using it starts (another spec of the
      // same id made since, e.g. a default one, does not change this task's price).
      registrations.set(spec, register);
      return spec;
    },
    task: (repo, providers, extra = {}) => ({ ...exampleTask(repo, providers[0]), providers, push: false, ...extra }),
    start: (input, workflowId) => {
      for (const p of input.providers) registrations.get(p)?.();
      return startCodingTask(input, { client, taskQueue, workflowId: workflowId ?? `test-${taskQueue}-${++seq}` });
    },
    // A task that did not deliver fails its workflow: its result comes from the failure's details.
    run: async (input, workflowId) => resultOf(await rig.start(input, workflowId)),
    worker,
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
