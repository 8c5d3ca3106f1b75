// The attempt loop: prompt → strategy (provider calls) → apply → test → decide, until the
// Decider says commit, fail, stop or decompose. A lost workspace is rebuilt without consuming
// the attempt. Also the planning call (ask for subtasks only).
import { isCancellation, log } from '@temporalio/workflow';
import { patched } from './patches';
import type { BuildPromptRequest, GenerateChangeResult, Shown, WorkspaceHandle } from '../activities/types';
import { DEFAULT_COOLDOWN } from '../domain/cooldown';
import { decide, outcomeDetail, type Outcome, type TaskState } from '../domain/decider';
import { countLoss, givenUp, type Losses } from '../domain/rebuilds';
import type { ArtifactRef, AttemptRecord, CodingTaskResult, TaskSpec } from '../domain/schema';
import { recordSucceeded } from '../domain/usage';
import { pickByChecks } from './candidates';
import { applyAndCheck } from './checks';
import { commitWithChecks, commitWork } from './commit';
import { routeFor } from './routing';
import { DEFAULT_RETRY, runStrategy, type StrategyOutcome } from './strategies';
import { isWorkspaceLost, type TaskRun } from './task';
import { historyFull, type LoopState, type Reflection } from './taskCarry';

/** Runs before REBUILD_WHILE_PROGRESSING: a fixed cap on rebuilds per attempt loop. */
const MAX_WORKSPACE_REBUILDS = 3;
/** Marks runs whose rebuilds are bounded only by losses without progress (src/domain/rebuilds.ts). */
const REBUILD_WHILE_PROGRESSING = 'rebuild-while-progressing';
/** Rounds of "show me these files" per attempt, served without consuming the attempt. */
const MAX_FILE_ROUNDS = 2;

/** An attempt's answer and the prompt it came from (what it showed whole may be rewritten whole). */
interface Answered {
  answer: StrategyOutcome;
  shown: Shown;
  record: AttemptRecord;
}

/** Where the attempts left the task: finished, to be split into subtasks, or to go on in a new run (its history is full). */
export type Step = { kind: 'done'; result: CodingTaskResult } | { kind: 'decompose'; subtasks: TaskSpec[]; why: string } | { kind: 'continue'; loop: LoopState };

/**
 * One attempt's prompt and provider calls (under the task's strategy), recorded on `record`.
 * A model that asks to see files gets them in a new prompt, up to MAX_FILE_ROUNDS times,
 * without consuming the attempt.
 */
export async function ask(t: TaskRun, record: AttemptRecord, reflection: Reflection, planOnly = false): Promise<{ answer: StrategyOutcome; shown: Shown }> {
  const requested: string[] = [];
  let shown: Shown = {};
  for (let round = 0; ; round++) {
    // The workspace is still at the branch head here: a lost one is rebuilt and the prompt built
    // again, keeping the rounds (and answers) already paid for.
    const request = promptRequest(t, reflection, requested, planOnly);
    // The first prompt may come built with the workspace (runs since FOLD_ROUND_TRIPS), if it was built for this very request.
    const built = await t.onWorkspace(async (ws) => t.takePrompt(ws, request) ?? t.acts(ws).buildPrompt({ workspace: ws, ...request }));
    // The answer comes from this round's prompt: only what it showed whole may be rewritten whole.
    shown = built.shown ?? {};
    record.artifacts.push(built.prompt);
    record.promptTokens = built.estTokens;
    const compareFiles = comparesResultingFiles(t);
    const { providers, firstReason, onRoute } = routeFor(t, record, built.estTokens);
    const answer = await runStrategy(providers, t.input.strategy, {
      workflowId: t.workflowId,
      attempt: t.attempt,
      prompt: built.prompt,
      estTokensIn: built.estTokens,
      // Values masked in this prompt: recorded on its call events (absent when none).
      promptRedactions: built.redactions || undefined,
      ledger: t.ledger,
      cooldowns: t.cooldowns,
      // Fixed at the run's start by the worker (settings); runs started before read them from code.
      cooldown: t.settings?.cooldown ?? t.input.strategy?.cooldown ?? DEFAULT_COOLDOWN,
      retry: t.settings?.retry ?? { ...DEFAULT_RETRY, ...t.input.strategy?.retry },
      fallbackOn: t.settings?.fallbackOn,
      // A durable wait for a provider shows in `progress` (and as a labelled timer in the Web UI).
      onWait: (w) => void (t.providerWait = w),
      warnings: t.warnings,
      firstReason,
      onRoute,
      resultDigest: compareFiles
        ? async (r) =>
            (await t.onWorkspace((ws) => t.acts(ws).previewChanges({ workspace: ws, changes: [r.change!], shown, allowTestChanges: t.input.task.allowTestChanges })))[0] ??
            undefined
        : undefined,
    });
    record.calls = t.ledger.events.filter((e) => e.attempt === t.attempt);
    record.selection = answer.selection;
    const wants = answer.kind === 'answer' && answer.result.outcome === 'needs_files' ? (answer.result.needFiles ?? []) : [];
    if (wants.length && round < MAX_FILE_ROUNDS) {
      (record.fileRequests ??= []).push(wants);
      for (const f of wants) if (!requested.includes(f)) requested.push(f);
      log.info('model asked for files; serving them in a new prompt', { attempt: t.attempt, round: round + 1, files: wants.slice(0, 20) });
      continue;
    }
    return { answer, shown };
  }
}

