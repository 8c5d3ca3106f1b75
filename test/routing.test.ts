// Cost routing and escalation decisions (src/domain/routing.ts), the task fields that ask for
// them, and the per-model usage they are judged by — pure, without Temporal.
import { formatProgress, formatResult } from '../src/cliFormat';
import { Ledger } from '../src/domain/ledger';
import { renderReport } from '../src/domain/report';
import { resolveTaskProviders } from '../src/domain/registry';
import {
  costOrder,
  DEFAULT_EXPECTED_OUTPUT_TOKENS,
  escalationRung,
  estimateCallUsd,
  expectedOutputTokens,
  fallbackReason,
  planRoute,
  type RouteSpec,
} from '../src/domain/routing';
import { parseTaskInput, TaskInputError, type CodingTaskInput, type CodingTaskResult, type Progress } from '../src/domain/schema';
import { resolveSettings } from '../src/domain/settings';
import { emptyUsage, mergeUsage, recordCall, recordSucceeded } from '../src/domain/usage';

const strong: RouteSpec = { id: 'strong', model: 'big', pricing: { inputPerMTok: 3, outputPerMTok: 15 } };
const mid: RouteSpec = { id: 'mid', model: 'medium', pricing: { inputPerMTok: 1, outputPerMTok: 4 } };
const cheap: RouteSpec = { id: 'cheap', model: 'small', pricing: { inputPerMTok: 0.1, outputPerMTok: 0.4 } };
const unpriced: RouteSpec = { id: 'local', model: 'qwen-local' };
/** Cheap to read, dear to write: cheapest for long prompts, dearest for short ones. */
const reader: RouteSpec = { id: 'reader', model: 'r', pricing: { inputPerMTok: 0.05, outputPerMTok: 40 } };

describe('estimates', () => {
  it('prices prompt tokens at the input price and the expected output at the output price', () => {
    // 10,000 × $3/M + 1,000 (default expected) × $15/M
    expect(estimateCallUsd(strong, 10_000)).toBeCloseTo(0.03 + 0.015, 9);
    expect(estimateCallUsd({ ...strong, expectedOutputTokens: 200 }, 10_000)).toBeCloseTo(0.03 + 0.003, 9);
    expect(estimateCallUsd(unpriced, 10_000)).toBeUndefined();
    // The table's price for a known model.
    expect(estimateCallUsd({ id: 'o', model: 'gpt-4o-mini' }, 1_000_000)).toBeCloseTo(0.15 + (DEFAULT_EXPECTED_OUTPUT_TOKENS * 0.6) / 1e6, 9);
  });

  it('expects the documented default output, never more than maxTokens', () => {
    expect(expectedOutputTokens({})).toBe(DEFAULT_EXPECTED_OUTPUT_TOKENS);
    expect(expectedOutputTokens({ maxTokens: 300 })).toBe(300);
    expect(expectedOutputTokens({ expectedOutputTokens: 2500, maxTokens: 8000 })).toBe(2500);
  });
});

describe('cost order', () => {
  it('orders cheapest first for this call, the unpriced last in the order given', () => {
    const order = costOrder([unpriced, strong, cheap, mid], 2_000);
    expect(order.map((o) => o.spec.id)).toEqual(['cheap', 'mid', 'strong', 'local']);
    expect(order[3].estCostUsd).toBeUndefined();
    expect(order[0].estCostUsd).toBeLessThan(order[1].estCostUsd!);
  });

  it('depends on the prompt: a provider cheap to read wins a long prompt and loses a short one', () => {
    expect(costOrder([mid, reader], 200_000)[0].spec.id).toBe('reader');
    expect(costOrder([mid, reader], 500)[0].spec.id).toBe('mid');
  });

  it('keeps the given order between equal prices', () => {
    const twin = { ...cheap, id: 'cheap-2' };
    expect(costOrder([twin, cheap], 1000).map((o) => o.spec.id)).toEqual(['cheap-2', 'cheap']);
  });
});

