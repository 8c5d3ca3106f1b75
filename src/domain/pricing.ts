// Prices in USD per million tokens. A spec's own `pricing` wins; unknown models cost 0
// (reported as such) rather than failing a run.
import type { Pricing, ProviderSpec } from './schema';

export const DEFAULT_PRICES: Record<string, Pricing> = {
  'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 },
  'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 },
  'gpt-4.1': { inputPerMTok: 2, outputPerMTok: 8 },
  'gpt-4.1-mini': { inputPerMTok: 0.4, outputPerMTok: 1.6 },
  'gpt-4.1-nano': { inputPerMTok: 0.1, outputPerMTok: 0.4 },
  'gpt-5': { inputPerMTok: 1.25, outputPerMTok: 10 },
  'gpt-5-mini': { inputPerMTok: 0.25, outputPerMTok: 2 },
  'o4-mini': { inputPerMTok: 1.1, outputPerMTok: 4.4 },
  'claude-sonnet-4': { inputPerMTok: 3, outputPerMTok: 15 },
  'claude-haiku-4': { inputPerMTok: 1, outputPerMTok: 5 },
};

export function priceOf(spec: Pick<ProviderSpec, 'model' | 'pricing'>): Pricing {
  if (spec.pricing) return spec.pricing;
  // Match "openai/gpt-4o-mini" or "gpt-4o-mini-2024-07-18" to the table's base name.
  const bare = spec.model.split('/').pop() ?? spec.model;
  const key = Object.keys(DEFAULT_PRICES)
    .filter((k) => bare === k || bare.startsWith(`${k}-`))
    .sort((a, b) => b.length - a.length)[0];
  return key ? DEFAULT_PRICES[key] : { inputPerMTok: 0, outputPerMTok: 0 };
}

/** Cost in USD, rounded to 1e-9 so sums stay exact enough to compare. */
export function costOf(spec: Pick<ProviderSpec, 'model' | 'pricing'>, tokensIn: number, tokensOut: number): number {
  const p = priceOf(spec);
  return roundUsd((tokensIn * p.inputPerMTok + tokensOut * p.outputPerMTok) / 1e6);
}

export function roundUsd(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}
