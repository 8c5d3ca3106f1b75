/**
 * Jest global setup: ONE real Temporal dev server per test run, plus the
 * workflow bundle built once. Tests reach both through env vars (jest forks
 * its workers after this runs, so they inherit process.env):
 *
 *   WEAVER_TEST_TEMPORAL_ADDRESS   host:port of the dev server (namespace "default")
 *   WEAVER_TEST_TEMPORAL_CLI       absolute path of the `temporal` binary
 *   WEAVER_TEST_WORKFLOW_BUNDLE    path of a file holding the bundled workflow code
 *   WEAVER_TEST_WORKFLOW_BUNDLE_ERROR  why there is no bundle (set instead of the above)
 *
 * Use test/support/temporal.ts rather than reading these directly.
 * WEAVER_TEST_WORKFLOWS_PATH overrides the workflows module to bundle.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { killProcessGroup, startDevServer, temporalCliPath } from '../src/devtools/devServer';

// Keep the frontend's limits out of the way of parallel test files.
const DYNAMIC_CONFIG: Record<string, unknown> = {
  'frontend.rps': 100000,
  'frontend.namespaceRPS': 100000,
  'frontend.namespaceBurstRatio': 10,
  'frontend.namespaceRPS.visibility': 10000,
  'frontend.namespaceCount': 10000,
  // One partition per task queue, as README "Quotas and rate limits" asks of a production server
  // for the weaver-provider-* queues: a queue's rate limit is split over its partitions, each with
  // its own burst. The CLI takes no per-queue constraint, so every queue here has one.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

const ROOT = path.resolve(__dirname, '..');

interface ServerState {
  pid: number;
  dir: string;
}

// globalSetup and globalTeardown run in the same (parent) process.
declare global {
  var __WEAVER_TEST_SERVER__: ServerState | undefined;
}

async function buildBundle(dir: string): Promise<void> {
  delete process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
  delete process.env.WEAVER_TEST_WORKFLOW_BUNDLE_ERROR;
  let workflowsPath: string;
  try {
    workflowsPath = process.env.WEAVER_TEST_WORKFLOWS_PATH
      ? path.resolve(process.env.WEAVER_TEST_WORKFLOWS_PATH)
      : require.resolve('../src/workflows');
  } catch {
    process.env.WEAVER_TEST_WORKFLOW_BUNDLE_ERROR = `missing: no workflows module at ${path.join(ROOT, 'src', 'workflows')} (index.ts)`;
    return;
  }
  try {
    // Loaded lazily: only needed here, and it pulls in webpack. Bundled as the worker bundles.
    const { DefaultLogger } = await import('@temporalio/worker');
    const { bundleWeaverWorkflows } = await import('../src/workflowBundle');
    const started = Date.now();
    const { code } = await bundleWeaverWorkflows({ workflowsPath, logger: new DefaultLogger('WARN') });
    const file = path.join(dir, 'workflow-bundle.js');
    writeFileSync(file, code);
    process.env.WEAVER_TEST_WORKFLOW_BUNDLE = file;
    process.stderr.write(`[weaver test] workflow bundle from ${path.relative(ROOT, workflowsPath)}: ${(code.length / 1024).toFixed(0)} KiB in ${Date.now() - started} ms\n`);
  } catch (err) {
    // Do not fail the whole run (unit tests need no bundle): workflowBundle()
    // throws this message in the tests that need it.
    const msg = err instanceof Error ? err.message : String(err);
    process.env.WEAVER_TEST_WORKFLOW_BUNDLE_ERROR = `failed: bundling ${workflowsPath}: ${msg}`;
    process.stderr.write(`[weaver test] WORKFLOW BUNDLE FAILED: ${msg}\n`);
  }
}

/**
 * A root worker hands workspaces to the sandbox's uid: the tests' own git inspecting them needs
 * safe.directory, as Weaver's git has. (Toolchains under the home — pyenv, cargo, go — are lent
 * by the worker itself, its PATH directories and no more: src/activities/sandbox/root.ts.)
 */
function sandboxFriendlyEnv(): void {
  process.env.GIT_CONFIG_COUNT = '1';
  process.env.GIT_CONFIG_KEY_0 = 'safe.directory';
  process.env.GIT_CONFIG_VALUE_0 = '*';
}

export default async function globalSetup(): Promise<void> {
  sandboxFriendlyEnv();
  const started = Date.now();
  const cli = temporalCliPath();
  const dir = mkdtempSync(path.join(tmpdir(), 'weaver-test-'));
  const logFile = path.join(dir, 'temporal-server.log');
  const { pid, address } = await startDevServer({ cli, logFile, dynamicConfig: DYNAMIC_CONFIG });
  const state: ServerState = { pid, dir };
  globalThis.__WEAVER_TEST_SERVER__ = state;
  // If jest dies without running teardown, do not leave the server behind.
  process.once('exit', () => killProcessGroup(state.pid, 'SIGKILL'));

  process.env.WEAVER_TEST_TEMPORAL_ADDRESS = address;
  process.env.WEAVER_TEST_TEMPORAL_CLI = cli;
  process.env.WEAVER_TEST_TMPDIR = dir;
  process.stderr.write(`\n[weaver test] Temporal dev server ${address} (pid ${state.pid}) ready in ${Date.now() - started} ms\n`);

  await buildBundle(dir);
}
