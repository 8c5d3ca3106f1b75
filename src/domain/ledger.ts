// The task's ledger: call events, usage, and a budget that is reserved before each call and
// settled from the call's recorded result. Pure, so the workflow's accounting is replayable
// and unit-testable; parallel branches each reserve, so concurrency cannot overspend.
import { DEFAULT_OUTPUT_TOKENS } from './models';
import { costOf, knownPrice, roundUsd } from './pricing';
import type { CallEvent, ProviderSpec, Usage } from './schema';
import { addEstimated, emptyUsage, recordCall, recordShadowCall } from './usage';

/** Output tokens assumed for a reservation when the spec sets no maxTokens (runs whose
 *  providers were not resolved at start): the same default a resolved spec gets. */
export const DEFAULT_RESERVED_OUTPUT_TOKENS = DEFAULT_OUTPUT_TOKENS;

export interface BudgetLimits {
  maxCostUsd?: number;
  maxTokens?: number;
}

export interface Reservation {
  id: number;
  costUsd: number;
  tokens: number;
}

export type CallEventInput = Omit<CallEvent, 'costUsd'>;

export interface LedgerOptions {
  /**
   * Shadow calls are paid calls too: they are reserved before they go, and what they spent
   * counts against the budget (it stays reported apart, in `usage.shadow`). Off for runs
   * recorded before (their budgets ignored shadows, and replay must decide as they did).
   */
  shadowSpend?: boolean;
}

export class Ledger {
  readonly usage: Usage = emptyUsage();
  readonly events: CallEvent[] = [];
  private reserved = new Map<number, Reservation>();
  private nextId = 1;

  constructor(
    readonly limits: BudgetLimits,
    readonly options: LedgerOptions = {},
  ) {}

  /** The ledger a run before this one left (continue-as-new): its usage and every call event; nothing was in flight. */
  restore(from: { usage: Usage; events: CallEvent[] }): void {
    Object.assign(this.usage, from.usage);
    this.events.push(...from.events);
  }

  spentCostUsd(): number {
    const s = this.options.shadowSpend ? this.usage.shadow : undefined;
    return roundUsd(this.usage.costUsd + this.usage.estimatedCostUsd + (s ? s.costUsd + (s.estimatedCostUsd ?? 0) : 0));
  }

  spentTokens(): number {
    const s = this.options.shadowSpend ? this.usage.shadow : undefined;
    return this.usage.tokensIn + this.usage.tokensOut + (s ? s.tokensIn + s.tokensOut : 0);
  }

  reservedCostUsd(): number {
    return roundUsd([...this.reserved.values()].reduce((s, r) => s + r.costUsd, 0));
  }

