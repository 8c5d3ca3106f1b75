import {
  classifyHttpError,
  ERROR_FAMILIES,
  failureType,
  familyOfFailureType,
  NON_RETRYABLE_FAILURE_TYPES,
  RETRYABLE_FAMILIES,
  retryAfterMs,
} from '../src/domain/errors';
import { costOf, DEFAULT_PRICES, priceOf, roundUsd } from '../src/domain/pricing';
import { modelProfile, promptBudget, resolveProvider } from '../src/domain/models';
import { ProviderSpecSchema, type Usage } from '../src/domain/schema';
import { emptyUsage, mergeUsage, recordCall, recordShadowCall, type CallUsage } from '../src/domain/usage';

describe('pricing', () => {
  it("uses the spec's own pricing over the table, even when it is zero", () => {
    expect(priceOf({ model: 'gpt-4o', pricing: { inputPerMTok: 9, outputPerMTok: 11 } })).toEqual({ inputPerMTok: 9, outputPerMTok: 11 });
    expect(priceOf({ model: 'gpt-4o', pricing: { inputPerMTok: 0, outputPerMTok: 0 } })).toEqual({ inputPerMTok: 0, outputPerMTok: 0 });
    expect(costOf({ model: 'gpt-4o', pricing: { inputPerMTok: 0, outputPerMTok: 0 } }, 1_000_000, 1_000_000)).toBe(0);
  });

  it.each([
    ['gpt-4o', 'gpt-4o'],
    ['gpt-4o-mini', 'gpt-4o-mini'],
    ['openai/gpt-4o-mini', 'gpt-4o-mini'],
    ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini'],
    ['openrouter/openai/gpt-4o-mini-2024-07-18', 'gpt-4o-mini'],
    ['gpt-4o-2024-08-06', 'gpt-4o'],
    ['gpt-4.1-nano', 'gpt-4.1-nano'],
    ['gpt-4.1-2025-04-14', 'gpt-4.1'],
    ['gpt-5-mini-2025-08-07', 'gpt-5-mini'],
    ['anthropic/claude-sonnet-4-20250514', 'claude-sonnet-4'],
  ])('prices %s from the table as %s (longest match wins)', (model, key) => {
    expect(priceOf({ model })).toEqual(DEFAULT_PRICES[key]);
  });

  it('does not confuse gpt-4o-mini with gpt-4o', () => {
    expect(DEFAULT_PRICES['gpt-4o-mini']).not.toEqual(DEFAULT_PRICES['gpt-4o']);
    expect(priceOf({ model: 'openai/gpt-4o-mini-2024-07-18' }).inputPerMTok).toBe(0.15);
  });

  it.each(['llama3.1:8b', 'gpt-4oo', 'my-gpt-4o', 'qwen/qwen-2.5-coder', ''])('prices unknown model %p at 0', (model) => {
    expect(priceOf({ model })).toEqual({ inputPerMTok: 0, outputPerMTok: 0 });
    expect(costOf({ model }, 123_456, 654_321)).toBe(0);
  });

  it.each([
    [{ model: 'gpt-4o-mini' }, 1_000_000, 1_000_000, 0.75],
    [{ model: 'gpt-4o' }, 1000, 500, 0.0075],
    [{ model: 'gpt-4o' }, 1234, 567, 0.008755],
    [{ model: 'x', pricing: { inputPerMTok: 0.1, outputPerMTok: 0.2 } }, 1, 2, 5e-7],
    [{ model: 'claude-sonnet-4' }, 3, 0, 0.000009],
    // Below a nano-dollar rounds away.
    [{ model: 'x', pricing: { inputPerMTok: 0.0001, outputPerMTok: 0 } }, 1, 0, 0],
    [{ model: 'gpt-4o-mini' }, 0, 0, 0],
  ])('costOf(%j, %i, %i) = %p', (spec, tokensIn, tokensOut, usd) => {
    expect(costOf(spec, tokensIn, tokensOut)).toBe(usd);
  });

  it('roundUsd rounds to the nano-dollar', () => {
    expect(roundUsd(0.1 + 0.2)).toBe(0.3);
    expect(roundUsd(1.0000000004)).toBe(1);
    expect(roundUsd(1.0000000006)).toBe(1.000000001);
  });
});

