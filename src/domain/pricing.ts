// Prices in USD per million tokens. A spec's own `pricing` (the worker's registry, or an inline
// endpoint's) wins, then this table. A model priced by neither costs 0 — which a budget cannot
// live with: a task with `maxCostUsd` and such a model is refused before it starts.
import type { Pricing, ProviderSpec } from './schema';

// cachedInputPerMTok: the providers' published prompt-cache prices (OpenAI: 50% of input for
// gpt-4o, 25% for gpt-4.1 and o4-mini, 10% for gpt-5; Anthropic: a cache read is 10% of input).
export const DEFAULT_PRICES: Record<string, Pricing> = {
  'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10, cachedInputPerMTok: 1.25 },
  'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6, cachedInputPerMTok: 0.075 },
  'gpt-4.1': { inputPerMTok: 2, outputPerMTok: 8, cachedInputPerMTok: 0.5 },
  'gpt-4.1-mini': { inputPerMTok: 0.4, outputPerMTok: 1.6, cachedInputPerMTok: 0.1 },
  'gpt-4.1-nano': { inputPerMTok: 0.1, outputPerMTok: 0.4, cachedInputPerMTok: 0.025 },
  'gpt-5': { inputPerMTok: 1.25, outputPerMTok: 10, cachedInputPerMTok: 0.125 },
  'gpt-5-mini': { inputPerMTok: 0.25, outputPerMTok: 2, cachedInputPerMTok: 0.025 },
  'o4-mini': { inputPerMTok: 1.1, outputPerMTok: 4.4, cachedInputPerMTok: 0.275 },
  'claude-sonnet-4': { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3 },
  'claude-haiku-4': { inputPerMTok: 1, outputPerMTok: 5, cachedInputPerMTok: 0.1 },
};

export function priceOf(spec: Pick<ProviderSpec, 'model' | 'pricing'>): Pricing {
  return knownPrice(spec) ?? { inputPerMTok: 0, outputPerMTok: 0 };
}

/** The spec's own price, else the table's for its model; undefined when neither knows it. */
export function knownPrice(spec: Pick<ProviderSpec, 'model' | 'pricing'>): Pricing | undefined {
  if (spec.pricing) return spec.pricing;
  // Match "openai/gpt-4o-mini" or "gpt-4o-mini-2024-07-18" to the table's base name.
  const bare = spec.model.split('/').pop() ?? spec.model;
  const key = Object.keys(DEFAULT_PRICES)
    .filter((k) => bare === k || bare.startsWith(`${k}-`))
    .sort((a, b) => b.length - a.length)[0];
  return key ? DEFAULT_PRICES[key] : undefined;
}

/** Ids of the providers whose model has no known price (neither their own pricing nor the table's). */
export function unpricedProviders(providers: Pick<ProviderSpec, 'id' | 'model' | 'pricing'>[]): string[] {
  return providers.filter((p) => !knownPrice(p)).map((p) => p.id);
}

/**
 * Why a budget cannot be enforced for these providers, or undefined when it can (no
 * `maxCostUsd`, or every provider priced). Shadow providers are left out: they are never
 * charged to the budget. Unpriced calls would cost $0 and the budget would never stop them.
 */
export function unpricedBudgetError(
  providers: Pick<ProviderSpec, 'id' | 'model' | 'pricing'>[],
  opts: { maxCostUsd?: number; shadow?: string[] },
): string | undefined {
  if (opts.maxCostUsd === undefined) return undefined;
  const shadow = new Set(opts.shadow ?? []);
  const unpriced = providers.filter((p) => !shadow.has(p.id) && !knownPrice(p));
  if (!unpriced.length) return undefined;
  const which = unpriced.map((p) => `${p.id} (model ${p.model})`).join(', ');
  return (
    `limits.maxCostUsd is $${opts.maxCostUsd} but no price is known for ${which}: its calls would count as $0 and the budget could not stop them. ` +
    `Give the provider a price (pricing: { inputPerMTok, outputPerMTok } — in the worker's registry, WEAVER_PROVIDERS, or on an inline endpoint in the task), ` +
    `use a model Weaver knows the price of, or drop maxCostUsd (maxTokens still bounds the run)`
  );
}

/**
 * Cost in USD, rounded to 1e-9 so sums stay exact enough to compare. `tokensCached` (part of
 * `tokensIn`) at the cached-input price where one is known, else at the input price.
 */
export function costOf(spec: Pick<ProviderSpec, 'model' | 'pricing'>, tokensIn: number, tokensOut: number, tokensCached = 0): number {
  const p = priceOf(spec);
  const cached = Math.min(Math.max(0, tokensCached), tokensIn);
  const input = (tokensIn - cached) * p.inputPerMTok + cached * (p.cachedInputPerMTok ?? p.inputPerMTok);
  return roundUsd((input + tokensOut * p.outputPerMTok) / 1e6);
}

export function roundUsd(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}
