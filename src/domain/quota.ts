// Provider quotas and rate limits (issue 19 items 3, 4): what a provider's rate-limit headers
// say is left, kept per provider by the providerQuota workflow (src/workflows/providerQuota.ts);
// how many children a batch or a decomposition may run given that; and the names of a
// provider's quota workflow and rate-limited task queue. Pure: the headers are read by the LLM
// activity, the clock is the caller's.

/** What is left of one budget (requests or tokens) until `resetAt` (epoch ms), as last reported. */
export interface QuotaReading {
  remaining: number;
  resetAt: number;
}

/** One provider response's quota facts (`x-ratelimit-*` headers; a 429's `retry-after`). */
export interface QuotaReport {
  provider: string;
  /** When the response arrived (the reporting worker's clock). */
  observedAt: number;
  requests?: QuotaReading;
  tokens?: QuotaReading;
  /** A 429: nothing should be sent before this. */
  throttledUntil?: number;
}

/** A provider's quota as the quota workflow keeps it: the newest reading of each kind. */
export interface QuotaState {
  provider: string;
  observedAt: number;
  requests?: QuotaReading;
  tokens?: QuotaReading;
  throttledUntil?: number;
  /** Reports merged since the workflow started (its continue-as-new counts from here). */
  reports: number;
}

/** Reports one quota workflow run takes before continuing as new: a few hundred events, far below any history limit. */
export const QUOTA_REPORTS_PER_RUN = 500;

/** How long a throttled provider without a Retry-After is left alone. */
export const DEFAULT_THROTTLE_MS = 1000;

/**
 * A reset header as milliseconds: Go-style durations as OpenAI sends them ("6m0s", "1s",
 * "20ms", "1h2m3.5s"), or a bare number of seconds. Anything else: undefined.
 */
export function parseResetMs(value: string | null | undefined): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/gy;
  let total = 0;
  let at = 0;
  for (let m = part.exec(v); m; m = part.exec(v)) {
    total += Number(m[1]) * unit[m[2]];
    at = part.lastIndex;
  }
  return at === v.length && at > 0 ? Math.ceil(total) : undefined;
}

type Headers = { get(name: string): string | null };

function reading(headers: Headers, kind: 'requests' | 'tokens', now: number): QuotaReading | undefined {
  const raw = headers.get(`x-ratelimit-remaining-${kind}`);
  if (raw === null || !/^\s*\d+\s*$/.test(raw)) return undefined;
  // No reset given: the reading holds for a minute (the window OpenAI's limits are stated in).
  const resetMs = parseResetMs(headers.get(`x-ratelimit-reset-${kind}`)) ?? 60_000;
  return { remaining: Number(raw), resetAt: now + resetMs };
}

/**
 * The quota facts of one response, or undefined when it carries none (most endpoints without
 * limits): a 429 (`status`) is throttling until its Retry-After (`retryAfterMs`, already read).
 */
export function quotaReportOf(provider: string, headers: Headers | undefined, now: number, status?: number, retryAfterMs?: number): QuotaReport | undefined {
  const requests = headers && reading(headers, 'requests', now);
  const tokens = headers && reading(headers, 'tokens', now);
  const throttledUntil = status === 429 ? now + (retryAfterMs ?? DEFAULT_THROTTLE_MS) : undefined;
  if (!requests && !tokens && throttledUntil === undefined) return undefined;
  return { provider, observedAt: now, ...(requests ? { requests } : {}), ...(tokens ? { tokens } : {}), ...(throttledUntil !== undefined ? { throttledUntil } : {}) };
}

/** `report` merged into `state`: a reading older than the one kept is ignored (reports race). */
export function mergeQuota(state: QuotaState | undefined, report: QuotaReport): QuotaState {
  const s: QuotaState = state ? { ...state, reports: state.reports + 1 } : { provider: report.provider, observedAt: report.observedAt, reports: 1 };
  const newer = !state || report.observedAt >= state.observedAt;
  if (newer) {
    s.observedAt = report.observedAt;
    if (report.requests) s.requests = report.requests;
    if (report.tokens) s.tokens = report.tokens;
  }
  if (report.throttledUntil !== undefined) s.throttledUntil = Math.max(s.throttledUntil ?? 0, report.throttledUntil);
  return s;
}

