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
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const SEARCH_ATTRIBUTES: Record<string, string> = {
  WeaverStatus: 'Keyword',
  WeaverPhase: 'Keyword',
  WeaverRepo: 'Keyword',
  WeaverCostUsd: 'Double',
  WeaverAttempt: 'Int',
};

// Keep the frontend's limits out of the way of parallel test files.
const DYNAMIC_CONFIG: Record<string, unknown> = {
  'frontend.rps': 100000,
  'frontend.namespaceRPS': 100000,
  'frontend.namespaceBurstRatio': 10,
  'frontend.namespaceRPS.visibility': 10000,
  'frontend.namespaceCount': 10000,
};

const ROOT = path.resolve(__dirname, '..');

interface ServerState {
  child: ChildProcess;
  pid: number;
  dir: string;
}

// globalSetup and globalTeardown run in the same (parent) process.
declare global {
  var __WEAVER_TEST_SERVER__: ServerState | undefined;
}

function temporalCli(): string {
  // Progress of a first-time install (possibly a multi-minute go build) shows on stderr.
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'temporal-cli.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const cli = out.trim().split('\n').pop() ?? '';
  if (!cli || !existsSync(cli)) throw new Error(`scripts/temporal-cli.sh printed no usable path (got ${JSON.stringify(out)})`);
  return cli;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function healthy(cli: string, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(cli, ['operator', 'cluster', 'health', '--address', address, '--command-timeout', '3s'], { timeout: 5000 }, (err) =>
      resolve(!err),
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

async function startServer(cli: string, dir: string): Promise<{ state: ServerState; address: string }> {
  const host = '127.0.0.1';
  const logFile = path.join(dir, 'temporal-server.log');
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort(host);
    const address = `${host}:${port}`;
    const args = ['server', 'start-dev', '--headless', '--ip', host, '--port', String(port), '--log-level', 'warn'];
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
    for (const [key, value] of Object.entries(DYNAMIC_CONFIG)) args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);

    const fd = openSync(logFile, 'a');
    // detached: own process group, so teardown can kill the whole group.
    const child = spawn(cli, args, { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    let exited = false;
    child.once('exit', () => (exited = true));
    child.once('error', () => (exited = true));
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not spawn ${cli}`);

    const deadline = Date.now() + 60_000;
    while (!exited && Date.now() < deadline) {
      if (await healthy(cli, address)) {
        return { state: { child, pid, dir }, address };
      }
      await sleep(200);
    }
    killGroup(pid, 'SIGKILL');
    lastError = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
    // Most likely cause of an early exit: someone took the port between
    // freePort() and start-dev binding it. Try another one.
  }
  throw new Error(`Temporal dev server did not become healthy; last log lines:\n${lastError}`);
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
    // Loaded lazily: only needed here, and it pulls in webpack.
    const { bundleWorkflowCode, DefaultLogger } = await import('@temporalio/worker');
    const started = Date.now();
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
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

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const cli = temporalCli();
  const dir = mkdtempSync(path.join(tmpdir(), 'weaver-test-'));
  const { state, address } = await startServer(cli, dir);
  globalThis.__WEAVER_TEST_SERVER__ = state;
  // If jest dies without running teardown, do not leave the server behind.
  process.once('exit', () => killGroup(state.pid, 'SIGKILL'));

  process.env.WEAVER_TEST_TEMPORAL_ADDRESS = address;
  process.env.WEAVER_TEST_TEMPORAL_CLI = cli;
  process.env.WEAVER_TEST_TMPDIR = dir;
  process.stderr.write(`\n[weaver test] Temporal dev server ${address} (pid ${state.pid}) ready in ${Date.now() - started} ms\n`);

  await buildBundle(dir);
}
