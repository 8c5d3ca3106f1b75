// Commit, approval and push: the accepted change's paths are committed; under requireApproval
// the push waits (durably) for a person; the work ends pushed, bundled, or kept in the workspace.
import { CancellationScope, isCancellation, patched } from '@temporalio/workflow';
import type { WorkspaceHandle } from '../activities/types';
import type { TaskRun } from './task';

/** Commits `paths` (what the accepted change wrote), pushes, and hands the workspace back. */
export async function commitWork(t: TaskRun, ws: WorkspaceHandle, summary: string | undefined, paths: string[]) {
  t.enter('committing');
  const message = `${t.input.task.title}\n\n${summary ?? ''}\n\nWeaver-Workflow: ${t.workflowId}`.replace(/\n{3,}/g, '\n\n');
  // Short and not to be interrupted: a cancel must not race a push (or the release after it).
  const commitAndPush = (req: { pushRemote?: string; bundle?: boolean }) =>
    CancellationScope.nonCancellable(() =>
      t.acts(ws).commitAndPush({ workspace: ws, message, workflowId: t.workflowId, paths, secretEnvNames: t.secretEnvNames(), ...req }),
    );
  let pushRemote = t.pushRemote();
  let rejected: string | undefined;
  if (pushRemote && t.input.requireApproval) {
    // Commit now, push only once a person says so (a durable wait: days are fine).
    const first = await commitAndPush({});
    t.committed = { commit: first.commit, pushed: false };
    t.enter('awaiting_approval');
    const timeoutSec = t.input.approvalTimeoutSec;
    const a = await t.gate.wait(timeoutSec === undefined ? undefined : timeoutSec * 1000);
    const who = a ? `${a.by ?? 'a reviewer'}${a.comment ? `: ${a.comment}` : ''}` : '';
    if (!a) {
      // Nobody decided in time: nothing is pushed, the commit is kept as a bundle.
      rejected = `no approval within ${timeoutSec}s; nothing was pushed, the commit is kept as a git bundle`;
      pushRemote = undefined;
    } else if (!a.approved) {
      rejected = `push rejected by ${who}; nothing was pushed`;
      pushRemote = undefined;
    } else {
      t.lastDecision = { action: 'commit', why: `push approved by ${who}` };
    }
    if (rejected) t.lastDecision = { action: 'commit', why: rejected };
    t.enter('committing');
  }
  // A child that does not push hands its branch over as a bundle in the shared artifact store;
  // so does a task whose approval never came.
  const timedOut = rejected !== undefined && !t.gate.decision;
  const r = await commitAndPush({ pushRemote, bundle: t.depth > 0 || timedOut });
  t.committed = { commit: r.commit, pushed: r.pushed, bundle: r.bundle };
  if (r.refusedSecrets?.length) {
    t.warnings.push(`not committed because they hold a secret of the worker: ${r.refusedSecrets.slice(0, 20).join(', ')}`);
  }
  if (r.leftBehind?.length) {
    t.warnings.push(`not committed (the run wrote or changed them after the change applied): ${r.leftBehind.slice(0, 20).join(', ')}${r.leftBehind.length > 20 ? ', …' : ''}`);
  }
  if (r.pushError) {
    t.warnings.push(`push failed: ${r.pushError}${r.bundle ? '; the branch is kept as a git bundle' : `; the commit stays in the workspace ${ws.dir}`}`);
  }
  // Pushed (or bundled by a child): the work is safe elsewhere, the clone can go. Otherwise the
  // workspace is where the branch lives. Versioned: older histories without this step replay.
  if ((r.pushed || r.bundle) && patched('release-workspace-after-push')) {
    try {
      await t.acts(ws).releaseWorkspace(ws);
      t.released = true;
    } catch (err) {
      // Clean-up only: the work is safe, so a lost worker here is a warning, not a failure.
      if (isCancellation(err)) throw err;
      t.warnings.push(`could not remove the workspace ${ws.dir}: ${(err as Error).message}`);
    }
  }
  return { ...r, rejected };
}
