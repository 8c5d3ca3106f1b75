// Provider quotas, the pure part (issue 19 item 3): reading OpenAI's rate-limit headers, merging
// reports that race, and the window a batch or a decomposition may run in.
import { decideWindow, maxDispatchedIn, mergeQuota, parseResetMs, providerTaskQueue, TEMPORAL_BURST_SEC, quotaReportOf, quotaWorkflowId, type QuotaState } from '../src/domain/quota';
import { ProviderRegistrySchema } from '../src/domain/registry';

const headers = (h: Record<string, string>) => new Headers(h);
const NOW = 1_000_000;
const state = (s: Partial<QuotaState>): QuotaState => ({ provider: 'p', observedAt: NOW, reports: 1, ...s });

test('reset durations as OpenAI writes them, and bare seconds; anything else is not a duration', () => {
  expect(parseResetMs('6m0s')).toBe(360_000);
  expect(parseResetMs('1s')).toBe(1000);
  expect(parseResetMs('20ms')).toBe(20);
  expect(parseResetMs('1h2m3.5s')).toBe(3_723_500);
  expect(parseResetMs('0.5s')).toBe(500);
  expect(parseResetMs('2')).toBe(2000);
  for (const bad of ['', '1x', 's', '5s and more', undefined, null]) expect(parseResetMs(bad)).toBeUndefined();
});

test('a response with x-ratelimit headers is a report; one without, or with junk, is none; a 429 throttles until its Retry-After', () => {
  const r = quotaReportOf('p', headers({ 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '6m0s', 'x-ratelimit-remaining-tokens': '150000', 'x-ratelimit-reset-tokens': '20ms' }), NOW);
  expect(r).toEqual({ provider: 'p', observedAt: NOW, requests: { remaining: 2, resetAt: NOW + 360_000 }, tokens: { remaining: 150_000, resetAt: NOW + 20 } });
  expect(quotaReportOf('p', headers({ 'content-type': 'application/json' }), NOW)).toBeUndefined();
  expect(quotaReportOf('p', headers({ 'x-ratelimit-remaining-requests': 'lots' }), NOW)).toBeUndefined();
  // No reset header: the reading holds a minute.
  expect(quotaReportOf('p', headers({ 'x-ratelimit-remaining-requests': '7' }), NOW)?.requests).toEqual({ remaining: 7, resetAt: NOW + 60_000 });
  expect(quotaReportOf('p', headers({}), NOW, 429, 3000)).toEqual({ provider: 'p', observedAt: NOW, throttledUntil: NOW + 3000 });
  expect(quotaReportOf('p', undefined, NOW, 429)?.throttledUntil).toBe(NOW + 1000);
});

test('reports merge newest-first: a late report of an older response does not overwrite a newer reading', () => {
  const first = mergeQuota(undefined, { provider: 'p', observedAt: NOW, requests: { remaining: 10, resetAt: NOW + 1000 } });
  const newer = mergeQuota(first, { provider: 'p', observedAt: NOW + 50, requests: { remaining: 8, resetAt: NOW + 950 } });
  const late = mergeQuota(newer, { provider: 'p', observedAt: NOW + 10, requests: { remaining: 9, resetAt: NOW + 990 }, throttledUntil: NOW + 500 });
  expect(late.requests).toEqual({ remaining: 8, resetAt: NOW + 950 });
  expect(late.reports).toBe(3);
  // A 429 counts whenever it arrives.
  expect(late.throttledUntil).toBe(NOW + 500);
});

