// Commit, approval and push: the accepted change's paths are committed; under requireApproval
// the push waits (durably) for a person; the work ends pushed or bundled into the artifact
// store (safe off the worker) before the task reports it, and a lost worker after the commit
// is answered by restoring the branch from that bundle, never by redoing the work.
import { CancellationScope, isCancellation, log } from '@temporalio/workflow';
import { patched } from './patches';
import type { CommitRequest, CommitResult, WorkspaceHandle } from '../activities/types';
import { isWorkspaceLost, type TaskRun } from './task';

const MAX_PUSH_REBUILDS = 3;

export interface CommitOutcome extends CommitResult {
  /** Why nothing was pushed, when a person said no or never answered. */
  rejected?: string;
  /** Where the branch lives when it is neither pushed nor handed over (undefined: released). */
  workspace?: string;
}

/** Runs since COMMIT_WITH_CHECKS: a task with no approval to wait for is committed by the activity that checks it. */
export const COMMIT_WITH_CHECKS = 'commit-with-checks';

type Commit = Omit<CommitRequest, 'workspace' | 'paths'>;

/**
 * The commit the checks' activity makes when every check passes (any pass is a commit here): the
 * last commitAndPush commitWork would send, saving its round trip. Only where nothing comes
 * between a pass and that commit — no approval to wait for; undefined otherwise.
 */
export function commitWithChecks(t: TaskRun, summary: string | undefined): Commit | undefined {
  if (!t.lean || (t.pushRemote() && t.input.requireApproval) || !patched(COMMIT_WITH_CHECKS)) return undefined;
  return finalCommit(t, summary, patched('bundle-every-commit'), { pushRemote: t.pushRemote(), handOff: t.depth > 0 });
}

/** What the last commitAndPush of a task is asked, but for the workspace and the paths. */
function finalCommit(t: TaskRun, summary: string | undefined, bundleAlways: boolean, o: { pushRemote?: string; handOff: boolean; approvedCommit?: string }): Commit {
  // Pushed (or handed over as a bundle): the work is safe elsewhere, the clone can go — removed by
  // the commit's own activity in runs since LEAN_ROUND_TRIPS, by a releaseWorkspace after it before.
  const release = releaseOf(o.handOff, bundleAlways);
  return {
    ...commitBase(t, summary),
    pushRemote: o.pushRemote,
    bundle: o.handOff || bundleAlways,
    ...(o.approvedCommit ? { approvedCommit: o.approvedCommit } : {}),
    ...(t.lean ? { release } : {}),
  };
}

const releaseOf = (handOff: boolean, bundleAlways: boolean) => (handOff || !bundleAlways ? 'bundled' : 'pushed');

function commitBase(t: TaskRun, summary: string | undefined): Pick<Commit, 'message' | 'workflowId' | 'secretEnvNames'> {
  const message = `${t.input.task.title}\n\n${summary ?? ''}\n\nWeaver-Workflow: ${t.workflowId}`.replace(/\n{3,}/g, '\n\n');
  return { message, workflowId: t.workflowId, secretEnvNames: t.secretEnvNames() };
}

