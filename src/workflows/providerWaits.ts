// Waiting out a failing provider: tries in a row with backoff or its Retry-After, on durable
// timers labelled for the Web UI and shown in `progress`, up to `retry.maxWaitSec` from its
// first failure. Infrastructure failures are asked again at once (not a try, not a cooldown
// failure, not an attempt).
import { condition, sleep } from '@temporalio/workflow';
import { coolingUntil } from '../domain/cooldown';
import { DEFAULT_MAX_WAIT_SEC, RETRYABLE_FAMILIES, type ErrorFamily } from '../domain/errors';
import type { ProviderSpec } from '../domain/schema';
import { callOnce, durable, type Call, type Failed, type StrategyEnv } from './providerCall';

/**
 * Infrastructure failures asked again at once, in a row, before the call counts as failed: a
 * worker that dies on every try of this call (it may be the call that kills it) must not loop.
 */
const MAX_INFRA_RETRIES = 10;

/** A durable wait for a provider, as `progress` shows it. */
export interface ProviderWait {
  provider: string;
  family: string;
  /** When the next call goes (workflow clock, epoch ms). */
  untilMs: number;
  /** How long the provider had been failing when this wait began. */
  waitedMs: number;
}

/** The `wait` field of the `progress` query for a ProviderWait. */
export function progressWait(w: ProviderWait | undefined): { provider: string; family: string; until: string; waitedMs: number } | undefined {
  return w && { provider: w.provider, family: w.family, until: new Date(w.untilMs).toISOString(), waitedMs: w.waitedMs };
}

const retryable = (family: string) => RETRYABLE_FAMILIES.includes(family as ErrorFamily);

/** One provider's run of failures within one strategy run. */
export interface Track {
  spec: ProviderSpec;
  /** Failures in a row that count as tries. */
  tries: number;
  /** Infrastructure failures in a row (asked again at once). */
  infra: number;
  /** When its current run of failures began (the horizon counts from here). */
  since?: number;
  /** The earliest its next call may go (backoff or Retry-After). */
  readyAt: number;
  last?: Failed;
  /** Out of this strategy run: answered, failed for good, or past the horizon. */
  done: boolean;
}

export const track = (spec: ProviderSpec): Track => ({ spec, tries: 0, infra: 0, readyAt: 0, done: false });

/** The env inside one strategy run: waits begin and end (parallel strategies wait concurrently). */
export type RunEnv = StrategyEnv & { beginWait(w: ProviderWait): () => void };

/** `onWait` sees the latest wait still running, then `undefined` once none is. */
export function withWaits(env: StrategyEnv): RunEnv {
  const active: ProviderWait[] = [];
  return {
    ...env,
    beginWait: (w) => {
      active.push(w);
      env.onWait?.(w);
      return () => {
        active.splice(active.indexOf(w), 1);
        env.onWait?.(active[active.length - 1]);
      };
    },
  };
}

export interface RetryOptions {
  /** sequential: whether a provider further down could be asked instead of waiting out a long Retry-After. */
  preferNext?: () => boolean;
  /** Parallel strategies: keep waiting past `maxTries` (up to the horizon) until another provider answered. */
  othersAnswered?: () => boolean;
  /** Parallel strategies: whether another provider of the fan-out is not cooling down (else a cooling one is waited for). */
  othersFree?: () => boolean;
}

/**
 * Calls one provider until it answers or should give way: tries in a row up to `maxTries`
 * (fewer if it starts cooling down), on backoff or Retry-After. In a parallel strategy it
 * keeps going past that, up to the horizon, while no other provider has answered.
 */
