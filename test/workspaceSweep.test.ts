// The sweep at worker start (issue 17 item 3): workspaces made by the real prepareWorkspace for
// runs on the real dev server; a closed run's goes, an open run's stays, and so does a closed
// run's that holds a commit found nowhere else. The worker's own dot-folders are never touched.
// A run whose workspace was rebuilt elsewhere (real tasks on a real worker: its progress, or its
// result, names the rig's folder and queue) has its leftover on this host removed at once by that
// host's worker start, open or closed, retention or not; the run's own folder is kept.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import type { ActivityDeps, WorkspaceHandle } from '../src/activities/types';
import { RUN_MARKER, workspaceDirFor } from '../src/activities/workspace';
import { config } from '../src/config';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { createWorkers } from '../src/worker';
import { sweepWorkspaces } from '../src/workspaceSweep';
import { addFiles, makeRepo } from './support/repos';
import { answer, BAD } from './support/replayScenarios';
import { startRig } from './support/weaver';
import { closeTestConnections, testClient, testNativeConnection, TEST_NAMESPACE, uniqueQueue, workflowBundle } from './support/temporal';

let base: string;
let deps: ActivityDeps;
let client: Client;
beforeAll(async () => {
  base = sandboxableTempDir('weaver-sweep-');
  deps = { artifactDir: path.join(base, 'artifacts'), workspaceRoot: path.join(base, 'workspaces'), workspaceQueue: 'ws-queue', env: process.env, heartbeatMs: 20, repoRoots: [base] };
  client = await testClient();
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
  await closeTestConnections();
});

/** A run on a queue no worker polls: it stays open until terminated. */
async function run(id: string, closed: boolean): Promise<string> {
  const handle = await client.workflow.start('codingTask', { taskQueue: uniqueQueue('sweep'), workflowId: `${id}-${Date.now()}`, args: [] });
  if (closed) await handle.terminate('test: its host was lost');
  return handle.workflowId;
}

async function prepare(workflowId: string, repo: string): Promise<WorkspaceHandle> {
  const env = new MockActivityEnvironment({ activityType: 'prepareWorkspace' }, { logger: new DefaultLogger('ERROR') });
  return (await env.run(createActivities(deps).prepareWorkspace, { workflowId, repo, baseBranch: 'main', branch: `weaver/${workflowId}` })) as WorkspaceHandle;
}

test('a closed run\'s workspace is removed; an open run\'s and one holding an unpushed commit are kept', async () => {
  const repo = await makeRepo(path.join(base, 'origin'), { 'a.txt': 'a\n' });
  const open = await run('sweep-open', false);
  const closed = await run('sweep/closed', true);
  const unpushed = await run('sweep-unpushed', true);
  const [openWs, closedWs, unpushedWs] = [await prepare(open, repo), await prepare(closed, repo), await prepare(unpushed, repo)];
  // prepareWorkspace names the run in its folder (the folder's name alone cannot: `/` is lost).
  expect(existsSync(path.join(workspaceDirFor(deps.workspaceRoot, closed), RUN_MARKER))).toBe(true);
  // The commit a task made and never pushed (a run that ended while awaiting approval, say).
  await addFiles(unpushedWs.dir, { 'b.txt': 'b\n' }, 'the model\'s change');
  const cache = path.join(deps.workspaceRoot, '.cache', 'repomap');
  await mkdir(cache, { recursive: true });

  const lines: string[] = [];
  // No worker runs these runs: the open one's progress query is not answered (its folder stays).
  const out = await sweepWorkspaces({ root: deps.workspaceRoot, connection: client.connection, namespace: TEST_NAMESPACE, queryMs: 1000, log: (l) => lines.push(l) });

  expect(out.removed).toEqual([{ name: path.basename(path.dirname(closedWs.dir)), workflowId: closed, status: 'TERMINATED', bytes: expect.any(Number) }]);
  expect(out.removed[0].bytes).toBeGreaterThan(0); // what removing it freed (a checkout: git objects and files)
  expect(existsSync(closedWs.dir)).toBe(false);
  expect(existsSync(openWs.dir)).toBe(true);
  expect(existsSync(unpushedWs.dir)).toBe(true);
  expect(existsSync(cache)).toBe(true);
  expect(out.kept).toEqual(
    expect.arrayContaining([
      { name: path.basename(path.dirname(openWs.dir)), why: `run ${open} is open` },
      { name: path.basename(path.dirname(unpushedWs.dir)), why: expect.stringMatching(/terminated, but a commit of it lives only here/) },
    ]),
  );
  // What was swept is said.
  expect(lines.join('\n')).toContain(`swept 1 workspace(s) of closed runs and lost hosts from ${deps.workspaceRoot}: ${closed} (terminated)`);

  // Once the open run is over too, its (clean) workspace goes at the next start.
  await client.workflow.getHandle(open).terminate('test: done');
  const again = await sweepWorkspaces({ root: deps.workspaceRoot, connection: client.connection, namespace: TEST_NAMESPACE, log: () => undefined });
  expect(again.removed.map((r) => r.workflowId)).toEqual([open]);
  expect(existsSync(unpushedWs.dir)).toBe(true);
}, 120_000);