/** Commits `paths` (what the accepted change wrote), pushes, and hands the workspace back. */
export async function commitWork(t: TaskRun, ws: WorkspaceHandle, summary: string | undefined, paths: string[]): Promise<CommitOutcome> {
  t.enter('committing');
  // Every commit is bundled into the shared artifact store unless pushed: a lost worker loses no
  // commit. Runs started before bundled only a child's (or an unapproved) commit.
  const bundleAlways = patched('bundle-every-commit');
  // Short and not to be interrupted: a cancel must not race a push (or the release after it).
  const commitAndPush = (req: Partial<Commit>) =>
    CancellationScope.nonCancellable(() => t.acts(ws).commitAndPush({ workspace: ws, ...commitBase(t, summary), paths, ...req, bundle: req.bundle || bundleAlways }));
  let pushRemote = t.pushRemote();
  let rejected: string | undefined;
  if (pushRemote && t.input.requireApproval) {
    // Commit now, push only once a person says so (a durable wait: days are fine).
    const first = await commitAndPush({});
    // What the person is shown (progress query) and approves: this commit, its diffstat and diff.
    t.committed = { commit: first.commit, pushed: false, ...(first.bundle ? { bundle: first.bundle } : {}), ...described(first) };
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
  const handOff = t.depth > 0 || timedOut;
  // Only the approved commit is pushed (the activity refuses a branch that moved since).
  const approvedCommit = pushRemote && t.gate.decision?.approved ? t.gate.decision.commit : undefined;
  const last = finalCommit(t, summary, bundleAlways, { pushRemote, handOff, approvedCommit });
  const release = releaseOf(handOff, bundleAlways);
  // Made already by the activity that ran the checks (commitWithChecks), with this same request
  // (one that differs is not taken: commitAndPush makes the commit once, and pushes as asked here).
  const made = t.madeCommit?.ws === ws && JSON.stringify(t.madeCommit.request) === JSON.stringify(last) ? t.madeCommit.result : undefined;
  t.madeCommit = undefined;
  let r: CommitResult;
  for (let rebuilds = 0; ; rebuilds++) {
    try {
      r = made && rebuilds === 0 ? made : await commitAndPush(last);
      break;
    } catch (err) {
      // Committed and bundled already (the approval wait): restore the branch elsewhere and push from there.
      const saved = t.committed?.bundle;
      if (!saved || !isWorkspaceLost(err) || rebuilds >= MAX_PUSH_REBUILDS) throw err;
      log.warn('workspace lost after its commit; restoring the branch from its bundle', { rebuilds: rebuilds + 1 });
      ws = await t.prepare({ restore: saved });
      t.enter('committing');
    }
  }
  t.committed = { commit: r.commit, pushed: r.pushed, ...(r.bundle ? { bundle: r.bundle } : {}), ...described(r) };
  if (r.refusedSecrets?.length) {
    t.warn(`not committed because they hold a secret of the worker: ${r.refusedSecrets.slice(0, 20).join(', ')}`);
  }
  if (r.ignored?.length) {
    t.warn(`committed although the repository ignores them (the tests ran with them): ${r.ignored.slice(0, 20).join(', ')}${r.ignored.length > 20 ? ', …' : ''}`);
  }
  if (r.leftBehind?.length) {
    t.warn(`not committed (the run wrote or changed them after the change applied): ${r.leftBehind.slice(0, 20).join(', ')}${r.leftBehind.length > 20 ? ', …' : ''}`);
  }
  if (r.pushError) {
    t.warn(`push failed: ${r.pushError}${r.bundle ? '; the branch is kept as a git bundle' : `; the commit stays in the workspace ${ws.dir}`}`);
  }
  // Otherwise the workspace is where the branch is checked out. Versioned: older histories without this step replay.
  const safeElsewhere = r.pushed || (!!r.bundle && release === 'bundled');
  if (t.lean) {
    t.released = !!r.released;
    // Clean-up only: the work is safe, so a failure here is a warning, not a failure.
    if (r.releaseError) t.warn(`could not remove the workspace ${ws.dir}: ${r.releaseError}`);
  } else if (safeElsewhere && patched('release-workspace-after-push')) {
    try {
      await t.acts(ws).releaseWorkspace(ws);
      t.released = true;
    } catch (err) {
      // Clean-up only: the work is safe, so a lost worker here is a warning, not a failure.
      if (isCancellation(err)) throw err;
      t.warn(`could not remove the workspace ${ws.dir}: ${(err as Error).message}`);
    }
  }
  return { ...r, rejected, workspace: t.released ? undefined : ws.dir };
}

/** The commit's diffstat and diff reference, when the activity could read them (older workers did not). */
function described(r: CommitResult): Pick<CommitResult, 'diffstat' | 'diff'> {
  return { ...(r.diffstat ? { diffstat: r.diffstat } : {}), ...(r.diff ? { diff: r.diff } : {}) };
}
