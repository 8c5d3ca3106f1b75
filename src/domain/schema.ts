// The public contract: task input, change sets and results. Pure (zod only), so both
// the workflow sandbox and the client import it.
// Over 300 lines because it is the public contract (the package's `./schema` export): input,
// answers and results read together, in one place.
import { z } from 'zod';
import { lazySchema } from './lazySchema';
import { CommandSchema, PlaybookFieldSchema } from './playbook';
import type { TaskSettings } from './settings';
import { DEFAULT_MAX_WAIT_SEC, ERROR_FAMILIES } from './errors';
import { parseEgressPattern, type EgressRefusal } from './egress';
import { DEFAULT_CONTINUE_AFTER, DEFAULT_PAGE_SIZE, type BatchCarry, type ResultPage } from './batch';
import type { RouteRecord, RouteStep } from './routing';

export const PricingSchema = lazySchema(() => z.object({
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  /** Input tokens the provider served from its prompt cache (usage.prompt_tokens_details.cached_tokens); left out: the input price. */
  cachedInputPerMTok: z.number().nonnegative().optional(),
}));
export type Pricing = z.infer<typeof PricingSchema>;

/** What a task is told when it names a key: the worker's registry decides which key goes where. */
const NO_KEYS_IN_TASKS =
  "not accepted in a task input: name a provider id from the worker's registry (WEAVER_PROVIDERS) instead; the worker decides which key is sent where";

/** What a provider's answer is expected to take, for cost routing (src/domain/routing.ts; default 1000, at most maxTokens). */
export const ExpectedOutputTokens = z
  .number({ error: 'expectedOutputTokens must be a whole number of tokens, at least 1' })
  .int('expectedOutputTokens must be a whole number of tokens')
  .positive('expectedOutputTokens must be at least 1')
  .optional();

/** The prompt's size and shape for one provider (the registry's entry or the task's own). */
export const PromptShape = {
  /** Prompt tokens at most (default 16k, never above the window less the answer's room): src/domain/models.ts promptBudget. */
  promptBudgetTokens: z.number({ error: 'promptBudgetTokens must be a whole number of tokens, at least 1024' }).int().min(1024).optional(),
  /** false: the model refuses the `system` role (o1-family by default); the instructions go first in the user message. */
  systemRole: z.boolean().optional(),
  /** The endpoint takes Anthropic-style `cache_control` marks: the prompt's stable part is marked cacheable. */
  cacheControl: z.boolean().optional(),
};

/**
 * A provider as a task names it: an id from the worker's provider registry (WEAVER_PROVIDERS,
 * src/domain/registry.ts), optionally a model from its allowed list, `maxTokens`, `temperature`
 * — or, where the worker's WEAVER_INLINE_ENDPOINTS allows it (none by default), a keyless inline
 * endpoint `{ id, model, baseURL }` (src/domain/endpoints.ts). Keys,
 * and the names of the env vars holding them, are the worker's: never in the input.
 */
