// Real worker PROCESSES under the operations a worker meets: a graceful stop (SIGTERM) during a
// provider call, and `kill -9` during a test command — with and without the sandbox — then a
// restart on the same slot (the same workspace queue), and a host that never comes back.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { startCodingTask } from '../src/client';
import { createExampleRepo, exampleTask } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import type { CodingTaskInput, CodingTaskResult, ProviderSpec } from '../src/domain/schema';
import { wholeFile } from './support/answers';
import { eventsOf } from './support/calls';
import { activitiesOf, killStartedWorkers, parentOf, processesWith, sleep, startWorkerProcess, waitUntil } from './support/processes';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { closeTestConnections, testAddress, testClient, uniqueQueue, workflowBundle } from './support/temporal';

const MODEL = 'ops-model';
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const USAGE = { prompt_tokens: 100, completion_tokens: 200 };
const API_KEY_ENV = { TEST_API_KEY: 'sk-test-secret-key-123456789' };
/** A file in a checkout's .git that tells a test command its long first run is over. */
const RERUN_FLAG = 'weaver-test-rerun';

/** Git checkouts (directories holding a .git) under `root`, a few levels down. */
function checkoutsUnder(root: string, depth = 4): string[] {
  if (existsSync(path.join(root, '.git'))) return [root];
  if (depth === 0 || !existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => checkoutsUnder(path.join(root, d.name), depth - 1));
}

interface World {
  tmp: string;
  model: ScriptedModelServer;
  taskQueue: string;
  artifactDir: string;
  /** Environment of a worker process "on this host" (its workspace root under tmp). */
  env(extra?: Record<string, string>): Record<string, string>;
  repo(name: string): Promise<string>;
  task(repo: string, extra?: Partial<CodingTaskInput>): CodingTaskInput;
}

const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  killStartedWorkers();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closeTestConnections();
});

async function world(name: string): Promise<World> {
  const tmp = sandboxableTempDir(`weaver-${name}-`);
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const model = await ScriptedModelServer.start();
  cleanups.push(() => model.close());
  const taskQueue = uniqueQueue(name);
  const artifactDir = path.join(tmp, 'artifacts');
  const registryFile = path.join(tmp, 'providers.json');
  await writeFile(registryFile, JSON.stringify({ providers: { [MODEL]: { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: [MODEL], pricing: { inputPerMTok: 10, outputPerMTok: 10 } } } }));
  const bundle = process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
  if (!bundle) workflowBundle(); // throws why there is none
  const provider: ProviderSpec = { id: MODEL, model: MODEL, maxTokens: 10_000 };
  return {
    tmp,
    model,
    taskQueue,
    artifactDir,
    env: (extra = {}) => ({
      ...API_KEY_ENV,
      WEAVER_PROVIDERS: registryFile,
      TEMPORAL_ADDRESS: testAddress(),
      TEMPORAL_NAMESPACE: 'default',
      WEAVER_TASK_QUEUE: taskQueue,
      WEAVER_WORKSPACE_ROOT: path.join(tmp, 'workspaces'),
      WEAVER_ARTIFACT_DIR: artifactDir,
      WEAVER_REPO_ROOTS: tmp,
      WEAVER_RETRY_DELAY_SCALE: '0.01',
      WEAVER_WORKFLOW_BUNDLE: bundle!,
      WEAVER_SANDBOX: 'off',
      WEAVER_LOG_LEVEL: 'WARN',
      ...extra,
    }),
    repo: (n) => createExampleRepo(path.join(tmp, n)),
    task: (repo, extra = {}) => ({
      ...exampleTask(repo, provider),
      push: true,
      strategy: { mode: 'sequential' as const, retry: { maxTries: 3, initialIntervalMs: 10, maxIntervalMs: 50 } },
      ...extra,
    }),
  };
}

/** What a restart measures: kill → the task's next activity starting (the server's clock, from history). */
async function recoveryMs(workflowId: string, killedAt: number): Promise<{ ms: number; type: string; taskQueue?: string; attempt?: number; lastFailure?: string }> {
  const acts = await activitiesOf(await testClient(), workflowId);
  const next = acts.filter((a) => a.startedAt !== undefined && a.startedAt > killedAt).sort((a, b) => a.startedAt! - b.startedAt!)[0];
  if (!next) throw new Error(`no activity started after the kill: ${JSON.stringify(acts)}`);
  return { ms: next.startedAt! - killedAt, type: next.type, taskQueue: next.taskQueue, attempt: next.attempt, lastFailure: next.lastFailure };
}

