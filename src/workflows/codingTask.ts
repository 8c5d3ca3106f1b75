// The codingTask workflow: prepare → generate → apply → test → decide, until the Decider
// says commit, fail, stop — or decompose into child codingTasks whose branches the parent
// merges and tests. Orchestration only: every side effect is an activity. The concerns live
// beside it: task.ts (state, workspace, result), attempts.ts, commit.ts, decomposition.ts.
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { ApplicationFailure, CancellationScope, isCancellation, log, TemporalFailure, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { patched } from './patches';
import { legacyKeyNames, withoutLegacyKeyNames } from '../domain/registry';
import { CodingTaskInputSchema, formatZodIssues, type CodingTaskInput, type CodingTaskResult } from '../domain/schema';
import { changedAttributes, WeaverRepo, WeaverStatus } from '../domain/searchAttributes';
import { strippedCredentialsNote, stripTaskCredentials } from '../domain/repoUrl';
import { slimChild } from '../domain/slim';
import { REFUSED, taskFailure } from '../domain/taskOutcome';
import { noChecksReason } from '../domain/decider';
import { attemptLoop, plan, promptRequest, type Step } from './attempts';
import { decompose } from './decomposition';
import { FOLD_ROUND_TRIPS, isWorkspaceLost, TaskRun } from './task';
import { continueTask, resume, type TaskCarry } from './taskCarry';
import { recordTaskOutcome } from './metrics';

export { progressQuery, addGuidanceSignal, approvePushSignal, approvePushUpdate, type PushDecision } from './messages';

/** `carry`: given by the run before this one when its attempt loop continued as new (taskCarry.ts). */
export async function codingTask(rawInput: CodingTaskInput, carry?: TaskCarry): Promise<CodingTaskResult> {
  // Providers come from the worker's registry (resolved by an activity at start). Runs started
  // before it named key env vars in their input (apiKeyEnv): they replay as they ran, the name
  // dropped — the LLM activity takes keys from the worker's registry only.
  const registry = patched('provider-registry');
  const parsed = CodingTaskInputSchema.safeParse(registry ? rawInput : withoutLegacyKeyNames(rawInput));
  if (!parsed.success) {
    // Refused before anything ran: WeaverStatus says so in the list (runs before replay as they ran).
    if (patched('weaver-status-on-refusal')) upsertSearchAttributes([{ key: WeaverStatus, value: REFUSED }]);
    throw ApplicationFailure.nonRetryable(`invalid task input: ${formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  // Credentials in `repo` / `push.remote` (a task started around the client) are taken out before
  // anything is recorded: search attributes, activity inputs, results, the workspace's .git/config.
  // The worker supplies git credentials itself. Versioned: runs started before replay as they ran.
  const clean = stripTaskCredentials(parsed.data);
  const scrubbed = clean.stripped.length > 0 && patched('strip-url-credentials');
  const given = { limits: rawInput.limits, strategy: rawInput.strategy, sandbox: rawInput.sandbox, decomposition: rawInput.decomposition };
  const t = new TaskRun(scrubbed ? clean.input : parsed.data, registry ? undefined : legacyKeyNames(rawInput), given);
  if (carry) resume(t, carry);
  else if (scrubbed) t.warn(strippedCredentialsNote(clean.stripped));
  const result = await run(t, rawInput, carry);
  recordTaskOutcome(result, t.depth);
  // A task that did not deliver fails its workflow (Failed at a glance in the Web UI), its whole
  // result as the failure's details (domain/taskOutcome.ts). Runs started before completed
  // with every result: they replay as they ran.
  const failure = taskFailure(result);
  if (failure && patched('fail-workflow-on-failed-task')) throw failure;
  return result;
}

async function run(t: TaskRun, rawInput: CodingTaskInput, carry?: TaskCarry): Promise<CodingTaskResult> {
  const running: SearchAttributeUpdatePair[] = [
    { key: WeaverRepo, value: t.input.repo.slice(0, 200) },
    { key: WeaverStatus, value: 'running' },
  ];
  // Runs since LEAN_ROUND_TRIPS upsert only what the start (the client sets both) did not set.
  const upsert = t.lean ? changedAttributes(workflowInfo().typedSearchAttributes, running) : running;
  if (upsert.length) upsertSearchAttributes(upsert);
  // A continued run has its providers, settings and workspace from the run before.
  if (t.registry && !carry) await t.resolveProviders();
  try {
    const step = carry ? await attemptLoop(t, carry.loop) : await start(t);
    if (step.kind === 'continue') return await continueTask(t, rawInput, carry?.runs ?? 0, step.loop);
    if (step.kind === 'done') return step.result;
    return await decompose(t, step.subtasks, step.why);
  } catch (err) {
    const extra: Partial<CodingTaskResult> = {
      ...(t.children.length ? { children: t.children.map(slimChild) } : {}),
      // Work already committed is reported whatever happens next: nothing is lost.
      ...(t.committed ?? {}),
      // Not a workspace lost with its host: a result never names one as live.
      workspace: t.ws && !t.released && !t.wsLost && !isWorkspaceLost(err) ? t.ws.dir : undefined,
    };
    if (isCancellation(err) || CancellationScope.current().consideredCancelled) {
      // Cancelled: clean up without being cancelled ourselves and report what had finished.
      return await CancellationScope.nonCancellable(async () => {
        if (t.ws && !t.committed && !t.released) {
          await t.acts(t.ws).releaseWorkspace(t.ws).catch(() => undefined);
          extra.workspace = undefined;
        }
        const finished = t.children.filter((c) => !['not_started', 'cancelled', 'running'].includes(c.status)).map((c) => c.workflowId);
        const note = t.children.length ? `; children finished: ${finished.length ? finished.join(', ') : 'none'}` : '';
        return t.finish('cancelled', `cancelled during ${t.phase} (attempt ${t.attempt})${note}`, extra);
      });
    }
    // A bug in this code (not a Temporal failure) fails the workflow task instead, so a fix
    // deployed later can let the run continue.
    if (!(err instanceof TemporalFailure)) throw err;
    // An activity failure that outlived its retries: still a result, with the spend so far.
    const message = (err.cause as Error | undefined)?.message ?? err.message;
    log.error('task failed', { error: message });
    return await t.finish('failed', `${t.phase} failed: ${message}`, extra);
  }
}

/** A fresh workspace, then the first step (unless nothing in the repository could check a change: said before any model is paid). */
async function start(t: TaskRun): Promise<Step> {
  // The attempt loop's first prompt is built with the workspace (runs since FOLD_ROUND_TRIPS): one activity fewer.
  const straightToAttempts = !t.input.subtasks?.length && !(t.input.decomposition === 'always' && t.canDecompose());
  await t.prepare(undefined, straightToAttempts && patched(FOLD_ROUND_TRIPS) ? promptRequest(t, {}, [], false, t.attempt + 1) : undefined);
  const playbook = t.playbooks ? t.ws?.playbook : undefined;
  if (playbook?.nothingAnywhere && !t.input.allowNoChecks && !t.input.subtasks?.length) {
    return { kind: 'done', result: await t.finish('failed', noChecksReason(playbook.description)) };
  }
  return firstStep(t);
}

/** Explicit subtasks or `always` decompose at once; otherwise the attempt loop decides. */
async function firstStep(t: TaskRun): Promise<Step> {
  if (t.input.subtasks?.length) {
    if (t.depth >= t.limits.maxDepth) {
      return { kind: 'done', result: await t.finish('failed', `explicit subtasks at depth ${t.depth} exceed maxDepth ${t.limits.maxDepth}`) };
    }
    return { kind: 'decompose', subtasks: t.input.subtasks, why: `${t.input.subtasks.length} explicit subtasks in the input` };
  }
  if (t.input.decomposition === 'always' && t.canDecompose()) {
    return plan(t, undefined, 'decomposition is "always"');
  }
  return attemptLoop(t);
}