  /** Reserves the worst case of one call (prompt + maxTokens), or says which limit refuses it. */
  reserve(spec: ProviderSpec, estTokensIn: number, role: 'primary' | 'shadow' = 'primary'): Reservation | { refused: string } {
    const tokens = estTokensIn + (spec.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
    const costUsd = costOf(spec, estTokensIn, spec.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
    const { maxCostUsd, maxTokens } = this.limits;
    if (maxCostUsd !== undefined) {
      const after = roundUsd(this.spentCostUsd() + this.reservedCostUsd() + costUsd);
      if (after > maxCostUsd) {
        return {
          refused: `maxCostUsd $${maxCostUsd} would be exceeded: spent $${this.spentCostUsd().toFixed(6)}, in flight $${this.reservedCostUsd().toFixed(6)}, a call to ${spec.id}${role === 'shadow' ? ' (shadow)' : ''} reserves $${costUsd.toFixed(6)}`,
        };
      }
    }
    if (maxTokens !== undefined) {
      const inFlight = [...this.reserved.values()].reduce((s, r) => s + r.tokens, 0);
      if (this.spentTokens() + inFlight + tokens > maxTokens) {
        return {
          refused: `maxTokens ${maxTokens} would be exceeded: spent ${this.spentTokens()}, in flight ${inFlight}, a call to ${spec.id}${role === 'shadow' ? ' (shadow)' : ''} reserves ${tokens}`,
        };
      }
    }
    const r = { id: this.nextId++, costUsd, tokens };
    this.reserved.set(r.id, r);
    return r;
  }

  /** A call finished (answer or typed failure): its real usage replaces the reservation. */
  settle(r: Reservation | undefined, spec: ProviderSpec, e: CallEventInput): CallEvent {
    if (r) this.reserved.delete(r.id);
    const event: CallEvent = { ...e, costUsd: costOf(spec, e.tokensIn, e.tokensOut, e.tokensCached) };
    this.events.push(event);
    if (e.role === 'shadow') recordShadowCall(this.usage, { ...event, provider: e.provider });
    else recordCall(this.usage, { ...event, errorFamily: e.errorFamily });
    return event;
  }

  /**
   * A call whose answer was lost (its worker died mid-call): it may have been paid for, so
   * the reservation is booked as estimated spend, never as known tokens.
   */
  lost(r: Reservation | undefined, e: CallEventInput): CallEvent {
    if (r) this.reserved.delete(r.id);
    return this.bookEstimated(e, r?.costUsd ?? 0);
  }

  /**
   * A call cut off mid-answer (the stream ended before the model finished): the tokens it got
   * that far (prompt and received text, counted by the worker's tokenizer: the provider never
   * reported usage) are priced and booked as ESTIMATED spend — not known, since the provider
   * may have generated (and billed) more past the cut than arrived. The tokens count too.
   */
  partial(r: Reservation | undefined, spec: ProviderSpec, e: CallEventInput): CallEvent {
    if (r) this.reserved.delete(r.id);
    return this.bookEstimated(e, costOf(spec, e.tokensIn, e.tokensOut));
  }

  /**
   * A call booked as estimated spend (lost or cut): in the task's totals and its provider's, or
   * in the shadow ledger only (never the task's totals), where its estimate counts against the
   * budget that reserves shadows (runs before held no reservation).
   */
  private bookEstimated(e: CallEventInput, estimate: number): CallEvent {
    const event: CallEvent = { ...e, costUsd: 0, estimatedCostUsd: estimate };
    this.events.push(event);
    if (e.role === 'shadow') {
      recordShadowCall(this.usage, event);
      if (estimate) this.usage.shadow!.estimatedCostUsd = roundUsd((this.usage.shadow!.estimatedCostUsd ?? 0) + estimate);
      return event;
    }
    this.usage.estimatedCostUsd = roundUsd(this.usage.estimatedCostUsd + estimate);
    recordCall(this.usage, { ...event, errorFamily: e.errorFamily });
    addEstimated(this.usage, e.provider, e.model, estimate);
    return event;
  }

  /** Drops a reservation without spend (refused before sending, or nothing was sent). */
  release(r: Reservation | undefined): void {
    if (r) this.reserved.delete(r.id);
  }
}

/**
 * A child's share of what is left: (limit − used − held by running siblings) split over the
 * lanes still to fill. Allotments never add up to more than the limit, so a tree of
 * concurrent children cannot overspend its root's budget.
 */
export function allotment(limit: number | undefined, used: number, held: number, lanes: number): number | undefined {
  if (limit === undefined) return undefined;
  return Math.max(0, roundUsd((limit - used - held) / Math.max(1, lanes)));
}

/** Where a task's tree cost bound comes from: its own `limits.maxCostUsd`, or the worker's default. */
export interface TreeBound {
  usd: number;
  source: 'limits.maxCostUsd' | 'WEAVER_DEFAULT_TREE_COST_USD';
}

/**
 * What one subtask needs before it can make a single call: the reservation of one call to the
 * cheapest `primary` provider (prompt + maxTokens) and of each shadow, the least a child's allotment must hold or its
 * first call is refused. A floor, so a decomposition refused by it could never have run whole.
 */
export function subtaskFloorUsd(primary: ProviderSpec[], shadows: ProviderSpec[], estTokensIn: number): number {
  const one = (p: ProviderSpec) => costOf(p, estTokensIn, p.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
  const priced = primary.filter((p) => knownPrice(p));
  // Each attempt reserves its shadows too, before its primary call.
  return roundUsd((priced.length ? Math.min(...priced.map(one)) : 0) + shadows.reduce((s, p) => s + one(p), 0));
}

/**
 * Why a decomposition into `subtasks` children is refused under the tree's cost bound, with
 * the figures, or undefined when the floor of every child (one call each) fits in what is left.
 */
export function decompositionRefusal(bound: TreeBound, spentUsd: number, subtasks: number, floorUsd: number): string | undefined {
  const left = roundUsd(bound.usd - spentUsd);
  const needed = roundUsd(subtasks * floorUsd);
  if (needed <= left) return undefined;
  const fix = bound.source === 'WEAVER_DEFAULT_TREE_COST_USD' ? ' (the worker\'s default for a task without limits.maxCostUsd; set limits.maxCostUsd to choose your own, or decomposition: never)' : '';
  return (
    `decomposition into ${subtasks} subtask(s) refused: they need at least $${needed.toFixed(6)} (${subtasks} × $${floorUsd.toFixed(6)}, one call each), ` +
    `but $${Math.max(0, left).toFixed(6)} is left of the tree's cost bound $${bound.usd} from ${bound.source}${fix} after $${spentUsd.toFixed(6)} spent`
  );
}