describe('escalation', () => {
  it('climbs one rung per `after` failed attempts, never past the top', () => {
    expect([0, 1, 2, 3, 4, 5, 9].map((f) => escalationRung(f, 2, 3))).toEqual([0, 0, 1, 1, 2, 2, 2]);
    expect(escalationRung(3, 1, 2)).toBe(1);
  });

  it('cost mode: cheapest first with no failures; after N failures the next by price, the cheaper ones as the last fallbacks', () => {
    const first = planRoute([strong, cheap, mid], { mode: 'cost', promptTokens: 1000, escalateAfter: 2, failedAttempts: 1 });
    expect(first.providers.map((p) => p.id)).toEqual(['cheap', 'mid', 'strong']);
    expect(first.firstReason).toBe('cheapest');
    expect(first.record.escalation).toEqual({ failedAttempts: 1, rung: 0 });
    const up = planRoute([strong, cheap, mid], { mode: 'cost', promptTokens: 1000, escalateAfter: 2, failedAttempts: 2 });
    expect(up.providers.map((p) => p.id)).toEqual(['mid', 'strong', 'cheap']);
    expect(up.firstReason).toBe('escalated after 2 failed attempts');
    const top = planRoute([strong, cheap, mid], { mode: 'cost', promptTokens: 1000, escalateAfter: 2, failedAttempts: 5 });
    expect(top.providers.map((p) => p.id)).toEqual(['strong', 'mid', 'cheap']);
    expect(top.firstReason).toBe('escalated after 4 failed attempts');
  });

  it('sequential mode: the ladder is the order given (cheap → strong), whatever the prices', () => {
    const plan = planRoute([strong, cheap], { mode: 'sequential', promptTokens: 1000, escalateAfter: 1, failedAttempts: 0 });
    expect(plan.providers.map((p) => p.id)).toEqual(['strong', 'cheap']);
    expect(plan.firstReason).toBe('first in order');
    const next = planRoute([strong, cheap], { mode: 'sequential', promptTokens: 1000, escalateAfter: 1, failedAttempts: 1 });
    expect(next.providers.map((p) => p.id)).toEqual(['cheap', 'strong']);
    expect(next.firstReason).toBe('escalated after 1 failed attempt');
  });

  it('records the order with each estimate and names the unpriced', () => {
    const plan = planRoute([unpriced, mid], { mode: 'cost', promptTokens: 4000, failedAttempts: 0 });
    expect(plan.unpriced.map((p) => p.id)).toEqual(['local']);
    expect(plan.record).toEqual({
      mode: 'cost',
      promptTokens: 4000,
      order: [
        { provider: 'mid', model: 'medium', estCostUsd: 0.008 },
        { provider: 'local', model: 'qwen-local' },
      ],
      tried: [],
    });
    expect(planRoute([unpriced], { mode: 'cost', promptTokens: 1, failedAttempts: 0 }).firstReason).toMatch(/no price known/);
  });

  it('says why a fallback was called', () => {
    expect(fallbackReason({ provider: 'cheap', family: 'server', message: '500 Internal\n error' })).toBe('fallback after error server from cheap: 500 Internal error');
    expect(fallbackReason({ provider: 'cheap', family: 'schema_violation', message: 'no edit blocks' })).toMatch(/^fallback after an unreadable answer from cheap/);
    expect(fallbackReason({ provider: 'cheap', family: 'cooldown', message: 'cheap is cooling down' })).toBe('fallback: cheap is cooling down');
  });
});

describe('the task fields', () => {
  const base: CodingTaskInput = {
    repo: 'https://example.com/a.git',
    task: { title: 't', description: 'd' },
    providers: [{ id: 'cheap' }, { id: 'strong' }],
  };
  const issues = (raw: unknown): string[] => {
    try {
      parseTaskInput(raw);
    } catch (e) {
      expect(e).toBeInstanceOf(TaskInputError);
      return (e as TaskInputError).issues;
    }
    throw new Error('accepted');
  };

  it('accepts mode cost with escalate', () => {
    expect(parseTaskInput({ ...base, strategy: { mode: 'cost', escalate: { after: 2 } } }).strategy).toMatchObject({ mode: 'cost', escalate: { after: 2 } });
  });

  it('refuses a bad mode or escalate, naming the field', () => {
    expect(issues({ ...base, strategy: { mode: 'cheapest' } })).toEqual([expect.stringMatching(/^strategy\.mode: strategy\.mode must be one of sequential, .*cost/)]);
    expect(issues({ ...base, strategy: { mode: 'cost', escalate: { after: 0 } } })).toEqual([expect.stringMatching(/^strategy\.escalate\.after: .*at least 1/)]);
    expect(issues({ ...base, strategy: { escalate: { after: 1.5 } } })).toEqual([expect.stringMatching(/^strategy\.escalate\.after: .*whole number/)]);
    expect(issues({ ...base, strategy: { escalate: 2 } })).toEqual([expect.stringMatching(/^strategy\.escalate: .*\{ "after": N \}/)]);
    expect(issues({ ...base, strategy: { escalate: { after: 1, to: 'x' } } })[0]).toMatch(/^strategy\.escalate/);
    expect(issues({ ...base, strategy: { mode: 'parallel-any', escalate: { after: 1 } } })).toEqual([expect.stringMatching(/^strategy\.escalate: .*'sequential' or 'cost'/)]);
    expect(issues({ ...base, providers: [{ id: 'cheap' }], strategy: { escalate: { after: 1 } } })).toEqual([expect.stringMatching(/^strategy\.escalate: needs at least two/)]);
    expect(issues({ ...base, providers: [{ id: 'cheap', expectedOutputTokens: -1 }] })[0]).toMatch(/^providers\.0\.expectedOutputTokens/);
  });

  it("takes a provider's expected output from the registry, and keeps the default in the run's settings", () => {
    const registry = { providers: { cheap: { models: ['small'], expectedOutputTokens: 300 }, strong: { models: ['big'] } } };
    const { providers } = resolveTaskProviders(registry, [{ id: 'cheap' }, { id: 'strong' }]);
    expect(providers.map((p) => p.expectedOutputTokens)).toEqual([300, undefined]);
    expect(resolveSettings({}, providers).providers.map((p) => p.expectedOutputTokens)).toEqual([300, DEFAULT_EXPECTED_OUTPUT_TOKENS]);
  });
});