describe('usage ledger', () => {
  const call = (over: Partial<CallUsage>): CallUsage => ({ provider: 'a', tokensIn: 0, tokensOut: 0, costUsd: 0, latencyMs: 0, ...over });

  it('accumulates totals and a per-provider breakdown with failures and mean latency', () => {
    const u = emptyUsage();
    recordCall(u, call({ provider: 'a', tokensIn: 100, tokensOut: 10, costUsd: 0.001, latencyMs: 100 }));
    recordCall(u, call({ provider: 'a', tokensIn: 200, tokensOut: 20, costUsd: 0.002, latencyMs: 300 }));
    recordCall(u, call({ provider: 'a', errorFamily: 'rate_limit', latencyMs: 200 }));
    recordCall(u, call({ provider: 'a', errorFamily: 'rate_limit', latencyMs: 400 }));
    recordCall(u, call({ provider: 'b', tokensIn: 50, tokensOut: 5, costUsd: 0.0005, latencyMs: 1000 }));
    recordCall(u, call({ provider: 'b', errorFamily: 'server', latencyMs: 2000 }));

    expect(u).toMatchObject({ calls: 6, tokensIn: 350, tokensOut: 35, costUsd: 0.0035, estimatedCostUsd: 0 });
    expect(u.byProvider.a).toEqual({
      calls: 4,
      failures: { rate_limit: 2 },
      tokensIn: 300,
      tokensOut: 30,
      costUsd: 0.003,
      meanLatencyMs: 250,
      latencyMsSum: 1000,
    });
    expect(u.byProvider.b).toEqual({ calls: 2, failures: { server: 1 }, tokensIn: 50, tokensOut: 5, costUsd: 0.0005, meanLatencyMs: 1500, latencyMsSum: 3000 });
    expect(u.shadow).toBeUndefined();
  });

  it('keeps shadow calls out of the totals and the breakdown', () => {
    const u = emptyUsage();
    recordCall(u, call({ provider: 'a', tokensIn: 10, tokensOut: 1, costUsd: 0.01 }));
    recordShadowCall(u, call({ provider: 's', tokensIn: 1000, tokensOut: 100, costUsd: 0.5 }));
    recordShadowCall(u, call({ provider: 's', tokensIn: 500, tokensOut: 50, costUsd: 0.25 }));
    expect(u).toMatchObject({ calls: 1, tokensIn: 10, tokensOut: 1, costUsd: 0.01 });
    expect(Object.keys(u.byProvider)).toEqual(['a']);
    expect(u.shadow).toEqual({ calls: 2, tokensIn: 1500, tokensOut: 150, costUsd: 0.75 });
  });

  it('merges ledgers: totals, breakdown, failures, latency and shadow', () => {
    const x = emptyUsage();
    recordCall(x, call({ provider: 'a', tokensIn: 100, tokensOut: 10, costUsd: 0.1, latencyMs: 100 }));
    recordCall(x, call({ provider: 'a', errorFamily: 'timeout', latencyMs: 300 }));
    recordShadowCall(x, call({ provider: 's', tokensIn: 7, tokensOut: 3, costUsd: 0.07 }));
    x.estimatedCostUsd = 0.02;

    const y = emptyUsage();
    recordCall(y, call({ provider: 'a', tokensIn: 50, tokensOut: 5, costUsd: 0.2, latencyMs: 800 }));
    recordCall(y, call({ provider: 'a', errorFamily: 'timeout', latencyMs: 800 }));
    recordCall(y, call({ provider: 'b', tokensIn: 1, tokensOut: 1, costUsd: 0.3, latencyMs: 40 }));
    recordCall(y, call({ provider: 'b', errorFamily: 'auth', latencyMs: 60 }));
    recordShadowCall(y, call({ provider: 's', tokensIn: 3, tokensOut: 7, costUsd: 0.03 }));
    y.estimatedCostUsd = 0.01;

    const xBefore = structuredClone(x);
    const m = mergeUsage(x, y);
    expect(x).toEqual(xBefore); // inputs are not mutated

    expect(m).toMatchObject({ calls: 6, tokensIn: 151, tokensOut: 16, costUsd: 0.6, estimatedCostUsd: 0.03 });
    expect(m.byProvider.a).toEqual({
      calls: 4,
      failures: { timeout: 2 },
      tokensIn: 150,
      tokensOut: 15,
      costUsd: 0.3,
      meanLatencyMs: 500, // (100 + 300 + 800 + 800) / 4
      latencyMsSum: 2000,
    });
    expect(m.byProvider.b).toEqual({ calls: 2, failures: { auth: 1 }, tokensIn: 1, tokensOut: 1, costUsd: 0.3, meanLatencyMs: 50, latencyMsSum: 100 });
    expect(m.shadow).toEqual({ calls: 2, tokensIn: 10, tokensOut: 10, costUsd: 0.1 });
  });

  it('merges nothing into an empty ledger, and a ledger without shadow stays without', () => {
    expect(mergeUsage()).toEqual(emptyUsage());
    const u = emptyUsage();
    recordCall(u, call({ tokensIn: 1, costUsd: 0.5 }));
    const m = mergeUsage(u, emptyUsage());
    expect(m.shadow).toBeUndefined();
    expect(m.costUsd).toBe(0.5);
  });

  it('keeps the per-provider costs summing exactly to the total', () => {
    const ledgers: Usage[] = [];
    const providers = ['a', 'b', 'c'];
    // Deterministic awkward costs (not representable in binary).
    for (let l = 0; l < 3; l++) {
      const u = emptyUsage();
      for (let i = 0; i < 50; i++) {
        const costUsd = roundUsd(((i * 7919 + l * 104729) % 100_003) * 1.3e-9 + 0.1);
        recordCall(u, call({ provider: providers[(i + l) % 3], tokensIn: i, tokensOut: l, costUsd, latencyMs: i }));
      }
      ledgers.push(u);
    }
    for (const u of [...ledgers, mergeUsage(...ledgers)]) {
      const sum = Object.values(u.byProvider).reduce((s, p) => s + p.costUsd, 0);
      expect(roundUsd(sum)).toBe(u.costUsd);
      expect(Object.values(u.byProvider).reduce((s, p) => s + p.calls, 0)).toBe(u.calls);
      expect(Object.values(u.byProvider).reduce((s, p) => s + p.tokensIn, 0)).toBe(u.tokensIn);
    }
    const merged = mergeUsage(...ledgers);
    expect(merged.calls).toBe(150);
    expect(merged.costUsd).toBe(roundUsd(ledgers.reduce((s, u) => s + u.costUsd, 0)));
  });
});