export const ProviderSpecSchema = lazySchema(() => z.object({
  /** A registry id (or the name of an inline keyless endpoint): used in events, usage breakdowns and cooldowns. */
  id: z.string().min(1),
  /** From the provider's allowed list; left out: the registry's default. Required with an inline baseURL. */
  model: z.string().min(1).optional(),
  /** A keyless OpenAI-compatible endpoint of the task's own: refused at start unless WEAVER_INLINE_ENDPOINTS allows it; registry providers have theirs. */
  baseURL: z
    .string()
    .refine((u) => /^https?:\/\/[^\s/?#]+[^\s]*$/i.test(u), 'must be an http:// or https:// URL')
    .optional(),
  /** Refused: a task never chooses which of the worker's env vars is sent where. */
  apiKeyEnv: z.never({ error: NO_KEYS_IN_TASKS }).optional(),
  /** Refused: secrets never enter the input (nor the workflow history). */
  apiKey: z.never({ error: NO_KEYS_IN_TASKS }).optional(),
  /** Inline endpoints only: a registry provider is priced by the registry. */
  pricing: PricingSchema.optional(),
  maxTokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  /** Per-call deadline; a slower answer is a `timeout` failure. */
  timeoutSec: z.number().positive().optional(),
  /** How the model writes its change (src/domain/editformats): targeted search/replace blocks by default. */
  editFormat: z.enum(['editblock', 'whole']).optional(),
  /** The model's context window in tokens; known models have defaults (src/domain/models.ts). */
  contextWindow: z.number().int().min(1024).optional(),
  /** Which request field bounds the answer: reasoning models (o-series, gpt-5) want `max_completion_tokens`. */
  tokenParam: z.enum(['max_tokens', 'max_completion_tokens']).optional(),
  /** Stream the answer (usage still booked once, from the final chunk): long answers are not cut by idle proxies. */
  stream: z.boolean().optional(),
  /** Inline endpoints only (a registry provider's is the registry's): output tokens a call is expected to take, for `strategy.mode: 'cost'`. */
  expectedOutputTokens: ExpectedOutputTokens,
  ...PromptShape,
}).refine((p) => p.maxTokens === undefined || p.contextWindow === undefined || p.maxTokens < p.contextWindow, {
  path: ['maxTokens'],
  message: 'must be less than contextWindow (the prompt needs room too)',
}).refine((p) => !p.baseURL || p.model, {
  path: ['model'],
  message: 'required with an inline baseURL (a keyless endpoint the registry does not describe)',
}));
/** A provider as the task names it (model optional: the registry's default). */
export type ProviderChoice = z.infer<typeof ProviderSpecSchema>;
/** A provider with its model chosen and the registry's settings merged in: what the workflow calls. */
export type ProviderSpec = Omit<ProviderChoice, 'model' | 'apiKeyEnv' | 'apiKey'> & {
  model: string;
  /** From the registry only: its calls go to the provider's rate-limited task queue (quota.ts providerTaskQueue). */
  rateLimit?: { requestsPerSecond: number };
};

export const STRATEGY_MODES = ['sequential', 'parallel-any', 'parallel-all', 'consensus', 'cost'] as const;

export const StrategySchema = lazySchema(() => z.object({
  /** `cost`: sequential, cheapest first for each call's prompt (src/domain/routing.ts). */
  mode: z
    .enum(STRATEGY_MODES, { error: `strategy.mode must be one of ${STRATEGY_MODES.join(', ')}` })
    .default('sequential'),
  /**
   * sequential and cost: after `after` failed attempts, the next attempt starts one provider
   * further up the ladder (the given order, cheap → strong; in cost mode, by price).
   */
  escalate: z
    .strictObject(
      {
        after: z
          .number({ error: 'strategy.escalate.after must be a whole number of failed attempts, 1 to 20' })
          .int('strategy.escalate.after must be a whole number of failed attempts, 1 to 20')
          .min(1, 'strategy.escalate.after must be at least 1 (failed attempts before moving up)')
          .max(20, 'strategy.escalate.after must be at most 20'),
      },
      { error: 'strategy.escalate must be { "after": N } (N failed attempts before moving to the next stronger provider)' },
    )
    .optional(),
  quorum: z.number().int().positive().optional(),
  /** Provider ids (from `providers`) called alongside, recorded and compared, never used. */
  shadow: z.array(z.string()).optional(),
  /** consensus with one provider: how many samples to draw from it. */
  samples: z.number().int().min(2).max(10).optional(),
  /**
   * parallel-all: how many answers are checked at once, each applied in a workspace of its own
   * (a clone with its setup; the checks themselves also wait for the worker's command slots).
   */
  candidateChecks: z
    .number({ error: 'strategy.candidateChecks must be a whole number from 1 to 10 (answers checked at once)' })
    .int('strategy.candidateChecks must be a whole number from 1 to 10 (answers checked at once)')
    .min(1, 'strategy.candidateChecks must be at least 1 (answers checked at once)')
    .max(10, 'strategy.candidateChecks must be at most 10: each is a clone of the repository with its setup')
    .optional(),
  /** sequential: error families that move on to the next provider. */
  fallbackOn: z.array(z.enum(ERROR_FAMILIES)).optional(),
  /** Skip a provider for `seconds` after `failures` consecutive failed calls. */
  cooldown: z.object({ failures: z.number().int().positive(), seconds: z.number().positive() }).optional(),
  /**
   * Retries of one provider call on retryable failures (rate limit, server, timeout, network):
   * `maxTries` in a row before moving on to another provider (when there is one), backing off
   * from `initialIntervalMs` to `maxIntervalMs` (a Retry-After wins); with nothing to move on to,
   * the provider is waited for (durable timers) until `maxWaitSec` after its first failure.
   */
  retry: z
    .object({
      maxTries: z.number().int().positive().max(20).default(4),
      initialIntervalMs: z.number().int().nonnegative().default(1000),
      maxIntervalMs: z.number().int().positive().default(60_000),
      maxWaitSec: z.number().nonnegative().default(DEFAULT_MAX_WAIT_SEC),
    })
    .optional(),
}).refine((s) => !s.escalate || s.mode === 'sequential' || s.mode === 'cost', {
  path: ['escalate'],
  message: "strategy.escalate applies to mode 'sequential' or 'cost' (one provider at a time), not to parallel or consensus modes",
}));
export type Strategy = z.infer<typeof StrategySchema>;

export const LimitsSchema = lazySchema(() => z.object({
  maxAttempts: z.number().int().positive().max(50).default(3),
  maxCostUsd: z.number().nonnegative().optional(),
  maxTokens: z.number().int().positive().optional(),
  testTimeoutSec: z.number().positive().default(600),
  maxDepth: z.number().int().nonnegative().default(2),
  maxChildren: z.number().int().positive().default(8),
  childConcurrency: z.number().int().positive().default(2),
  /**
   * Events in one run's history past which the attempt loop continues as new between attempts,
   * its ledger carried over (default 10,000; Temporal's hard limit is 51,200). Also when Temporal
   * suggests it. Optional: settings resolved before it existed stay as they were.
   */
  historyEvents: z.number().int().min(50).max(40_000).optional(),
}));
export type Limits = z.infer<typeof LimitsSchema>;

/** Env vars a task may let into the sandbox: names only, and none that holds a credential. */
const SandboxEnvName = lazySchema(() => z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be an environment variable name')
  .refine((n) => !/KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION/i.test(n), 'names a credential; secrets never enter the sandbox'));

/** A sandbox's resource limits, with a task's defaults and the least a task may ask for. */
export const SandboxLimitsSchema = lazySchema(() => z
  .object({
    memoryMb: z.number().int().min(64).default(2048),
    processes: z.number().int().min(8).default(512),
    openFiles: z.number().int().min(64).default(4096),
    fileSizeMb: z.number().int().min(1).default(1024),
    cpuSec: z.number().int().min(1).default(3600),
    /** How much the workspace may grow during one command, and the size of the private /tmp. */
    diskMb: z.number().int().min(16).default(10240),
    /**
     * Output captured per command (stdout + stderr, into its log): past it the first and the last
     * halves are kept with a marker of what was dropped between them, and the command runs on.
     * At most 1 GiB: the log's tail half is held in the worker's memory while the command runs.
     */
    maxOutputMb: z.number().int().min(1).max(1024).default(16),
  })
  .strict());
export type SandboxLimits = z.infer<typeof SandboxLimitsSchema>;

/**
 * How commands that run repository code are confined (design rule 7). Resolved with its
 * defaults at workflow start and kept in the task's record, so a run keeps its policy.
 */
export const SandboxPolicySchema = lazySchema(() => z
  .object({
    /** Network inside the sandbox: none at all, the setup command only (installs), or every command. */
    network: z.enum(['none', 'setup', 'all']).default('setup'),
    /** Names of worker env vars passed in (besides PATH, LANG, HOME, TMPDIR, CI). */
    env: z.array(SandboxEnvName).max(50).default([]),
    /** Each at most what the worker allows (WEAVER_SANDBOX_MAX_LIMITS); a lowered one is reported. */
    limits: SandboxLimitsSchema.prefault({}),
    /**
     * Hosts a command with network may reach through the worker's egress proxy: a narrowing of
     * the worker's WEAVER_EGRESS_ALLOW (an entry outside it is dropped, with a note). Absent: the worker's list.
     */
    egress: z
      .array(
        z.string().max(260).superRefine((v, ctx) => {
          const p = parseEgressPattern(v);
          if (typeof p === 'string') ctx.addIssue({ code: 'custom', message: p });
        }),
      )
      .max(100)
      .optional(),
  })
  .strict());
export type SandboxPolicy = z.infer<typeof SandboxPolicySchema>;

export type Command = z.infer<typeof CommandSchema>;

export const TaskSpecSchema = lazySchema(() => z.object({
  title: z.string().min(1).max(200),
  description: z.string().min(1),
  acceptanceCriteria: z.array(z.string()).optional(),
  relatedFiles: z.array(z.string()).optional(),
  /** Whether the model may change test files (tests/, *_test.go, test_*.py, *.test.ts…); off by default. */
  allowTestChanges: z.boolean().optional(),
  /** For a subtask: a narrower test command for the child (the parent still runs the full one). */
  testCommand: CommandSchema.optional(),
  /** Free labels a playbook condition can read (`label('docs')`). */
  labels: z.array(z.string().min(1).max(50)).max(20).optional(),
}));
export type TaskSpec = z.infer<typeof TaskSpecSchema>;

export const PushSchema = lazySchema(() => z.union([
  z.boolean(),
  z.object({ remote: z.string().min(1).default('origin') }),
]));

const DURATION_EXAMPLES = '"90s", "30m", "2h", "1d"';

export const CodingTaskInputSchema = lazySchema(() => z.object({
  repo: z.string().min(1),
  baseBranch: z.string().min(1).optional(),
  branch: z.string().min(1).optional(),
  task: TaskSpecSchema,
  /** Shorthand for a one-step playbook (`test`); with `setupCommand`, a `setup` step before it. */
  testCommand: CommandSchema.optional(),
  setupCommand: CommandSchema.optional(),
  /** The checks around the change: steps, or their YAML/JSON text. Else `.weaver/playbook.yaml`, else detected. */
  playbook: PlaybookFieldSchema.optional(),
  /** With nothing to check (no playbook, nothing detected), commit anyway instead of failing with `no_checks`. */
  allowNoChecks: z.boolean().optional(),
  providers: z.array(ProviderSpecSchema).min(1, 'at least one provider is needed'),
  /** Prompt tokens at most for every call of this task (the providers' own budgets still cap it). */
  promptBudgetTokens: PromptShape.promptBudgetTokens,
  strategy: StrategySchema.optional(),
  limits: LimitsSchema.partial().optional(),
  decomposition: z.enum(['auto', 'never', 'always']).optional(),
  subtasks: z.array(TaskSpecSchema).optional(),
  push: PushSchema.optional(),
  /** Wait for a person's `approvePush` (update or signal) before pushing (human in the loop). */
  requireApproval: z.boolean().optional(),
  /** Confinement of setup and test commands; defaults: network for setup only, 2 GiB, 512 processes. */
  sandbox: SandboxPolicySchema.optional(),
  /** With requireApproval: stop waiting after this long; nothing is pushed, the commit is kept as a git bundle. */
  approvalTimeoutSec: z.number().positive().optional(),
  /** approvalTimeoutSec as a duration: seconds, or "90s", "30m", "2h", "1d", "1h30m"; parsed into approvalTimeoutSec. */
  approvalTimeout: z
    .union([z.number(), z.string()], { error: `must be a positive number of seconds or a duration like ${DURATION_EXAMPLES}` })
    .transform((v, ctx) => {
      const sec = durationSeconds(v);
      if (sec === undefined) ctx.addIssue({ code: 'custom', message: `must be a positive number of seconds or a duration like ${DURATION_EXAMPLES} (got ${JSON.stringify(v)})` });
      return sec ?? 0;
    })
    .optional(),
  /** Set by a parent for its children; users leave it out. */
  depth: z.number().int().nonnegative().optional(),
  /** Set by a parent for its children: provider cooldowns carried down the tree. */
  inherited: z
    .object({
      cooldowns: z.record(z.string(), z.object({ consecutive: z.number(), until: z.number().optional() })).optional(),
      /** The secret files the root task named (redact.ts secretFilesNamed): the only ones a subtask's prompt may hold. */
      namedSecretFiles: z.array(z.string()).max(100).optional(),
    })
    .optional(),
}).refine((i) => !i.strategy?.escalate || i.providers.filter((p) => !i.strategy?.shadow?.includes(p.id)).length >= 2, {
  path: ['strategy', 'escalate'],
  message: 'needs at least two (non-shadow) providers: escalation moves to the next stronger one',
}).refine((i) => !i.branch || i.branch !== i.baseBranch, {
  path: ['branch'],
  message: 'must differ from baseBranch: Weaver force-pushes its own branch',
}).refine((i) => i.approvalTimeout === undefined || i.approvalTimeoutSec === undefined || i.approvalTimeout === i.approvalTimeoutSec, {
  path: ['approvalTimeout'],
  message: 'conflicts with approvalTimeoutSec (both given, different values): give one of them',
})
  // One field holds the timeout once parsed: approvalTimeoutSec, what the workflow reads.
  .transform(({ approvalTimeout, ...i }) => (approvalTimeout === undefined ? i : { ...i, approvalTimeoutSec: approvalTimeout })));
export type CodingTaskInput = z.input<typeof CodingTaskInputSchema>;
export type ParsedCodingTaskInput = z.output<typeof CodingTaskInputSchema>;

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:s|m|h|d|w))+$/;

