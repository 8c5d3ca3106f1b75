// parallel-all picks by the checks, not by provider order: every readable answer is applied in a
// workspace of its own (a clone of the same base with its setup) and the task's checks run on
// each, at most `candidateChecks` at once; the answer used is the best by the checks' verdict,
// then its call's cost, then provider order (domain/candidates.ts). Every outcome is on the
// attempt's record. Checking calls no provider: each answer's spend was booked once, with its
// call (providerCall.ts).
//
// The winner is then applied again on the task's own workspace and checked there like any
// answer (attempts.ts). That costs one more run of the checks, and keeps one path to a commit:
// the task's workspace, with its worker affinity, setup state, rebuild and bundle paths and its
// record of the tested tree (testedTree.ts), is the only place a commit is made, so the tree
// committed is always the tree checked there. Adopting the candidate's clone would save the run
// at the price of a second way to reach a commit.
import { CancellationScope, isCancellation, log } from '@temporalio/workflow';
import { patched } from './patches';
import type { Shown, WorkspaceHandle } from '../activities/types';
import { bestCandidate } from '../domain/candidates';
import { outcomeDetail } from '../domain/decider';
import { DEFAULT_CANDIDATE_CHECKS } from '../domain/settings';
import type { AttemptRecord, CandidateRecord } from '../domain/schema';
import { prepareWorkspace } from './activityProxies';
import { applyAndCheck } from './checks';
import { runBounded } from './children';
import { alternativeOf, isValid, type Call } from './providerCall';
import type { StrategyOutcome } from './strategies';
import { isWorkspaceLost, type TaskRun } from './task';

/** Marks runs whose parallel-all answers are checked, each in its own workspace, before one is used. */
export const PICK_BY_CHECKS = 'parallel-all-checks';

type Answer = Extract<StrategyOutcome, { kind: 'answer' }>;
type Answered = Extract<Call, { kind: 'answer' }>;

/**
 * With two or more readable answers from parallel-all, the one whose checks went best (recorded
 * on `record.candidates`); otherwise `answer` as the strategy chose it.
 */
export async function pickByChecks(t: TaskRun, answer: StrategyOutcome, shown: Shown, record: AttemptRecord): Promise<StrategyOutcome> {
  if (answer.kind !== 'answer' || !answer.all || !t.playbooks || !t.ws?.playbook) return answer;
  const checkable = (c: Call | undefined): c is Answered => c?.kind === 'answer' && c.result.outcome === 'ok' && !!c.result.change;
  if (answer.all.filter(checkable).length < 2 || !patched(PICK_BY_CHECKS)) return answer;
  const all = answer.all;
  const candidates = all.map((c) => recordOf(c));
  const toCheck = all.flatMap((c, i) => (checkable(c) ? [i] : []));
  const bound = t.settings?.candidateChecks ?? t.input.strategy?.candidateChecks ?? DEFAULT_CANDIDATE_CHECKS;
  t.enter('testing', `${toCheck.length} answers, each in a workspace of its own`);
  log.info('parallel-all: checking each answer in a workspace of its own', { attempt: t.attempt, answers: toCheck.length, atOnce: bound });
  await runBounded(toCheck.length, bound, async (k) => {
    const i = toCheck[k];
    candidates[i] = { ...candidates[i], ...(await checkOne(t, all[i] as Answered, k + 1, shown)) };
  });
  record.candidates = candidates;
  const best = bestCandidate(candidates);
  const w = all[best] as Answered;
  const alternatives = all
    .filter((r, i): r is Answered => i !== best && isValid(r))
    .map(alternativeOf);
  log.info('parallel-all: answer chosen by its checks', { attempt: t.attempt, chosen: w.spec.id, outcome: candidates[best].outcome });
  record.selection = { ...answer.selection, chosen: w.spec.id, alternatives };
  return { kind: 'answer', result: w.result, spec: w.spec, selection: record.selection } satisfies Answer;
}

/** A call as a candidate before any check: what it answered and what it cost. */
function recordOf(c: Call | undefined): CandidateRecord {
  if (!c) return { provider: '?', outcome: 'not_called', costUsd: 0 };
  if (c.kind === 'refused') return { provider: c.spec.id, outcome: 'not_called', costUsd: 0, detail: c.detail.slice(0, 300) };
  if (c.kind === 'failed') return { provider: c.spec.id, outcome: 'provider_failed', costUsd: 0, detail: `${c.family}: ${c.message}`.slice(0, 300) };
  const r = c.result;
  const base = { provider: c.spec.id, costUsd: c.event.costUsd, ...(r.changeDigest ? { changeDigest: r.changeDigest } : {}) };
  if (r.outcome === 'ok') return { ...base, outcome: 'pending' };
  return { ...base, outcome: r.outcome === 'subtasks' ? 'subtasks' : 'invalid_answer', ...(r.error ? { detail: `${r.outcome}: ${r.error}`.slice(0, 300) } : {}) };
}

/**
 * One answer applied and checked in a fresh workspace on the task's base commit, removed after.
 * A workspace lost (or a check that could not run) is that answer's outcome, never the task's.
 */
async function checkOne(t: TaskRun, c: Answered, n: number, shown: Shown): Promise<Pick<CandidateRecord, 'outcome' | 'detail' | 'log'>> {
  let ws: WorkspaceHandle | undefined;
  try {
    const baseCommit = t.ws?.baseCommit;
    ws = await prepareWorkspace({ ...t.workspaceRequest(`${t.workflowId}/candidate-${t.attempt}-${n}`), ...(baseCommit ? { baseCommit } : {}) });
    const scratch: AttemptRecord = { attempt: t.attempt, calls: [], outcome: 'pending', decision: { action: 'fail', why: '' }, artifacts: [] };
    const outcome = await applyAndCheck(t, ws, c.result.change!, shown, scratch);
    const steps = scratch.steps ?? [];
    const logged = steps.find((s) => s.status === 'failed' && s.log) ?? [...steps].reverse().find((s) => s.log);
    const detail = outcomeDetail(outcome);
    return { outcome: outcome.kind, ...(detail ? { detail: detail.slice(0, 300) } : {}), ...(logged?.log ? { log: logged.log } : {}) };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const why = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    log.warn('parallel-all: a candidate could not be checked', { provider: c.spec.id, why });
    return { outcome: isWorkspaceLost(err) ? 'workspace_lost' : 'check_error', detail: why.slice(0, 300) };
  } finally {
    if (ws) await release(t, ws);
  }
}

/** Removes a candidate's workspace, also when the task is being cancelled; a failure is only a warning. */
async function release(t: TaskRun, ws: WorkspaceHandle): Promise<void> {
  try {
    await CancellationScope.nonCancellable(() => t.acts(ws).releaseWorkspace(ws));
  } catch (err) {
    t.warn(`could not remove the candidate workspace ${ws.dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