async function expectPushed(repo: string, result: CodingTaskResult): Promise<void> {
  expect(result.status).toBe('succeeded');
  expect(result.commit).toBeTruthy();
  expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
  expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);
}

test('SIGTERM during a 5 s provider call: the call completes within the grace, is booked once at its price, and the task succeeds', async () => {
  const w = await world('sigterm');
  const first = await startWorkerProcess(w.env({ WEAVER_SHUTDOWN_GRACE: '30s' }));
  w.model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE, delayMs: 5000 }]);
  const repo = await w.repo('repo');
  const handle = await startCodingTask(w.task(repo), { client: await testClient(), taskQueue: w.taskQueue, workflowId: `sigterm-${w.taskQueue}` });

  await w.model.waitFor((m) => m.inFlightFor(MODEL) === 1, 60_000);
  const signalledAt = Date.now();
  process.kill(first.pid, 'SIGTERM');
  const code = await Promise.race([first.exited, sleep(45_000).then(() => 'still running')]);
  const drainedMs = Date.now() - signalledAt;
  process.stderr.write(`[shutdown] SIGTERM during a 5 s call → worker exited ${drainedMs} ms later (code ${code})\n`);
  // It drained (a clean exit) and only after the answer went out: the call was not cut off.
  expect(code).toBe(0);
  expect(first.output()).toMatch(/SIGTERM: no new work taken/);
  expect(w.model.abortedCount(MODEL)).toBe(0);
  expect(w.model.count(MODEL)).toBe(1);
  expect(drainedMs).toBeGreaterThanOrEqual(3000);

  // The same host's next worker takes the slot back: same workspace queue, the workspace is still there.
  const second = await startWorkerProcess(w.env());
  const result = await handle.result();
  await expectPushed(repo, result);
  expect(second.output()).toContain(`workspace queue "${w.taskQueue}@`);

  // One request, one event, at its price: nothing asked again, nothing booked at $0.
  expect(w.model.count(MODEL)).toBe(1);
  const events = await eventsOf(result, w.artifactDir);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ outcome: 'ok', tokensIn: USAGE.prompt_tokens, tokensOut: USAGE.completion_tokens });
  expect(events[0].costUsd).toBeGreaterThan(0);
  expect(result.usage.costUsd).toBeCloseTo(events[0].costUsd, 9);
  expect(result.attempts).toHaveLength(1);
  const prepares = (await activitiesOf(await testClient(), handle.workflowId)).filter((a) => a.type === 'prepareWorkspace');
  expect(prepares).toHaveLength(1);
}, 180_000);

/**
 * kill -9 of the worker while a `sleep`-based test command runs: its processes die with it, a
 * worker restarted in the same place comes back on the same queue, reruns the tests there (no
 * rebuild) and the task succeeds. `sandbox`: 'off' (parent-death signal + watchdog) or 'auto' (bwrap).
 */