test('the window: never more than half of what is left, at least 1, at most the configured concurrency', () => {
  expect(decideWindow([], 4, NOW)).toMatchObject({ window: 4, waitMs: 0 });
  expect(decideWindow([state({ requests: { remaining: 100, resetAt: NOW + 1000 } })], 4, NOW)).toMatchObject({ window: 4, waitMs: 0 });
  expect(decideWindow([state({ requests: { remaining: 6, resetAt: NOW + 1000 } })], 4, NOW)).toMatchObject({ window: 3, waitMs: 0 });
  expect(decideWindow([state({ requests: { remaining: 2, resetAt: NOW + 1000 } })], 4, NOW)).toMatchObject({ window: 1, waitMs: 0 });
  // The tightest provider decides.
  const two = [state({ requests: { remaining: 100, resetAt: NOW + 1000 } }), state({ provider: 'q', requests: { remaining: 4, resetAt: NOW + 1000 } })];
  expect(decideWindow(two, 8, NOW)).toMatchObject({ window: 2, why: 'q: 4 request(s) left' });
  // Tokens: half of what is left over what a child takes.
  expect(decideWindow([state({ tokens: { remaining: 64_000, resetAt: NOW + 1000 } })], 8, NOW, { tokensPerChild: 16_000 })).toMatchObject({ window: 2, waitMs: 0 });
});

test('before a 429 storm: one request left, fewer tokens than a child takes, or a 429 → wait for the reset, then one at a time', () => {
  expect(decideWindow([state({ requests: { remaining: 1, resetAt: NOW + 5000 } })], 4, NOW)).toMatchObject({ window: 1, waitMs: 5000 });
  expect(decideWindow([state({ requests: { remaining: 0, resetAt: NOW + 300 } })], 4, NOW)).toMatchObject({ window: 1, waitMs: 300 });
  expect(decideWindow([state({ tokens: { remaining: 1000, resetAt: NOW + 700 } })], 4, NOW, { tokensPerChild: 16_000 })).toMatchObject({ window: 1, waitMs: 700 });
  expect(decideWindow([state({ throttledUntil: NOW + 2000 })], 4, NOW)).toMatchObject({ window: 1, waitMs: 2000, why: 'p answered 429' });
  // Once the reset has passed, the old reading says nothing.
  expect(decideWindow([state({ requests: { remaining: 0, resetAt: NOW - 1 }, throttledUntil: NOW - 1 })], 4, NOW)).toMatchObject({ window: 4, waitMs: 0 });
});

test('samples share their provider: one quota workflow and one rate-limited queue per provider id', () => {
  expect(quotaWorkflowId('fast#2')).toBe(quotaWorkflowId('fast'));
  expect(providerTaskQueue('fast#2')).toBe('weaver-provider-fast');
});

test('registry rateLimit: requestsPerSecond, positive, nothing else', () => {
  const entry = (rateLimit: unknown) => ProviderRegistrySchema.safeParse({ providers: { p: { models: ['m'], rateLimit } } });
  expect(entry({ requestsPerSecond: 2 }).success).toBe(true);
  expect(entry({ requestsPerSecond: 0.5 }).success).toBe(true);
  expect(entry({ requestsPerSecond: 0 }).success).toBe(false);
  expect(entry({ requestsPerSecond: 2, burst: 5 }).success).toBe(false);
  expect(entry({}).success).toBe(false);
});

/**
 * Temporal's per-partition limiter as the server has it (service/matching matcher_data.go
 * simpleLimiter.consume: a task goes when ready <= now, then ready = max(now, ready + burst) -
 * burst + interval), fed a backlog: how many tasks it dispatches within the first `sec` seconds.
 */
function gcraDispatched(rps: number, sec: number): number {
  const interval = 1 / rps;
  let ready = -Infinity;
  let now = 0;
  let n = 0;
  for (;;) {
    now = Math.max(now, ready);
    if (now > sec + 1e-9) return n;
    n++;
    ready = Math.max(now, ready + TEMPORAL_BURST_SEC) - TEMPORAL_BURST_SEC + interval;
  }
}

test.each([
  [2, 1],
  [2, 3],
  [0.5, 1],
  [5, 2],
  [1, 10],
])("maxDispatchedIn(%p/s, %p s) is what Temporal's limiter lets through from a backlog: one partition, and 4 splitting the rate", (rps, sec) => {
  expect(maxDispatchedIn(rps, sec)).toBe(gcraDispatched(rps, sec));
  expect(maxDispatchedIn(rps, sec, 4)).toBe(4 * gcraDispatched(rps / 4, sec));
});

test('at 2/s: 5 calls in a second with one partition, 8 with the default four', () => {
  expect(maxDispatchedIn(2, 1)).toBe(5);
  expect(maxDispatchedIn(2, 1, 4)).toBe(8);
});