/**
 * Seconds in a duration: a number of seconds, a numeric string ("90"), or number-unit pairs with
 * s, m, h, d, w ("90s", "30m", "1.5h", "1h30m", spaces and case ignored); undefined when it is
 * none of these, not finite, or not positive.
 */
export function durationSeconds(v: number | string): number | undefined {
  let sec: number;
  if (typeof v === 'number') sec = v;
  else {
    const t = v.replace(/\s+/g, '').toLowerCase();
    if (/^\d+(?:\.\d+)?$/.test(t)) sec = Number(t);
    else if (DURATION.test(t)) sec = [...t.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)].reduce((sum, [, n, u]) => sum + Number(n) * DURATION_UNITS[u], 0);
    else return undefined;
  }
  return Number.isFinite(sec) && sec > 0 ? sec : undefined;
}

/** An artifact in the store (`sha256:<hex>`), as a workflow input names one. */
export const ArtifactRefSchema = lazySchema(() =>
  z.object({ ref: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>'), bytes: z.number().int().nonnegative(), kind: z.string() }),
);

export const TaskBatchInputSchema = lazySchema(() =>
  z
    .object({
      /** The tasks inline (a small batch), or… */
      tasks: z.array(CodingTaskInputSchema).min(1).optional(),
      /** …a JSON Lines list of them in the artifact store (the client uploads a big one: no 2 MB input). */
      tasksRef: ArtifactRefSchema.optional(),
      concurrency: z.number().int().positive().default(2),
      /** Results per page in the store (domain/batch.ts). */
      pageSize: z.number().int().positive().max(500).default(DEFAULT_PAGE_SIZE),
      /** Children started per run before the batch continues as new (its history stays bounded). */
      continueAfter: z.number().int().positive().default(DEFAULT_CONTINUE_AFTER),
      /** Set by the batch itself when it continues as new: where the last run got to. */
      carried: z.custom<BatchCarry>((v) => typeof v === 'object' && v !== null && typeof (v as BatchCarry).next === 'number').optional(),
    })
    .refine((b) => !!b.tasks !== !!b.tasksRef, { message: 'give either tasks or tasksRef (not both)', path: ['tasks'] }),
);
export type TaskBatchInput = z.input<typeof TaskBatchInputSchema>;
export type ParsedTaskBatchInput = z.output<typeof TaskBatchInputSchema>;

/** Thrown by `parseTaskInput`: one line per problem, each naming the field. */
export class TaskInputError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid task input:\n  - ${issues.join('\n  - ')}`);
    this.name = 'TaskInputError';
  }
}

export function formatZodIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

export function parseTaskInput(raw: unknown): ParsedCodingTaskInput {
  const r = CodingTaskInputSchema.safeParse(raw);
  if (!r.success) throw new TaskInputError(formatZodIssues(r.error));
  return r.data;
}

export function parseBatchInput(raw: unknown): z.output<typeof TaskBatchInputSchema> {
  const r = TaskBatchInputSchema.safeParse(raw);
  if (!r.success) throw new TaskInputError(formatZodIssues(r.error));
  return r.data;
}

export function resolveLimits(input: Pick<ParsedCodingTaskInput, 'limits'>): Limits {
  return LimitsSchema.parse(input.limits ?? {});
}

// ---- What the model answers -------------------------------------------------------
// The model answers in plain text (src/domain/editformats); its parser turns the text into
// these shapes, which the applier (src/activities/apply.ts) writes into the workspace.

export const FileChangeSchema = lazySchema(() => z.discriminatedUnion('action', [
  /** Targeted edit of an existing file: `search` must match exactly one place (tolerantly). */
  z.object({ path: z.string().min(1), action: z.literal('edit'), search: z.string(), replace: z.string() }),
  /** Whole content: a new file, or an existing one the model was shown whole and small. */
  z.object({ path: z.string().min(1), action: z.literal('write'), content: z.string() }),
  z.object({ path: z.string().min(1), action: z.literal('delete') }),
]));
export type FileChange = z.infer<typeof FileChangeSchema>;

export const ChangeSetSchema = lazySchema(() => z.object({
  summary: z.string().min(1),
  /** In answer order; several `edit`s of one file apply one after the other. */
  files: z.array(FileChangeSchema).min(1, 'a change set must touch at least one file'),
}));
export type ChangeSet = z.infer<typeof ChangeSetSchema>;

/** The model may propose to split the task instead of changing files (decomposition: auto). */
export const SubtaskProposalSchema = lazySchema(() => z.object({
  summary: z.string().optional(),
  subtasks: z.array(TaskSpecSchema).min(1),
}));
export type SubtaskProposal = z.infer<typeof SubtaskProposalSchema>;

/** The model asks to see files before it answers (served without consuming an attempt). */
export const FilesRequestSchema = lazySchema(() => z.object({
  summary: z.string().optional(),
  needFiles: z.array(z.string().min(1)).min(1),
}));
export type FilesRequest = z.infer<typeof FilesRequestSchema>;

export const ModelAnswerSchema = lazySchema(() => z.union([ChangeSetSchema, SubtaskProposalSchema, FilesRequestSchema]));
export type ModelAnswer = z.infer<typeof ModelAnswerSchema>;

// ---- Results -------------------------------------------------------------------

export interface ArtifactRef {
  /** `sha256:<hex>` — the file lives at <WEAVER_ARTIFACT_DIR>/sha256/<hex[0..2]>/<hex>. */
  ref: string;
  bytes: number;
  /** What it is, for people: `prompt`, `response`, `diff`, `test-log`, `events`, `report`. */
  kind: string;
}

export interface ProviderUsage {
  calls: number;
  failures: Record<string, number>;
  tokensIn: number;
  tokensOut: number;
  /** Of tokensIn, served from the provider's prompt cache (absent: none reported). */
  tokensCached?: number;
  costUsd: number;
  meanLatencyMs: number;
  /** Sum behind meanLatencyMs (kept so the mean does not drift with rounding). */
  latencyMsSum: number;
  /** Spend of this provider's calls whose answers were lost to a crash (estimated). */
  estimatedCostUsd?: number;
  /** Its answers a task committed (their checks passed); absent in runs before. */
  succeeded?: number;
  /** succeeded / calls. */
  successRate?: number;
  /** The same figures per model of this provider (runs since per-model usage). */
  byModel?: Record<string, ModelUsage>;
}

/** One provider's calls to one model: what they took, cost and achieved. */
export interface ModelUsage {
  calls: number;
  tokensIn: number;
  tokensOut: number;
  /** Of tokensIn, served from the provider's prompt cache (absent: none reported). */
  tokensCached?: number;
  costUsd: number;
  /** Spend of its calls booked as estimated (lost or cut off). */
  estimatedCostUsd?: number;
  /** Calls that failed, by error family. */
  failures: Record<string, number>;
  /** Answers a task committed (their checks passed). */
  succeeded: number;
  /** succeeded / calls. */
  successRate: number;
}

export interface Usage {
  tokensIn: number;
  tokensOut: number;
  /** Of tokensIn, served from the providers' prompt caches (absent: none reported). */
  tokensCached?: number;
  costUsd: number;
  calls: number;
  /** Spend of calls whose answer was lost (worker crash after the provider answered). */
  estimatedCostUsd: number;
  byProvider: Record<string, ProviderUsage>;
  /** Shadow calls, apart from the totals; `estimatedCostUsd`: their lost or cut-off calls. */
  shadow?: { tokensIn: number; tokensOut: number; costUsd: number; calls: number; estimatedCostUsd?: number };
}

/** `rejected`: the work was done and committed, but a person (or the approval timeout) stopped the push. */
export type TaskStatus = 'succeeded' | 'partial' | 'failed' | 'budget_exceeded' | 'cancelled' | 'rejected';

/**
 * The `WeaverStatus` search attribute: `running` from the start, the TaskStatus at the end, and
 * `invalid` for a task refused before anything ran — input that fails validation at the workflow,
 * or a provider the worker's registry does not allow. A refused task fails its workflow without
 * a result (there is nothing to report), so `invalid` is never a result's status.
 */
export type WeaverStatusValue = TaskStatus | 'running' | 'invalid';

export interface TestOutcome {
  passed: boolean;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
  /** Last few KB of output; the whole log is `log`. */
  tail: string;
  log?: ArtifactRef;
  /** A sandbox limit the command hit, e.g. `killed: memory limit 2 GiB`. */
  limit?: string;
  /** What the command did that is refused whatever its exit code, e.g. changing `.git/config`. */
  violation?: string;
  /** What the command's whole process tree used (wall time, CPU, peak memory). */
  resources?: ResourceUsage;
  /** Connections the worker's egress proxy refused (host, port, why; at most 20 distinct, counted). */
  egressRefused?: EgressRefusal[];
}

/** Wall time, CPU time (user+sys) and peak memory of one command's whole process tree. */
export interface ResourceUsage {
  wallMs: number;
  cpuMs?: number;
  peakMemoryMb?: number;
  /** How it was measured: `cgroup v2`, `cgroup v1` or `/proc sampling`. */
  measuredBy: string;
}

/** The kinds of playbook step; `custom` is any other named step. */
export type StepKind = 'setup' | 'format' | 'lint' | 'typecheck' | 'test' | 'build' | 'custom';

/** One playbook step of an attempt: run (with its command's outcome) or skipped by its `when`. */
export interface StepOutcome extends Partial<TestOutcome> {
  /** The step's name (unique in its playbook; defaults to its kind). */
  name: string;
  kind: StepKind;
  status: 'passed' | 'failed' | 'skipped';
  /** What a failure does: retry-with-feedback, fail, warn or ignore. */
  onFailure?: 'retry-with-feedback' | 'fail' | 'warn' | 'ignore';
  /** For a skipped step: the `when` condition that was false. */
  skippedBecause?: string;
  /** Files of the change the step rewrote: put back as the change wrote them before anything else ran. */
  altered?: string[];
}

/** One provider call, as recorded: one per HTTP request Weaver made. */
export interface CallEvent {
  provider: string;
  model: string;
  strategy: string;
  role: 'primary' | 'shadow';
  attempt: number;
  startedAt: string;
  latencyMs: number;
  tokensIn: number;
  tokensOut: number;
  /** Of tokensIn, those the provider served from its prompt cache (booked at the cached-input price). */
  tokensCached?: number;
  costUsd: number;
  /** ok | schema_violation | truncated | needs_files | subtasks | error | cancelled | lost | cut (a stream cut mid-answer: its received tokens as estimated spend) */
  outcome: string;
  errorFamily?: string;
  retryAfterMs?: number;
  /** Spend of a call whose answer was lost to a crash: estimated, never claimed as known. */
  estimatedCostUsd?: number;
  /** Digest of the normalised change set (for consensus and shadow comparison). */
  changeDigest?: string;
  /** Shadow calls: whether the answer matched the chosen change set. */
  agreesWithChosen?: boolean;
  /** Values masked as [REDACTED] in the prompt this call sent (absent: none). */
  promptRedactions?: number;
}

/** How the answer of an attempt was chosen. */
export interface Selection {
  strategy: string;
  chosen?: string;
  /** consensus: who voted, the winner's share of the voters and agreement among valid answers. */
  voters?: string[];
  voteShare?: number;
  confidence?: number;
  /** parallel-all / consensus: the answers not used. */
  alternatives?: { provider: string; changeDigest?: string; summary?: string }[];
  /** Wall time of the strategy (workflow clock). */
  durationMs: number;
}

export interface Decision {
  action: 'commit' | 'retry' | 'fail' | 'decompose' | 'budget_exceeded';
  why: string;
}

/**
 * parallel-all: one answer as its own workspace's checks judged it. `outcome`: tests_passed,
 * checks_passed, no_checks, tests_failed, check_failed, invalid_syntax, apply_failed,
 * invalid_answer (not checked: unreadable, truncated…), provider_failed, not_called (budget),
 * workspace_lost or check_error (the check could not run: ranked last, never fails the task).
 */
export interface CandidateRecord {
  provider: string;
  outcome: string;
  /** The call's cost, booked once with the call (checking costs no provider call). */
  costUsd: number;
  changeDigest?: string;
  /** The failing step, the first syntax or apply error, or why the check could not run. */
  detail?: string;
  /** The log of the failing (or last) check step. */
  log?: ArtifactRef;
}

export interface AttemptRecord {
  attempt: number;
  /** parallel-all: every answer and how its checks went, in provider order; `provider` is the one used. */
  candidates?: CandidateRecord[];
  provider?: string;
  calls: CallEvent[];
  selection?: Selection;
  outcome: string;
  detail?: string;
  summary?: string;
  filesChanged?: string[];
  /** Tokens of the (last) prompt of the attempt, as counted for the budget. */
  promptTokens?: number;
  /** Cost routing or escalation: the order the providers were tried in and why each was called. */
  routing?: RouteRecord;
  /** Files the model asked to see, per round (served without consuming the attempt). */
  fileRequests?: string[][];
  /** What the applier noted, e.g. blocks skipped because they change nothing. */
  notes?: string[];
  tests?: TestOutcome;
  /** Every playbook step of the attempt, in order, with its outcome, duration and log. */
  steps?: StepOutcome[];
  decision: Decision;
  artifacts: ArtifactRef[];
}

/**
 * What a commit changes against the task's base commit, per file and in total: what a person
 * reads before approving a push. `files` is bounded; `moreFiles` counts the ones left out.
 */
export interface Diffstat {
  /** Lines added and removed per file; a binary file has neither (`binary: true`). */
  files: { path: string; added: number; removed: number; binary?: true }[];
  filesChanged: number;
  added: number;
  removed: number;
  moreFiles?: number;
}

export interface ChildSummary {
  workflowId: string;
  title: string;
  status: TaskStatus | 'not_started' | 'running';
  reason: string;
  branch?: string;
  commit?: string;
  merged?: boolean;
  conflict?: string;
  result?: CodingTaskResult;
}

export interface Aggregate {
  total: number;
  successCount: number;
  failureCount: number;
  successRate: number;
  usage: Usage;
}

export interface CodingTaskResult {
  workflowId: string;
  status: TaskStatus;
  reason: string;
  branch: string;
  commit?: string;
  pushed?: boolean;
  /** Where the branch lives when it was not pushed (on the worker that held the workspace). */
  workspace?: string;
  /** A child's branch as a git bundle artifact, when it was not pushed (how its parent merges it). */
  bundle?: ArtifactRef;
  /** Things a person should know, e.g. a provider failing authentication. */
  warnings?: string[];
  /** Where the task's commands ran: the sandbox and the policy it enforced. */
  /** Every default the run decided by, fixed at its start by the worker (runs since `settings-from-history`). */
  settings?: TaskSettings;
  sandbox?: SandboxRecord;
  /** Which checks ran: the playbook's source (task, repository, testCommand, detected, none) and its steps. */
  checks?: { source: string; description: string; stack?: string; setup?: StepOutcome[] };
  /** What the commit changes against the base (files, lines added and removed): see `diff` for the whole. */
  diffstat?: Diffstat;
  /** The commit's whole diff against the base, in the artifact store (`weaver diff <id>`). */
  diff?: ArtifactRef;
  /** The push decision (requireApproval): approved or not, by whom, when, how it came, and the commit it was about. */
  approval?: { approved: boolean; by?: string; comment?: string; at: string; via: 'update' | 'signal'; commit?: string };
  /** Decisions refused (too early, repeated, malformed), with why. */
  refusedApprovals?: { at: string; via: 'signal'; reason: string; by?: string }[];
  attempts: AttemptRecord[];
  usage: Usage;
  children?: ChildSummary[];
  aggregate?: Aggregate;
  artifacts: ArtifactRef[];
}

export interface BatchResult {
  /**
   * In input order. Batches since `batch-window`: inline only when the batch ran in one run and
   * they fit, else empty — `pages` holds them all (the client reads them back: getBatchResult).
   * Before: for very large batches, one short line per task (its `result` artifact holds the rest).
   */
  results: CodingTaskResult[];
  /** Every row, in pages in the artifact store (batches since `batch-window`). */
  pages?: ResultPage[];
  aggregate: Aggregate;
}

export interface BatchProgress {
  workflowId: string;
  total: number;
  running: number;
  finished: number;
  successCount: number;
  /** Which run of the batch answers (1, then 2 after its first continue-as-new…). */
  run?: number;
}

export type Phase =
  | 'starting'
  | 'preparing'
  | 'generating'
  | 'applying'
  | 'testing'
  | 'deciding'
  | 'decomposing'
  | 'integrating'
  | 'committing'
  | 'awaiting_approval'
  | 'done';

export interface SandboxRecord {
  /** e.g. `bubblewrap 0.8.0`, or `none` (WEAVER_SANDBOX=off, or auto without bubblewrap). */
  kind: string;
  policy: SandboxPolicy;
  /** How limits are enforced: `cgroup v1`, `cgroup v2` or `rlimit`. */
  enforcement?: string;
}

export interface Progress {
  workflowId: string;
  phase: Phase;
  /** The playbook step running (phase `testing`). */
  step?: string;
  /** What the same activity does once every step passed (the commit made with the checks). */
  then?: string;
  attempt: number;
  maxAttempts: number;
  usage: Usage;
  lastDecision?: Decision;
  branch: string;
  status?: TaskStatus;
  children?: { workflowId: string; status: string }[];
  sandbox?: SandboxRecord;
  /** A durable wait for a provider in progress (rate limit, outage): who, why, until when, failing for how long. */
  wait?: { provider: string; family: string; until: string; waitedMs: number };
  /** Cost routing or escalation: the provider called last, and why (the attempt's record has every one). */
  route?: RouteStep & { attempt: number };
  /**
   * Once the task has committed (e.g. while `awaiting_approval`): the commit, what it changes and
   * its whole diff in the artifact store — what a person approves (`approvePush` may name it).
   */
  commit?: string;
  diffstat?: Diffstat;
  diff?: ArtifactRef;
  /** The finished attempts' step logs, for `weaver logs` while the task runs (the result has the whole records). */
  logs?: AttemptLogs[];
  /** The task's workspace (the last prepared): a worker's start sweep removes its older folders left on other hosts. */
  workspace?: { dir: string; taskQueue: string };
}

/** One attempt's step logs: its playbook steps, or (records without steps) its test run as step `test`. */
export interface AttemptLogs {
  attempt: number;
  steps: StepLog[];
}

export interface StepLog {
  name: string;
  kind: StepKind;
  status: StepOutcome['status'];
  log?: ArtifactRef;
  skippedBecause?: string;
}