async function killDuringTests(label: string, sandbox: 'off' | 'auto'): Promise<number> {
  const w = await world(`kill-${label}`);
  // A unique `sleep` argument, and a sleep only a kill ends before the test is over (10+ min):
  // its processes gone is the kill, however slow the machine. The rerun skips it once the
  // flag exists (in the checkout's .git, which the sandbox sees read-only).
  const marker = `${600 + Math.floor(Math.random() * 99)}.${Date.now() % 1_000_000}`;
  // Only the heartbeat timeout's liveness ping decides (a busy queue is checked after 10 min): the
  // restarted worker, started before that timeout fires, answers it, and the check reruns there.
  const env = w.env({ WEAVER_SANDBOX: sandbox, WEAVER_QUEUE_CHECK_SEC: '600' });
  const first = await startWorkerProcess(env);
  w.model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
  const repo = await w.repo('repo');
  const input = w.task(repo, { testCommand: ['sh', '-c', `[ -e .git/${RERUN_FLAG} ] || sleep ${marker}; node --test test/`] });
  const handle = await startCodingTask(input, { client: await testClient(), taskQueue: w.taskQueue, workflowId: `kill-${label}-${w.taskQueue}` });

  await waitUntil('the test command to run', () => processesWith(`sleep ${marker}`).length > 0, 60_000);
  await sleep(500);
  process.kill(first.pid, 'SIGKILL');
  const killedAt = Date.now();
  await first.exited;
  // Nothing of the command outlives its worker (the marker is in the `sleep`'s own argv).
  await waitUntil(`no process with "sleep ${marker}" left`, () => processesWith(`sleep ${marker}`).length === 0, 60_000, 50);
  const goneMs = Date.now() - killedAt;
  const checkouts = checkoutsUnder(path.join(w.tmp, 'workspaces'));
  expect(checkouts).toHaveLength(1);
  for (const checkout of checkouts) await writeFile(path.join(checkout, '.git', RERUN_FLAG), '');

  const second = await startWorkerProcess(env);
  const result = await handle.result();
  const next = await recoveryMs(handle.workflowId, killedAt);
  process.stderr.write(`[shutdown] kill -9 during tests (sandbox ${sandbox}): command processes gone ${goneMs} ms after; ${next.type} started again ${next.ms} ms after the kill on ${next.taskQueue}\n`);
  await expectPushed(repo, result);
  // Back on the same queue and the same workspace: the tests reran there, no second clone.
  expect(second.output()).toContain(`workspace queue "${first.output().match(/workspace queue "([^"]+)"/)![1]}"`);
  const acts = await activitiesOf(await testClient(), handle.workflowId);
  expect(acts.filter((a) => a.type === 'prepareWorkspace')).toHaveLength(1);
  // Once the dead worker's heartbeats timed out, the workflow asked the queue's liveness responder
  // at once (no server retry to a queue that may be dead); the restarted worker answered, and the
  // check ran again on its own queue (not a rebuild): how soon is printed above, not asserted.
  const queue = first.output().match(/workspace queue "([^"]+)"/)![1];
  expect(next).toMatchObject({ type: 'workspaceAlive', taskQueue: `${queue}/alive` });
  expect(acts.filter((a) => a.type === 'workspaceAlive').map((a) => a.closed)).toEqual(['completed']);
  expect(acts.filter((a) => a.type === 'applyChangeAndCheck').map((a) => ({ queue: a.taskQueue, closed: a.closed, attempt: a.attempt }))).toEqual([
    { queue, closed: 'timed out HEARTBEAT', attempt: 1 },
    { queue, closed: 'completed', attempt: 1 },
  ]);
  expect(processesWith(`sleep ${marker}`)).toEqual([]);
  expect(w.model.count(MODEL)).toBe(1);
  return next.ms;
}

const recoveries: number[] = [];

test('kill -9 during a test command without a sandbox: the command dies with the worker, the restarted worker reruns it once its heartbeats time out', async () => {
  recoveries.push(await killDuringTests('nobox', 'off'));
}, 180_000);

test('kill -9 during a test command in the bubblewrap sandbox: the same', async () => {
  recoveries.push(await killDuringTests('bwrap', 'auto'));
  process.stderr.write(`[shutdown] same-queue recovery (kill → next activity): ${recoveries.join(' ms, ')} ms\n`);
}, 180_000);