describe('usage by provider and model', () => {
  it('books tokens, cost, failures and success rate per model, and merges them across a tree', () => {
    const spec = { id: 'p', model: 'm1', pricing: { inputPerMTok: 1, outputPerMTok: 2 } };
    const ledger = new Ledger({});
    const event = (model: string, over: object = {}) => ({ provider: 'p', model, strategy: 'cost', role: 'primary' as const, attempt: 1, startedAt: '', latencyMs: 10, tokensIn: 100, tokensOut: 50, outcome: 'ok', ...over });
    ledger.settle(undefined, spec, event('m1', { tokensCached: 40 }));
    ledger.settle(undefined, spec, event('m1', { tokensIn: 0, tokensOut: 0, outcome: 'error', errorFamily: 'server' }));
    ledger.settle(undefined, { ...spec, model: 'm2' }, event('m2'));
    ledger.lost(ledger.reserve({ ...spec, maxTokens: 100 }, 1000) as never, event('m1', { tokensIn: 0, tokensOut: 0, outcome: 'lost' }));
    recordSucceeded(ledger.usage, 'p', 'm2');
    const p = ledger.usage.byProvider.p;
    expect(p).toMatchObject({ calls: 4, succeeded: 1, successRate: 0.25 });
    expect(p.byModel).toEqual({
      m1: { calls: 3, tokensIn: 100, tokensOut: 50, tokensCached: 40, costUsd: 0.0002, estimatedCostUsd: 0.0012, failures: { server: 1 }, succeeded: 0, successRate: 0 },
      m2: { calls: 1, tokensIn: 100, tokensOut: 50, costUsd: 0.0002, failures: {}, succeeded: 1, successRate: 1 },
    });

    const child = emptyUsage();
    recordCall(child, { provider: 'p', model: 'm2', tokensIn: 10, tokensOut: 5, costUsd: 0.5, latencyMs: 1 });
    recordSucceeded(child, 'p', 'm2');
    const merged = mergeUsage(ledger.usage, child);
    expect(merged.byProvider.p).toMatchObject({ calls: 5, succeeded: 2, successRate: 0.4 });
    expect(merged.byProvider.p.byModel!.m2).toEqual({ calls: 2, tokensIn: 110, tokensOut: 55, costUsd: 0.5002, failures: {}, succeeded: 2, successRate: 1 });
    expect(merged.byProvider.p.byModel!.m1.estimatedCostUsd).toBe(0.0012);
  });
});

test('the report, `weaver result` and `weaver status` show each provider called with why, and the per-model table', () => {
  const usage = emptyUsage();
  recordCall(usage, { provider: 'cheap', model: 'small', tokensIn: 1000, tokensOut: 200, costUsd: 0.00018, latencyMs: 5 });
  recordSucceeded(usage, 'cheap', 'small');
  const result = {
      workflowId: 'w',
      status: 'succeeded',
      reason: 'tests passed',
      branch: 'b',
      usage,
      artifacts: [],
      attempts: [
        {
          attempt: 1,
          provider: 'cheap',
          calls: [],
          outcome: 'tests_passed',
          decision: { action: 'commit', why: 'tests passed' },
          artifacts: [],
          routing: { mode: 'cost', promptTokens: 1000, order: [{ provider: 'cheap', model: 'small', estCostUsd: 0.0003 }], tried: [{ provider: 'cheap', model: 'small', reason: 'cheapest' }] },
        },
      ],
    } satisfies CodingTaskResult;
  const report = renderReport(result, 'title');
  expect(report).toContain('| 1 | cheap | small | cheapest |');
  expect(report).toContain('| cheap | small | 1 | 1000/200 (0) | $0.000180 | 1/1 (100%) |');
  expect(formatResult(result)).toContain('#1 cheap: tests_passed → commit (called: cheap, cheapest)');
  const progress = { workflowId: 'w', phase: 'generating', attempt: 2, maxAttempts: 3, usage, branch: 'b' } satisfies Progress;
  expect(formatProgress({ ...progress, route: { attempt: 2, provider: 'strong', model: 'big', reason: 'escalated after 1 failed attempt' } })).toContain('— strong (big): escalated after 1 failed attempt');
  // A route of an earlier attempt is not this attempt's.
  expect(formatProgress({ ...progress, route: { attempt: 1, provider: 'cheap', model: 'small', reason: 'cheapest' } })).not.toContain('cheapest');
});
