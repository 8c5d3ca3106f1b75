// The codingTask workflow: prepare → generate → apply → test → decide, until the Decider
// says commit, fail or stop. Orchestration only: every side effect is an activity.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  defineSignal,
  isCancellation,
  log,
  setHandler,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { WorkspaceHandle } from '../activities/types';
import { decide, type Outcome, type TaskState } from '../domain/decider';
import {
  formatZodIssues,
  CodingTaskInputSchema,
  resolveLimits,
  type ArtifactRef,
  type AttemptRecord,
  type CodingTaskInput,
  type CodingTaskResult,
  type Decision,
  type Phase,
  type Progress,
  type TaskStatus,
} from '../domain/schema';
import { WeaverAttempt, WeaverCostUsd, WeaverPhase, WeaverRepo, WeaverStatus } from '../domain/searchAttributes';
import { DEFAULT_COOLDOWN, type CooldownState } from '../domain/cooldown';
import { Ledger } from '../domain/ledger';
import { onWorkspace, shared } from './activityProxies';
import { DEFAULT_RETRY, runStrategy } from './strategies';

export const progressQuery = defineQuery<Progress>('progress');
/** A person's hint, added to the next prompt. */
export const addGuidanceSignal = defineSignal<[string]>('addGuidance');

const MAX_WORKSPACE_REBUILDS = 3;

