// The sweep at worker start (issue 17 item 3): workspaces made by the real prepareWorkspace for
// runs on the real dev server; a closed run's goes, an open run's stays, and so does a closed
// run's that holds a commit found nowhere else. The worker's own dot-folders are never touched.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import type { ActivityDeps, WorkspaceHandle } from '../src/activities/types';
import { RUN_MARKER, workspaceDirFor } from '../src/activities/workspace';
import { sweepWorkspaces } from '../src/workspaceSweep';
import { addFiles, makeRepo } from './support/repos';
import { closeTestConnections, testClient, TEST_NAMESPACE, uniqueQueue } from './support/temporal';

let base: string;
let deps: ActivityDeps;
let client: Client;
beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'weaver-sweep-'));
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
  const out = await sweepWorkspaces({ root: deps.workspaceRoot, connection: client.connection, namespace: TEST_NAMESPACE, log: (l) => lines.push(l) });

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
  expect(lines.join('\n')).toContain(`swept 1 workspace(s) of closed runs from ${deps.workspaceRoot}: ${closed} (terminated)`);

  // Once the open run is over too, its (clean) workspace goes at the next start.
  await client.workflow.getHandle(open).terminate('test: done');
  const again = await sweepWorkspaces({ root: deps.workspaceRoot, connection: client.connection, namespace: TEST_NAMESPACE, log: () => undefined });
  expect(again.removed.map((r) => r.workflowId)).toEqual([open]);
  expect(existsSync(unpushedWs.dir)).toBe(true);
}, 120_000);