/** What buildPrompt is sent for an attempt (`attempt`: the attempt about to start), but the workspace. */
export function promptRequest(t: TaskRun, reflection: Reflection, requested: string[], planOnly: boolean, attempt = t.attempt): Omit<BuildPromptRequest, 'workspace'> {
  return {
    task: t.input.task,
    attempt,
    tokenBudget: t.tokenBudget,
    feedback: reflection.feedback,
    failure: reflection.failure,
    requestedFiles: requested.length ? [...requested] : undefined,
    guidance: [...t.guidance],
    allowSubtasks: planOnly || t.canDecompose(),
    planOnly,
    secretEnvNames: t.secretEnvNames(),
    // A child's own naming never unlocks secret files (its task came from a model): only the root's.
    namedSecretFiles: t.input.inherited?.namedSecretFiles,
  };
}

/** Consensus and shadow comparisons look at the files each answer produces, not its text. */
function comparesResultingFiles(t: TaskRun): boolean {
  const s = t.input.strategy;
  return (s?.mode === 'consensus' || !!s?.shadow?.length) && patched('compare-resulting-files');
}

/** Asks the model for subtasks only (decomposition "always", or after failures as in ADaPT). */
export async function plan(t: TaskRun, feedback: string | undefined, why: string): Promise<Step> {
  t.attempt += 1;
  t.enter('decomposing');
  const record: AttemptRecord = { attempt: t.attempt, calls: [], outcome: 'plan', decision: { action: 'fail', why: '' }, artifacts: [] };
  const { answer } = await ask(t, record, { feedback }, true);
  t.attempts.push(record);
  if (answer.kind === 'answer' && answer.result.outcome === 'subtasks' && answer.result.subtasks?.length) {
    record.outcome = 'subtasks_proposed';
    record.summary = answer.result.summary;
    record.decision = t.lastDecision = { action: 'decompose', why: `${why}; the model proposed ${answer.result.subtasks.length} subtasks` };
    return { kind: 'decompose', subtasks: answer.result.subtasks, why: record.decision.why };
  }
  const got =
    answer.kind === 'answer' ? `an answer of kind ${answer.result.outcome}` : answer.kind === 'failed' ? `${answer.family}: ${answer.message}` : answer.detail;
  record.decision = t.lastDecision = { action: answer.kind === 'budget' ? 'budget_exceeded' : 'fail', why: `${why}; asked for subtasks but got ${got}` };
  return { kind: 'done', result: await t.finish(answer.kind === 'budget' ? 'budget_exceeded' : 'failed', record.decision.why, { workspace: t.ws!.dir }) };
}

