// Pure rules about spend that could escape the totals: which providers a budget cannot price,
// and how a failed provider call is classified for booking (known tokens, estimated, nothing).
import { ActivityFailure, ApplicationFailure, RetryState, TimeoutFailure } from '@temporalio/common';
import { startCodingTask } from '../src/client';
import { knownPrice, unpricedBudgetError, unpricedProviders } from '../src/domain/pricing';
import { TaskInputError, type CodingTaskInput } from '../src/domain/schema';
import { config } from '../src/config';
import { mayHaveBeenSent } from '../src/domain/errors';
import { DEFAULT_TREE_COST_USD } from '../src/domain/settings';
import { DEFAULT_RETRY } from '../src/domain/retry';
import { describeFailure } from '../src/workflows/strategies';
import type { Failed } from '../src/workflows/providerCall';
import { afterFailure, track, withWaits } from '../src/workflows/providerWaits';

describe('unpriced providers and budgets', () => {
  const priced = { id: 'a', model: 'local-model', pricing: { inputPerMTok: 0, outputPerMTok: 0 } };
  const tabled = { id: 'b', model: 'openai/gpt-4o-mini-2024-07-18' };
  const unknown = { id: 'c', model: 'qwen2.5-coder:14b' };

  it('a provider is priced by its own pricing (even $0) or by the table; otherwise it is unpriced', () => {
    expect(knownPrice(priced)).toEqual({ inputPerMTok: 0, outputPerMTok: 0 });
    expect(knownPrice(tabled)).toEqual({ inputPerMTok: 0.15, outputPerMTok: 0.6, cachedInputPerMTok: 0.075 });
    expect(knownPrice(unknown)).toBeUndefined();
    expect(unpricedProviders([priced, tabled, unknown])).toEqual(['c']);
  });

  it('refuses maxCostUsd over an unpriced provider, naming it, the model and the fixes', () => {
    const e = unpricedBudgetError([priced, unknown], { maxCostUsd: 2 });
    expect(e).toMatch(/^limits\.maxCostUsd is \$2 but no price is known for c \(model qwen2\.5-coder:14b\): its calls would count as \$0/);
    expect(e).toMatch(/pricing: \{ inputPerMTok, outputPerMTok \}/);
    expect(e).toMatch(/WEAVER_PROVIDERS/);
    expect(e).toMatch(/drop maxCostUsd/);
  });

  it('has nothing to say without maxCostUsd, when all are priced, or when only a shadow is unpriced', () => {
    expect(unpricedBudgetError([unknown], {})).toBeUndefined();
    expect(unpricedBudgetError([priced, tabled], { maxCostUsd: 1 })).toBeUndefined();
    expect(unpricedBudgetError([priced, unknown], { maxCostUsd: 1, shadow: ['c'] })).toBeUndefined();
  });

  it('the client refuses such a task before starting anything when it can tell (an inline endpoint)', async () => {
    const input: CodingTaskInput = {
      repo: '/tmp/nowhere',
      task: { title: 'T', description: 'D' },
      providers: [{ id: 'ollama', model: 'qwen2.5-coder:14b', baseURL: 'http://localhost:11434/v1' }],
      limits: { maxCostUsd: 1 },
    };
    // No client is reachable: a refusal must come before any connection is made.
    const noClient = { workflow: { start: () => Promise.reject(new Error('started')) } } as never;
    const err = await startCodingTask(input, { client: noClient }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskInputError);
    expect((err as TaskInputError).issues).toEqual([expect.stringMatching(/^limits\.maxCostUsd: limits\.maxCostUsd is \$1 but no price is known for ollama/)]);
    // With a price (or without a budget) it goes on to start.
    const withPrice = { ...input, providers: [{ ...input.providers[0], pricing: { inputPerMTok: 0, outputPerMTok: 0 } }] };
    await expect(startCodingTask(withPrice, { client: noClient })).rejects.toThrow('started');
    await expect(startCodingTask({ ...input, limits: {} }, { client: noClient })).rejects.toThrow('started');
  });
});

