// The codingTask workflow: prepare → generate → apply → test → decide, until the Decider
// says commit, fail, stop — or decompose into child codingTasks whose branches the parent
// merges and tests. Orchestration only: every side effect is an activity.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  defineQuery,
  defineSignal,
  executeChild,
  isCancellation,
  log,
  patched,
  setHandler,
  TemporalFailure,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GenerateChangeResult, Shown, WorkspaceHandle } from '../activities/types';
import { legacyKeyNames, withoutLegacyKeyNames, type ResolvedProviders } from '../domain/registry';
import { DEFAULT_COOLDOWN, type CooldownState } from '../domain/cooldown';
import { decide, type Outcome, type TaskState } from '../domain/decider';
import { allotment, Ledger } from '../domain/ledger';
import { promptBudget, resolveProvider, type ResolvedProvider } from '../domain/models';
import {
  CodingTaskInputSchema,
  formatZodIssues,
  resolveLimits,
  SandboxPolicySchema,
  type ArtifactRef,
  type AttemptRecord,
  type ChildSummary,
  type CodingTaskInput,
  type CodingTaskResult,
  type Decision,
  type ParsedCodingTaskInput,
  type ProviderSpec,
  type Phase,
  type Progress,
  type SandboxPolicy,
  type SandboxRecord,
  type TaskSpec,
  type TaskStatus,
  type Usage,
} from '../domain/schema';
import { WeaverAttempt, WeaverCostUsd, WeaverPhase, WeaverRepo, WeaverStatus } from '../domain/searchAttributes';
import { renderReport } from '../domain/report';
import { strippedCredentialsNote, stripTaskCredentials } from '../domain/repoUrl';
import { slugify } from '../domain/slug';
import { slimChild, slimResult } from '../domain/slim';
import { mergeUsage } from '../domain/usage';
import { onWorkspace, shared } from './activityProxies';
import { ApprovalGate } from './approval';
import { runBounded } from './children';
import { DEFAULT_RETRY, runStrategy, type StrategyOutcome } from './strategies';

export const progressQuery = defineQuery<Progress>('progress');
/** A person's hint, added to the next prompt. */
export const addGuidanceSignal = defineSignal<[string]>('addGuidance');
export { approvePushSignal, approvePushUpdate, type PushDecision } from './approval';

const MAX_WORKSPACE_REBUILDS = 3;
/** Rounds of "show me these files" per attempt, served without consuming the attempt. */
const MAX_FILE_ROUNDS = 2;

/** What the next prompt learns from the last attempt: the Decider's words and its artifacts. */
interface Reflection {
  feedback?: string;
  failure?: { testLog?: ArtifactRef; diff?: ArtifactRef };
}