export async function codingTask(rawInput: CodingTaskInput): Promise<CodingTaskResult> {
  const parsed = CodingTaskInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid task input: ${formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  const input = parsed.data;
  const limits = resolveLimits(input);
  const { workflowId } = workflowInfo();
  const branch = input.branch ?? `weaver/${workflowId}`;
  const ledger = new Ledger({ maxCostUsd: limits.maxCostUsd, maxTokens: limits.maxTokens });
  const usage = ledger.usage;
  const cooldowns: CooldownState = {};
  const warnings: string[] = [];
  const attempts: AttemptRecord[] = [];
  const artifacts: ArtifactRef[] = [];
  const guidance: string[] = [];
  let phase: Phase = 'starting';
  let attempt = 0;
  let lastDecision: Decision | undefined;
  let status: TaskStatus | undefined;

  setHandler(progressQuery, () => ({
    workflowId,
    phase,
    attempt,
    maxAttempts: limits.maxAttempts,
    usage,
    lastDecision,
    branch,
    status,
  }));
  setHandler(addGuidanceSignal, (text) => void guidance.push(text));

  const enter = (next: Phase) => {
    phase = next;
    upsertSearchAttributes([
      { key: WeaverPhase, value: next },
      { key: WeaverAttempt, value: attempt },
      { key: WeaverCostUsd, value: usage.costUsd },
    ]);
  };
  upsertSearchAttributes([
    { key: WeaverRepo, value: input.repo.slice(0, 200) },
    { key: WeaverStatus, value: 'running' },
  ]);

  let workspace: WorkspaceHandle | undefined;
  const prepare = async () => {
    enter('preparing');
    workspace = await shared.prepareWorkspace({
      workflowId,
      repo: input.repo,
      baseBranch: input.baseBranch,
      branch,
      setupCommand: input.setupCommand,
    });
    log.info('workspace ready', { dir: workspace.dir, taskQueue: workspace.taskQueue });
    return workspace;
  };

  const finish = async (s: TaskStatus, reason: string, extra: Partial<CodingTaskResult> = {}): Promise<CodingTaskResult> => {
    status = s;
    if (ledger.events.length) {
      artifacts.push(await shared.storeArtifact({ kind: 'events', content: ledger.events.map((e) => JSON.stringify(e)).join('\n') + '\n' }));
    }
    const result: CodingTaskResult = { workflowId, status: s, reason, branch, attempts, usage, artifacts, ...extra };
    if (warnings.length) result.warnings = warnings;
    enter('done');
    upsertSearchAttributes([{ key: WeaverStatus, value: s }]);
    artifacts.push(await shared.storeArtifact({ kind: 'report', content: JSON.stringify(result, null, 2) }));
    return result;
  };

  try {
    let ws = await prepare();
    let rebuilds = 0;
    let feedback: string | undefined;
    const state = (): TaskState => ({
      attempt,
      maxAttempts: limits.maxAttempts,
      depth: input.depth ?? 0,
      maxDepth: limits.maxDepth,
      decomposition: input.decomposition ?? 'auto',
    });

    while (attempt < limits.maxAttempts) {
      attempt += 1;
      const record: AttemptRecord = { attempt, calls: [], outcome: 'pending', decision: { action: 'fail', why: '' }, artifacts: [] };
      let outcome: Outcome;
      try {
        const acts = onWorkspace(ws, limits.testTimeoutSec);
        enter('generating');
        const built = await acts.buildPrompt({
          workspace: ws,
          task: input.task,
          attempt,
          feedback,
          guidance: [...guidance],
          allowSubtasks: false,
        });
        record.artifacts.push(built.prompt);
        const answer = await runStrategy(input.providers, input.strategy, {
          workflowId,
          attempt,
          prompt: built.prompt,
          estTokensIn: built.estTokens,
          ledger,
          cooldowns,
          cooldown: input.strategy?.cooldown ?? DEFAULT_COOLDOWN,
          retry: { ...DEFAULT_RETRY, ...input.strategy?.retry },
          warnings,
        });
        record.calls = ledger.events.filter((e) => e.attempt === attempt);
        record.selection = answer.selection;
        outcome = await (async (): Promise<Outcome> => {
          if (answer.kind === 'failed') return { kind: 'provider_failed', family: answer.family, message: answer.message };
          if (answer.kind === 'budget') return { kind: 'budget_exhausted', detail: answer.detail };
          if (answer.kind === 'no_consensus') return { kind: 'no_consensus', detail: answer.detail };
          const gen = answer.result;
          record.provider = gen.provider;
          record.artifacts.push(gen.response);
          if (gen.outcome === 'schema_violation') return { kind: 'schema_violation', error: gen.error ?? 'invalid answer' };
          if (gen.outcome === 'subtasks') return { kind: 'subtasks_proposed', count: gen.subtasks?.length ?? 0 };
          record.summary = gen.summary;
          record.filesChanged = gen.files?.map((f) => f.path);
          record.artifacts.push(gen.change!);
          enter('applying');
          const applied = await acts.applyChange({ workspace: ws, change: gen.change! });
          if (applied.diff) record.artifacts.push(applied.diff);
          if (!applied.applied) return { kind: 'apply_failed', errors: applied.errors };
          enter('testing');
          const tests = await acts.runTests({ workspace: ws, command: input.testCommand, timeoutSec: limits.testTimeoutSec });
          record.tests = tests;
          if (tests.log) record.artifacts.push(tests.log);
          if (tests.passed) return { kind: 'tests_passed' };
          return { kind: 'tests_failed', exitCode: tests.exitCode, timedOut: tests.timedOut, tail: tests.tail, timeoutSec: limits.testTimeoutSec };
        })();
      } catch (err) {
        if (isWorkspaceLost(err) && rebuilds < MAX_WORKSPACE_REBUILDS) {
          // The worker holding the workspace is gone: rebuild elsewhere; this attempt doesn't count.
          rebuilds += 1;
          log.warn('workspace lost; rebuilding', { rebuilds });
          attempt -= 1;
          ws = await prepare();
          continue;
        }
        throw err;
      }

      enter('deciding');
      const verdict = decide(state(), outcome);
      lastDecision = { action: verdict.action, why: verdict.why };
      record.outcome = outcome.kind;
      record.detail = outcomeDetail(outcome);
      record.decision = lastDecision;
      attempts.push(record);
      log.info('decision', { attempt, outcome: outcome.kind, action: verdict.action, why: verdict.why });

      if (verdict.action === 'commit') {
        enter('committing');
        const pushRemote = input.push === true ? 'origin' : input.push ? input.push.remote : undefined;
        const { commit, pushed } = await onWorkspace(ws, limits.testTimeoutSec).commitAndPush({
          workspace: ws,
          message: commitMessage(input.task.title, record.summary, workflowId),
          pushRemote,
        });
        return await finish('succeeded', verdict.why, { commit, pushed, workspace: pushed ? undefined : ws.dir });
      }
      if (verdict.action === 'retry') {
        feedback = verdict.feedback;
        await onWorkspace(ws, limits.testTimeoutSec).rollbackWorkspace(ws);
        continue;
      }
      return await finish(verdict.action === 'budget_exceeded' ? 'budget_exceeded' : 'failed', verdict.why, { workspace: ws.dir });
    }
    return await finish('failed', `${limits.maxAttempts} attempt(s) exhausted`, { workspace: ws.dir });
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: clean up without being cancelled ourselves, leave a report, then end as Cancelled.
    await CancellationScope.nonCancellable(async () => {
      if (workspace) await onWorkspace(workspace, limits.testTimeoutSec).releaseWorkspace(workspace).catch(() => undefined);
      await finish('cancelled', `cancelled during ${phase} (attempt ${attempt})`).catch(() => undefined);
    });
    throw err;
  }
}

function isWorkspaceLost(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const c = err.cause;
  return (
    (c instanceof ApplicationFailure && c.type === 'WorkspaceLost') ||
    (c instanceof TimeoutFailure && c.timeoutType === 'SCHEDULE_TO_START')
  );
}

function outcomeDetail(o: Outcome): string | undefined {
  switch (o.kind) {
    case 'apply_failed':
      return o.errors.join('; ').slice(0, 1000);
    case 'schema_violation':
      return o.error.slice(0, 1000);
    case 'provider_failed':
      return `${o.family}: ${o.message}`.slice(0, 1000);
    case 'tests_failed':
      return o.timedOut ? 'timed out' : `exit ${o.exitCode}`;
    default:
      return undefined;
  }
}

function commitMessage(title: string, summary: string | undefined, workflowId: string): string {
  return `${title}\n\n${summary ?? ''}\n\nWeaver-Workflow: ${workflowId}`.replace(/\n{3,}/g, '\n\n');
}