export interface WindowOptions {
  /** Tokens one child is expected to spend (its calls' prompts and answers), to read the token quota. */
  tokensPerChild?: number;
}

export interface QuotaWindow {
  /** How many children may run at once now: at least 1, at most the configured concurrency. */
  window: number;
  /** Wait this long before launching anything (the quota is nearly spent: wait for its reset). */
  waitMs: number;
  /** Why, for the log and the timer's summary. */
  why: string;
}

/**
 * How many children may run given the providers' quotas at `now` (the executor's rule): never
 * more than half of what is left, at least 1, at most `concurrency`. A provider with one request
 * left (or fewer tokens than one child's), or throttled by a 429, is waited for until its reset
 * rather than sent the call that starts a 429 storm. A reading whose reset has passed says nothing.
 */
export function decideWindow(states: QuotaState[], concurrency: number, now: number, opts: WindowOptions = {}): QuotaWindow {
  const max = Math.max(1, Math.floor(concurrency));
  let window = max;
  let waitUntil = now;
  const why: string[] = [];
  const bound = (n: number, what: string) => {
    const w = Math.max(1, Math.min(max, Math.floor(n)));
    if (w < window) window = w;
    if (w < max) why.push(what);
  };
  for (const s of states) {
    if (s.throttledUntil !== undefined && s.throttledUntil > now) {
      waitUntil = Math.max(waitUntil, s.throttledUntil);
      bound(1, `${s.provider} answered 429`);
    }
    const r = s.requests;
    if (r && r.resetAt > now) {
      if (r.remaining <= 1) {
        waitUntil = Math.max(waitUntil, r.resetAt);
        why.push(`${s.provider}: ${r.remaining} request(s) left until its reset`);
      }
      bound(r.remaining / 2, `${s.provider}: ${r.remaining} request(s) left`);
    }
    const t = s.tokens;
    const per = opts.tokensPerChild;
    if (t && per && t.resetAt > now) {
      if (t.remaining < per) {
        waitUntil = Math.max(waitUntil, t.resetAt);
        why.push(`${s.provider}: ${t.remaining} token(s) left, a child takes ~${per}`);
      }
      bound(t.remaining / 2 / per, `${s.provider}: ${t.remaining} token(s) left`);
    }
  }
  return { window, waitMs: waitUntil - now, why: why.length ? why.join('; ') : 'no quota limits reported' };
}

/** The quota workflow of a provider (`<id>#n` samples share their provider's). */
export function quotaWorkflowId(provider: string): string {
  return `weaver-quota/${provider.replace(/#\d+$/, '')}`;
}

/**
 * The task queue of a rate-limited provider's calls (`weaver-provider-<id>`; `<id>#n` samples
 * share their provider's): derived here only, by the worker that polls it and the workflow that
 * sends calls there. One per provider id in a namespace, so one limit for every worker.
 */
export function providerTaskQueue(providerId: string): string {
  return `weaver-provider-${providerId.replace(/#\d+$/, '')}`;
}

/** Temporal's rate limiter lets a partition run this far ahead of its rate (matching's defaultBurstDuration, fixed). */
export const TEMPORAL_BURST_SEC = 1;

/**
 * The most calls Temporal dispatches from a queue limited to `rps` in any `windowSec`-second
 * window: each of its `partitions` gets rps / partitions a second from a GCRA limiter that may
 * run TEMPORAL_BURST_SEC ahead (server 1.32). One partition: ⌊rps × (T + 1)⌋ + 1.
 */
export function maxDispatchedIn(rps: number, windowSec: number, partitions = 1): number {
  return partitions * (Math.floor((rps / partitions) * (windowSec + TEMPORAL_BURST_SEC)) + 1);
}
