// The task's ledger: call events, usage, and a budget that is reserved before each call and
// settled from the call's recorded result. Pure, so the workflow's accounting is replayable
// and unit-testable; parallel branches each reserve, so concurrency cannot overspend.
import { DEFAULT_OUTPUT_TOKENS } from './models';
import { costOf, roundUsd } from './pricing';
import type { CallEvent, ProviderSpec, Usage } from './schema';
import { emptyUsage, recordCall, recordShadowCall } from './usage';

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

export class Ledger {
  readonly usage: Usage = emptyUsage();
  readonly events: CallEvent[] = [];
  private reserved = new Map<number, Reservation>();
  private nextId = 1;

  constructor(readonly limits: BudgetLimits) {}

  spentCostUsd(): number {
    return roundUsd(this.usage.costUsd + this.usage.estimatedCostUsd);
  }

  spentTokens(): number {
    return this.usage.tokensIn + this.usage.tokensOut;
  }

  reservedCostUsd(): number {
    return roundUsd([...this.reserved.values()].reduce((s, r) => s + r.costUsd, 0));
  }

  /** Reserves the worst case of one call (prompt + maxTokens), or says which limit refuses it. */
  reserve(spec: ProviderSpec, estTokensIn: number): Reservation | { refused: string } {
    const tokens = estTokensIn + (spec.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
    const costUsd = costOf(spec, estTokensIn, spec.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
    const { maxCostUsd, maxTokens } = this.limits;
    if (maxCostUsd !== undefined) {
      const after = roundUsd(this.spentCostUsd() + this.reservedCostUsd() + costUsd);
      if (after > maxCostUsd) {
        return {
          refused: `maxCostUsd $${maxCostUsd} would be exceeded: spent $${this.spentCostUsd().toFixed(6)}, in flight $${this.reservedCostUsd().toFixed(6)}, a call to ${spec.id} reserves $${costUsd.toFixed(6)}`,
        };
      }
    }
    if (maxTokens !== undefined) {
      const inFlight = [...this.reserved.values()].reduce((s, r) => s + r.tokens, 0);
      if (this.spentTokens() + inFlight + tokens > maxTokens) {
        return {
          refused: `maxTokens ${maxTokens} would be exceeded: spent ${this.spentTokens()}, in flight ${inFlight}, a call to ${spec.id} reserves ${tokens}`,
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
    const event: CallEvent = { ...e, costUsd: costOf(spec, e.tokensIn, e.tokensOut) };
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
    const estimate = r?.costUsd ?? 0;
    const event: CallEvent = { ...e, costUsd: 0, estimatedCostUsd: estimate };
    this.events.push(event);
    if (e.role === 'shadow') {
      // Shadow calls hold no reservation; a lost one is only counted in the shadow ledger.
      recordShadowCall(this.usage, event);
      return event;
    }
    this.usage.estimatedCostUsd = roundUsd(this.usage.estimatedCostUsd + estimate);
    recordCall(this.usage, { ...event, errorFamily: e.errorFamily });
    const p = this.usage.byProvider[e.provider];
    p.estimatedCostUsd = roundUsd((p.estimatedCostUsd ?? 0) + estimate);
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
