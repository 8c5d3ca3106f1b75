// Which provider an attempt calls first, and why (issue 19 item 2): the one place provider
// order is decided, so that anything else that should weigh in (quota left, rate limits) hooks
// in here. Pure: the workflow asks it once per prompt, with the prompt's token count and the
// attempts that failed so far, and records the answer on the attempt.
//
// `strategy.mode: 'cost'` orders the providers by the estimated price of this call — prompt
// tokens × input price + expected output tokens × output price — cheapest first; providers
// without a known price go last, in the order given. `strategy.escalate: { after: N }` climbs a
// ladder (the given order, cheap → strong; in cost mode the price order): every N failed
// attempts start one rung higher. Within an attempt the providers after the starting one are
// fallbacks on errors, as in `sequential`: the stronger ones first, then the weaker, nearest first.
import { knownPrice } from './pricing';
import type { ProviderSpec } from './schema';

/**
 * Output tokens assumed for a call when its provider names none (`expectedOutputTokens` in the
 * registry entry): an edit-block answer to a one-function task is a few hundred tokens; a
 * provider's `maxTokens` is an upper bound, not an expectation. Never more than `maxTokens`.
 */
export const DEFAULT_EXPECTED_OUTPUT_TOKENS = 1_000;

export type RouteSpec = Pick<ProviderSpec, 'id' | 'model' | 'pricing' | 'maxTokens' | 'expectedOutputTokens'>;

/** One provider as the route saw it: its estimated price for this call, or none known. */
export interface RouteCandidate {
  provider: string;
  model: string;
  /** Estimated USD of this call; absent: no price is known (such providers go last). */
  estCostUsd?: number;
}

/** A provider the attempt called, and why it was called. */
export interface RouteStep {
  provider: string;
  model: string;
  reason: string;
}

/** An attempt's route, as its record keeps it. */
export interface RouteRecord {
  mode: 'cost' | 'sequential';
  /** Prompt tokens the estimates were made for. */
  promptTokens: number;
  /** The order the attempt tries its providers in (the starting one first). */
  order: RouteCandidate[];
  /** Escalation: failed attempts so far and the rung of the ladder this attempt starts on (0: the first). */
  escalation?: { failedAttempts: number; rung: number };
  /** Every provider called, in call order, with its reason. */
  tried: RouteStep[];
}

export interface RouteOptions {
  mode: 'cost' | 'sequential';
  promptTokens: number;
  /** strategy.escalate.after: failed attempts per rung. */
  escalateAfter?: number;
  failedAttempts: number;
}

export interface RoutePlan<T extends RouteSpec> {
  /** The providers in the order the attempt tries them. */
  providers: T[];
  /** Why the first is called. */
  firstReason: string;
  record: RouteRecord;
  /** Providers with no known price in cost mode (tried after the priced ones). */
  unpriced: T[];
}

export function expectedOutputTokens(spec: Pick<RouteSpec, 'maxTokens' | 'expectedOutputTokens'>): number {
  const expected = spec.expectedOutputTokens ?? DEFAULT_EXPECTED_OUTPUT_TOKENS;
  return spec.maxTokens === undefined ? expected : Math.min(expected, spec.maxTokens);
}

/** The estimated price of one call with a prompt of `promptTokens`, or undefined when no price is known. */
export function estimateCallUsd(spec: RouteSpec, promptTokens: number): number | undefined {
  const p = knownPrice(spec);
  if (!p) return undefined;
  return Math.round(((promptTokens * p.inputPerMTok + expectedOutputTokens(spec) * p.outputPerMTok) / 1e6) * 1e9) / 1e9;
}

/** Cheapest first (ties and the unpriced keep the given order), each with its estimate. */
export function costOrder<T extends RouteSpec>(providers: T[], promptTokens: number): { spec: T; estCostUsd?: number }[] {
  const priced = providers.map((spec, i) => ({ spec, i, estCostUsd: estimateCallUsd(spec, promptTokens) }));
  const rank = (x: { estCostUsd?: number }) => x.estCostUsd ?? Number.POSITIVE_INFINITY;
  return priced.sort((a, b) => rank(a) - rank(b) || a.i - b.i).map(({ spec, estCostUsd }) => (estCostUsd === undefined ? { spec } : { spec, estCostUsd }));
}

/** The rung an attempt starts on: one up per `after` failed attempts, at most the top. */
export function escalationRung(failedAttempts: number, after: number, rungs: number): number {
  return Math.max(0, Math.min(rungs - 1, Math.floor(failedAttempts / Math.max(1, after))));
}

/** From `rung`: the stronger ones upward, then the weaker ones downward (the nearest first). */
export function fromRung<T>(ladder: T[], rung: number): T[] {
  return [...ladder.slice(rung), ...ladder.slice(0, rung).reverse()];
}

/** The order an attempt tries its providers in, and why it starts where it does. */
export function planRoute<T extends RouteSpec>(providers: T[], opts: RouteOptions): RoutePlan<T> {
  const ladder = opts.mode === 'cost' ? costOrder(providers, opts.promptTokens) : providers.map((spec) => ({ spec, estCostUsd: estimateCallUsd(spec, opts.promptTokens) }));
  const rung = opts.escalateAfter ? escalationRung(opts.failedAttempts, opts.escalateAfter, ladder.length) : 0;
  const ordered = fromRung(ladder, rung);
  const unpriced = opts.mode === 'cost' ? ladder.filter((c) => c.estCostUsd === undefined).map((c) => c.spec) : [];
  const first = ordered[0];
  const firstReason =
    rung > 0
      ? `escalated after ${rung * opts.escalateAfter!} failed attempt${rung * opts.escalateAfter! === 1 ? '' : 's'}`
      : opts.mode !== 'cost'
        ? 'first in order'
        : first?.estCostUsd === undefined
          ? 'no price known for any provider: the order given'
          : 'cheapest';
  const record: RouteRecord = {
    mode: opts.mode,
    promptTokens: opts.promptTokens,
    order: ordered.map((c) => ({ provider: c.spec.id, model: c.spec.model, ...(c.estCostUsd === undefined ? {} : { estCostUsd: c.estCostUsd }) })),
    ...(opts.escalateAfter ? { escalation: { failedAttempts: opts.failedAttempts, rung } } : {}),
    tried: [],
  };
  return { providers: ordered.map((c) => c.spec), firstReason, record, unpriced };
}

/** Why a provider is called after the one before it in the attempt did not answer usably. */
export function fallbackReason(previous: { provider: string; family: string; message: string }): string {
  const message = previous.message.replace(/\s+/g, ' ').slice(0, 200);
  if (previous.family === 'cooldown') return `fallback: ${message}`;
  if (previous.family === 'schema_violation') return `fallback after an unreadable answer from ${previous.provider}: ${message}`;
  return `fallback after error ${previous.family} from ${previous.provider}: ${message}`;
}

/** Why a provider no price is known for comes last in cost mode (a warning on the result). */
export function unpricedNote(spec: Pick<RouteSpec, 'id' | 'model'>): string {
  return `strategy.mode cost: no price is known for provider ${spec.id} (model ${spec.model}); it is tried after the priced providers. Give it a price in the worker's registry (pricing: { inputPerMTok, outputPerMTok })`;
}