describe('error classification', () => {
  it.each([
    [429, 'rate_limit'],
    [401, 'auth'],
    [403, 'auth'],
    [400, 'bad_request'],
    [404, 'bad_request'],
    [422, 'bad_request'],
    [408, 'timeout'],
    [504, 'timeout'],
    [500, 'server'],
    [502, 'server'],
    [503, 'server'],
    [413, 'context_length'],
    [undefined, 'network'],
  ] as const)('HTTP %p → %s', (status, family) => {
    expect(classifyHttpError(status)).toBe(family);
    expect(classifyHttpError(status, null, 'something went wrong')).toBe(family);
  });

  it.each([
    [400, 'context_length_exceeded', "This model's maximum context length is 128000 tokens.", 'context_length'],
    [400, null, 'Please reduce the length of the messages: context length exceeded', 'context_length'],
    [400, null, 'Request has too many tokens', 'context_length'],
    [500, null, 'maximum context length is 8192 tokens', 'context_length'],
    [400, 'content_filter', 'filtered', 'content_filter'],
    [400, null, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", 'content_filter'],
    [undefined, null, 'finish_reason: content_filter', 'content_filter'],
  ] as const)('HTTP %p code %p message %p → %s', (status, code, message, family) => {
    expect(classifyHttpError(status, code, message)).toBe(family);
  });

  it('round-trips every family through its failure type', () => {
    const types = ERROR_FAMILIES.map(failureType);
    expect(new Set(types).size).toBe(ERROR_FAMILIES.length);
    for (const f of ERROR_FAMILIES) {
      expect(failureType(f)).toMatch(/^Provider[A-Z][A-Za-z]+$/);
      expect(familyOfFailureType(failureType(f))).toBe(f);
    }
    expect(failureType('rate_limit')).toBe('ProviderRateLimit');
    expect(failureType('context_length')).toBe('ProviderContextLength');
    expect(failureType('auth')).toBe('ProviderAuth');
  });

  it('does not invent a family for other types', () => {
    for (const t of ['ProviderNope', 'rate_limit', 'providerRateLimit', 'Error', '', undefined, null]) {
      expect(familyOfFailureType(t)).toBeUndefined();
    }
  });

  it('marks exactly auth, bad request, context length, content filter and schema violation non-retryable', () => {
    expect([...NON_RETRYABLE_FAILURE_TYPES].sort()).toEqual(
      ['ProviderAuth', 'ProviderBadRequest', 'ProviderContentFilter', 'ProviderContextLength', 'ProviderSchemaViolation'].sort(),
    );
    expect([...RETRYABLE_FAMILIES].sort()).toEqual(['network', 'rate_limit', 'server', 'timeout']);
  });
});

describe('retryAfterMs', () => {
  const headers = (h: Record<string, string>) => ({ get: (name: string) => (Object.hasOwn(h, name) ? h[name] : null) });
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');

  it('reads retry-after-ms first', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '1500' }), now)).toBe(1500);
    expect(retryAfterMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
  });

  it('reads retry-after in seconds', () => {
    expect(retryAfterMs(headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterMs(headers({ 'retry-after': '1.5' }), now)).toBe(1500);
    expect(retryAfterMs(headers({ 'retry-after': '0' }), now)).toBe(0);
  });

  it('reads retry-after as an HTTP date relative to now', () => {
    expect(retryAfterMs(headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' }), now)).toBe(30_000);
    expect(retryAfterMs(headers({ 'retry-after': 'Wed, 21 Oct 2015 07:30:00 GMT' }), now + 60_000)).toBe(60_000);
    // A date in the past means "now", never a negative delay.
    expect(retryAfterMs(headers({ 'retry-after': 'Wed, 21 Oct 2015 07:27:00 GMT' }), now)).toBe(0);
  });

  it('ignores negative and junk values (the caller falls back to its own backoff)', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '-5' }), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after': '-5' }), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after': 'abc 1' }), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after-ms': '  ' }), now)).toBeUndefined();
  });

  it('ignores missing and garbage headers', () => {
    expect(retryAfterMs(undefined, now)).toBeUndefined();
    expect(retryAfterMs(headers({}), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after': '' }), now)).toBeUndefined();
    expect(retryAfterMs(headers({ 'retry-after-ms': 'soon' }), now)).toBeUndefined();
    // Garbage retry-after-ms falls through to a usable retry-after.
    expect(retryAfterMs(headers({ 'retry-after-ms': 'abc', 'retry-after': '3' }), now)).toBe(3000);
  });
});

