// Every default a run's decisions depend on — limits, retry and fallback, cooldown, the sandbox
// policy, each provider's model profile and price — resolved ONCE, by the worker, in the
// activity a run starts with (resolveProviders): the values are recorded in the run's history
// and kept in workflow state. A deploy that changes a default or the price table then cannot
// change what a running workflow decides on replay (which would be non-determinism), and the
// result shows the values the run used.
import { DEFAULT_COOLDOWN, type CooldownSettings } from './cooldown';
import { resolveProvider, type ResolvedProvider } from './models';
import { knownPrice } from './pricing';
import { DEFAULT_FALLBACK_ON, DEFAULT_RETRY, type RetrySettings } from './retry';
import { LimitsSchema, SandboxPolicySchema, StrategySchema, type Limits, type ProviderSpec, type SandboxPolicy } from './schema';

export interface TaskSettings {
  limits: Limits;
  retry: Required<RetrySettings>;
  /** Failure families that move a sequential strategy on to the next provider. */
  fallbackOn: string[];
  cooldown: CooldownSettings;
  sandbox: SandboxPolicy;
  /** The task's providers with every model default and a price (when one is known) filled in. */
  providers: ResolvedProvider[];
}

/** What a task said about these settings, as it was given (defaults not yet applied). */
export interface SettingsInput {
  limits?: unknown;
  strategy?: unknown;
  sandbox?: unknown;
}

/** The settings of a run from its input and its providers (already merged with the worker's registry). */
export function resolveSettings(input: SettingsInput, providers: ProviderSpec[]): TaskSettings {
  const strategy = StrategySchema.optional().parse(input.strategy);
  return {
    limits: LimitsSchema.parse(input.limits ?? {}),
    retry: { ...DEFAULT_RETRY, ...strategy?.retry },
    fallbackOn: strategy?.fallbackOn ? [...strategy.fallbackOn, 'cooldown'] : [...DEFAULT_FALLBACK_ON],
    cooldown: strategy?.cooldown ?? DEFAULT_COOLDOWN,
    sandbox: SandboxPolicySchema.parse(input.sandbox ?? {}),
    providers: providers.map((p) => {
      const price = knownPrice(p);
      return { ...resolveProvider(p), ...(price ? { pricing: price } : {}) };
    }),
  };
}