test('a run\'s folder left on a lost host goes at once when its workspace was rebuilt elsewhere (open or closed, within retention); its own folder and a leftover with an unpushed commit stay', async () => {
  const rig = await startRig();
  const week = 7 * 86_400_000;
  expect(config().retentionMs).toBe(week);
  const stamp = Date.now();
  try {
    // Two open runs whose workspace is on the rig's worker (each waiting for its model), one closed
    // (failed: its result names the rig's folder, its unpushed commit kept there).
    rig.model.script('sweep-hang', [{ hang: true }, { hang: true }]);
    rig.model.script('sweep-bad', [answer(BAD)]);
    const moved = await rig.start(rig.task(await rig.newRepo(), [rig.provider('sweep-hang')]), `sweep-moved-${stamp}`);
    const movedWithCommit = await rig.start(rig.task(await rig.newRepo(), [rig.provider('sweep-hang')]), `sweep-moved-commit-${stamp}`);
    const failed = await rig.run(rig.task(await rig.newRepo(), [rig.provider('sweep-bad')], { limits: { maxAttempts: 1, testTimeoutSec: 60 }, decomposition: 'never' }), `sweep-failed-${stamp}`);
    expect(failed.status).toBe('failed');
    expect(failed.workspace?.startsWith(rig.workspaceRoot)).toBe(true);
    await rig.model.waitFor((m) => m.inFlightFor('sweep-hang') === 2, 60_000);

    // This host (the test's root and queue) holds the folders those runs had before their host was lost.
    const repo = await makeRepo(path.join(base, 'origin-moved'), { 'a.txt': 'a\n' });
    const [movedWs, commitWs, failedWs] = [await prepare(moved.workflowId, repo), await prepare(movedWithCommit.workflowId, repo), await prepare(failed.workflowId, repo)];
    await addFiles(commitWs.dir, { 'b.txt': 'b\n' }, 'made before the host was lost');

    // This host's worker starts (its queue the test's, WEAVER_RETENTION's default 7 days) and sweeps its root.
    const host = await createWorkers({ connection: await testNativeConnection(), taskQueue: uniqueQueue('sweep-host'), workspaceQueue: deps.workspaceQueue, workflowBundle: workflowBundle(), deps: { ...deps, cacheDir: path.join(base, 'cache') } });
    const running = host.run();
    const here = (await host.swept)!;
    host.shutdown();
    await running;
    expect(here.removed.filter((r) => r.elsewhere).map((r) => [r.workflowId, r.status]).sort()).toEqual(
      [
        [moved.workflowId, 'RUNNING'],
        [failed.workflowId, 'FAILED'],
      ].sort(),
    );
    expect(existsSync(movedWs.dir)).toBe(false);
    expect(existsSync(failedWs.dir)).toBe(false);
    expect(existsSync(commitWs.dir)).toBe(true);
    expect(here.kept).toContainEqual({ name: path.basename(path.dirname(commitWs.dir)), why: expect.stringMatching(/running and its workspace was rebuilt elsewhere, but a commit of it lives only here/) });

    // On the rig's host those folders are the runs' own: the open runs' stay, the failed run's is within the retention.
    const rigQueue = `${rig.taskQueue}-ws`;
    const own = await sweepWorkspaces({ root: rig.workspaceRoot, workspaceQueue: rigQueue, retentionMs: week, connection: client.connection, namespace: TEST_NAMESPACE, log: () => undefined });
    expect(own.removed).toEqual([]);
    expect(own.kept).toEqual(expect.arrayContaining([{ name: expect.any(String), why: `run ${moved.workflowId} is open` }, { name: expect.any(String), why: expect.stringMatching(new RegExp(`run ${failed.workflowId} is failed, closed 0h ago: within the retention period`)) }]));
    expect(existsSync(failed.workspace!)).toBe(true);
    // The same folders judged as another queue's (the rig's host restarted under a new slot): the open runs' moved.
    const asOther = await sweepWorkspaces({ root: rig.workspaceRoot, workspaceQueue: 'another-slot-ws', retentionMs: week, connection: client.connection, namespace: TEST_NAMESPACE, dryRun: true, log: () => undefined });
    expect(asOther.removed.map((r) => r.workflowId).sort()).toEqual([moved.workflowId, movedWithCommit.workflowId].sort());
  } finally {
    for (const id of [`sweep-moved-${stamp}`, `sweep-moved-commit-${stamp}`]) await client.workflow.getHandle(id).terminate('test: done').catch(() => undefined);
    await rig.close();
  }
}, 180_000);