test('a command whose watchdog died too is killed by the next holder of the worker slot', async () => {
  const w = await world('sweep');
  // Only a kill ends this sleep: however slow the machine, the orphan is still there for the
  // next worker to find. The retried command (same task) skips it once `swept` exists.
  const marker = `${600 + Math.floor(Math.random() * 99)}.${Date.now() % 1_000_000}`;
  const swept = path.join(w.tmp, 'swept');
  const env = w.env();
  const first = await startWorkerProcess(env, 150_000);
  w.model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
  const repo = await w.repo('repo');
  const handle = await startCodingTask(w.task(repo, { testCommand: ['sh', '-c', `[ -e ${swept} ] || sleep ${marker}; node --test test/`] }), {
    client: await testClient(),
    taskQueue: w.taskQueue,
    workflowId: `sweep-${w.taskQueue}`,
  });
  // The `sleep` itself (the shell around it, and the gate before it, carry the marker too; the
  // shell dies by its parent-death signal).
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return ''; // gone meanwhile
    }
  };
  const sleepItself = () => processesWith(`sleep ${marker}`).find((pid) => cmdline(pid).startsWith('sleep\0'));
  await waitUntil('the test command to run', () => sleepItself() !== undefined, 120_000);
  const orphan = sleepItself();
  expect(orphan).toBeDefined();
  // Worker and watchdog together: only the parent-death signal acts, and it reaches the shell, not its `sleep`.
  // This worker's own (its spawn helper): other tests' workers on the host keep theirs. The
  // worker is stopped first: a live worker whose helper dies kills the helper's groups itself.
  const watchdogs = processesWith('weaver-watchdog').filter((pid) => parentOf(pid) === first.pid);
  expect(watchdogs).toHaveLength(1);
  process.kill(first.pid, 'SIGSTOP');
  for (const pid of watchdogs) process.kill(pid, 'SIGKILL');
  process.kill(first.pid, 'SIGKILL');
  await first.exited;
  await sleep(1000);
  expect(processesWith(`sleep ${marker}`)).toContain(orphan);
  await writeFile(swept, '');

  const second = await startWorkerProcess(env, 150_000);
  expect(second.output()).toMatch(/killed 1 command group\(s\) its previous holder left running/);
  // SIGKILL was sent before the banner; the process is gone once the kernel has ended it.
  await waitUntil('the orphan to be gone', () => !processesWith(`sleep ${marker}`).includes(orphan!), 60_000);
  await expectPushed(repo, await handle.result());
}, 400_000);

test('a host that never comes back: the workspace is rebuilt on another worker (liveness check says gone)', async () => {
  const w = await world('lost');
  const first = await startWorkerProcess(w.env());
  w.model.script(MODEL, [{ content: wholeFile('src/slugify.js', GOOD, 's'), usage: USAGE }]);
  const repo = await w.repo('repo');
  const marker = `${20 + Math.floor(Math.random() * 9)}.${Date.now() % 1_000_000}`;
  const handle = await startCodingTask(w.task(repo, { testCommand: ['sh', '-c', `sleep ${marker} & wait; node --test test/`] }), {
    client: await testClient(),
    taskQueue: w.taskQueue,
    workflowId: `lost-${w.taskQueue}`,
  });
  await waitUntil('the test command to run', () => processesWith(`sleep ${marker}`).length > 0, 60_000);
  process.kill(first.pid, 'SIGKILL');
  const killedAt = Date.now();
  // "Another host": its own workspace root, so its own slot and queue.
  const other = await startWorkerProcess(w.env({ WEAVER_WORKSPACE_ROOT: path.join(w.tmp, 'other-host') }));
  const result = await handle.result();
  const next = await recoveryMs(handle.workflowId, killedAt);
  process.stderr.write(`[shutdown] lost host: ${next.type} started on the other worker ${next.ms} ms after the kill (default queue checks: 2 s, then 25 s)\n`);
  // Its own slot and workspace queue, not the dead host's (which its workflow log may name, as
  // the queue nobody polled).
  const deadQueue = first.output().match(/workspace queue "([^"]+)"/)![1];
  expect(other.output().match(/workspace queue "([^"]+)"/)![1]).not.toBe(deadQueue);
  await expectPushed(repo, result);
  const acts = await activitiesOf(await testClient(), handle.workflowId);
  // Lost, then rebuilt: the liveness check ran (and found nobody), then a second clone.
  expect(acts.filter((a) => a.type === 'workspaceAlive').length).toBeGreaterThanOrEqual(1);
  expect(acts.filter((a) => a.type === 'prepareWorkspace')).toHaveLength(2);
  // Noticed by the timeouts meant for it, not by a day-long safety net: the run on the lost
  // queue stopped heartbeating (not retried there), its liveness ping found nobody; the rebuild
  // is the next thing that ran. How long that took is printed above, not asserted.
  const lostQueue = first.output().match(/workspace queue "([^"]+)"/)![1];
  expect(acts.filter((a) => a.type === 'applyChangeAndCheck' && a.taskQueue === lostQueue).map((a) => a.closed)).toEqual(['timed out HEARTBEAT']);
  expect(acts.filter((a) => a.type === 'workspaceAlive').map((a) => a.closed)).toEqual(['timed out SCHEDULE_TO_START']);
  expect(next.type).toBe('prepareWorkspace');
  // The answer was re-applied, not bought again, if the rebuild path does that (issue 9 item 4); either way the task succeeded.
  expect(w.model.count(MODEL)).toBeGreaterThanOrEqual(1);
}, 240_000);
