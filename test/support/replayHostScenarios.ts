// Replay scenarios of hosts coming and going (scripts/record-replay-fixtures.ts records them last:
// they start a worker of their own, or stop the rig's workspace workers as a lost host would).
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { exampleTask } from '../../scripts/demo/example';
import { workspaceDirFor } from '../../src/activities/workspace';
import { resultOf, startCodingTask } from '../../src/client';
import { FAULT_PROVIDER, faultHosts } from './faultHosts';
import { processesWith, startWorkerProcess, waitUntil } from './processes';
import { answer, BAD, check, GOOD, type ReplayScenario } from './replayShapes';
import { startRig } from './weaver';

/** Whether some checkout in the run's workspace folder has the file `name` (a test command's mark that it started). */
async function markedIn(root: string, workflowId: string, name: string): Promise<boolean> {
  const home = workspaceDirFor(root, workflowId);
  const entries = await readdir(home, { withFileTypes: true }).catch(() => []);
  return entries.some((e) => e.isDirectory() && existsSync(path.join(home, e.name, name)));
}

export const HOST_SCENARIOS: ReplayScenario[] = [
  {
    name: 'busy-workspace-worker',
    about: "the workspace worker's one slot is taken by another task's 8 s test run: the change waits 2 s in the queue, the liveness ping answers busy, it is queued again and applied",
    expect: { closed: 'COMPLETED', activities: { applyChange: 2, workspaceAlive: 1, commitAndPush: 1 }, patches: ['quick-queue-check', 'workspace-liveness-check'] },
    run: async (_shared, id) => {
      // A worker of its own: one workspace slot, nobody else's tasks.
      const rig = await startRig({ settings: { maxWorkspaceActivities: 1 } });
      try {
        const blocker = `${id}-blocker`;
        rig.model.script('rs-busy-blocker', [answer(BAD)]);
        const slow = ['node', '-e', "require('fs').writeFileSync('.started', ''); setTimeout(() => process.exit(1), 8000)"];
        let started: Promise<unknown> | undefined;
        rig.model.setDefault('rs-busy', async () => {
          // Answered once the other task's test run holds the slot this task's change needs next
          // (started once, should the call be retried).
          started ??= rig.newRepo().then((repo) => rig.start(rig.task(repo, [rig.provider('rs-busy-blocker')], { testCommand: slow, limits: { maxAttempts: 1, testTimeoutSec: 60 } }), blocker));
          await started;
          for (const deadline = Date.now() + 60_000; !(await markedIn(rig.workspaceRoot, blocker, '.started')); ) {
            if (Date.now() > deadline) throw new Error('the blocker never started its tests');
            await new Promise((r) => setTimeout(r, 50));
          }
          return answer(GOOD);
        });
        const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-busy')], { push: true }), id);
        const pings = (await rig.client.workflow.getHandle(id).fetchHistory()).events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'workspaceAlive').length;
        check(r.status === 'succeeded' && pings === 1, 'succeeded after one liveness ping answered busy', [r.status, r.reason, pings]);
        return [id];
      } finally {
        await rig.close();
      }
    },
  },
  {
    name: 'lost-host-mid-check',
    about:
      "two worker processes; the one holding the workspace is killed -9 while the check runs and its disk removed: the check's heartbeat timeout is not retried on the dead queue, the liveness ping there is silent, the workspace is rebuilt on the other host and the paid answer applied again",
    expect: { closed: 'COMPLETED', activities: { prepareWorkspace: 2, runCheck: 2, workspaceAlive: 1, generateChange: 1 }, patches: ['ping-after-heartbeat-timeout'] },
    run: async (rig, id) => {
      const cleanups: (() => Promise<void>)[] = [];
      try {
        const name = 'rs-lost-mid-check';
        const { remote, taskQueue, env, workers, tmp } = await faultHosts('replay', name, cleanups);
        const hosts = ['host-a', 'host-b'];
        for (const h of hosts) workers.push(await startWorkerProcess(env(h)));
        const marker = `7.${Date.now() % 1_000_000}`; // a unique `sleep` argument
        const handle = await startCodingTask(
          { ...exampleTask(remote, { id: FAULT_PROVIDER, model: name }), testCommand: ['sh', '-c', `sleep ${marker}; node --test test/`], push: true },
          { client: rig.client, taskQueue, workflowId: id },
        );
        await waitUntil('the check to run', () => processesWith(`sleep ${marker}`).length > 0, 120_000);
        const lost = hosts.findIndex((h) => existsSync(workspaceDirFor(path.join(tmp, h), id)));
        check(lost >= 0, 'the workspace is on one of the two hosts', hosts);
        process.kill(-workers[lost].pid, 'SIGKILL');
        await workers[lost].exited;
        await rm(path.join(tmp, hosts[lost]), { recursive: true, force: true });
        const r = await resultOf(handle);
        const notes = r.attempts[0]?.notes?.join('\n') ?? '';
        check(r.status === 'succeeded' && /runCheck stopped heartbeating .* and nobody polled/.test(notes), 'rebuilt after a silent check, the answer re-applied', [r.status, r.reason, notes]);
        return [id];
      } finally {
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
      }
    },
  },
  {
    // Last: it stops the rig's workspace workers (a lost host), which no later scenario could use.
    name: 'rebuilds-without-progress',
    about: "the answer is paid, then the host's workspace queue goes silent and every rebuild lands there: failed after 3 losses in a row without progress, the attempt listed",
    expect: { closed: 'FAILED', activities: { prepareWorkspace: 3, generateChange: 1 } },
    run: async (rig, id) => {
      const [, workspaceWorker, livenessWorker] = rig.workers.workers;
      rig.model.setDefault('rs-lost-host', () => {
        workspaceWorker.shutdown();
        livenessWorker.shutdown();
        return answer(GOOD);
      });
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-lost-host')], { push: true }), id);
      check(r.status === 'failed' && /lost 3 times in a row/.test(r.reason) && r.attempts.length === 1, 'failed after 3 losses without progress', [r.status, r.reason]);
      return [id];
    },
  },
];