describe('model profiles (resolved once, at workflow start)', () => {
  test('reasoning families take max_completion_tokens and a larger answer budget; others max_tokens', () => {
    expect(resolveProvider({ id: 'a', model: 'o4-mini' })).toMatchObject({ tokenParam: 'max_completion_tokens', maxTokens: 16_384, contextWindow: 200_000 });
    expect(resolveProvider({ id: 'b', model: 'openai/gpt-5-mini' })).toMatchObject({ tokenParam: 'max_completion_tokens', contextWindow: 400_000 });
    expect(resolveProvider({ id: 'c', model: 'gpt-4o-mini' })).toMatchObject({ tokenParam: 'max_tokens', maxTokens: 4096, contextWindow: 128_000, editFormat: 'editblock' });
    // The spec's own fields win.
    expect(resolveProvider({ id: 'd', model: 'o3', tokenParam: 'max_tokens', maxTokens: 1000, contextWindow: 9000 })).toMatchObject({ tokenParam: 'max_tokens', maxTokens: 1000, contextWindow: 9000 });
  });

  test('an unknown model gets a modest window; a small window caps the default answer at half of it', () => {
    expect(modelProfile('my-local-llm').contextWindow).toBe(32_768);
    expect(resolveProvider({ id: 'e', model: 'tiny', contextWindow: 4096 }).maxTokens).toBe(2048);
    // An explicit maxTokens past the assumed window widens it instead of leaving no room for a prompt.
    expect(resolveProvider({ id: 'f', model: 'mystery', maxTokens: 100_000 }).contextWindow).toBe(132_768);
  });

  test('the prompt budget fits the smallest provider, with a margin for other tokenizers', () => {
    const a = resolveProvider({ id: 'a', model: 'gpt-4o', contextWindow: 8192, maxTokens: 1024 });
    const b = resolveProvider({ id: 'b', model: 'gpt-4o' });
    expect(promptBudget([a, b])).toBe(Math.floor((8192 - 1024) * 0.9));
    expect(promptBudget([b])).toBe(Math.floor((128_000 - 4096) * 0.9));
  });

  test('maxTokens must leave room in contextWindow (refused naming the field)', () => {
    const r = ProviderSpecSchema.safeParse({ id: 'x', model: 'm', maxTokens: 9000, contextWindow: 8192 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].path).toEqual(['maxTokens']);
  });
});
