// Every default a run's decisions depend on — limits, retry and fallback, cooldown, the sandbox
// policy, each provider's model profile, price and prompt budget — resolved ONCE, by the worker, in the
// activity a run starts with (resolveProviders): the values are recorded in the run's history
// and kept in workflow state. A deploy that changes a default or the price table then cannot
// change what a running workflow decides on replay (which would be non-determinism), and the
// result shows the values the run used.
import { DEFAULT_COOLDOWN, type CooldownSettings } from './cooldown';
import { DEFAULT_PROMPT_BUDGET, resolveProvider, type ResolvedProvider } from './models';
import { knownPrice } from './pricing';
import { expectedOutputTokens } from './routing';
import { DEFAULT_FALLBACK_ON, DEFAULT_RETRY, type RetrySettings } from './retry';
import { LimitsSchema, SandboxPolicySchema, StrategySchema, type Limits, type ProviderSpec, type SandboxPolicy } from './schema';

export interface TaskSettings {
  limits: Limits;
  retry: Required<RetrySettings>;
  /** Failure families that move a sequential strategy on to the next provider. */
  fallbackOn: string[];
  cooldown: CooldownSettings;
  /** parallel-all: answers checked at once, each in a workspace of its own (absent in runs resolved before). */
  candidateChecks?: number;
  sandbox: SandboxPolicy;
  /** The task's providers with every model default and a price (when one is known) filled in. */
  providers: ResolvedProvider[];
  /**
   * The cost bound of the task's whole tree (itself and every descendant) when it may decompose
   * and set no `limits.maxCostUsd`: the worker's WEAVER_DEFAULT_TREE_COST_USD. Children get
   * shares of it as their maxCostUsd; a decomposition that cannot fit is refused. Absent when
   * the task has its own budget, never decomposes, or has a provider without a price (its calls
   * would count $0: a bound could not hold them, and a default must not refuse the task).
   */
  treeCostUsd?: number;
}

/** parallel-all: answers checked at once when the task's strategy does not say (each is a clone with its setup). */
export const DEFAULT_CANDIDATE_CHECKS = 3;

/** WEAVER_DEFAULT_TREE_COST_USD when unset; 0 turns the default bound off. */
export const DEFAULT_TREE_COST_USD = 5;

/** What the worker adds to a run's settings (its env, read at worker start). */
export interface WorkerDefaults {
  /** WEAVER_DEFAULT_TREE_COST_USD (0: none). */
  defaultTreeCostUsd?: number;
}

/** What a task said about these settings, as it was given (defaults not yet applied). */
export interface SettingsInput {
  limits?: unknown;
  strategy?: unknown;
  sandbox?: unknown;
  decomposition?: unknown;
}

/** The settings of a run from its input and its providers (already merged with the worker's registry). */
export function resolveSettings(input: SettingsInput, providers: ProviderSpec[], worker: WorkerDefaults = {}): TaskSettings {
  const strategy = StrategySchema.optional().parse(input.strategy);
  const limits = LimitsSchema.parse(input.limits ?? {});
  const treeCostUsd = treeCostFor(input.decomposition, limits, providers, worker.defaultTreeCostUsd ?? DEFAULT_TREE_COST_USD);
  return {
    ...(treeCostUsd === undefined ? {} : { treeCostUsd }),
    limits,
    retry: { ...DEFAULT_RETRY, ...strategy?.retry },
    fallbackOn: strategy?.fallbackOn ? [...strategy.fallbackOn, 'cooldown'] : [...DEFAULT_FALLBACK_ON],
    cooldown: strategy?.cooldown ?? DEFAULT_COOLDOWN,
    candidateChecks: strategy?.candidateChecks ?? DEFAULT_CANDIDATE_CHECKS,
    sandbox: SandboxPolicySchema.parse(input.sandbox ?? {}),
    providers: providers.map((p) => {
      const price = knownPrice(p);
      // The default budget kept in history too: a later deploy's default cannot change a running task's prompts.
      const resolved = resolveProvider(p);
      // Kept in history with the rest: a later default cannot reorder a running task's cost route.
      const expected = expectedOutputTokens(resolved);
      return { ...resolved, promptBudgetTokens: p.promptBudgetTokens ?? DEFAULT_PROMPT_BUDGET, expectedOutputTokens: expected, ...(price ? { pricing: price } : {}) };
    }),
  };
}

/** The default bound of a task's tree, or undefined when none applies (see TaskSettings.treeCostUsd). */
export function treeCostFor(decomposition: unknown, limits: Limits, providers: ProviderSpec[], defaultUsd: number): number | undefined {
  if (decomposition === 'never' || limits.maxCostUsd !== undefined || limits.maxDepth < 1 || !(defaultUsd > 0)) return undefined;
  return providers.every((p) => knownPrice(p)) ? defaultUsd : undefined;
}
