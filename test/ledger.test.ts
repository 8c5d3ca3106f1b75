// The task ledger (reserve → settle / lost / release, remaining, allotment) and provider
// cooldowns: pure domain code, no Temporal.
import { coolingUntil, DEFAULT_COOLDOWN, noteFailure, noteSuccess, type CooldownSettings, type CooldownState } from '../src/domain/cooldown';
import { allotment, decompositionRefusal, DEFAULT_RESERVED_OUTPUT_TOKENS, Ledger, subtaskFloorUsd, type CallEventInput, type Reservation } from '../src/domain/ledger';
import { DEFAULT_TREE_COST_USD, resolveSettings, treeCostFor } from '../src/domain/settings';
import { LimitsSchema } from '../src/domain/schema';
import { mergeUsage, spentUsd } from '../src/domain/usage';
import { roundUsd } from '../src/domain/pricing';
import type { ProviderSpec } from '../src/domain/schema';

// $1 per million tokens in, $2 per million out: easy arithmetic.
const spec = (extra: Partial<ProviderSpec> = {}): ProviderSpec => ({ id: 'p', model: 'scripted', pricing: { inputPerMTok: 1, outputPerMTok: 2 }, ...extra });

const event = (extra: Partial<CallEventInput> = {}): CallEventInput => ({
  provider: 'p',
  model: 'scripted',
  strategy: 'sequential',
  role: 'primary',
  attempt: 1,
  startedAt: '2024-01-01T00:00:00.000Z',
  latencyMs: 100,
  tokensIn: 0,
  tokensOut: 0,
  outcome: 'ok',
  ...extra,
});

function granted(r: Reservation | { refused: string }): Reservation {
  if ('refused' in r) throw new Error(`expected a reservation, got a refusal: ${r.refused}`);
  return r;
}

function refusal(r: Reservation | { refused: string }): string {
  if (!('refused' in r)) throw new Error(`expected a refusal, got reservation ${JSON.stringify(r)}`);
  return r.refused;
}

