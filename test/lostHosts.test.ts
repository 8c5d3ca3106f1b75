// Lost hosts, five in one attempt (issue 17, "What it must show"): real `node src/worker.ts`
// processes as hosts (each on a workspace root and queue of its own), the scripted model server,
// real git, real test processes. Each time the task's check runs, the host holding its workspace
// is `kill -9`ed (its whole process group) and its disk deleted, never to come back; a new host
// on a fresh root takes its place. Defaults throughout (test/support/faultHosts.ts): each loss is
// found by the check's 10 s heartbeat timeout and the liveness ping, as in production.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { exampleTask } from '../scripts/demo/example';
import { workspaceDirFor } from '../src/activities/workspace';
import { resultOf, startCodingTask } from '../src/client';
import { eventsOf } from './support/calls';
import { FAULT_PROVIDER, faultHosts } from './support/faultHosts';
import { activitiesOf, processesWith, startWorkerProcess, waitUntil } from './support/processes';
import { closeTestConnections, testClient } from './support/temporal';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closeTestConnections();
});

test('a task whose workspace host is lost (kill -9, disk gone) 5 times in one attempt, each during its paid check: rebuilt on new hosts, one request, one call booked, succeeds', async () => {
  const LOSSES = 5;
  const name = 'five-lost-hosts-model';
  const { model, remote, taskQueue, artifactDir, env, workers, tmp } = await faultHosts('five', name, cleanups);
  // Two hosts at all times: the one holding the workspace, and a spare the rebuild can go to.
  const hosts: string[] = [];
  const startHost = async () => {
    const host = `host-${hosts.length}`;
    workers.push(await startWorkerProcess(env(host)));
    hosts.push(host);
  };
  await startHost();
  await startHost();
  // The check sleeps (a unique argument, seen in /proc) long enough to be killed in, then tests.
  const marker = `4.${Date.now() % 1_000_000}`;
  const workflowId = `lost-hosts-five-${taskQueue}`;
  const handle = await startCodingTask(
    { ...exampleTask(remote, { id: FAULT_PROVIDER, model: name }), testCommand: ['sh', '-c', `sleep ${marker}; node --test test/`], push: true },
    { client: await testClient(), taskQueue, workflowId },
  );
  const lostQueues: string[] = [];
  const killedAt: number[] = [];
  for (let i = 0; i < LOSSES; i++) {
    await waitUntil(`check run ${i + 1}`, () => processesWith(`sleep ${marker}`).length > 0, 120_000, 50);
    // The live host whose root holds the workspace (the answer, paid, is applied there).
    const holder = hosts.findIndex((h, k) => workers[k].child.exitCode === null && workers[k].child.signalCode === null && existsSync(workspaceDirFor(path.join(tmp, h), workflowId)));
    expect({ loss: i + 1, found: holder >= 0 }).toEqual({ loss: i + 1, found: true });
    lostQueues.push(/workspace queue "([^"]+)"/.exec(workers[holder].output())?.[1] ?? '?');
    killedAt.push(Date.now());
    process.kill(-workers[holder].pid, 'SIGKILL');
    await workers[holder].exited;
    await rm(path.join(tmp, hosts[holder]), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    await waitUntil('the check to die with its host', () => processesWith(`sleep ${marker}`).length === 0, 10_000, 50);
    await startHost();
  }
  const result = await resultOf(handle);
  expect({ status: result.status, reason: result.reason }).toMatchObject({ status: 'succeeded' });
  expect((await simpleGit(remote).raw(['rev-parse', `refs/heads/${result.branch}`])).trim()).toBe(result.commit);
  // One answer: one request at the provider, one call booked, in the one attempt.
  expect(model.count(name)).toBe(1);
  expect(result.usage.calls).toBe(1);
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].calls).toHaveLength(1);
  expect((await eventsOf(result, artifactDir)).map((e) => e.outcome)).toEqual(['ok']);
  // The result says each rebuild: the answer applied again on a rebuilt workspace, five times,
  // each after a lost worker.
  const notes = result.attempts[0].notes ?? [];
  const rebuilds = notes.filter((n) => /worker was lost during \w+ \(no worker on \S+: applyChangeAndCheck stopped heartbeating .*\); the same answer was applied again on a rebuilt workspace/.test(n));
  expect({ rebuilds: rebuilds.length, notes }).toMatchObject({ rebuilds: LOSSES });
  // Six workspaces (the first and five rebuilds), the answer applied and checked on each (one
  // activity): on six queues, the first five lost with their hosts, and passed on the last.
  const activities = await activitiesOf(await testClient(), workflowId);
  const prepares = activities.filter((a) => a.type === 'prepareWorkspace');
  expect(prepares).toHaveLength(LOSSES + 1);
  const checks = activities.filter((a) => a.type === 'applyChangeAndCheck');
  expect(checks.map((a) => a.closed)).toEqual([...Array(LOSSES).fill('timed out HEARTBEAT'), 'completed']);
  expect(checks.slice(0, LOSSES).map((a) => a.taskQueue)).toEqual(lostQueues);
  expect(new Set(checks.map((a) => a.taskQueue)).size).toBe(LOSSES + 1);
  // A figure, not an assertion: kill -9 → the rebuild scheduled, for each loss (server clock, same machine).
  const found = killedAt.map((t, i) => ((prepares[i + 1].scheduledAt - t) / 1000).toFixed(1));
  console.log(`five lost hosts: kill -9 → rebuild scheduled ${found.join(', ')} s; task ${((Date.now() - killedAt[0]) / 1000).toFixed(0)} s from the first kill to its result checked`);
}, 300_000);
