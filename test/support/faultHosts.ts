// Worker processes as "hosts" for fault tests (test/faults.test.ts) and the lost-host replay
// scenario (test/support/replayHostScenarios.ts): each `node src/worker.ts` on a workspace root of
// its own, the scripted model answering once with the fix, a bare remote, a registry file.
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { stringify } from 'yaml';
import { createExampleRepo } from '../../scripts/demo/example';
import { ScriptedModelServer } from '../../scripts/demo/scriptedModelServer';
import { sandboxableTempDir } from '../../src/devtools/tempDir';
import { searchReplace } from './answers';
import type { WorkerProcess } from './processes';
import { testAddress, uniqueQueue, workflowBundle } from './temporal';

export const FAULT_PROVIDER = 'fixture';
export const FAULT_API_KEY_ENV = { FAULT_TEST_API_KEY: 'sk-fault-test-key-0123456789' };
export const FAULT_USAGE = { prompt_tokens: 400, completion_tokens: 120 };
export const STUB = `  throw new Error('not implemented');\n`;
export const FIXED = `  return String(text)\n    .normalize('NFKD')\n    .replace(/[\\u0300-\\u036f]/g, '')\n    .toLowerCase()\n    .replace(/[^a-z0-9]+/g, '-')\n    .replace(/^-+|-+$/g, '');\n`;

/**
 * What a small fault test needs (not the campaign's): the scripted model answering `name` once
 * with the fix, a bare remote, a registry, a unique task queue and the workers' environment
 * (defaults but the test's paths; `root`: the host's workspace root, its own per "host").
 * What it starts is undone by the functions it pushes on `cleanups`.
 */
export async function faultHosts(prefix: string, name: string, cleanups: (() => Promise<void>)[]) {
  const tmp = sandboxableTempDir(`weaver-faults-${prefix}-`);
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const bundle = process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
  if (!bundle) workflowBundle(); // throws why there is none
  const model = await ScriptedModelServer.start();
  cleanups.push(() => model.close());
  model.script(name, [{ content: searchReplace('src/slugify.js', STUB, FIXED, 'Normalise, strip accents, dash the rest.'), usage: FAULT_USAGE }]);
  const registryFile = path.join(tmp, 'providers.yaml');
  await writeFile(registryFile, stringify({ providers: { [FAULT_PROVIDER]: { baseURL: model.url, apiKeyEnv: 'FAULT_TEST_API_KEY', models: [name], pricing: { inputPerMTok: 1, outputPerMTok: 4 } } } }));
  const seed = await createExampleRepo(path.join(tmp, 'seed'));
  const remote = path.join(tmp, 'remote.git');
  await simpleGit().clone(seed, remote, ['--bare']);
  const taskQueue = uniqueQueue(`faults-${prefix}`);
  const artifactDir = path.join(tmp, 'artifacts');
  const env = (root: string) => faultHostEnv({ address: testAddress(), taskQueue, root: path.join(tmp, root), artifactDir, registryFile, repoRoots: tmp });
  const workers: WorkerProcess[] = [];
  cleanups.push(async () => killGroups(workers));
  return { tmp, model, remote, taskQueue, artifactDir, env, workers };
}

/** SIGKILLs each worker's whole process group (spawned detached: pid = pgid); gone ones are skipped. */
export function killGroups(workers: WorkerProcess[]): void {
  for (const w of workers) {
    try {
      process.kill(-w.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/**
 * A fault-test host's environment: Weaver's defaults but the test's server, queue, paths and the
 * bundle the test run built; `extra` on top. The slot names the workspace queue: the same root
 * and slot again is the same queue.
 */
export function faultHostEnv(
  o: { address: string; taskQueue: string; root: string; artifactDir: string; registryFile: string; repoRoots: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...FAULT_API_KEY_ENV,
    TEMPORAL_ADDRESS: o.address,
    WEAVER_TASK_QUEUE: o.taskQueue,
    WEAVER_WORKSPACE_ROOT: o.root,
    WEAVER_WORKER_SLOT: '0',
    WEAVER_ARTIFACT_DIR: o.artifactDir,
    WEAVER_PROVIDERS: o.registryFile,
    WEAVER_REPO_ROOTS: o.repoRoots,
    WEAVER_DEV: '1',
    WEAVER_SANDBOX: 'auto',
    // Its callers made sure there is one (workflowBundle() throws why not).
    WEAVER_WORKFLOW_BUNDLE: process.env.WEAVER_TEST_WORKFLOW_BUNDLE!,
    WEAVER_LOG_LEVEL: 'WARN',
    ...extra,
  };
}
