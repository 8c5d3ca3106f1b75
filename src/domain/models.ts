// What Weaver knows about model families: context windows, which request field bounds the
// answer, and how many output tokens to allow. A spec's own fields win; the rest is resolved
// once at workflow start (kept in workflow state, so a later table change cannot flip a
// running workflow's decisions).
import type { ProviderSpec } from './schema';

export interface ModelProfile {
  contextWindow: number;
  /** Reasoning models (o-series, gpt-5) take `max_completion_tokens` and spend some of it thinking. */
  reasoning: boolean;
  /** false: the model refuses the `system` role (o1-family). */
  systemRole?: false;
  /** false: the model refuses `temperature` (reasoning models take only the default). */
  temperature?: false;
}

const REASONING = { reasoning: true, temperature: false } as const;

/** Longest prefix wins; matched against the model name without a `vendor/` prefix. */
const KNOWN: [prefix: string, profile: ModelProfile][] = [
  ['gpt-4o', { contextWindow: 128_000, reasoning: false }],
  ['gpt-4.1', { contextWindow: 1_047_576, reasoning: false }],
  ['gpt-4-turbo', { contextWindow: 128_000, reasoning: false }],
  ['gpt-4', { contextWindow: 8_192, reasoning: false }],
  ['gpt-3.5-turbo', { contextWindow: 16_385, reasoning: false }],
  ['gpt-5', { contextWindow: 400_000, ...REASONING }],
  ['o1', { contextWindow: 200_000, ...REASONING, systemRole: false }],
  ['o1-mini', { contextWindow: 128_000, ...REASONING, systemRole: false }],
  ['o3', { contextWindow: 200_000, ...REASONING }],
  ['o4', { contextWindow: 200_000, ...REASONING }],
  ['claude', { contextWindow: 200_000, reasoning: false }],
  ['gemini', { contextWindow: 1_000_000, reasoning: false }],
  ['deepseek-reasoner', { contextWindow: 64_000, reasoning: false }],
  ['deepseek', { contextWindow: 64_000, reasoning: false }],
  ['qwen2.5-coder', { contextWindow: 32_768, reasoning: false }],
  ['qwen3', { contextWindow: 32_768, reasoning: false }],
  ['llama3', { contextWindow: 8_192, reasoning: false }],
  ['llama-3', { contextWindow: 128_000, reasoning: false }],
  ['mistral', { contextWindow: 32_000, reasoning: false }],
  ['codestral', { contextWindow: 256_000, reasoning: false }],
];

/** An unknown model (a local Ollama/vLLM model, say) is assumed to have a modest window. */
export const DEFAULT_CONTEXT_WINDOW = 32_768;
export const DEFAULT_OUTPUT_TOKENS = 4_096;
/** Reasoning models think inside their completion budget: give them room. */
export const DEFAULT_REASONING_OUTPUT_TOKENS = 16_384;

export function modelProfile(model: string): ModelProfile {
  const bare = (model.split('/').pop() ?? model).toLowerCase();
  const hit = KNOWN.filter(([prefix]) => bare === prefix || bare.startsWith(prefix))
    .sort((a, b) => b[0].length - a[0].length)[0];
  return hit ? hit[1] : { contextWindow: DEFAULT_CONTEXT_WINDOW, reasoning: false };
}

export type ResolvedProvider = ProviderSpec &
  Required<Pick<ProviderSpec, 'contextWindow' | 'tokenParam' | 'maxTokens' | 'editFormat'>>;

/** The spec with every model default filled in (called once, at workflow start). */
export function resolveProvider(spec: ProviderSpec): ResolvedProvider {
  const profile = modelProfile(spec.model);
  const tokenParam = spec.tokenParam ?? (profile.reasoning ? 'max_completion_tokens' : 'max_tokens');
  // An explicit maxTokens beyond the assumed window of a model not in the table says the window
  // is larger than assumed: keep room for a prompt beside it.
  const contextWindow =
    spec.contextWindow ?? (spec.maxTokens && spec.maxTokens >= profile.contextWindow ? spec.maxTokens + profile.contextWindow : profile.contextWindow);
  const fallback = tokenParam === 'max_completion_tokens' ? DEFAULT_REASONING_OUTPUT_TOKENS : DEFAULT_OUTPUT_TOKENS;
  // A default never takes more than half of a small window; a spec's own maxTokens is kept.
  const maxTokens = spec.maxTokens ?? Math.min(fallback, Math.floor(contextWindow / 2));
  return { ...spec, contextWindow, tokenParam, maxTokens, editFormat: spec.editFormat ?? 'editblock' };
}

/**
 * A prompt's default size: well below today's windows. A bigger prompt costs more on every call
 * and, past the files the task is about, rarely helps (issue 19: 45,850 tokens for a one-function task).
 */
export const DEFAULT_PROMPT_BUDGET = 16_000;

/**
 * Prompt tokens that every provider of the task can take: the smallest window minus the
 * answer's room, less a margin because the tokenizer Weaver counts with (o200k) is not every
 * model's own. With `budgets` (runs since prompt budgets), also at most each provider's
 * `promptBudgetTokens` and the task's (DEFAULT_PROMPT_BUDGET when neither is set).
 */
export function promptBudget(providers: ResolvedProvider[], budgets?: { task?: number }): number {
  const fits = providers.map((p) => {
    const fit = Math.floor((p.contextWindow - p.maxTokens) * 0.9);
    if (!budgets) return fit;
    const asked = [p.promptBudgetTokens, budgets.task].filter((n): n is number => n !== undefined);
    return Math.min(fit, asked.length ? Math.min(...asked) : DEFAULT_PROMPT_BUDGET);
  });
  return Math.max(256, Math.min(...fits));
}

/** The model's quirks, the spec's word first: whether it takes a `system` message and a `temperature`. */
export function quirksOf(spec: Pick<ProviderSpec, 'model' | 'systemRole'>): { systemRole: boolean; temperature: boolean } {
  const profile = modelProfile(spec.model);
  return { systemRole: spec.systemRole ?? profile.systemRole !== false, temperature: profile.temperature !== false };
}