/** `from`: where the run before this one left the loop (continue-as-new). */
export async function attemptLoop(t: TaskRun, from?: LoopState): Promise<Step> {
  let ws = t.ws!;
  let rebuilds = from?.rebuilds ?? 0;
  let losses: Losses = from?.losses ?? { total: 0, withoutProgress: 0 };
  /** The answer was applied on the current workspace (a loss after that made progress). */
  let applied = from?.applied ?? false;
  let reflection: Reflection = from?.reflection ?? {};
  /** An answer already paid for whose workspace was lost: re-applied on the rebuilt one, not bought again. */
  let carried: Answered | undefined;
  const state = (): TaskState => ({
    attempt: t.attempt,
    maxAttempts: t.limits.maxAttempts,
    depth: t.depth,
    maxDepth: t.limits.maxDepth,
    decomposition: t.input.decomposition ?? 'auto',
  });

  while (t.attempt < t.limits.maxAttempts || carried) {
    if (!carried) t.attempt += 1;
    const record: AttemptRecord = carried?.record ?? { attempt: t.attempt, calls: [], outcome: 'pending', decision: { action: 'fail', why: '' }, artifacts: [] };
    let answered: Answered | undefined = carried;
    carried = undefined;
    try {
      if (!answered) {
        t.enter('generating');
        const asked = await ask(t, record, reflection);
        // A workspace lost while the prompt was built or answers compared was rebuilt in place.
        ws = t.ws!;
        // parallel-all: the answer whose own checks went best, not the first in provider order.
        const answer = await pickByChecks(t, asked.answer, asked.shown, record);
        answered = { answer, shown: asked.shown, record };
      }
      const { answer, shown } = answered;
      const gen: GenerateChangeResult | undefined = answer.kind === 'answer' ? answer.result : undefined;
      const outcome = await tryAnswer(t, ws, answer, record, shown, () => (applied = true));

      t.enter('deciding');
      const verdict = decide(state(), outcome);
      t.lastDecision = { action: verdict.action, why: verdict.why };
      record.outcome = outcome.kind;
      record.detail = outcomeDetail(outcome);
      record.decision = t.lastDecision;
      if (!t.attempts.includes(record)) t.attempts.push(record);
      log.info('decision', { attempt: t.attempt, outcome: outcome.kind, action: verdict.action, why: verdict.why });

      switch (verdict.action) {
        case 'commit': {
          const { commit, pushed, bundle, rejected, workspace } = await commitWork(t, ws, record.summary, record.filesChanged ?? []);
          // Committed (once, whatever rebuilds it took): its provider and model are credited with a passing answer.
          if (answer.kind === 'answer') recordSucceeded(t.ledger.usage, answer.spec.id, answer.spec.model);
          return {
            kind: 'done',
            result: await t.finish(rejected ? 'rejected' : 'succeeded', rejected ? `${verdict.why}; ${rejected}` : verdict.why, {
              commit,
              pushed,
              bundle,
              workspace,
            }),
          };
        }
        case 'retry':
          reflection = { feedback: verdict.feedback, failure: failureOf(record, outcome) };
          ws = await t.rollback(ws);
          // Between two attempts nothing is in flight: the place to hand over to a new run.
          if (historyFull(t)) return { kind: 'continue', loop: { reflection, rebuilds, losses, applied } };
          continue;
        case 'decompose':
          ws = await t.rollback(ws);
          if (verdict.plan) return plan(t, verdict.feedback, verdict.why);
          return { kind: 'decompose', subtasks: gen?.subtasks ?? [], why: verdict.why };
        default:
          return {
            kind: 'done',
            result: await t.finish(verdict.action === 'budget_exceeded' ? 'budget_exceeded' : 'failed', verdict.why, { workspace: ws.dir }),
          };
      }
    } catch (err) {
      const lost = isWorkspaceLost(err);
      // Runs started before REBUILD_WHILE_PROGRESSING gave up at the fourth loss, whatever happened between.
      if (!lost || (rebuilds >= MAX_WORKSPACE_REBUILDS && !patched(REBUILD_WHILE_PROGRESSING))) throw listed(t, record, err);
      const atCommit = t.phase === 'committing' || t.phase === 'awaiting_approval';
      // Runs started before the rebuild path covered commits failed here; they replay as they ran.
      if (atCommit && !patched('rebuild-at-commit')) throw listed(t, record, err);
      // The worker holding the workspace is gone: rebuild elsewhere; this attempt doesn't count.
      rebuilds += 1;
      losses = countLoss(losses, applied);
      applied = false;
      const why = givenUp(losses, failureMessage(err), t.attempt);
      if (why && patched(REBUILD_WHILE_PROGRESSING)) {
        listed(t, record, err, why);
        t.lastDecision = record.decision;
        // The workspace is gone with its host: not named in the result.
        return { kind: 'done', result: await t.finish('failed', why) };
      }
      const lostHow = failureMessage(err).slice(0, 300);
      log.warn('workspace lost; rebuilding', { rebuilds, withoutProgress: losses.withoutProgress, phase: t.phase, how: lostHow });
      // Paid for already: the rebuilt workspace gets the same answer, applied and tested again.
      // (Versioned: runs started before asked the model again.)
      if (answered && patched('reapply-after-rebuild')) {
        carried = answered;
        record.notes = [...(record.notes ?? []), `the workspace's worker was lost during ${t.phase} (${lostHow}); the same answer was applied again on a rebuilt workspace`].slice(-20);
      } else {
        t.attempt -= 1;
      }
      ws = await t.prepare({});
      continue;
    }
  }
  return { kind: 'done', result: await t.finish('failed', `${t.limits.maxAttempts} attempt(s) exhausted`, { workspace: ws.dir }) };
}