/** A tiny deterministic PRNG (mulberry32) so a failing property run can be reproduced from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Ledger.reserve', () => {
  it('reserves the worst case: estimated prompt tokens plus maxTokens, priced by the spec', () => {
    const l = new Ledger({ maxCostUsd: 1 });
    const r = granted(l.reserve(spec({ maxTokens: 1000 }), 500));
    expect(r.tokens).toBe(1500);
    // 500 in × $1/M + 1000 out × $2/M
    expect(r.costUsd).toBe(0.0025);
    expect(l.reservedCostUsd()).toBe(0.0025);
  });

  it(`assumes ${DEFAULT_RESERVED_OUTPUT_TOKENS} output tokens when the spec sets no maxTokens`, () => {
    expect(DEFAULT_RESERVED_OUTPUT_TOKENS).toBe(4096);
    const r = granted(new Ledger({}).reserve(spec(), 1000));
    expect(r.tokens).toBe(1000 + 4096);
    expect(r.costUsd).toBe(roundUsd((1000 * 1 + 4096 * 2) / 1e6));
  });

  it("prices by the default table when the spec has no pricing (gpt-4o-mini: $0.15 / $0.60 per M)", () => {
    const r = granted(new Ledger({}).reserve({ id: 'mini', model: 'openai/gpt-4o-mini-2024-07-18', maxTokens: 1000 }, 1000));
    expect(r.costUsd).toBe(0.00075);
  });

  it('gives each reservation its own id', () => {
    const l = new Ledger({});
    const ids = [1, 2, 3].map(() => granted(l.reserve(spec(), 10)).id);
    expect(new Set(ids).size).toBe(3);
  });

  it('parallel reservations add up: a budget for two calls refuses the third', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 0.005 }); // exactly two reservations of $0.0025
    const a = granted(l.reserve(s, 500));
    const b = granted(l.reserve(s, 500));
    const third = l.reserve(s, 500);
    const msg = refusal(third);
    expect(l.reservedCostUsd()).toBe(0.005);
    // The message names the limit, the spend, what is in flight and what the call reserves.
    expect(msg).toContain('maxCostUsd');
    expect(msg).toContain('$0.005');
    expect(msg).toContain('spent $0.000000');
    expect(msg).toContain('in flight $0.005000');
    expect(msg).toContain('reserves $0.002500');
    expect(msg).toContain('p');
    // The refusal holds nothing; releasing one reservation makes room again.
    expect(l.reservedCostUsd()).toBe(0.005);
    l.release(a);
    granted(l.reserve(s, 500));
    expect(refusal(l.reserve(s, 500))).toContain('maxCostUsd');
    l.release(b);
  });

  it('counts spend as well as reservations against maxCostUsd', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 0.005 });
    const r = granted(l.reserve(s, 500));
    l.settle(r, s, event({ tokensIn: 1000, tokensOut: 1000 })); // $0.003 spent
    expect(l.spentCostUsd()).toBe(0.003);
    const msg = refusal(l.reserve(s, 500)); // 0.003 + 0.0025 > 0.005
    expect(msg).toContain('spent $0.003000');
    expect(msg).toContain('in flight $0.000000');
    expect(msg).toContain('reserves $0.002500');
  });

  it('allows a reservation that lands exactly on the limit', () => {
    const s = spec({ maxTokens: 1000 });
    expect('refused' in new Ledger({ maxCostUsd: 0.0025 }).reserve(s, 500)).toBe(false);
    expect('refused' in new Ledger({ maxCostUsd: 0.0024999 }).reserve(s, 500)).toBe(true);
    expect('refused' in new Ledger({ maxTokens: 1500 }).reserve(s, 500)).toBe(false);
    expect('refused' in new Ledger({ maxTokens: 1499 }).reserve(s, 500)).toBe(true);
  });

  it('refuses by maxTokens, naming the tokens spent, in flight and reserved', () => {
    const l = new Ledger({ maxTokens: 10_000 });
    granted(l.reserve(spec(), 1000)); // 5096 tokens
    const msg = refusal(l.reserve(spec(), 1000));
    expect(msg).toContain('maxTokens 10000');
    expect(msg).toContain('spent 0');
    expect(msg).toContain('in flight 5096');
    expect(msg).toContain('reserves 5096');
  });

  it('three parallel reservations cannot pass a token budget for two', () => {
    const s = spec({ maxTokens: 900 });
    const l = new Ledger({ maxTokens: 2000 }); // two of 1000 fit
    const rs = [l.reserve(s, 100), l.reserve(s, 100), l.reserve(s, 100)];
    expect(rs.map((r) => 'refused' in r)).toEqual([false, false, true]);
  });

  it('never refuses without limits', () => {
    const l = new Ledger({});
    for (let i = 0; i < 100; i++) granted(l.reserve(spec(), 1_000_000));
    expect(l.reservedCostUsd()).toBe(roundUsd(100 * ((1_000_000 + 4096 * 2) / 1e6)));
  });
});

describe('Ledger.lost for a shadow call', () => {
  it('counts it in the shadow ledger only, never in the task totals', () => {
    const l = new Ledger({});
    l.lost(undefined, event({ provider: 'shadow-p', role: 'shadow', outcome: 'lost', errorFamily: 'timeout', tokensIn: 0, tokensOut: 0 }));
    expect(l.usage.calls).toBe(0);
    expect(l.usage.byProvider['shadow-p']).toBeUndefined();
    expect(l.usage.shadow?.calls).toBe(1);
  });
});

describe('Ledger.settle', () => {
  it('releases the reservation and books the real tokens and cost, recording the event', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 1 });
    const r = granted(l.reserve(s, 500));
    const e = l.settle(r, s, event({ tokensIn: 300, tokensOut: 200, latencyMs: 250 }));
    expect(e.costUsd).toBe(0.0007); // 300 × 1 + 200 × 2 per M
    expect(l.reservedCostUsd()).toBe(0);
    expect(l.usage).toMatchObject({ calls: 1, tokensIn: 300, tokensOut: 200, costUsd: 0.0007, estimatedCostUsd: 0 });
    expect(l.usage.byProvider.p).toMatchObject({ calls: 1, tokensIn: 300, tokensOut: 200, costUsd: 0.0007, meanLatencyMs: 250 });
    expect(l.events).toEqual([e]);
    expect(e).toMatchObject({ provider: 'p', role: 'primary', tokensIn: 300, tokensOut: 200, outcome: 'ok' });
    expect(l.spentCostUsd()).toBe(0.0007);
    expect(l.spentTokens()).toBe(500);
  });

  it('books a failed call (no tokens) with its error family', () => {
    const s = spec();
    const l = new Ledger({});
    l.settle(granted(l.reserve(s, 10)), s, event({ outcome: 'error', errorFamily: 'rate_limit' }));
    expect(l.usage.calls).toBe(1);
    expect(l.usage.costUsd).toBe(0);
    expect(l.usage.byProvider.p.failures).toEqual({ rate_limit: 1 });
    expect(l.reservedCostUsd()).toBe(0);
  });

  it('books a shadow call under usage.shadow, not in the totals or the breakdown', () => {
    const s = spec({ id: 'shadow-p' });
    const l = new Ledger({});
    const e = l.settle(undefined, s, event({ provider: 'shadow-p', role: 'shadow', tokensIn: 1000, tokensOut: 500 }));
    expect(e.costUsd).toBe(0.002);
    expect(l.usage.shadow).toEqual({ calls: 1, tokensIn: 1000, tokensOut: 500, costUsd: 0.002 });
    expect(l.usage).toMatchObject({ calls: 0, tokensIn: 0, tokensOut: 0, costUsd: 0 });
    expect(l.usage.byProvider).toEqual({});
    // The event is still recorded (shadow comparison reads it).
    expect(l.events).toHaveLength(1);
  });

  it('settling one of two reservations releases only that one', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({});
    const a = granted(l.reserve(s, 500));
    granted(l.reserve(s, 500));
    l.settle(a, s, event());
    expect(l.reservedCostUsd()).toBe(0.0025);
  });
});

describe('Ledger.lost', () => {
  it('books the reservation as estimated spend, no tokens, and it counts toward spentCostUsd', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 0.005 });
    const r = granted(l.reserve(s, 500));
    const e = l.lost(r, event({ outcome: 'lost', errorFamily: 'timeout' }));
    expect(e).toMatchObject({ costUsd: 0, estimatedCostUsd: 0.0025, tokensIn: 0, tokensOut: 0, outcome: 'lost' });
    expect(l.reservedCostUsd()).toBe(0);
    expect(l.usage).toMatchObject({ estimatedCostUsd: 0.0025, costUsd: 0, tokensIn: 0, tokensOut: 0, calls: 1 });
    expect(l.usage.byProvider.p.failures).toEqual({ timeout: 1 });
    expect(l.spentCostUsd()).toBe(0.0025);
    expect(l.spentTokens()).toBe(0);
    expect(l.events).toEqual([e]);
    // Lost spend still limits later calls: 0.0025 lost + 0.0025 new = the limit, a third is refused.
    granted(l.reserve(s, 500));
    expect(refusal(l.reserve(s, 500))).toContain('spent $0.002500');
  });

  it('estimates nothing when there was no reservation', () => {
    const l = new Ledger({});
    const e = l.lost(undefined, event({ outcome: 'lost' }));
    expect(e.estimatedCostUsd).toBe(0);
    expect(l.usage.estimatedCostUsd).toBe(0);
  });
});

describe('Ledger.partial (a stream cut mid-answer)', () => {
  it('books the tokens received so far, priced, as estimated spend; they count toward spend and tokens', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 0.004 });
    const r = granted(l.reserve(s, 500));
    const e = l.partial(r, s, event({ outcome: 'cut', errorFamily: 'network', tokensIn: 500, tokensOut: 250 }));
    // 500 × $1/M + 250 × $2/M, not the reservation's 0.0025 and never claimed as known cost.
    expect(e).toMatchObject({ costUsd: 0, estimatedCostUsd: 0.001, tokensIn: 500, tokensOut: 250, outcome: 'cut' });
    expect(l.reservedCostUsd()).toBe(0);
    expect(l.usage).toMatchObject({ costUsd: 0, estimatedCostUsd: 0.001, tokensIn: 500, tokensOut: 250, calls: 1 });
    expect(l.usage.byProvider.p).toMatchObject({ estimatedCostUsd: 0.001, failures: { network: 1 } });
    expect(l.spentCostUsd()).toBe(0.001);
    expect(l.spentTokens()).toBe(750);
    // 0.001 spent + 0.0025 reserved fits 0.004; a second reservation on top does not.
    granted(l.reserve(s, 500));
    expect(refusal(l.reserve(s, 500))).toContain('spent $0.001000');
  });

  it("a shadow's cut call goes to the shadow ledger, with its estimate", () => {
    const s = spec({ id: 'sh' });
    const l = new Ledger({}, { shadowSpend: true });
    l.partial(undefined, s, event({ provider: 'sh', role: 'shadow', outcome: 'cut', tokensIn: 1000, tokensOut: 1000 }));
    expect(l.usage.shadow).toEqual({ calls: 1, tokensIn: 1000, tokensOut: 1000, costUsd: 0, estimatedCostUsd: 0.003 });
    expect(l.usage).toMatchObject({ calls: 0, costUsd: 0, estimatedCostUsd: 0 });
    expect(l.spentCostUsd()).toBe(0.003);
  });
});

describe('shadow spend (LedgerOptions.shadowSpend)', () => {
  const sh = spec({ id: 'sh', maxTokens: 1000 });
  it('counts what shadows spent against the budget only where shadows are reserved (runs before did not)', () => {
    for (const shadowSpend of [true, false]) {
      const l = new Ledger({ maxCostUsd: 0.003 }, { shadowSpend });
      l.settle(undefined, sh, event({ provider: 'sh', role: 'shadow', tokensIn: 1000, tokensOut: 500 }));
      expect(l.usage.costUsd).toBe(0); // the totals stay the primary calls' in both
      expect(l.spentCostUsd()).toBe(shadowSpend ? 0.002 : 0);
      expect(l.spentTokens()).toBe(shadowSpend ? 1500 : 0);
      // A primary call reserving 0.0015 fits 0.003 only when the shadow's 0.002 is not counted.
      const r = l.reserve(spec({ maxTokens: 500 }), 500);
      expect('refused' in r).toBe(shadowSpend);
    }
  });

  it('a shadow reservation is refused by name, and a lost shadow books its reservation as estimated shadow spend', () => {
    const l = new Ledger({ maxCostUsd: 0.004 }, { shadowSpend: true });
    const primary = granted(l.reserve(spec({ maxTokens: 1000 }), 500));
    expect(refusal(l.reserve(sh, 1000, 'shadow'))).toMatch(/a call to sh \(shadow\) reserves \$0\.003000/);
    l.release(primary);
    const r = granted(l.reserve(sh, 500, 'shadow'));
    l.lost(r, event({ provider: 'sh', role: 'shadow', outcome: 'lost', errorFamily: 'timeout' }));
    expect(l.usage.shadow).toMatchObject({ calls: 1, estimatedCostUsd: 0.0025 });
    expect(l.spentCostUsd()).toBe(0.0025);
  });

  it('spentUsd and mergeUsage carry shadow estimates (a child\'s spend as its parent counts it)', () => {
    const l = new Ledger({}, { shadowSpend: true });
    l.settle(undefined, sh, event({ provider: 'sh', role: 'shadow', tokensIn: 1000, tokensOut: 0 }));
    l.partial(undefined, sh, event({ provider: 'sh', role: 'shadow', outcome: 'cut', tokensIn: 1000, tokensOut: 0 }));
    const merged = mergeUsage(l.usage, l.usage);
    expect(merged.shadow).toMatchObject({ calls: 4, costUsd: 0.002, estimatedCostUsd: 0.002 });
    expect(spentUsd(merged, true)).toBe(0.004);
    expect(spentUsd(merged, false)).toBe(0);
  });
});

describe('the tree cost bound (decomposition)', () => {
  const p = spec({ maxTokens: 4000 });
  it('a subtask needs at least one call of the cheapest primary provider, plus each shadow', () => {
    const cheap = spec({ id: 'cheap', maxTokens: 1000 });
    // 1000 in × $1/M + 4000 out × $2/M = 0.009; the cheap one 0.001 + 0.002 = 0.003.
    expect(subtaskFloorUsd([p], [], 1000)).toBe(0.009);
    expect(subtaskFloorUsd([p, cheap], [], 1000)).toBe(0.003);
    expect(subtaskFloorUsd([cheap], [p], 1000)).toBe(0.012);
    // An unpriced primary does not make the floor zero when a priced one is there.
    expect(subtaskFloorUsd([spec({ id: 'free', model: 'qwen2.5-coder:14b', pricing: undefined }), p], [], 1000)).toBe(0.009);
  });

  it('refuses a decomposition whose children cannot each make one call, naming every figure', () => {
    const bound = { usd: 0.03, source: 'WEAVER_DEFAULT_TREE_COST_USD' as const };
    const why = decompositionRefusal(bound, 0.004, 3, 0.009);
    expect(why).toBe(
      'decomposition into 3 subtask(s) refused: they need at least $0.027000 (3 × $0.009000, one call each), but $0.026000 is left of the tree\'s cost bound $0.03 from WEAVER_DEFAULT_TREE_COST_USD' +
        " (the worker's default for a task without limits.maxCostUsd; set limits.maxCostUsd to choose your own, or decomposition: never) after $0.004000 spent",
    );
    // Exactly what is left is enough; one fewer child fits.
    expect(decompositionRefusal(bound, 0.003, 3, 0.009)).toBeUndefined();
    expect(decompositionRefusal(bound, 0.004, 2, 0.009)).toBeUndefined();
    // Overspent already: nothing is left, shown as $0.
    expect(decompositionRefusal(bound, 0.05, 1, 0.001)).toContain('but $0.000000 is left');
  });

  it(`applies the worker's default ($${DEFAULT_TREE_COST_USD} unless set) to a task that may decompose, has no maxCostUsd and only priced providers`, () => {
    const limits = LimitsSchema.parse({});
    expect(treeCostFor(undefined, limits, [p], 2)).toBe(2);
    expect(treeCostFor('auto', limits, [p], 2)).toBe(2);
    expect(treeCostFor('always', limits, [p], 2)).toBe(2);
    expect(treeCostFor('never', limits, [p], 2)).toBeUndefined();
    expect(treeCostFor('auto', LimitsSchema.parse({ maxCostUsd: 1 }), [p], 2)).toBeUndefined();
    expect(treeCostFor('auto', LimitsSchema.parse({ maxDepth: 0 }), [p], 2)).toBeUndefined();
    expect(treeCostFor('auto', limits, [p], 0)).toBeUndefined();
    expect(treeCostFor('auto', limits, [p, { id: 'q', model: 'qwen2.5-coder:14b' }], 2)).toBeUndefined();
    // Resolved once into the run's settings (what result.settings shows).
    expect(resolveSettings({}, [p]).treeCostUsd).toBe(DEFAULT_TREE_COST_USD);
    expect(resolveSettings({ decomposition: 'auto' }, [p], { defaultTreeCostUsd: 0.5 }).treeCostUsd).toBe(0.5);
    expect('treeCostUsd' in resolveSettings({ limits: { maxCostUsd: 1 } }, [p])).toBe(false);
  });
});

describe('Ledger.release', () => {
  it('release drops a reservation without spend; releasing twice or undefined is harmless', () => {
    const s = spec({ maxTokens: 1000 });
    const l = new Ledger({ maxCostUsd: 0.0025 });
    const r = granted(l.reserve(s, 500));
    expect('refused' in l.reserve(s, 500)).toBe(true);
    l.release(r);
    l.release(r);
    l.release(undefined);
    expect(l.reservedCostUsd()).toBe(0);
    expect(l.spentCostUsd()).toBe(0);
    expect(l.events).toHaveLength(0);
    expect(l.usage.calls).toBe(0);
    granted(l.reserve(s, 500));
  });
});

describe('allotment(limit, used, held, lanes)', () => {
  it('is undefined without a limit', () => {
    expect(allotment(undefined, 5, 5, 2)).toBeUndefined();
  });

  it('splits what is left (limit − used − held) over the lanes', () => {
    expect(allotment(1, 0, 0, 1)).toBe(1);
    expect(allotment(1, 0, 0, 4)).toBe(0.25);
    expect(allotment(1, 0.2, 0.3, 2)).toBe(0.25);
    expect(allotment(10_000, 1000, 3000, 3)).toBe(2000);
  });

  it('treats zero or negative lanes as one lane', () => {
    expect(allotment(1, 0.5, 0, 0)).toBe(0.5);
    expect(allotment(1, 0.5, 0, -3)).toBe(0.5);
  });

  it('is never negative, even when spend and holdings exceed the limit', () => {
    expect(allotment(1, 0.8, 0.5, 2)).toBe(0);
    expect(allotment(1, 2, 0, 1)).toBe(0);
    expect(allotment(0, 0, 0, 3)).toBe(0);
    expect(Object.is(allotment(1, 1, 0, 1), 0)).toBe(true);
  });

  /**
   * Simulates a parent handing out allotments to concurrent children: each step either allots
   * to a new child (lanes as the workflow computes them) or settles a running child, which
   * spends at most its allotment. Returns the first step where outstanding + spent > limit.
   */
  function findOverspend(
    allot: typeof allotment,
    seed: number,
    limit: number,
    steps: number,
  ): { step: number; outstanding: number; spent: number } | undefined {
    const rand = rng(seed);
    const held = new Map<number, number>();
    let spent = 0;
    let nextChild = 0;
    const concurrency = 1 + Math.floor(rand() * 4);
    const children = 1 + Math.floor(rand() * 12);
    for (let step = 0; step < steps; step++) {
      const canStart = held.size < concurrency && nextChild < children;
      if (canStart && (held.size === 0 || rand() < 0.5)) {
        const heldSum = [...held.values()].reduce((s, v) => s + v, 0);
        const lanes = Math.min(concurrency - held.size, children - nextChild);
        const a = allot(limit, spent, heldSum, lanes) ?? Infinity;
        held.set(nextChild++, a);
      } else if (held.size) {
        const ids = [...held.keys()];
        const id = ids[Math.floor(rand() * ids.length)];
        const a = held.get(id) ?? 0;
        // A child spends some, all, or none of its allotment.
        const r = rand();
        spent += r < 0.2 ? 0 : r < 0.5 ? a : a * rand();
        held.delete(id);
      } else {
        break;
      }
      const outstanding = [...held.values()].reduce((s, v) => s + v, 0);
      // Allotments are rounded to 1e-9 USD: allow that rounding, nothing more.
      if (outstanding + spent > limit + 1e-9) return { step, outstanding, spent };
    }
    return undefined;
  }

  it('property: outstanding allotments + spent never exceed the limit (500 random runs)', () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 500; seed++) {
      const limit = [1, 0.01, 2, 0.3, 7.77][seed % 5];
      const over = findOverspend(allotment, seed, limit, 60);
      if (over) failures.push(`seed ${seed}: ${JSON.stringify(over)}`);
    }
    expect(failures).toEqual([]);
  });

  it('the property check catches an allotment that ignores what siblings hold', () => {
    // Guards the property test itself: a broken allotment must be detected.
    const ignoresHeld: typeof allotment = (limit, used, _held, lanes) => (limit === undefined ? undefined : Math.max(0, (limit - used) / Math.max(1, lanes)));
    let caught = 0;
    for (let seed = 1; seed <= 200; seed++) if (findOverspend(ignoresHeld, seed, 1, 60)) caught++;
    expect(caught).toBeGreaterThan(0);
  });
});

