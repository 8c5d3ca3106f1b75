// Operating workers: settings checked at start, worker slots, one command run at a time per
// workspace, command limits, a busy worker told apart from a gone one, and Worker Versioning.
// Real Temporal dev server, real git repositories, the scripted model over HTTP.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { CommandSlots } from '../src/activities/commandSlots';
import { runCommand } from '../src/activities/commands';
import { WORKSPACE_ACTIVITIES } from '../src/activities';
import { onWorkspace } from '../src/workflows/activityProxies';
import { processStartTime } from '../src/activities/processGroups';
import { startCodingTask } from '../src/client';
import { config, type WeaverConfig } from '../src/config';
import { createExampleRepo, exampleTask } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import type { CodingTaskInput, ProviderSpec } from '../src/domain/schema';
import { createWorkers, type WeaverWorkers } from '../src/worker';
import { claimWorkerSlot } from '../src/workerSlot';
import { wholeFile } from './support/answers';
import { activitiesOf, processesWith, sleep, waitUntil } from './support/processes';
import { closeTestConnections, temporalCliPath, testAddress, testClient, testNativeConnection, uniqueQueue, workflowBundle } from './support/temporal';

const run = promisify(execFile);
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const MODEL = 'ops-model';
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closeTestConnections();
});

async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `weaver-${name}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('settings are checked at start, naming the variable', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ WEAVER_HEARTBEAT_MS: '5000' }, /WEAVER_HEARTBEAT_MS must be .*below 5000/],
    [{ WEAVER_HEARTBEAT_MS: '10000' }, /WEAVER_HEARTBEAT_MS/],
    [{ WEAVER_HEARTBEAT_MS: 'fast' }, /WEAVER_HEARTBEAT_MS/],
    [{ WEAVER_HEARTBEAT_MS: '0' }, /WEAVER_HEARTBEAT_MS/],
    [{ WEAVER_RETRY_DELAY_SCALE: '-1' }, /WEAVER_RETRY_DELAY_SCALE/],
    [{ WEAVER_RETRY_DELAY_SCALE: 'NaN' }, /WEAVER_RETRY_DELAY_SCALE/],
    [{ WEAVER_MAX_COMMANDS: '0' }, /WEAVER_MAX_COMMANDS/],
    [{ WEAVER_MAX_ACTIVITIES: '2.5' }, /WEAVER_MAX_ACTIVITIES/],
    [{ WEAVER_MAX_WORKSPACE_ACTIVITIES: 'lots' }, /WEAVER_MAX_WORKSPACE_ACTIVITIES/],
    [{ WEAVER_SHUTDOWN_GRACE: 'soon' }, /WEAVER_SHUTDOWN_GRACE/],
    [{ WEAVER_SHUTDOWN_GRACE: '5m', WEAVER_SHUTDOWN_FORCE: '1m' }, /WEAVER_SHUTDOWN_FORCE .* longer than WEAVER_SHUTDOWN_GRACE/],
    [{ WEAVER_HEARTBEAT_THROTTLE_MS: '0' }, /WEAVER_HEARTBEAT_THROTTLE_MS/],
    [{ WEAVER_QUEUE_CHECK_SEC: '0.5' }, /WEAVER_QUEUE_CHECK_SEC/],
    [{ WEAVER_WORKER_SLOT: '-1' }, /WEAVER_WORKER_SLOT/],
    [{ WEAVER_DEPLOYMENT_NAME: 'weaver' }, /WEAVER_DEPLOYMENT_NAME and WEAVER_BUILD_ID go together/],
  ];
  test.each(bad)('%j', (env, message) => {
    expect(() => config(env)).toThrow(message);
  });

  test('defaults and accepted forms', () => {
    const c: WeaverConfig = config({});
    expect(c.heartbeatMs).toBe(1000);
    expect(c.shutdownGraceMs).toBe(300_000);
    expect(c.shutdownForceMs).toBeGreaterThan(c.shutdownGraceMs);
    expect(c.heartbeatThrottleMs).toBeUndefined();
    expect(c.maxCommands).toBeGreaterThanOrEqual(1);
    expect(c.maxWorkspaceActivities).toBeGreaterThanOrEqual(8);
    expect(c.queueCheckSec).toBe(25);
    expect(c.deployment).toBeUndefined();
    expect(config({ WEAVER_SHUTDOWN_GRACE: '90' }).shutdownGraceMs).toBe(90_000);
    expect(config({ WEAVER_SHUTDOWN_GRACE: '1500ms' }).shutdownGraceMs).toBe(1500);
    expect(config({ WEAVER_SHUTDOWN_GRACE: '1h' }).shutdownForceMs).toBe(3_660_000);
    expect(config({ WEAVER_HEARTBEAT_MS: '4999' }).heartbeatMs).toBe(4999);
    expect(config({ WEAVER_DEPLOYMENT_NAME: 'weaver', WEAVER_BUILD_ID: 'v2' }).deployment).toEqual({ name: 'weaver', buildId: 'v2' });
    expect(config({ WEAVER_WORKER_SLOT: '3' }).workerSlot).toBe(3);
  });
});

test('every activity the workflow sends to a workspace queue is one the worker wraps in heartbeats', () => {
  const ws = { id: 'x', dir: '/x', taskQueue: 'q', branch: 'b', baseCommit: 'c' };
  expect(Object.keys(onWorkspace(ws, 60)).sort()).toEqual([...WORKSPACE_ACTIVITIES].sort());
});

describe('worker slots', () => {
  test('two processes in one place get two slots; a slot comes back free when its holder is gone', async () => {
    const root = await tempDir('slots');
    const a = await claimWorkerSlot(root);
    const b = await claimWorkerSlot(root);
    expect([a.index, b.index]).toEqual([0, 1]);
    expect(a.label).not.toBe(b.label);
    await a.release();
    expect((await claimWorkerSlot(root)).index).toBe(0);
    // Another workspace root on the same host: slot 0 again, but a different queue label.
    const elsewhere = await claimWorkerSlot(await tempDir('slots-other'));
    expect(elsewhere.index).toBe(0);
    expect(elsewhere.label).not.toBe(a.label);
    await expect(claimWorkerSlot(root, 1)).rejects.toThrow(/WEAVER_WORKER_SLOT=1 is held by live process/);
  });

  test('concurrent claims never share a slot, also when they race for a dead holder’s', async () => {
    const root = await tempDir('slots-race');
    const claims = await Promise.all(Array.from({ length: 8 }, () => claimWorkerSlot(root)));
    expect(new Set(claims.map((c) => c.index)).size).toBe(8);
    // The fourth claim's holder "dies": its file names a pid that has exited. Four claims race for it.
    const dead = await deadPid();
    await writeFile(claims[3].file, `${dead} 1\n`);
    const racers = await Promise.all(Array.from({ length: 4 }, () => claimWorkerSlot(root)));
    const indices = racers.map((c) => c.index);
    expect(new Set(indices).size).toBe(4);
    // Exactly one racer took the dead holder's slot (claims finish in any order: its index, not 3).
    expect(indices.filter((i) => i === claims[3].index)).toHaveLength(1);
  });

  test('claiming a dead holder’s slot kills the command groups it left running — not a reused pid', async () => {
    const root = await tempDir('slots-orphans');
    const first = await claimWorkerSlot(root);
    const marker = `${30 + Math.floor(Math.random() * 9)}.${Date.now() % 1_000_000}`;
    const orphan = spawn('sh', ['-c', `sleep ${marker}; true`], { detached: true, stdio: 'ignore' });
    orphan.unref();
    await waitUntil('the orphan to run', () => processesWith(`sleep ${marker}`).length === 2, 20_000);
    await writeFile(path.join(first.commandsDir, `${orphan.pid}.pid`), `${orphan.pid} ${processStartTime(orphan.pid!)}\n`);
    // A record whose pid now belongs to another process (start time differs): left alone.
    const bystander = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    bystander.unref();
    cleanups.push(async () => void process.kill(bystander.pid!, 'SIGKILL'));
    await writeFile(path.join(first.commandsDir, `${bystander.pid}.pid`), `${bystander.pid} 12345\n`);
    await writeFile(first.file, `${await deadPid()} 1\n`);

    const next = await claimWorkerSlot(root);
    expect(next.index).toBe(first.index);
    expect(next.orphansKilled).toBe(1);
    expect(processesWith(`sleep ${marker}`)).toEqual([]);
    expect(() => process.kill(bystander.pid!, 0)).not.toThrow();
    expect(await readdir(next.commandsDir)).toEqual([]);
  });
});

describe('commands', () => {
  test('a rerun in the same workspace kills a live older run first (the lock beside the checkout)', async () => {
    const dir = await tempDir('lock');
    const cwd = path.join(dir, 'repo');
    await mkdir(cwd);
    const lockFile = path.join(dir, 'command.pid');
    // The older run would end by itself after 120 s (its own timeout later still): killed, not
    // waited for, is its SIGKILL and the missing last line; the only time asserted is a relation to that end.
    const older = runCommand({ command: 'sleep 120; echo older finished', cwd, timeoutSec: 240, logFile: path.join(dir, 'a.log'), lockFile });
    await waitUntil('the older run to record itself', async () => (await readdir(dir)).includes('command.pid'), 60_000, 20);
    const started = Date.now();
    const rerun = await runCommand({ command: 'echo rerun', cwd, timeoutSec: 60, logFile: path.join(dir, 'b.log'), lockFile });
    const old = await older;
    expect(old.signal).toBe('SIGKILL');
    expect(old.timedOut).toBe(false);
    expect(old.tail).not.toContain('older finished');
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(rerun.exitCode).toBe(0);
    expect(rerun.tail).toMatch(/killed an older run[\s\S]*rerun/);
    // Both done: no record left behind.
    expect(await readdir(dir)).not.toContain('command.pid');
  });

  // The shutdown test's "killed by the next holder of the worker slot" failed under load: the
  // record was written asynchronously, and a worker killed right after its command started left
  // none. Now it is there before the command's first instruction: the command reads its own.
  test("a command's group is recorded under the slot before the command's first instruction runs", async () => {
    const dir = await tempDir('record');
    const recordDir = path.join(dir, 'slot.commands');
    const lockFile = path.join(dir, 'command.pid');
    // Several runs: a race would show in some of them (each is a few milliseconds).
    for (let i = 0; i < 20; i++) {
      const r = await runCommand({ command: `cat ${recordDir}/$$.pid ${lockFile}`, cwd: dir, timeoutSec: 60, logFile: path.join(dir, `${i}.log`), dieWithWorker: true, recordDir, lockFile });
      // `$$` is the shell's pid: the group's (setpriv execs the command), recorded with its start time.
      expect({ i, exitCode: r.exitCode, tail: r.tail }).toEqual({ i, exitCode: 0, tail: expect.stringMatching(new RegExp(`^${r.pid} \\d+\n${r.pid} \\d+\n$`)) });
      // Dropped once the command is over.
      expect(await readdir(recordDir)).toEqual([]);
    }
  });

  test('a command started with dieWithWorker dies with its (killed) parent process', async () => {
    const dir = await tempDir('pdeath');
    const marker = `${40 + Math.floor(Math.random() * 9)}.${Date.now() % 1_000_000}`;
    const script = `require('./src/activities/commands').runCommand({ command: 'sleep ${marker}; true', cwd: ${JSON.stringify(dir)}, timeoutSec: 60, logFile: ${JSON.stringify(path.join(dir, 'log'))}, dieWithWorker: true })`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: path.resolve(__dirname, '..'), stdio: 'ignore' });
    // The parent's own command line holds the marker too: count the command's processes only.
    const command = () => processesWith(`sleep ${marker}`).filter((pid) => pid !== parent.pid);
    await waitUntil('the command to run', () => command().length === 2, 20_000);
    parent.kill('SIGKILL');
    // The shell and its `sleep` (a grandchild the parent-death signal does not reach) both go.
    // Gone long before its 40+ s `sleep` would end: the kill, not the end, however slow the machine.
    await waitUntil('the command group to die', () => command().length === 0, 20_000, 50);
  });

  test('command slots: a command beyond the limit waits and says how many are ahead', async () => {
    const slots = new CommandSlots(1);
    const first = await slots.acquire();
    const heard: number[] = [];
    const second = slots.acquire({ onWait: (n) => heard.push(n) });
    const aborter = new AbortController();
    const third = slots.acquire({ signal: aborter.signal, onWait: (n) => heard.push(n * 10) });
    expect(slots.load()).toEqual({ running: 1, queued: 2, limit: 1 });
    aborter.abort();
    await expect(third).rejects.toThrow(/waiting for a command slot/);
    first();
    const release = await second;
    expect(heard).toEqual([1, 20, 1]);
    expect(slots.load()).toEqual({ running: 1, queued: 0, limit: 1 });
    release();
    release(); // idempotent
    expect(slots.load().running).toBe(0);
  });
});

/** An in-process worker set with its own settings, and a model that always answers right. */
async function workersWith(name: string, settings: Parameters<typeof createWorkers>[0]['settings'], deps: Record<string, unknown>) {
  const tmp = await tempDir(name);
  const model = await ScriptedModelServer.start();
  cleanups.push(() => model.close());
  model.setDefault(MODEL, { content: wholeFile('src/slugify.js', GOOD, 's'), usage: { prompt_tokens: 10, completion_tokens: 20 } });
  const taskQueue = uniqueQueue(name);
  const registry = { providers: { [MODEL]: { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: [MODEL], pricing: { inputPerMTok: 1, outputPerMTok: 1 } } } };
  const workers: WeaverWorkers = await createWorkers({
    connection: await testNativeConnection(),
    taskQueue,
    workflowBundle: workflowBundle(),
    providers: registry,
    settings,
    deps: {
      artifactDir: path.join(tmp, 'artifacts'),
      workspaceRoot: path.join(tmp, 'workspaces'),
      env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789' },
      heartbeatMs: 200,
      retryDelayScale: 0.01,
      repoRoots: [tmp],
      sandbox: { mode: 'off', kind: 'none', hide: [], readOnly: [] },
      ...deps,
    },
  });
  const running = workers.run();
  cleanups.push(async () => {
    workers.shutdown();
    await running;
  });
  const provider: ProviderSpec = { id: MODEL, model: MODEL };
  const start = async (repoName: string, extra: Partial<CodingTaskInput> = {}) => {
    const repo = await createExampleRepo(path.join(tmp, repoName));
    return startCodingTask({ ...exampleTask(repo, provider), push: false, ...extra }, { client: await testClient(), taskQueue, workflowId: `${name}-${repoName}-${taskQueue}` });
  };
  return { workers, model, start, taskQueue };
}

describe('a busy worker is not a dead one', () => {
  test('a workspace activity queued past its schedule-to-start behind a long suite waits (liveness check), without a rebuild', async () => {
    // One workspace slot; the queue check after 2 s (the worker's WEAVER_QUEUE_CHECK_SEC, sent with the workspace).
    const { start } = await workersWith('busy', { maxWorkspaceActivities: 1 }, { queueCheckSec: 2 });
    const marker = `${8 + Math.random()}`.slice(0, 8);
    const a = await start('a', { testCommand: ['sh', '-c', `sleep ${marker}; node --test test/`] });
    await waitUntil('task A’s suite to run', () => processesWith(`sleep ${marker}`).length > 0, 60_000);
    const b = await start('b');
    const [ra, rb] = await Promise.all([a.result(), b.result()]);
    expect(ra.status).toBe('succeeded');
    expect(rb.status).toBe('succeeded');
    const actsB = await activitiesOf(await testClient(), b.workflowId);
    const count = (type: string) => actsB.filter((x) => x.type === type).length;
    // B waited past its schedule-to-start at least once; the worker answered "alive", so B's
    // activity was queued again — and its workspace was never rebuilt.
    expect(count('workspaceAlive')).toBeGreaterThanOrEqual(1);
    expect(count('applyChangeAndCheck')).toBeGreaterThanOrEqual(2);
    expect(count('prepareWorkspace')).toBe(1);
    expect(actsB.find((x) => x.type === 'workspaceAlive')?.taskQueue).toMatch(/\/alive$/);
    const actsA = await activitiesOf(await testClient(), a.workflowId);
    expect(actsA.filter((x) => x.type === 'prepareWorkspace')).toHaveLength(1);
  }, 120_000);

  test('beyond WEAVER_MAX_COMMANDS a suite waits its turn, heartbeating "queued behind 1 command"', async () => {
    const { start } = await workersWith('cmds', { maxWorkspaceActivities: 4, heartbeatThrottleMs: 300 }, { maxCommands: 1 });
    const marker = `${6 + Math.random()}`.slice(0, 8);
    const suite: CodingTaskInput['testCommand'] = ['sh', '-c', `sleep ${marker}; node --test test/`];
    const handles = [await start('a', { testCommand: suite }), await start('b', { testCommand: suite })];
    let seen: string | undefined;
    await waitUntil(
      'a suite queued behind the other',
      async () => {
        seen = (await Promise.all(handles.map(queuedDetails))).find(Boolean);
        return !!seen;
      },
      60_000,
      200,
    );
    expect(seen).toMatch(/^queued behind 1 command \(WEAVER_MAX_COMMANDS=1\)$/);
    // One suite runs meanwhile (its shell and its sleep), never both.
    expect(processesWith(`sleep ${marker}`).length).toBeLessThanOrEqual(2);
    const results = await Promise.all(handles.map((h) => h.result()));
    expect(results.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
  }, 120_000);
});

test('waiting for a command slot is not working: six suites behind WEAVER_MAX_COMMANDS=1 each get their whole testTimeoutSec', async () => {
  const { start } = await workersWith('six', { maxWorkspaceActivities: 8 }, { maxCommands: 1 });
  // Two seconds of room per suite on a loaded machine; six of them queue well past one's limit.
  const testTimeoutSec = 3;
  const suite: CodingTaskInput['testCommand'] = ['sh', '-c', 'sleep 1'];
  const handles = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => start(n, { testCommand: suite, limits: { testTimeoutSec } })));
  const results = await Promise.all(handles.map((h) => h.result()));
  expect(results.map((r) => r.status)).toEqual(Array(6).fill('succeeded'));
  // Each command ran alone, one after another: the last ones waited longer for their slot than
  // their own time limit, and their suites still had all of it (the wait is not on that clock).
  const spans: number[] = [];
  for (const h of handles) {
    const events = (await h.fetchHistory()).events ?? [];
    const ms = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    const started = events.find((e) => e.activityTaskStartedEventAttributes && events.find((s) => s.eventId?.toString() === e.activityTaskStartedEventAttributes!.scheduledEventId?.toString())?.activityTaskScheduledEventAttributes?.activityType?.name === 'applyChangeAndCheck');
    const done = events.find((e) => e.activityTaskCompletedEventAttributes?.startedEventId?.toString() === started?.eventId?.toString());
    spans.push(ms(done!) - ms(started!));
    // Its clock is a safety net far beyond the wait (not 2 × testTimeoutSec + 120 s).
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyChangeAndCheck')!.activityTaskScheduledEventAttributes!;
    expect(Number(scheduled.startToCloseTimeout?.seconds ?? 0)).toBeGreaterThanOrEqual(24 * 3600);
  }
  expect(Math.max(...spans)).toBeGreaterThan(testTimeoutSec * 1000);
}, 180_000);

/** The heartbeat details of a running check (applied and checked in one activity), if it says it is queued. */
async function queuedDetails(h: WorkflowHandle): Promise<string | undefined> {
  const d = await h.describe();
  for (const p of d.raw.pendingActivities ?? []) {
    if (p.activityType?.name !== 'applyChangeAndCheck') continue;
    // A beat without details is an empty payload; ours are JSON strings.
    const data = Buffer.from(p.heartbeatDetails?.payloads?.[0]?.data ?? []).toString('utf8');
    const text = data.startsWith('"') ? (JSON.parse(data) as string) : '';
    if (text.startsWith('queued')) return text;
  }
  return undefined;
}

test('Worker Versioning: a versioned worker takes a task once its build is current, and the workflow is pinned to it', async () => {
  const deployment = { name: `weaver-test-${Date.now().toString(36)}`, buildId: 'build-1' };
  const { start } = await workersWith('versioned', { deployment }, {});
  const handle = await start('v');
  // No current version yet: nobody runs the new workflow.
  await sleep(3000);
  const before = await handle.fetchHistory();
  expect(before.events?.some((e) => e.workflowTaskCompletedEventAttributes)).toBe(false);

  // The upgrade procedure's step (README): make the build current with the CLI.
  const cli = temporalCliPath();
  await waitUntil(
    'set-current-version to succeed',
    async () => {
      try {
        await run(cli, ['worker', 'deployment', 'set-current-version', '--deployment-name', deployment.name, '--build-id', deployment.buildId, '--address', testAddress(), '--namespace', 'default', '--yes']);
        return true;
      } catch {
        return false; // the version registers with the server once its worker polls
      }
    },
    30_000,
    500,
  );
  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
  expect(info?.behavior).toBe(temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
  expect(info?.deploymentVersion).toMatchObject({ deploymentName: deployment.name, buildId: deployment.buildId });
}, 120_000);

/** A pid that has exited (and was reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}
