// One codingTask run's state and the steps every concern shares: the phase, the workspace
// (prepare, roll back, rebuild), the providers resolved at start, and the result (finish).
// The concerns — attempts.ts, commit.ts, decomposition.ts — are functions over a TaskRun.
// Over 300 lines because the state and every step that writes it are kept in one class: the
// concern files only read it and call these steps.
import { ActivityFailure, ApplicationFailure, CancellationScope, CancelledFailure, log, setCurrentDetails, setHandler, TimeoutFailure, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { patched } from './patches';
import type { BuildPromptRequest, BuiltPrompt, CommitRequest, CommitResult, PrepareWorkspaceRequest, WorkspaceHandle } from '../activities/types';
import { type CooldownState } from '../domain/cooldown';
import { Ledger, type TreeBound } from '../domain/ledger';
import { promptBudget, resolveProvider, type ResolvedProvider } from '../domain/models';
import type { ResolvedProviders } from '../domain/registry';
import type { RouteStep } from '../domain/routing';
import type { SettingsInput, TaskSettings } from '../domain/settings';
import { roundUsd, unpricedBudgetError } from '../domain/pricing';
import { renderReport } from '../domain/report';
import {
  resolveLimits,
  SandboxPolicySchema,
  type ArtifactRef,
  type AttemptRecord,
  type ChildSummary,
  type Limits,
  type CodingTaskResult,
  type Decision,
  type Diffstat,
  type ParsedCodingTaskInput,
  type Phase,
  type ProviderSpec,
  type SandboxPolicy,
  type SandboxRecord,
  type TaskStatus,
  type Usage,
} from '../domain/schema';
import { statusAttributes, WeaverAttempt, WeaverCostUsd, WeaverPhase, WeaverStatus } from '../domain/searchAttributes';
import { slimResult } from '../domain/slim';
import { attemptLogs } from '../domain/stepLogs';
import { detailsLine, REFUSED } from '../domain/taskOutcome';
import { mergeUsage, spentUsd } from '../domain/usage';
import { bookkeeping, onWorkspace, prepareWorkspace, PREPARE_WAITS_FOR_CANCEL, shared } from './activityProxies';
import { ApprovalGate } from './approval';
import { progressWait, type ProviderWait } from './strategies';
import { addGuidanceSignal, progressQuery } from './messages';

/** What the commit left: set once a commit exists, so the workspace is never deleted on cancel. */
export interface Committed {
  commit: string;
  pushed: boolean;
  bundle?: ArtifactRef;
  /** What the commit changes against the base, and its whole diff (what an approver looks at). */
  diffstat?: Diffstat;
  diff?: ArtifactRef;
}

/** Marks runs whose shadow calls are reserved and whose shadow spend counts against the budget. */
export const SHADOW_SPEND = 'reserve-shadows';

/** Marks runs whose decomposition is bounded by the worker's default tree cost when the task sets no maxCostUsd. */
export const TREE_COST = 'default-tree-cost';
/** Marks runs whose prompts are capped by `promptBudgetTokens` (16k by default), not only by the windows. */
export const PROMPT_BUDGETS = 'prompt-budgets';
/**
 * Marks runs with fewer round trips: providers resolved and artifacts stored as local activities,
 * the workspace released by the commit's own activity, search attributes upserted once per status
 * change (not three at every phase).
 */
export const LEAN_ROUND_TRIPS = 'lean-round-trips';
/**
 * Marks runs with fewer activities per attempt: a change applied and its passing checks run in
 * one activity (checks.ts), and the first prompt built by the activity that prepares the workspace.
 */
export const FOLD_ROUND_TRIPS = 'fold-round-trips';

/** Bounds on lists a long run grows: notes, a person's hints, the attempts `progress` shows logs of. */
const MAX_WARNINGS = 50;
const MAX_GUIDANCE = 20;
const MAX_PROGRESS_LOGS = 20;

export class TaskRun {
  limits: Limits;
  /** Every default the run decides by, as the worker resolved them at start (runs since `settings-from-history`). */
  settings?: TaskSettings;
  /** Providers with every model default resolved once, at start (kept in state). */
  providers: (ResolvedProvider | ProviderSpec)[] = [];
  tokenBudget = 0;
  /** Whether the prompt budgets apply (runs since `prompt-budgets`). */
  readonly budgets: boolean;
  /** Fewer round trips (runs since LEAN_ROUND_TRIPS). */
  readonly lean: boolean;
  /** Env var names of the worker's provider keys (from its registry, at start): kept out of commands. */
  keyEnvNames: string[];
  /** The providers are resolved against the worker's registry at start (runs since `provider-registry`). */
  readonly registry: boolean;
  readonly workflowId = workflowInfo().workflowId;
  readonly branch: string;
  readonly depth: number;
  ledger: Ledger;
  private readonly shadowSpend: boolean;
  readonly cooldowns: CooldownState;
  readonly warnings: string[] = [];
  readonly attempts: AttemptRecord[] = [];
  readonly artifacts: ArtifactRef[] = [];
  readonly guidance: string[] = [];
  readonly children: ChildSummary[] = [];
  readonly childUsage: Usage[] = [];
  phase: Phase = 'starting';
  /** The playbook step running, while testing. */
  step?: string;
  /** What the activity running the steps does after them if they pass (the commit made with the checks). */
  then?: string;
  attempt = 0;
  /** Runs since `playbooks`: checks from a playbook (task, repository, shorthand or detected), a syntax gate, `no_checks`. */
  readonly playbooks: boolean;
  lastDecision?: Decision;
  status?: TaskStatus;
  ws?: WorkspaceHandle;
  /** `ws` was lost with its worker and no rebuilt one is ready yet. */
  wsLost = false;
  committed?: Committed;
  /** The provider wait under way (Retry-After, an outage), shown in `progress`. */
  providerWait?: ProviderWait;
  /** Cost routing or escalation: the provider called last and why, shown in `progress`. */
  route?: RouteStep & { attempt: number };
  /** The workspace was deleted (its work is pushed or bundled). */
  released = false;
  readonly gate: ApprovalGate;
  /** The task's sandbox policy with its defaults, fixed at start (part of the durable record). */
  sandboxPolicy: SandboxPolicy;

  /** `legacyKeys`: given for a run started before the provider registry (its providers are its input's). */
  constructor(
    readonly input: ParsedCodingTaskInput,
    legacyKeys?: string[],
    /** The task's limits, strategy and sandbox as given, for the worker to resolve with its defaults. */
    private readonly given: SettingsInput = {},
  ) {
    // Asked once, first: every later step of the run follows the same answer.
    this.playbooks = patched('playbooks');
    // Prompt budgets (16k by default) change every prompt, hence every reservation: runs before keep theirs.
    this.budgets = patched(PROMPT_BUDGETS);
    this.lean = patched(LEAN_ROUND_TRIPS);
    this.limits = resolveLimits(input);
    this.sandboxPolicy = SandboxPolicySchema.parse(input.sandbox ?? {});
    this.keyEnvNames = legacyKeys ?? [];
    this.registry = !legacyKeys;
    if (legacyKeys) {
      // Pre-registry inputs always named their model.
      const specs = input.providers as ProviderSpec[];
      const resolved = specs.map(resolveProvider);
      this.tokenBudget = this.budgetFor(resolved);
      // Resolved defaults change budget reservations (a reasoning model's answer room): runs
      // started before them keep reserving as they did, or their replay would diverge.
      this.providers = patched('resolve-model-profiles') ? resolved : specs;
    }
    // A child's ID has '/' in it; git can't hold both weaver/X and weaver/X/1-a, hence '--'.
    this.branch = input.branch ?? `weaver/${this.workflowId.replace(/\//g, '--')}`;
    this.depth = input.depth ?? 0;
    // Shadow calls reserved and counted against the budget (runs before left them out).
    this.shadowSpend = patched(SHADOW_SPEND);
    this.ledger = new Ledger({ maxCostUsd: this.limits.maxCostUsd, maxTokens: this.limits.maxTokens }, { shadowSpend: this.shadowSpend });
    this.cooldowns = { ...(input.inherited?.cooldowns ?? {}) };
    setHandler(progressQuery, () => ({
      workflowId: this.workflowId,
      phase: this.phase,
      ...(this.step ? { step: this.step } : {}),
      ...(this.step && this.then ? { then: this.then } : {}),
      attempt: this.attempt,
      maxAttempts: this.limits.maxAttempts,
      usage: this.usage(),
      lastDecision: this.lastDecision,
      branch: this.branch,
      status: this.status,
      children: this.children.length ? this.children.map((c) => ({ workflowId: c.workflowId, status: c.status })) : undefined,
      sandbox: this.sandboxRecord(),
      wait: progressWait(this.providerWait),
      ...(this.route ? { route: this.route } : {}),
      ...(this.committed ? { commit: this.committed.commit, diffstat: this.committed.diffstat, diff: this.committed.diff } : {}),
      logs: this.attempts.length ? attemptLogs(this.attempts.slice(-MAX_PROGRESS_LOGS)) : undefined,
      workspace: this.ws ? { dir: this.ws.dir, taskQueue: this.ws.taskQueue } : undefined,
    }));
    // The latest hints only: every one goes into each prompt and into a continue-as-new's carry.
    setHandler(addGuidanceSignal, (text) => {
      this.guidance.push(text);
      if (this.guidance.length > MAX_GUIDANCE) this.guidance.splice(0, this.guidance.length - MAX_GUIDANCE);
    });
    this.gate = new ApprovalGate(() => ({ required: !!this.input.requireApproval, pushes: !!this.pushRemote(), phase: this.phase, status: this.status, commit: this.committed?.commit }));
  }

  /** The whole tree's usage: this task's calls plus its finished children's. */
  usage(): Usage {
    return this.childUsage.length ? mergeUsage(this.ledger.usage, ...this.childUsage) : this.ledger.usage;
  }

  /** `step`: the playbook step now running, named in the Web UI's details (no new search-attribute upsert within a phase). */
  enter(next: Phase, step?: string, then?: string): void {
    const same = next === this.phase;
    this.step = step;
    this.then = step ? then : undefined;
    if (same && step) return this.showDetails();
    this.phase = next;
    // Runs since LEAN_ROUND_TRIPS upsert on status changes only (finish); the phase is in the details.
    if (!this.lean) upsertSearchAttributes([
      { key: WeaverPhase, value: next },
      { key: WeaverAttempt, value: this.attempt },
      { key: WeaverCostUsd, value: this.usage().costUsd },
    ]);
    this.showDetails();
  }

  /** The Web UI's details panel: phase, attempt, spend, last decision (or the end and why). */
  showDetails(reason?: string): void {
    const { phase, attempt, status, lastDecision, children, step, then } = this;
    setCurrentDetails(detailsLine({ phase, attempt, maxAttempts: this.limits.maxAttempts, usage: this.usage(), lastDecision, children, status, reason, step, then }));
  }

  /** The activities that run where the workspace is. */
  acts(ws: WorkspaceHandle) {
    return onWorkspace(ws, this.limits.testTimeoutSec);
  }

  /** A note for the result's warnings (each once). */
  warn(text: string): void {
    // Bounded: a long run's notes must not grow its history (and result) without end.
    if (!this.warnings.includes(text) && this.warnings.length < MAX_WARNINGS) this.warnings.push(text);
  }

  /** Env var names of the providers' keys: scrubbed from commands run in the workspace. */
  secretEnvNames(): string[] {
    return this.keyEnvNames;
  }

  pushRemote(): string | undefined {
    const p = this.input.push;
    return p === true ? 'origin' : p ? p.remote : undefined;
  }

  /**
   * The cost bound of this task's whole tree: its own maxCostUsd, else the worker's default
   * (resolved at start into its settings; runs since TREE_COST), else none.
   */
  treeBound(): TreeBound | undefined {
    if (this.limits.maxCostUsd !== undefined) return { usd: this.limits.maxCostUsd, source: 'limits.maxCostUsd' };
    const usd = this.settings?.treeCostUsd;
    return usd !== undefined && patched(TREE_COST) ? { usd, source: 'WEAVER_DEFAULT_TREE_COST_USD' } : undefined;
  }

  /** Spent by the whole tree so far: this task's calls and its finished children's (shadows too where they count). */
  treeSpentUsd(): number {
    return roundUsd(this.ledger.spentCostUsd() + this.childUsage.reduce((s, u) => s + spentUsd(u, this.shadowSpend), 0));
  }

  canDecompose(): boolean {
    return this.input.decomposition !== 'never' && this.depth < this.limits.maxDepth;
  }

  /**
   * The task's providers against the worker's registry, once (kept in state): endpoints, keys,
   * allowed models and prices are the worker's; the model profiles are resolved from the merged
   * spec. A provider the worker does not allow fails the task here, before anything is called.
   */
  async resolveProviders(): Promise<void> {
    let r: ResolvedProviders;
    // Defaults and prices come back from the worker (recorded in history): a later deploy that
    // changes them cannot change this run's decisions. Runs started before read them from code.
    const fromHistory = patched('settings-from-history');
    try {
      r = await (this.lean ? bookkeeping : shared).resolveProviders({ providers: this.input.providers, ...(fromHistory ? { settings: this.given } : {}) });
    } catch (err) {
      // The local activity (runs since LEAN_ROUND_TRIPS) fails with its own failure, unwrapped.
      const cause = err instanceof ActivityFailure ? err.cause : this.lean ? err : undefined;
      if (cause instanceof ApplicationFailure && cause.type === 'ProviderNotAllowed') {
        // Refused before anything ran, like bad input (runs before `invalid` existed said failed).
        upsertSearchAttributes([{ key: WeaverStatus, value: patched('weaver-status-on-refusal') ? REFUSED : 'failed' }]);
        throw ApplicationFailure.nonRetryable(`provider not allowed by the worker's registry: ${cause.message}`, 'ProviderNotAllowed');
      }
      throw err;
    }
    if (fromHistory && r.settings) this.adopt(r.settings);
    else {
      const resolved = r.providers.map(resolveProvider);
      this.providers = resolved;
      this.tokenBudget = this.budgetFor(resolved);
    }
    // A budget needs prices: a model nobody prices would cost $0 and never be stopped.
    // Shadows count against the budget where they are reserved: they need a price too.
    const unpriced = unpricedBudgetError(this.providers, { maxCostUsd: this.limits.maxCostUsd, shadow: this.shadowSpend ? [] : this.input.strategy?.shadow });
    if (unpriced && patched('refuse-unpriced-budget')) {
      upsertSearchAttributes([{ key: WeaverStatus, value: REFUSED }]);
      throw ApplicationFailure.nonRetryable(unpriced, 'UnpricedBudget');
    }
    this.keyEnvNames = r.secretEnvNames;
    for (const note of r.notes) this.warn(note);
  }

  /** Prompt tokens for this run's calls (domain/models.ts promptBudget). */
  private budgetFor(providers: ResolvedProvider[]): number {
    return promptBudget(providers, this.budgets ? { task: this.input.promptBudgetTokens } : undefined);
  }

  /** The run's settings from the worker, before anything is decided by them (or given back by the run before: taskCarry.ts). */
  adopt(settings: TaskSettings): void {
    this.settings = settings;
    this.limits = settings.limits;
    this.ledger = new Ledger({ maxCostUsd: settings.limits.maxCostUsd, maxTokens: settings.limits.maxTokens }, { shadowSpend: this.shadowSpend });
    this.sandboxPolicy = settings.sandbox;
    this.providers = settings.providers;
    this.tokenBudget = this.budgetFor(settings.providers);
  }

  /**
   * A fresh workspace. `rebuild`: the last one's worker is gone — branch from the same base
   * commit (and, after a commit, restore the branch from its bundle) so nothing done is redone.
   */
  async prepare(rebuild?: { restore?: ArtifactRef }, firstPrompt?: PrepareWorkspaceRequest['prompt']): Promise<WorkspaceHandle> {
    this.enter('preparing');
    // The last workspace is gone with its worker until a new one is ready: never named as live.
    if (rebuild) this.wsLost = true;
    const baseCommit = rebuild ? this.ws?.baseCommit : undefined;
    const { prompt, ...ws } = await prepareWorkspace({
      ...(baseCommit ? { baseCommit } : {}),
      ...(rebuild?.restore ? { restoreBundle: rebuild.restore } : {}),
      ...this.workspaceRequest(),
      pushRemote: this.pushRemote(),
      ...(firstPrompt ? { prompt: firstPrompt } : {}),
    });
    // The handle travels with every workspace activity: the prompt is kept apart, for the first ask.
    this.ws = ws;
    // A branch restored (the commit's rebuild) though the task was cancelled meanwhile (the
    // preparation is waited for since PREPARE_WAITS_FOR_CANCEL): nothing goes on with it — the
    // commit's push runs in a non-cancellable scope — and the clone goes here (the commit is safe
    // in its bundle; the cancellation keeps a committed task's workspace). Other callers' next
    // step is an activity that fails at once in a cancelled scope.
    if (rebuild?.restore && CancellationScope.current().consideredCancelled && patched(PREPARE_WAITS_FOR_CANCEL)) {
      await CancellationScope.nonCancellable(() => this.acts(ws).releaseWorkspace(ws)).catch((err: unknown) => this.warn(`could not remove the workspace ${ws.dir}: ${(err as Error).message}`));
      this.released = true;
      throw new CancelledFailure('cancelled while the branch was restored');
    }
    this.prebuilt = prompt && firstPrompt ? { ws, request: JSON.stringify(firstPrompt), prompt } : undefined;
    this.wsLost = false;
    log.info('workspace ready', { dir: this.ws.dir, taskQueue: this.ws.taskQueue, sandbox: this.ws.sandbox });
    // What the worker changed in the task's sandbox policy (a limit capped, an env name not allowed…).
    for (const note of this.ws.sandboxNotes ?? []) this.warn(note);
    if (this.ws.sandbox === 'none') {
      this.warn(`commands ran without a sandbox on ${this.ws.taskQueue}: repository code could read and change anything the worker can (install bubblewrap and set WEAVER_SANDBOX=required)`);
    }
    return this.ws;
  }

  /**
   * The prompt the workspace's preparation built (runs since FOLD_ROUND_TRIPS), once, and only
   * for the workspace and the request it was built for (a hint signalled since changes it).
   */
  takePrompt(ws: WorkspaceHandle, request: Omit<BuildPromptRequest, 'workspace'>): BuiltPrompt | undefined {
    const kept = this.prebuilt;
    this.prebuilt = undefined;
    return kept?.ws === ws && kept.request === JSON.stringify(request) ? kept.prompt : undefined;
  }
  private prebuilt?: { ws: WorkspaceHandle; request: string; prompt: BuiltPrompt };
  /** The commit the activity that checked the change on `ws` made with its checks (commit.ts commitWithChecks). */
  madeCommit?: { ws: WorkspaceHandle; result: CommitResult; request: Omit<CommitRequest, 'workspace' | 'paths'> };

  /** A clone of the task's repository on its branch, set up for its checks (`workflowId` names its directory). */
  workspaceRequest(workflowId = this.workflowId): PrepareWorkspaceRequest {
    return {
      workflowId,
      repo: this.input.repo,
      baseBranch: this.input.baseBranch,
      branch: this.branch,
      setupCommand: this.input.setupCommand,
      ...(this.playbooks
        ? { checks: { playbook: this.input.playbook, testCommand: this.input.testCommand, setupCommand: this.input.setupCommand, labels: this.input.task.labels } }
        : {}),
      secretEnvNames: this.secretEnvNames(),
      sandbox: this.sandboxPolicy,
    };
  }

  /**
   * A step on the workspace at its branch head (nothing applied): if the workspace is lost, it is
   * rebuilt from the same base and the step run again there — answers already paid for are kept.
   */
  async onWorkspace<R>(step: (ws: WorkspaceHandle) => Promise<R>): Promise<R> {
    for (let rebuilds = 0; ; rebuilds++) {
      // Never on a clone being rebuilt (the new one is made where the lost one was).
      if (this.rebuilding) await this.rebuilding;
      const used = this.ws!;
      try {
        const r = await step(used);
        // It ran across a rebuild (the new clone is made where the lost one was): it may have
        // read half a clone, so it runs again on the new one. Steps here only read.
        if (this.ws !== used || this.rebuilding) continue;
        return r;
      } catch (err) {
        // Runs started before failed the attempt up to the attempt loop (and asked again).
        if (!isWorkspaceLost(err) || rebuilds >= 3 || !patched('rebuild-in-ask')) throw err;
        // Steps run side by side (each answer's files compared as it arrives): one rebuild for all.
        if (this.ws === used && !this.rebuilding) {
          log.warn('workspace lost before the change applied; rebuilding in place', { rebuilds: rebuilds + 1, how: (err as ActivityFailure).cause?.message });
          const phase = this.phase;
          this.rebuilding = this.prepare({}).then((ws) => {
            this.enter(phase);
            return ws;
          });
          this.rebuilding.finally(() => (this.rebuilding = undefined)).catch(() => undefined);
        }
        if (this.rebuilding) await this.rebuilding;
      }
    }
  }
  private rebuilding?: Promise<WorkspaceHandle>;

  /** Back to the branch head; if the workspace's worker is gone, a fresh clone is the head. */
  async rollback(ws: WorkspaceHandle): Promise<WorkspaceHandle> {
    try {
      await this.acts(ws).rollbackWorkspace(ws);
      return ws;
    } catch (err) {
      if (!isWorkspaceLost(err)) throw err;
      log.warn('workspace lost at rollback; rebuilding');
      return this.prepare({});
    }
  }

  /** Which sandbox the task's commands ran in (the last workspace's worker), and its policy. */
  sandboxRecord(): SandboxRecord | undefined {
    if (!this.ws?.sandbox) return undefined;
    return { kind: this.ws.sandbox, policy: this.sandboxPolicy, ...(this.ws.sandboxEnforcement ? { enforcement: this.ws.sandboxEnforcement } : {}) };
  }

  /** The result: recorded, reported (an artifact), and slimmed for a parent's history. */
  async finish(s: TaskStatus, reason: string, extra: Partial<CodingTaskResult> = {}): Promise<CodingTaskResult> {
    this.status = s;
    const { storeArtifact } = this.lean ? bookkeeping : shared;
    if (this.ledger.events.length) {
      this.artifacts.push(await storeArtifact({ kind: 'events', content: this.ledger.events.map((e) => JSON.stringify(e)).join('\n') + '\n' }));
    }
    const result: CodingTaskResult = { workflowId: this.workflowId, status: s, reason, branch: this.branch, attempts: this.attempts, usage: this.usage(), artifacts: this.artifacts, ...extra };
    if (this.warnings.length) result.warnings = this.warnings;
    const sandbox = this.sandboxRecord();
    if (sandbox) result.sandbox = sandbox;
    const playbook = this.playbooks ? this.ws?.playbook : undefined;
    const setup = this.ws?.setupSteps;
    if (playbook) result.checks = { source: playbook.source, description: playbook.description, ...(playbook.stack ? { stack: playbook.stack } : {}), ...(setup?.length ? { setup } : {}) };
    if (this.settings) result.settings = this.settings;
    if (this.committed?.diffstat) result.diffstat = this.committed.diffstat;
    if (this.committed?.diff) result.diff = this.committed.diff;
    if (this.gate.decision) result.approval = this.gate.decision;
    if (this.gate.refused.length) result.refusedApprovals = this.gate.refused;
    this.enter('done');
    this.showDetails(reason);
    upsertSearchAttributes(this.lean ? statusAttributes({ status: s, phase: this.phase, attempt: this.attempt, costUsd: this.usage().costUsd }) : [{ key: WeaverStatus, value: s }]);
    this.artifacts.push(await storeArtifact({ kind: 'report', content: renderReport(result, this.input.task.title) }));
    if (workflowInfo().parent) {
      // A child's result lands in its parent's history: send a slim one, keep the whole as an artifact.
      this.artifacts.push(await storeArtifact({ kind: 'result', content: JSON.stringify(result, null, 2) }));
      return slimResult(result);
    }
    return result;
  }
}

/**
 * The worker holding the workspace is gone (or the workspace with it): rebuild elsewhere. That
 * includes a workspace activity whose worker went silent on every try (heartbeat timeouts until
 * its retries ran out: a worker killed twice during one test run) — rebuilt, bounded by each
 * caller's rebuild limit, instead of failing a task whose answer is paid for. Versioned: runs
 * that failed that way before replay as they ran.
 */
export function isWorkspaceLost(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const c = err.cause;
  return (
    (c instanceof ApplicationFailure && c.type === 'WorkspaceLost') ||
    (c instanceof TimeoutFailure && c.timeoutType === 'SCHEDULE_TO_START') ||
    (c instanceof TimeoutFailure && c.timeoutType === 'HEARTBEAT' && patched('rebuild-after-dead-worker'))
  );
}