export async function callWithRetries(t: Track, env: RunEnv, strategy: string, opts: RetryOptions): Promise<Call> {
  const spec = t.spec;
  const coolEnd = coolingUntil(env.cooldowns, spec.id, Date.now());
  if (coolEnd !== undefined) {
    const cooling: Failed = { kind: 'failed', family: 'cooldown', message: `${spec.id} is cooling down after repeated failures`, spec };
    // Cooling is for moving to another provider; with none to move to, wait for it instead.
    if (!opts.othersAnswered || opts.othersFree?.() || !durable()) return cooling;
    t.since = Date.now();
    if (coolEnd - t.since > maxWaitMs(env)) return { ...cooling, message: `${cooling.message} until ${new Date(coolEnd).toISOString()}, past strategy.retry.maxWaitSec` };
    if (await waitUntil(t, env, coolEnd, 'cooldown', 'cooling down', t.since, opts.othersAnswered)) return cooling;
  }
  for (;;) {
    const c = await callOnce(spec, env, strategy, 'primary');
    if (c.kind !== 'failed') return c;
    const next = afterFailure(t, c, env);
    if (next === 'stop') {
      t.done = true;
      return c;
    }
    if (next === 'now') continue;
    const spent = t.tries >= env.retry.maxTries || coolingUntil(env.cooldowns, spec.id, Date.now()) !== undefined;
    if (!spent) {
      // Within its tries: as before, unless the wait would pass the horizon, or a long
      // Retry-After can be skipped by asking the next provider now.
      if (t.readyAt - t.since! > maxWaitMs(env) && durable()) return giveUp(t, c, env);
      if (c.retryAfterMs !== undefined && c.retryAfterMs > env.retry.maxIntervalMs && opts.preferNext?.() && durable()) return c;
      await waitUntil(t, env, t.readyAt, c.family, why(t));
      continue;
    }
    // Out of tries in a row: sequential moves on (and may come back, see waitOut); a parallel
    // strategy waits while no other provider has answered.
    if (!opts.othersAnswered || opts.othersAnswered() || !durable()) return c;
    if (t.readyAt - t.since! > maxWaitMs(env)) return giveUp(t, c, env);
    if (await waitUntil(t, env, t.readyAt, c.family, why(t), undefined, opts.othersAnswered)) return c;
  }
}

/**
 * Books a failed call into its provider's track and says what comes next: `now` (asked again
 * at once: infrastructure), `retry` (after `t.readyAt`), or `stop` (not retryable, or too many).
 */
export function afterFailure(t: Track, c: Failed, env: RunEnv): 'now' | 'retry' | 'stop' {
  const now = Date.now();
  t.last = c;
  // `infra` is set only in runs with durable waits (callOnce).
  if (c.infra && c.infra !== 'artifact_store') {
    // The call never had its chance (its worker went away): not a try.
    t.infra += 1;
    return t.infra > MAX_INFRA_RETRIES ? 'stop' : 'now';
  }
  t.infra = 0;
  t.tries += 1;
  t.since ??= now;
  const backoff = Math.min(env.retry.initialIntervalMs * 2 ** (t.tries - 1), env.retry.maxIntervalMs);
  // Retry-After (or a quota reset) becomes a durable timer, however long (within the horizon).
  t.readyAt = now + (c.retryAfterMs ?? backoff);
  if (c.infra === 'artifact_store' || c.cut) {
    // Each try is a paid call whose answer is lost (or cut off): never more than maxTries of
    // them in a row, however long the horizon (`cut` is set only in runs since CUT_STREAMS).
    return t.tries >= env.retry.maxTries ? 'stop' : 'retry';
  }
  if (!retryable(c.family)) return 'stop';
  return 'retry';
}

export function maxWaitMs(env: StrategyEnv): number {
  return (env.retry.maxWaitSec ?? DEFAULT_MAX_WAIT_SEC) * 1000;
}

export function why(t: Track): string {
  return t.last?.retryAfterMs !== undefined ? 'Retry-After' : `backoff after ${t.tries} failure${t.tries === 1 ? '' : 's'}`;
}

function giveUp(t: Track, c: Failed, env: StrategyEnv): Failed {
  t.done = true;
  return { ...c, message: gaveUp(t, env) };
}

export function gaveUp(t: Track, env: StrategyEnv): string {
  const failing = Math.round((Date.now() - (t.since ?? Date.now())) / 1000);
  return `${t.last?.message ?? `${t.spec.id} is cooling down`}; gave up after ${t.tries} tr${t.tries === 1 ? 'y' : 'ies'} over ${failing}s: the next one would pass strategy.retry.maxWaitSec (${maxWaitMs(env) / 1000}s)`;
}

/** "2s", "1.5s", "250ms", "3m20s": timer summaries in the Web UI. */
function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  const s = Math.round(ms / 1000);
  return s < 3600 ? `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}` : `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m`;
}

/**
 * A durable timer until `untilMs`, labelled for the Web UI and reported through `onWait`. With
 * `interrupt`, ends early once it holds; returns whether it did.
 */
export async function waitUntil(t: Track, env: RunEnv, untilMs: number, family: string, reason: string, since = t.since, interrupt?: () => boolean): Promise<boolean> {
  const ms = Math.max(1, untilMs - Date.now());
  const summary = `waiting ${duration(ms)}: ${t.spec.id} ${family} (${reason})`;
  const end = env.beginWait({ provider: t.spec.id, family, untilMs, waitedMs: Date.now() - (since ?? Date.now()) });
  try {
    // condition() resolves true when `interrupt` held before the timer fired.
    if (interrupt) return await condition(interrupt, ms, { summary });
    await sleep(ms, { summary });
    return false;
  } finally {
    end();
  }
}
