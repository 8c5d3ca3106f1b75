// Replay scenarios of hosts coming and going (scripts/record-replay-fixtures.ts records them last:
// they start a worker of their own, or stop the rig's workspace workers as a lost host would).
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { workspaceDirFor } from '../../src/activities/workspace';
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