describe('provider cooldown', () => {
  const S: CooldownSettings = { failures: 3, seconds: 60 };
  const T0 = 1_700_000_000_000;

  it('defaults to 3 consecutive failures and 300 s', () => {
    expect(DEFAULT_COOLDOWN).toEqual({ failures: 3, seconds: 300 });
  });

  it('cools a provider down for `seconds` after `failures` consecutive failures, not before', () => {
    const st: CooldownState = {};
    noteFailure(st, 'p', T0, S);
    noteFailure(st, 'p', T0 + 1, S);
    expect(coolingUntil(st, 'p', T0 + 2)).toBeUndefined();
    expect(st.p).toEqual({ consecutive: 2 });
    noteFailure(st, 'p', T0 + 2, S);
    const until = T0 + 2 + 60_000;
    expect(coolingUntil(st, 'p', T0 + 2)).toBe(until);
    expect(coolingUntil(st, 'p', until - 1)).toBe(until);
    // Strictly before `until`: at that instant it may be called again.
    expect(coolingUntil(st, 'p', until)).toBeUndefined();
    expect(coolingUntil(st, 'p', until + 1)).toBeUndefined();
  });

  it('starts counting afresh after a cooldown: one more failure does not cool it again', () => {
    const st: CooldownState = {};
    for (let i = 0; i < 3; i++) noteFailure(st, 'p', T0, S);
    expect(st.p.consecutive).toBe(0);
    const after = T0 + 60_000;
    noteFailure(st, 'p', after, S);
    expect(coolingUntil(st, 'p', after)).toBeUndefined();
    noteFailure(st, 'p', after, S);
    noteFailure(st, 'p', after, S);
    expect(coolingUntil(st, 'p', after)).toBe(after + 60_000);
  });

  it('a success resets the count and ends a cooldown', () => {
    const st: CooldownState = {};
    noteFailure(st, 'p', T0, S);
    noteFailure(st, 'p', T0, S);
    noteSuccess(st, 'p');
    noteFailure(st, 'p', T0, S);
    noteFailure(st, 'p', T0, S);
    expect(coolingUntil(st, 'p', T0)).toBeUndefined();
    noteFailure(st, 'p', T0, S);
    expect(coolingUntil(st, 'p', T0)).toBe(T0 + 60_000);
    noteSuccess(st, 'p');
    expect(coolingUntil(st, 'p', T0)).toBeUndefined();
    expect(st).toEqual({});
    noteSuccess(st, 'never-seen'); // harmless
    expect(st).toEqual({});
  });

  it('keeps providers independent', () => {
    const st: CooldownState = {};
    for (let i = 0; i < 3; i++) noteFailure(st, 'a', T0, S);
    noteFailure(st, 'b', T0, S);
    expect(coolingUntil(st, 'a', T0)).toBe(T0 + 60_000);
    expect(coolingUntil(st, 'b', T0)).toBeUndefined();
    expect(coolingUntil(st, 'c', T0)).toBeUndefined();
    noteSuccess(st, 'b');
    expect(coolingUntil(st, 'a', T0)).toBe(T0 + 60_000);
  });

  it('failures: 1 cools down on the first failure; fractional seconds are honoured', () => {
    const st: CooldownState = {};
    noteFailure(st, 'p', T0, { failures: 1, seconds: 0.5 });
    expect(coolingUntil(st, 'p', T0)).toBe(T0 + 500);
  });

  it('is plain data: a JSON copy (what a parent hands its children) behaves the same', () => {
    const st: CooldownState = {};
    for (let i = 0; i < 3; i++) noteFailure(st, 'p', T0, S);
    const copy = JSON.parse(JSON.stringify(st)) as CooldownState;
    expect(coolingUntil(copy, 'p', T0 + 1)).toBe(T0 + 60_000);
  });
});
