// A change applied and its checks run in one activity (issue 18: fewer round trips; runs since
// FOLD_ROUND_TRIPS). Each result is what applyChange and runCheck return, and the workflow reads
// them as it reads theirs (src/workflows/checks.ts). The activity stops where the workflow has
// something to decide: a change that did not apply or broke the syntax, a step that did not
// pass, a step longer than the activity's clock has left — the workflow goes on from there with
// runCheck as before.
//
// Asked to (runs since COMMIT_WITH_CHECKS), it also makes the commit the workflow would ask for
// next when every check passed — any pass is a commit to the workflow — so a task that passes
// spends no round trip between its checks and its commit. Anything short of a full pass, or a
// commit that fails here, leaves the commit to the workflow's commitAndPush, as before.
//
// Safe to run again (a retry, or the workflow queueing it again after its worker went silent):
// the apply result is kept beside the checkout (./testedTree.ts), so a try after one that died
// in a check runs the checks on the change already written, never applying it twice; a try
// after one that died while writing starts from the state after setup; the commit is made once
// (commitAndPush's own record), and a try after the clone was pushed and removed finds the
// whole result in the record the removal left.
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import { checkStepApplies, checkSteps } from '../domain/playbook';
import type { StepOutcome } from '../domain/schema';
import { openWorkspace } from './git';
import { readAppliedChange, recordAppliedChange } from './testedTree';
import type { ApplyAndCheckRequest, ApplyAndCheckResult, ApplyChangeRequest, ApplyChangeResult, CommitRequest, CommitResult, RunCheckRequest, WorkspaceHandle } from './types';

export interface ApplyAndCheckDeps {
  apply: (req: ApplyChangeRequest) => Promise<ApplyChangeResult>;
  check: (req: RunCheckRequest) => Promise<StepOutcome>;
  /** Back to the state after setup: a try that died while writing may have left part of the change. */
  rollback: (ws: WorkspaceHandle) => Promise<void>;
  /** The change's paths put back as it wrote them: a check that died with its try may have rewritten some. */
  restoreTested: (ws: WorkspaceHandle) => Promise<void>;
  /** commitAndPush's work; `done`: the whole result, recorded with the workspace's removal for a retry to find. */
  commit: (req: CommitRequest, done: (committed: CommitResult) => ApplyAndCheckResult) => Promise<CommitResult>;
}

export async function applyAndCheck(req: ApplyAndCheckRequest, deps: ApplyAndCheckDeps): Promise<ApplyAndCheckResult> {
  const started = Date.now();
  const once = await applyOnce(req, deps);
  // No folder to keep the result in (a workspace made before it had one): a retry could not tell
  // the change is written, so the checks are the workflow's (runCheck) as before.
  if (!once) return { applied: await deps.apply(req), checked: [] };
  const { applied } = once;
  if (!applied.applied || applied.syntaxErrors?.length) return { applied, checked: [] };
  // A try before passed every check on this tree and went on to commit: its verdict stands (run
  // again, a flaky check could fail under a commit already made, maybe pushed); the commit is made once.
  if (req.commit && once.passed) return commitPassed(req, deps, applied, once.passed);
  let checks: { checked: StepOutcome[]; all: boolean };
  try {
    checks = await checksThatPass(req, deps, applied, started);
  } catch (err) {
    throw lostAfterApplying(req.workspace, err);
  }
  const { checked } = checks;
  // Every step that applies ran and passed (and one at least): the workflow's verdict is commit.
  const passed = checks.all && checked.length > 0 && checked.every((s) => s.status === 'passed');
  if (!req.commit || !passed) return { applied, checked };
  // Recorded before the commit: what a retry answers with instead of checking again.
  await recordAppliedChange(req.workspace, req.change.ref, applied, checked).catch((err: unknown) => Promise.reject(lostAfterApplying(req.workspace, err)));
  return commitPassed(req, deps, applied, checked);
}

/** The commit the workflow asked for, after every check passed; a commit that fails here is left to the workflow's commitAndPush. */
async function commitPassed(req: ApplyAndCheckRequest, deps: ApplyAndCheckDeps, applied: ApplyChangeResult, checked: StepOutcome[]): Promise<ApplyAndCheckResult> {
  // A try Temporal has given up on (its worker starved, the task cancelled) commits and pushes nothing.
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('cancelled before the commit');
  const runId = runOf();
  try {
    const committed = await deps.commit({ ...req.commit!, workspace: req.workspace, paths: applied.files }, (c) => ({ applied, checked, committed: c, runId, change: req.change.ref }));
    return { applied, checked, committed };
  } catch (err) {
    if (err instanceof CancelledFailure) throw err;
    // Gone with its host: lost after the apply (the rebuild makes progress), not a commit to try here again.
    if (err instanceof ApplicationFailure && err.type === 'WorkspaceLost') throw lostAfterApplying(req.workspace, err);
    // The commit is the workflow's then (commitAndPush, as before): its own failures, retries, rebuilds.
    log.warn('could not commit with the checks; the workflow commits', { error: (err as Error).message });
    return { applied, checked };
  }
}