export async function codingTask(rawInput: CodingTaskInput): Promise<CodingTaskResult> {
  // Providers come from the worker's registry (resolved by an activity at start). Runs started
  // before it named key env vars in their input (apiKeyEnv): they replay as they ran, the name
  // dropped — the LLM activity takes keys from the worker's registry only.
  const registry = patched('provider-registry');
  const parsed = CodingTaskInputSchema.safeParse(registry ? rawInput : withoutLegacyKeyNames(rawInput));
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid task input: ${formatZodIssues(parsed.error).join('; ')}`, 'InvalidTaskInput');
  }
  // Credentials in `repo` / `push.remote` (a task started around the client) are taken out before
  // anything is recorded: search attributes, activity inputs, results, the workspace's .git/config.
  // The worker supplies git credentials itself. Versioned: runs started before replay as they ran.
  const clean = stripTaskCredentials(parsed.data);
  const scrubbed = clean.stripped.length > 0 && patched('strip-url-credentials');
  const task = new CodingTask(scrubbed ? clean.input : parsed.data, registry ? undefined : legacyKeyNames(rawInput));
  if (scrubbed) task.warn(strippedCredentialsNote(clean.stripped));
  return task.run();
}

type Step = { kind: 'done'; result: CodingTaskResult } | { kind: 'decompose'; subtasks: TaskSpec[]; why: string };

class CodingTask {
  private readonly limits;
  /** Providers with every model default resolved once, at start (kept in state). */
  private providers: (ResolvedProvider | ProviderSpec)[] = [];
  private tokenBudget = 0;
  /** Env var names of the worker's provider keys (from its registry, at start): kept out of commands. */
  private keyEnvNames: string[];
  /** The providers are resolved against the worker's registry at start (runs since `provider-registry`). */
  private readonly registry: boolean;
  private readonly workflowId = workflowInfo().workflowId;
  private readonly branch: string;
  private readonly depth: number;
  private readonly ledger: Ledger;
  private readonly cooldowns: CooldownState;
  private readonly warnings: string[] = [];
  private readonly attempts: AttemptRecord[] = [];
  private readonly artifacts: ArtifactRef[] = [];
  private readonly guidance: string[] = [];
  private readonly children: ChildSummary[] = [];
  private readonly childUsage: Usage[] = [];
  private phase: Phase = 'starting';
  private attempt = 0;
  private lastDecision?: Decision;
  private status?: TaskStatus;
  private ws?: WorkspaceHandle;
  /** Set once a commit exists: from then on the workspace is never deleted on cancel. */
  private committed?: { commit: string; pushed: boolean; bundle?: ArtifactRef };
  /** The workspace was deleted (its work is pushed or bundled). */
  private released = false;
  private readonly gate: ApprovalGate;
  /** The task's sandbox policy with its defaults, fixed at start (part of the durable record). */
  private readonly sandboxPolicy: SandboxPolicy;

  /** `legacyKeys`: given for a run started before the provider registry (its providers are its input's). */
  constructor(
    private readonly input: ParsedCodingTaskInput,
    legacyKeys?: string[],
  ) {
    this.limits = resolveLimits(input);
    this.sandboxPolicy = SandboxPolicySchema.parse(input.sandbox ?? {});
    this.keyEnvNames = legacyKeys ?? [];
    this.registry = !legacyKeys;
    if (legacyKeys) {
      // Pre-registry inputs always named their model.
      const specs = input.providers as ProviderSpec[];
      const resolved = specs.map(resolveProvider);
      this.tokenBudget = promptBudget(resolved);
      // Resolved defaults change budget reservations (a reasoning model's answer room): runs
      // started before them keep reserving as they did, or their replay would diverge.
      this.providers = patched('resolve-model-profiles') ? resolved : specs;
    }
    // A child's ID has '/' in it; git can't hold both weaver/X and weaver/X/1-a, hence '--'.
    this.branch = input.branch ?? `weaver/${this.workflowId.replace(/\//g, '--')}`;
    this.depth = input.depth ?? 0;
    this.ledger = new Ledger({ maxCostUsd: this.limits.maxCostUsd, maxTokens: this.limits.maxTokens });
    this.cooldowns = { ...(input.inherited?.cooldowns ?? {}) };
    setHandler(progressQuery, () => ({
      workflowId: this.workflowId,
      phase: this.phase,
      attempt: this.attempt,
      maxAttempts: this.limits.maxAttempts,
      usage: this.usage(),
      lastDecision: this.lastDecision,
      branch: this.branch,
      status: this.status,
      children: this.children.length ? this.children.map((c) => ({ workflowId: c.workflowId, status: c.status })) : undefined,
      sandbox: this.sandboxRecord(),
    }));
    setHandler(addGuidanceSignal, (text) => void this.guidance.push(text));
    this.gate = new ApprovalGate(() => ({ required: !!this.input.requireApproval, pushes: !!this.pushRemote(), phase: this.phase, status: this.status }));
  }

  /** The whole tree's usage: this task's calls plus its finished children's. */
  private usage(): Usage {
    return this.childUsage.length ? mergeUsage(this.ledger.usage, ...this.childUsage) : this.ledger.usage;
  }

  private enter(next: Phase) {
    this.phase = next;
    upsertSearchAttributes([
      { key: WeaverPhase, value: next },
      { key: WeaverAttempt, value: this.attempt },
      { key: WeaverCostUsd, value: this.usage().costUsd },
    ]);
  }

  private acts(ws: WorkspaceHandle) {
    return onWorkspace(ws, this.limits.testTimeoutSec);
  }

  /** Back to the branch head; if the workspace's worker is gone, a fresh clone is the head. */
  private async rollback(ws: WorkspaceHandle): Promise<WorkspaceHandle> {
    try {
      await this.acts(ws).rollbackWorkspace(ws);
      return ws;
    } catch (err) {
      if (!isWorkspaceLost(err)) throw err;
      log.warn('workspace lost at rollback; rebuilding');
      return this.prepare();
    }
  }

  /** Env var names of the providers' keys: scrubbed from commands run in the workspace. */
  private secretEnvNames(): string[] {
    return this.keyEnvNames;
  }

  /**
   * The task's providers against the worker's registry, once (kept in state): endpoints, keys,
   * allowed models and prices are the worker's; the model profiles are resolved from the merged
   * spec. A provider the worker does not allow fails the task here, before anything is called.
   */
  private async resolveProviders(): Promise<void> {
    let r: ResolvedProviders;
    try {
      r = await shared.resolveProviders({ providers: this.input.providers });
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === 'ProviderNotAllowed') {
        upsertSearchAttributes([{ key: WeaverStatus, value: 'failed' }]);
        throw ApplicationFailure.nonRetryable(`provider not allowed by the worker's registry: ${cause.message}`, 'ProviderNotAllowed');
      }
      throw err;
    }
    const resolved = r.providers.map(resolveProvider);
    this.providers = resolved;
    this.tokenBudget = promptBudget(resolved);
    this.keyEnvNames = r.secretEnvNames;
    for (const note of r.notes) if (!this.warnings.includes(note)) this.warnings.push(note);
  }

  /** A note for the result's warnings. */
  warn(text: string): void {
    if (!this.warnings.includes(text)) this.warnings.push(text);
  }

  async run(): Promise<CodingTaskResult> {
    upsertSearchAttributes([
      { key: WeaverRepo, value: this.input.repo.slice(0, 200) },
      { key: WeaverStatus, value: 'running' },
    ]);
    if (this.registry) await this.resolveProviders();
    try {
      await this.prepare();
      const step = await this.firstStep();
      if (step.kind === 'done') return step.result;
      return await this.decompose(step.subtasks, step.why);
    } catch (err) {
      const extra: Partial<CodingTaskResult> = {
        ...(this.children.length ? { children: this.children.map(slimChild) } : {}),
        // Work already committed is reported whatever happens next: nothing is lost.
        ...(this.committed ?? {}),
        workspace: this.ws && !this.released ? this.ws.dir : undefined,
      };
      if (isCancellation(err) || CancellationScope.current().consideredCancelled) {
        // Cancelled: clean up without being cancelled ourselves and report what had finished.
        return await CancellationScope.nonCancellable(async () => {
          if (this.ws && !this.committed && !this.released) {
            await this.acts(this.ws).releaseWorkspace(this.ws).catch(() => undefined);
            extra.workspace = undefined;
          }
          const finished = this.children.filter((c) => !['not_started', 'cancelled', 'running'].includes(c.status)).map((c) => c.workflowId);
          const note = this.children.length ? `; children finished: ${finished.length ? finished.join(', ') : 'none'}` : '';
          return this.finish('cancelled', `cancelled during ${this.phase} (attempt ${this.attempt})${note}`, extra);
        });
      }
      // A bug in this code (not a Temporal failure) fails the workflow task instead, so a fix
      // deployed later can let the run continue.
      if (!(err instanceof TemporalFailure)) throw err;
      // An activity failure that outlived its retries: still a result, with the spend so far.
      const message = (err.cause as Error | undefined)?.message ?? err.message;
      log.error('task failed', { error: message });
      return await this.finish('failed', `${this.phase} failed: ${message}`, extra);
    }
  }

  private async prepare(): Promise<WorkspaceHandle> {
    this.enter('preparing');
    this.ws = await shared.prepareWorkspace({
      workflowId: this.workflowId,
      repo: this.input.repo,
      baseBranch: this.input.baseBranch,
      branch: this.branch,
      setupCommand: this.input.setupCommand,
      secretEnvNames: this.secretEnvNames(),
      sandbox: this.sandboxPolicy,
      pushRemote: this.pushRemote(),
    });
    log.info('workspace ready', { dir: this.ws.dir, taskQueue: this.ws.taskQueue, sandbox: this.ws.sandbox });
    const unconfined = `commands ran without a sandbox on ${this.ws.taskQueue}: repository code could read and change anything the worker can (install bubblewrap and set WEAVER_SANDBOX=required)`;
    if (this.ws.sandbox === 'none' && !this.warnings.includes(unconfined)) this.warnings.push(unconfined);
    return this.ws;
  }

  /** Which sandbox the task's commands ran in (the last workspace's worker), and its policy. */
  private sandboxRecord(): SandboxRecord | undefined {
    if (!this.ws?.sandbox) return undefined;
    return { kind: this.ws.sandbox, policy: this.sandboxPolicy, ...(this.ws.sandboxEnforcement ? { enforcement: this.ws.sandboxEnforcement } : {}) };
  }

  private async finish(s: TaskStatus, reason: string, extra: Partial<CodingTaskResult> = {}): Promise<CodingTaskResult> {
    this.status = s;
    if (this.ledger.events.length) {
      this.artifacts.push(await shared.storeArtifact({ kind: 'events', content: this.ledger.events.map((e) => JSON.stringify(e)).join('\n') + '\n' }));
    }
    const result: CodingTaskResult = { workflowId: this.workflowId, status: s, reason, branch: this.branch, attempts: this.attempts, usage: this.usage(), artifacts: this.artifacts, ...extra };
    if (this.warnings.length) result.warnings = this.warnings;
    const sandbox = this.sandboxRecord();
    if (sandbox) result.sandbox = sandbox;
    if (this.gate.decision) result.approval = this.gate.decision;
    if (this.gate.refused.length) result.refusedApprovals = this.gate.refused;
    this.enter('done');
    upsertSearchAttributes([{ key: WeaverStatus, value: s }]);
    this.artifacts.push(await shared.storeArtifact({ kind: 'report', content: renderReport(result, this.input.task.title) }));
    if (workflowInfo().parent) {
      // A child's result lands in its parent's history: send a slim one, keep the whole as an artifact.
      this.artifacts.push(await shared.storeArtifact({ kind: 'result', content: JSON.stringify(result, null, 2) }));
      return slimResult(result);
    }
    return result;
  }

  private canDecompose(): boolean {
    return this.input.decomposition !== 'never' && this.depth < this.limits.maxDepth;
  }

  /** Explicit subtasks or `always` decompose at once; otherwise the attempt loop decides. */
  private async firstStep(): Promise<Step> {
    if (this.input.subtasks?.length) {
      if (this.depth >= this.limits.maxDepth) {
        return { kind: 'done', result: await this.finish('failed', `explicit subtasks at depth ${this.depth} exceed maxDepth ${this.limits.maxDepth}`) };
      }
      return { kind: 'decompose', subtasks: this.input.subtasks, why: `${this.input.subtasks.length} explicit subtasks in the input` };
    }
    if (this.input.decomposition === 'always' && this.canDecompose()) {
      return this.plan(undefined, 'decomposition is "always"');
    }
    return this.attemptLoop();
  }

  /**
   * One attempt's prompt and provider calls (under the task's strategy), recorded on `record`.
   * A model that asks to see files gets them in a new prompt, up to MAX_FILE_ROUNDS times,
   * without consuming the attempt.
   */
  private async ask(ws: WorkspaceHandle, record: AttemptRecord, reflection: Reflection, planOnly = false): Promise<{ answer: StrategyOutcome; shown: Shown }> {
    const requested: string[] = [];
    let shown: Shown = {};
    for (let round = 0; ; round++) {
      const built = await this.acts(ws).buildPrompt({
        workspace: ws,
        task: this.input.task,
        attempt: this.attempt,
        tokenBudget: this.tokenBudget,
        feedback: reflection.feedback,
        failure: reflection.failure,
        requestedFiles: requested.length ? [...requested] : undefined,
        guidance: [...this.guidance],
        allowSubtasks: planOnly || this.canDecompose(),
        planOnly,
        secretEnvNames: this.secretEnvNames(),
      });
      // The answer comes from this round's prompt: only what it showed whole may be rewritten whole.
      shown = built.shown ?? {};
      record.artifacts.push(built.prompt);
      record.promptTokens = built.estTokens;
      const compareFiles = this.comparesResultingFiles();
      const answer = await runStrategy(this.providers, this.input.strategy, {
        workflowId: this.workflowId,
        attempt: this.attempt,
        prompt: built.prompt,
        estTokensIn: built.estTokens,
        // Values masked in this prompt: recorded on its call events (absent when none).
        promptRedactions: built.redactions || undefined,
        ledger: this.ledger,
        cooldowns: this.cooldowns,
        cooldown: this.input.strategy?.cooldown ?? DEFAULT_COOLDOWN,
        retry: { ...DEFAULT_RETRY, ...this.input.strategy?.retry },
        warnings: this.warnings,
        resultDigest: compareFiles
          ? async (r) =>
              (await this.acts(ws).previewChanges({ workspace: ws, changes: [r.change!], shown, allowTestChanges: this.input.task.allowTestChanges }))[0] ??
              undefined
          : undefined,
      });
      record.calls = this.ledger.events.filter((e) => e.attempt === this.attempt);
      record.selection = answer.selection;
      const wants = answer.kind === 'answer' && answer.result.outcome === 'needs_files' ? (answer.result.needFiles ?? []) : [];
      if (wants.length && round < MAX_FILE_ROUNDS) {
        (record.fileRequests ??= []).push(wants);
        for (const f of wants) if (!requested.includes(f)) requested.push(f);
        log.info('model asked for files; serving them in a new prompt', { attempt: this.attempt, round: round + 1, files: wants.slice(0, 20) });
        continue;
      }
      return { answer, shown };
    }
  }

  /** Consensus and shadow comparisons look at the files each answer produces, not its text. */
  private comparesResultingFiles(): boolean {
    const s = this.input.strategy;
    return (s?.mode === 'consensus' || !!s?.shadow?.length) && patched('compare-resulting-files');
  }

  /** Asks the model for subtasks only (decomposition "always", or after failures as in ADaPT). */
  private async plan(feedback: string | undefined, why: string): Promise<Step> {
    const ws = this.ws!;
    this.attempt += 1;
    this.enter('decomposing');
    const record: AttemptRecord = { attempt: this.attempt, calls: [], outcome: 'plan', decision: { action: 'fail', why: '' }, artifacts: [] };
    const { answer } = await this.ask(ws, record, { feedback }, true);
    this.attempts.push(record);
    if (answer.kind === 'answer' && answer.result.outcome === 'subtasks' && answer.result.subtasks?.length) {
      record.outcome = 'subtasks_proposed';
      record.summary = answer.result.summary;
      record.decision = this.lastDecision = { action: 'decompose', why: `${why}; the model proposed ${answer.result.subtasks.length} subtasks` };
      return { kind: 'decompose', subtasks: answer.result.subtasks, why: record.decision.why };
    }
    const got =
      answer.kind === 'answer' ? `an answer of kind ${answer.result.outcome}` : answer.kind === 'failed' ? `${answer.family}: ${answer.message}` : answer.detail;
    record.decision = this.lastDecision = { action: answer.kind === 'budget' ? 'budget_exceeded' : 'fail', why: `${why}; asked for subtasks but got ${got}` };
    return { kind: 'done', result: await this.finish(answer.kind === 'budget' ? 'budget_exceeded' : 'failed', record.decision.why, { workspace: ws.dir }) };
  }

  private async attemptLoop(): Promise<Step> {
    let ws = this.ws!;
    let rebuilds = 0;
    let reflection: Reflection = {};
    const state = (): TaskState => ({
      attempt: this.attempt,
      maxAttempts: this.limits.maxAttempts,
      depth: this.depth,
      maxDepth: this.limits.maxDepth,
      decomposition: this.input.decomposition ?? 'auto',
    });

    while (this.attempt < this.limits.maxAttempts) {
      this.attempt += 1;
      const record: AttemptRecord = { attempt: this.attempt, calls: [], outcome: 'pending', decision: { action: 'fail', why: '' }, artifacts: [] };
      let outcome: Outcome;
      let gen: GenerateChangeResult | undefined;
      try {
        this.enter('generating');
        const { answer, shown } = await this.ask(ws, record, reflection);
        gen = answer.kind === 'answer' ? answer.result : undefined;
        outcome = await this.tryAnswer(ws, answer, record, shown);
      } catch (err) {
        if (isWorkspaceLost(err) && rebuilds < MAX_WORKSPACE_REBUILDS) {
          // The worker holding the workspace is gone: rebuild elsewhere; this attempt doesn't count.
          rebuilds += 1;
          log.warn('workspace lost; rebuilding', { rebuilds });
          this.attempt -= 1;
          ws = await this.prepare();
          continue;
        }
        throw err;
      }

      this.enter('deciding');
      const verdict = decide(state(), outcome);
      this.lastDecision = { action: verdict.action, why: verdict.why };
      record.outcome = outcome.kind;
      record.detail = outcomeDetail(outcome);
      record.decision = this.lastDecision;
      this.attempts.push(record);
      log.info('decision', { attempt: this.attempt, outcome: outcome.kind, action: verdict.action, why: verdict.why });

      switch (verdict.action) {
        case 'commit': {
          const { commit, pushed, bundle, rejected } = await this.commit(ws, record.summary, record.filesChanged ?? []);
          return {
            kind: 'done',
            result: await this.finish(rejected ? 'rejected' : 'succeeded', rejected ? `${verdict.why}; ${rejected}` : verdict.why, {
              commit,
              pushed,
              bundle,
              workspace: pushed || bundle ? undefined : ws.dir,
            }),
          };
        }
        case 'retry':
          reflection = { feedback: verdict.feedback, failure: this.failureOf(record) };
          ws = await this.rollback(ws);
          continue;
        case 'decompose':
          ws = await this.rollback(ws);
          if (verdict.plan) return this.plan(verdict.feedback, verdict.why);
          return { kind: 'decompose', subtasks: gen?.subtasks ?? [], why: verdict.why };
        default:
          return {
            kind: 'done',
            result: await this.finish(verdict.action === 'budget_exceeded' ? 'budget_exceeded' : 'failed', verdict.why, { workspace: ws.dir }),
          };
      }
    }
    return { kind: 'done', result: await this.finish('failed', `${this.limits.maxAttempts} attempt(s) exhausted`, { workspace: ws.dir }) };
  }

  /** The failed attempt's test log and diff: the next prompt shows their failing part. */
  private failureOf(record: AttemptRecord): Reflection['failure'] {
    const find = (kind: string) => record.artifacts.find((a) => a.kind === kind);
    const testLog = record.tests && !record.tests.passed ? record.tests.log : undefined;
    const diff = find('diff');
    return testLog || diff ? { testLog, diff } : undefined;
  }

  /** Turns the strategy's answer into an outcome: apply the change and run the tests. */
  private async tryAnswer(ws: WorkspaceHandle, answer: StrategyOutcome, record: AttemptRecord, shown: Shown): Promise<Outcome> {
    if (answer.kind === 'failed') return { kind: 'provider_failed', family: answer.family, message: answer.message };
    if (answer.kind === 'budget') return { kind: 'budget_exhausted', detail: answer.detail };
    if (answer.kind === 'no_consensus') return { kind: 'no_consensus', detail: answer.detail };
    const gen = answer.result;
    record.provider = gen.provider;
    record.artifacts.push(gen.response);
    if (gen.outcome === 'schema_violation') return { kind: 'schema_violation', error: gen.error ?? 'invalid answer' };
    if (gen.outcome === 'subtasks') return { kind: 'subtasks_proposed', count: gen.subtasks?.length ?? 0 };
    if (gen.outcome === 'truncated') return { kind: 'truncated', detail: gen.error ?? 'the answer was cut off' };
    if (gen.outcome === 'needs_files') return { kind: 'files_request_limit', rounds: MAX_FILE_ROUNDS, files: gen.needFiles ?? [] };
    record.summary = gen.summary;
    record.filesChanged = gen.files?.map((f) => f.path);
    record.artifacts.push(gen.change!);
    this.enter('applying');
    const applied = await this.acts(ws).applyChange({ workspace: ws, change: gen.change!, shown, allowTestChanges: this.input.task.allowTestChanges });
    if (applied.diff) record.artifacts.push(applied.diff);
    if (applied.notes?.length) record.notes = applied.notes.slice(0, 20).map((n) => n.slice(0, 300));
    if (!applied.applied) return { kind: 'apply_failed', errors: applied.errors };
    record.filesChanged = applied.files;
    this.enter('testing');
    const tests = await this.acts(ws).runTests.executeWithOptions({ summary: `attempt ${this.attempt}: ${commandText(this.input.testCommand)}` }, [
      { workspace: ws, command: this.input.testCommand, timeoutSec: this.limits.testTimeoutSec, secretEnvNames: this.secretEnvNames(), sandbox: this.sandboxPolicy },
    ]);
    record.tests = tests;
    if (tests.log) record.artifacts.push(tests.log);
    if (tests.passed) return { kind: 'tests_passed' };
    return { kind: 'tests_failed', exitCode: tests.exitCode, timedOut: tests.timedOut, tail: tests.tail, timeoutSec: this.limits.testTimeoutSec };
  }

  private pushRemote(): string | undefined {
    const p = this.input.push;
    return p === true ? 'origin' : p ? p.remote : undefined;
  }

  /** Commits `paths` (what the accepted change wrote), pushes, and hands the workspace back. */
  private async commit(ws: WorkspaceHandle, summary: string | undefined, paths: string[]) {
    this.enter('committing');
    const message = `${this.input.task.title}\n\n${summary ?? ''}\n\nWeaver-Workflow: ${this.workflowId}`.replace(/\n{3,}/g, '\n\n');
    // Short and not to be interrupted: a cancel must not race a push (or the release after it).
    const commitAndPush = (req: { pushRemote?: string; bundle?: boolean }) =>
      CancellationScope.nonCancellable(() =>
        this.acts(ws).commitAndPush({ workspace: ws, message, workflowId: this.workflowId, paths, secretEnvNames: this.secretEnvNames(), ...req }),
      );
    let pushRemote = this.pushRemote();
    let rejected: string | undefined;
    if (pushRemote && this.input.requireApproval) {
      // Commit now, push only once a person says so (a durable wait: days are fine).
      const first = await commitAndPush({});
      this.committed = { commit: first.commit, pushed: false };
      this.enter('awaiting_approval');
      const timeoutSec = this.input.approvalTimeoutSec;
      const a = await this.gate.wait(timeoutSec === undefined ? undefined : timeoutSec * 1000);
      const who = a ? `${a.by ?? 'a reviewer'}${a.comment ? `: ${a.comment}` : ''}` : '';
      if (!a) {
        // Nobody decided in time: nothing is pushed, the commit is kept as a bundle.
        rejected = `no approval within ${timeoutSec}s; nothing was pushed, the commit is kept as a git bundle`;
        pushRemote = undefined;
      } else if (!a.approved) {
        rejected = `push rejected by ${who}; nothing was pushed`;
        pushRemote = undefined;
      } else {
        this.lastDecision = { action: 'commit', why: `push approved by ${who}` };
      }
      if (rejected) this.lastDecision = { action: 'commit', why: rejected };
      this.enter('committing');
    }
    // A child that does not push hands its branch over as a bundle in the shared artifact store;
    // so does a task whose approval never came.
    const timedOut = rejected !== undefined && !this.gate.decision;
    const r = await commitAndPush({ pushRemote, bundle: this.depth > 0 || timedOut });
    this.committed = { commit: r.commit, pushed: r.pushed, bundle: r.bundle };
    if (r.refusedSecrets?.length) {
      this.warnings.push(`not committed because they hold a secret of the worker: ${r.refusedSecrets.slice(0, 20).join(', ')}`);
    }
    if (r.leftBehind?.length) {
      this.warnings.push(`not committed (the run wrote or changed them after the change applied): ${r.leftBehind.slice(0, 20).join(', ')}${r.leftBehind.length > 20 ? ', …' : ''}`);
    }
    if (r.pushError) {
      this.warnings.push(`push failed: ${r.pushError}${r.bundle ? '; the branch is kept as a git bundle' : `; the commit stays in the workspace ${ws.dir}`}`);
    }
    // Pushed (or bundled by a child): the work is safe elsewhere, the clone can go. Otherwise the
    // workspace is where the branch lives. Versioned: older histories without this step replay.
    if ((r.pushed || r.bundle) && patched('release-workspace-after-push')) {
      try {
        await this.acts(ws).releaseWorkspace(ws);
        this.released = true;
      } catch (err) {
        // Clean-up only: the work is safe, so a lost worker here is a warning, not a failure.
        if (isCancellation(err)) throw err;
        this.warnings.push(`could not remove the workspace ${ws.dir}: ${(err as Error).message}`);
      }
    }
    return { ...r, rejected };
  }

  /** Runs each subtask as a child codingTask, then merges their branches and tests the result. */
  private async decompose(proposed: TaskSpec[], why: string): Promise<CodingTaskResult> {
    this.enter('decomposing');
    const subtasks = proposed.slice(0, this.limits.maxChildren);
    if (proposed.length > subtasks.length) {
      this.warnings.push(`${proposed.length} subtasks proposed; maxChildren is ${this.limits.maxChildren}, the rest were not run`);
    }
    this.lastDecision = { action: 'decompose', why };
    for (const [i, t] of subtasks.entries()) {
      this.children.push({ workflowId: `${this.workflowId}/${i + 1}-${slugify(t.title, 30)}`, title: t.title, status: 'not_started', reason: 'waiting' });
    }
    const concurrency = this.limits.childConcurrency;
    const held = new Map<number, { cost?: number; tokens?: number }>();
    let running = 0;

    await runBounded(subtasks.length, concurrency, async (i) => {
      const child = this.children[i];
      // Cancelled: start nothing new (running children are being cancelled and awaited).
      if (CancellationScope.current().consideredCancelled) return;
      const spentCost = this.ledger.spentCostUsd() + this.childUsage.reduce((s, u) => s + u.costUsd + u.estimatedCostUsd, 0);
      const spentTokens = this.ledger.spentTokens() + this.childUsage.reduce((s, u) => s + u.tokensIn + u.tokensOut, 0);
      const heldCost = [...held.values()].reduce((s, h) => s + (h.cost ?? 0), 0);
      const heldTokens = [...held.values()].reduce((s, h) => s + (h.tokens ?? 0), 0);
      const lanes = Math.min(concurrency - running, subtasks.length - i);
      const cost = allotment(this.limits.maxCostUsd, spentCost, heldCost, lanes);
      const tokensAllot = allotment(this.limits.maxTokens, spentTokens, heldTokens, lanes);
      const tokens = tokensAllot === undefined ? undefined : Math.floor(tokensAllot);
      if (cost === 0 || tokens === 0) {
        child.reason = `not started: the budget is spent (${cost === 0 ? `maxCostUsd ${this.limits.maxCostUsd}` : `maxTokens ${this.limits.maxTokens}`})`;
        return;
      }
      held.set(i, { cost, tokens });
      running += 1;
      child.status = 'running';
      child.reason = 'running';
      try {
        const result = await executeChild(codingTask, {
          workflowId: child.workflowId,
          args: [this.childInput(subtasks[i], cost, tokens)],
          memo: { title: subtasks[i].title, parent: this.workflowId },
          staticSummary: `subtask ${i + 1}/${subtasks.length}: ${subtasks[i].title}`,
        });
        Object.assign(child, { status: result.status, reason: result.reason, branch: result.branch, commit: result.commit, result: slimResult(result) });
        this.childUsage.push(result.usage);
      } catch (err) {
        if (isCancellation(err)) {
          child.status = 'cancelled';
          child.reason = 'cancelled before it finished';
          throw err;
        }
        child.status = 'failed';
        child.reason = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      } finally {
        held.delete(i);
        running -= 1;
      }
    });
    if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('cancelled while children ran');
    return this.integrate(subtasks.length);
  }

  private childInput(task: TaskSpec, maxCostUsd: number | undefined, maxTokens: number | undefined): CodingTaskInput {
    return {
      repo: this.input.repo,
      baseBranch: this.input.baseBranch,
      task,
      testCommand: task.testCommand ?? this.input.testCommand,
      setupCommand: this.input.setupCommand,
      providers: this.input.providers,
      strategy: this.input.strategy,
      // Children run under their parent's sandbox policy, never a looser one.
      sandbox: this.sandboxPolicy,
      limits: { ...this.limits, maxCostUsd, maxTokens },
      decomposition: this.input.decomposition === 'always' ? 'auto' : this.input.decomposition,
      // Under requireApproval nothing reaches the remote before a person says so, children included.
      push: this.input.requireApproval ? false : this.input.push,
      depth: this.depth + 1,
      inherited: { cooldowns: { ...this.cooldowns } },
    };
  }

  /** Merges the successful children in subtask order, tests the whole, commits and pushes. */
  private async integrate(total: number): Promise<CodingTaskResult> {
    const ws = this.ws!;
    this.enter('integrating');
    const ok = this.children.filter((c) => c.status === 'succeeded' && c.result);
    const sources = ok.map((c) => ({
      workflowId: c.workflowId,
      title: c.title,
      source: c.result!.pushed ? this.pushRemote()! : (c.result!.bundle?.ref ?? c.result!.workspace!),
      branch: c.branch!,
    }));
    const merges = sources.length ? await this.acts(ws).mergeBranches({ workspace: ws, sources }) : [];
    for (const m of merges) {
      const c = this.children.find((x) => x.workflowId === m.workflowId)!;
      c.merged = m.merged;
      if (m.conflict) c.conflict = m.conflict;
    }
    const merged = merges.filter((m) => m.merged).length;
    const successCount = ok.length;
    const aggregate = {
      total,
      successCount,
      failureCount: total - successCount,
      successRate: total ? successCount / total : 0,
      usage: mergeUsage(...this.childUsage),
    };
    const problems = this.children
      .filter((c) => c.status !== 'succeeded' || c.conflict)
      .map((c) => `${c.workflowId}: ${c.conflict ?? `${c.status}: ${c.reason}`}`);
    const head = `${successCount}/${total} subtasks succeeded, ${merged} merged`;
    if (!merged) {
      return this.finish('failed', `${head}${problems.length ? `; ${problems.join('; ')}` : ''}`, {
        children: this.children.map(slimChild),
        aggregate,
        workspace: ws.dir,
      });
    }
    this.enter('testing');
    const tests = await this.acts(ws).runTests({
      workspace: ws,
      command: this.input.testCommand,
      timeoutSec: this.limits.testTimeoutSec,
      secretEnvNames: this.secretEnvNames(),
      sandbox: this.sandboxPolicy,
    });
    this.attempts.push({
      attempt: this.attempt + 1,
      calls: [],
      outcome: tests.passed ? 'tests_passed' : 'tests_failed',
      detail: 'integration of the merged subtasks',
      tests,
      decision: { action: 'commit', why: `integrated ${merged} subtask branch(es)` },
      artifacts: tests.log ? [tests.log] : [],
    });
    // The merged work is committed (and pushed) even when incomplete: nothing is lost.
    // The merges are commits already: nothing else of the tree goes in.
    const { commit, pushed, bundle, rejected } = await this.commit(ws, `Integrates ${merged} subtask(s): ${ok.map((c) => c.title).join('; ')}`, []);
    const complete = merged === total && tests.passed;
    const testsNote = tests.passed ? 'integrated tests passed' : `integrated tests failed (${tests.timedOut ? 'timed out' : `exit ${tests.exitCode}`})`;
    const reason = [head, testsNote, ...problems, ...(rejected ? [rejected] : [])].join('; ');
    return this.finish(rejected ? 'rejected' : complete ? 'succeeded' : 'partial', reason, {
      commit,
      pushed,
      workspace: pushed || bundle ? undefined : ws.dir,
      bundle,
      children: this.children.map(slimChild),
      aggregate,
    });
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

function commandText(c: CodingTaskInput['testCommand']): string {
  const text = c === undefined ? 'no test command' : Array.isArray(c) ? c.join(' ') : c;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
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
    case 'no_consensus':
      return o.detail.slice(0, 1000);
    case 'budget_exhausted':
      return o.detail.slice(0, 1000);
    default:
      return undefined;
  }
}