describe('describeFailure: how a failed call is booked', () => {
  const activityFailure = (cause: Error) => new ActivityFailure('activity failed', 'generateChange', '1', RetryState.NON_RETRYABLE_FAILURE, 'worker', cause);

  it('a rate limit: known to cost nothing, with its Retry-After', () => {
    const f = describeFailure(activityFailure(ApplicationFailure.create({ type: 'ProviderRateLimit', message: '429', details: [{ family: 'rate_limit', retryAfterMs: 1200 }] })));
    expect(f).toEqual({ family: 'rate_limit', message: '429', retryAfterMs: 1200 });
  });

  it("the provider's deadline passed with the request out: sent (estimated)", () => {
    const f = describeFailure(activityFailure(ApplicationFailure.create({ type: 'ProviderTimeout', message: 't', details: [{ family: 'timeout', sent: true }] })));
    expect(f).toMatchObject({ family: 'timeout', sent: true });
    expect(f.infra).toBeUndefined();
  });

  it('a Temporal timeout: lost (estimated); a missed heartbeat is the worker gone (infrastructure), a start-to-close is not', () => {
    expect(describeFailure(activityFailure(new TimeoutFailure(undefined, undefined, 'HEARTBEAT')))).toMatchObject({ family: 'timeout', lost: true, infra: 'worker_lost' });
    const s2c = describeFailure(activityFailure(new TimeoutFailure(undefined, undefined, 'START_TO_CLOSE')));
    expect(s2c).toMatchObject({ family: 'timeout', lost: true });
    expect(s2c.infra).toBeUndefined();
  });

  it('a retry of a call whose worker was lost before it kept the answer (WorkerLost): lost (estimated), infrastructure unless it ran out its start-to-close', () => {
    const lost = describeFailure(activityFailure(ApplicationFailure.create({ type: 'WorkerLost', message: 'l', details: [{ provider: 'p', sent: true }] })));
    expect(lost).toEqual({ family: 'timeout', message: 'l', lost: true, infra: 'worker_lost' });
    const ranOut = describeFailure(activityFailure(ApplicationFailure.create({ type: 'WorkerLost', message: 'r', details: [{ provider: 'p', sent: true, ranOut: true }] })));
    expect(ranOut).toEqual({ family: 'timeout', message: 'r', lost: true });
  });

  it('a worker shutdown: infrastructure, estimated only if the request went out', () => {
    const sent = describeFailure(activityFailure(ApplicationFailure.create({ type: 'WorkerShutdown', message: 's', details: [{ provider: 'p', sent: true }] })));
    expect(sent).toMatchObject({ family: 'worker_shutdown', infra: 'worker_shutdown', sent: true });
    const before = describeFailure(activityFailure(ApplicationFailure.create({ type: 'WorkerShutdown', message: 's', details: [{ provider: 'p', sent: false }] })));
    expect(before).toMatchObject({ sent: false });
  });

  it('a dropped connection after the request went out: sent (estimated), like a timeout', () => {
    const f = describeFailure(activityFailure(ApplicationFailure.create({ type: 'ProviderNetwork', message: 'n', details: [{ family: 'network', sent: true }] })));
    expect(f).toEqual({ family: 'network', message: 'n', sent: true });
    const refused = describeFailure(activityFailure(ApplicationFailure.create({ type: 'ProviderNetwork', message: 'n', details: [{ family: 'network' }] })));
    expect(refused.sent).toBeUndefined();
  });

  it('a stream cut mid-answer: sent, partial, with the tokens counted so far (not infrastructure)', () => {
    const f = describeFailure(
      activityFailure(ApplicationFailure.create({ type: 'ProviderNetwork', message: 'cut', details: [{ family: 'network', sent: true, partial: true, tokensIn: 900, tokensOut: 42, latencyMs: 70 }] })),
    );
    expect(f).toEqual({ family: 'network', message: 'cut', sent: true, partial: true, usage: { tokensIn: 900, tokensOut: 42, latencyMs: 70 } });
  });

  it('an answer the store could not keep: infrastructure, with the usage to book', () => {
    const f = describeFailure(activityFailure(ApplicationFailure.create({ type: 'ArtifactStoreFailed', message: 'a', details: [{ tokensIn: 120, tokensOut: 80, latencyMs: 900 }] })));
    expect(f).toMatchObject({ family: 'artifact_store', infra: 'artifact_store', usage: { tokensIn: 120, tokensOut: 80, latencyMs: 900 } });
  });
});

describe('a connection error: sent or not', () => {
  it('only a failure to connect at all proves the request never left; anything else may be billed', () => {
    expect(mayHaveBeenSent(['ECONNREFUSED'])).toBe(false);
    expect(mayHaveBeenSent(['ENOTFOUND'])).toBe(false);
    expect(mayHaveBeenSent(['UND_ERR_CONNECT_TIMEOUT'])).toBe(false);
    // The peer closed or reset the connection after the request was written.
    expect(mayHaveBeenSent(['UND_ERR_SOCKET'])).toBe(true);
    expect(mayHaveBeenSent(['ECONNRESET'])).toBe(true);
    // Unknown: erring on the side of spend.
    expect(mayHaveBeenSent([])).toBe(true);
  });
});

describe('afterFailure: how many times a paid failure is tried', () => {
  const spec = { id: 'p', model: 'm' };
  const env = withWaits({ retry: { ...DEFAULT_RETRY, maxTries: 3 } } as Parameters<typeof withWaits>[0]);
  const failed = (extra: Partial<Failed> = {}): Failed => ({ kind: 'failed', family: 'network', message: 'x', spec, ...extra });

  it('a cut stream stops at retry.maxTries calls in a row; a plain network failure keeps being retried (waited out up to maxWaitSec)', () => {
    const cut = track(spec);
    expect([1, 2, 3].map(() => afterFailure(cut, failed({ cut: true }), env))).toEqual(['retry', 'retry', 'stop']);
    const plain = track(spec);
    expect([1, 2, 3, 4].map(() => afterFailure(plain, failed(), env))).toEqual(['retry', 'retry', 'retry', 'retry']);
  });

  it('the tries in a row count every failure: two 500s then a cut is the third try', () => {
    const t = track(spec);
    afterFailure(t, failed({ family: 'server' }), env);
    afterFailure(t, failed({ family: 'server' }), env);
    expect(afterFailure(t, failed({ cut: true }), env)).toBe('stop');
  });
});

describe('WEAVER_DEFAULT_TREE_COST_USD (the worker setting)', () => {
  it(`defaults to $${DEFAULT_TREE_COST_USD}, takes a number (0: none), and names itself when it is not one`, () => {
    expect(config({}).defaultTreeCostUsd).toBe(DEFAULT_TREE_COST_USD);
    expect(config({ WEAVER_DEFAULT_TREE_COST_USD: '0.5' }).defaultTreeCostUsd).toBe(0.5);
    expect(config({ WEAVER_DEFAULT_TREE_COST_USD: '0' }).defaultTreeCostUsd).toBe(0);
    expect(() => config({ WEAVER_DEFAULT_TREE_COST_USD: 'lots' })).toThrow(/WEAVER_DEFAULT_TREE_COST_USD must be a number/);
    expect(() => config({ WEAVER_DEFAULT_TREE_COST_USD: '-1' })).toThrow(/WEAVER_DEFAULT_TREE_COST_USD/);
  });
});