/** The steps run in order while they pass (the last one run may have failed); `all`: none left for the workflow to run. */
async function checksThatPass(req: ApplyAndCheckRequest, deps: ApplyAndCheckDeps, applied: ApplyChangeResult, started: number): Promise<{ checked: StepOutcome[]; all: boolean }> {
  const playbook = applied.playbook ?? req.checks.playbook;
  const { attempt, labels, testTimeoutSec, secretEnvNames, sandbox } = req.run;
  const ctx = { changed: applied.files, attempt, labels, setup: req.workspace.setupSteps ?? [] };
  const clockMs = Context.current().info.startToCloseTimeoutMs;
  const done: StepOutcome[] = [];
  const checked: StepOutcome[] = [];
  for (const step of checkSteps(playbook)) {
    const applies = checkStepApplies(playbook, step, ctx, done);
    if (!applies.run) {
      done.push(applies.skipped);
      continue;
    }
    const timeoutSec = step.timeoutSec ?? testTimeoutSec;
    // What runCheck's own clock would give this step beyond its command (commandClockSec).
    if (clockMs - (Date.now() - started) < (2 * timeoutSec + 120) * 1000) return { checked, all: false };
    const out = await deps.check({ workspace: req.workspace, step, timeoutSec, secretEnvNames, sandbox });
    checked.push(out);
    // A step that did not pass is the workflow's to decide on (feedback, warn, a missing tool…).
    if (out.status !== 'passed') return { checked, all: false };
    done.push(out);
  }
  return { checked, all: true };
}

/**
 * A workspace lost in a check — whatever failed as it went (a command's files, the sandbox's) —
 * is WorkspaceLost, saying the change was applied (`details`): the rebuild that follows makes
 * progress, as one after applyChange did (src/domain/rebuilds.ts). A retry here could only find
 * it gone, not knowing the change had been applied.
 */
function lostAfterApplying(workspace: WorkspaceHandle, err: unknown): unknown {
  if (err instanceof CancelledFailure) return err;
  const lost = err instanceof ApplicationFailure && err.type === 'WorkspaceLost' ? err : goneFrom(workspace);
  if (!lost) return err;
  return ApplicationFailure.create({ type: 'WorkspaceLost', message: lost.message, nonRetryable: true, details: [{ applied: true }], cause: err as Error });
}

/** The change applied once whatever the tries (with the checks a try passed, if one did); undefined when nothing could be recorded. */
async function applyOnce(req: ApplyAndCheckRequest, deps: ApplyAndCheckDeps): Promise<{ applied: ApplyChangeResult; passed?: StepOutcome[] } | undefined> {
  const kept = await readAppliedChange<ApplyChangeResult, StepOutcome[]>(req.workspace, req.change.ref);
  if (kept?.result) {
    await deps.restoreTested(req.workspace).catch((err: unknown) => Promise.reject(lostAfterApplying(req.workspace, err)));
    return { applied: kept.result, ...(kept.passed ? { passed: kept.passed } : {}) };
  }
  if (kept) await deps.rollback(req.workspace);
  if (!(await recordAppliedChange(req.workspace, req.change.ref))) return undefined;
  const result = await deps.apply(req);
  // Lost from here on, the change was written: the rebuild makes progress, as after a check.
  await recordAppliedChange(req.workspace, req.change.ref, result).catch((err: unknown) => Promise.reject(result.applied ? lostAfterApplying(req.workspace, err) : err));
  return { applied: result };
}

/** The run this activity works for: a record of the workspace's removal is only ever read back by a try of the same run. */
export function runOf(): string {
  return Context.current().info.workflowExecution?.runId ?? 'unknown';
}

/**
 * The whole result a try of this run left with the workspace's removal (it committed, pushed and
 * removed the clone, then could not report): only this run's and this change's, never another
 * run's that had the same workflow id (a workspace is named by the id alone).
 */
export function foldedBefore(record: unknown, req: ApplyAndCheckRequest): ApplyAndCheckResult | undefined {
  const r = record as (ApplyAndCheckResult & { runId?: string; change?: string }) | undefined;
  if (!r?.committed || r.runId !== runOf() || r.change !== req.change.ref) return undefined;
  return { applied: r.applied, checked: r.checked, committed: r.committed };
}

/** The WorkspaceLost failure when the workspace is gone from this worker. */
function goneFrom(workspace: WorkspaceHandle): ApplicationFailure | undefined {
  try {
    openWorkspace(workspace);
    return undefined;
  } catch (err) {
    return err as ApplicationFailure;
  }
}