/**
 * The failed attempt's test log and diff: the next prompt shows their failing part. A failed
 * playbook step's log is read for failing tests only where its `feedback` is `failures`.
 */
function failureOf(record: AttemptRecord, outcome: Outcome): Reflection['failure'] {
  const find = (kind: string) => record.artifacts.find((a) => a.kind === kind);
  const step = outcome.kind === 'tests_failed' || outcome.kind === 'check_failed' ? outcome.step : undefined;
  const failedStep = step && record.steps?.find((s) => s.name === step.name);
  const testLog = failedStep
    ? step.feedback === 'failures'
      ? failedStep.log
      : undefined
    : record.tests && !record.tests.passed
      ? record.tests.log
      : undefined;
  const diff = find('diff');
  return testLog || diff ? { testLog, diff } : undefined;
}

/**
 * The attempt a failure (or a cancellation) ended the loop in, listed in the result with its
 * calls (and their spend) like every decided attempt — unless nothing at all happened in it.
 */
function listed(t: TaskRun, record: AttemptRecord, err: unknown, why?: string): unknown {
  if (t.attempts.includes(record)) return err;
  record.calls = t.ledger.events.filter((e) => e.attempt === record.attempt);
  if (!record.calls.length && !record.artifacts.length) return err;
  record.outcome = isCancellation(err) ? 'cancelled' : why ? 'workspace_lost' : 'error';
  record.detail = failureMessage(err).slice(0, 500);
  record.decision = { action: 'fail', why: why ?? `${t.phase} failed: ${record.detail}` };
  t.attempts.push(record);
  return err;
}

/** An activity failure's own message (its cause's), as the result's reason quotes it. */
function failureMessage(err: unknown): string {
  const e = err as { cause?: Error; message?: string };
  return e?.cause?.message ?? e?.message ?? String(err);
}

/** Turns the strategy's answer into an outcome: apply the change and run the tests. */
async function tryAnswer(t: TaskRun, ws: WorkspaceHandle, answer: StrategyOutcome, record: AttemptRecord, shown: Shown, onApplied: () => void): Promise<Outcome> {
  if (answer.kind === 'failed') return { kind: 'provider_failed', family: answer.family, message: answer.message };
  if (answer.kind === 'budget') return { kind: 'budget_exhausted', detail: answer.detail };
  if (answer.kind === 'no_consensus') return { kind: 'no_consensus', detail: answer.detail };
  const gen = answer.result;
  record.provider = gen.provider;
  addArtifact(record, gen.response);
  if (gen.outcome === 'schema_violation') return { kind: 'schema_violation', error: gen.error ?? 'invalid answer' };
  if (gen.outcome === 'subtasks') return { kind: 'subtasks_proposed', count: gen.subtasks?.length ?? 0 };
  if (gen.outcome === 'truncated') return { kind: 'truncated', detail: gen.error ?? 'the answer was cut off' };
  if (gen.outcome === 'needs_files') return { kind: 'files_request_limit', rounds: MAX_FILE_ROUNDS, files: gen.needFiles ?? [] };
  record.summary = gen.summary;
  record.filesChanged = gen.files?.map((f) => f.path);
  addArtifact(record, gen.change!);
  return applyAndCheck(t, ws, gen.change!, shown, record, onApplied, commitWithChecks(t, gen.summary));
}

/** Records an artifact once (an answer re-applied on a rebuilt workspace brings its own again). */
function addArtifact(record: AttemptRecord, a: ArtifactRef): void {
  if (!record.artifacts.some((x) => x.ref === a.ref && x.kind === a.kind)) record.artifacts.push(a);
}
