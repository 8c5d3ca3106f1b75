// Provider strategies as deterministic workflow code: sequential fallback (and `cost`, the same
// over providers ordered by price: routing.ts), parallel-any, parallel-all and consensus
// (parallelStrategies.ts), and shadow calls. One activity execution is one HTTP call, and
// each is booked once in the Ledger from its recorded result or its loss (providerCall.ts);
// waits and retries are in providerWaits.ts.
//
// Waiting out trouble: a provider failing with a retryable family (server, network, timeout,
// rate_limit) is retried with backoff (or its Retry-After, however long) on durable timers up
// to `retry.maxWaitSec` from its first failure before it counts as failed. `retry.maxTries`
// and the cooldown decide when to move to ANOTHER provider; when there is none to move to (one
// provider, all failing or cooling), the strategy keeps waiting instead of giving up.
// Infrastructure failures (a worker shut down or lost mid-call) are asked again at once: not a
// try, not a cooldown failure, not an attempt. Runs recorded before this behaviour replay as
// they ran: each place where it differs asks `patched(DURABLE_WAITS)`.
import { log } from '@temporalio/workflow';
import { coolingUntil } from '../domain/cooldown';
import { DEFAULT_FALLBACK_ON } from '../domain/retry';
import { fallbackReason } from '../domain/routing';
import type { GenerateChangeResult } from '../activities/types';
import type { Reservation } from '../domain/ledger';
import type { ProviderSpec, Selection, Strategy } from '../domain/schema';
import { callOnce, durable, type Call, type StrategyEnv } from './providerCall';
import { afterFailure, callWithRetries, gaveUp, maxWaitMs, track, waitUntil, why, withWaits, type RunEnv, type Track } from './providerWaits';
import { consensus, parallel, votersOf } from './parallelStrategies';

// The defaults live in the domain: the worker resolves them once at a run's start (settings.ts).
export { DEFAULT_FALLBACK_ON, DEFAULT_RETRY, type RetrySettings } from '../domain/retry';
export { describeFailure, type StrategyEnv } from './providerCall';
export { progressWait, type ProviderWait } from './providerWaits';

export type StrategyOutcome =
  // parallel-all: every call's result in provider order, for the attempt to check (candidates.ts).
  | { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; selection: Selection; all?: (Call | undefined)[] }
  | { kind: 'failed'; family: string; message: string; selection: Selection }
  | { kind: 'no_consensus'; detail: string; selection: Selection }
  | { kind: 'budget'; detail: string; selection: Selection };

/** Runs the task's strategy for one attempt, with its shadow providers alongside. */
export async function runStrategy(providers: ProviderSpec[], strategy: Strategy | undefined, env: StrategyEnv): Promise<StrategyOutcome> {
  const mode = strategy?.mode ?? 'sequential';
  const shadowIds = new Set(strategy?.shadow ?? []);
  const primary = providers.filter((p) => !shadowIds.has(p.id));
  const shadows = providers.filter((p) => shadowIds.has(p.id));
  const started = Date.now();
  const run = withWaits(env);
  // Shadows are paid calls: reserved before anything is called, so a budget they would pass
  // stops the attempt before the call (runs before shadows counted held no reservation).
  const held: Reservation[] = [];
  if (env.ledger.options.shadowSpend) {
    for (const s of shadows) {
      const r = env.ledger.reserve(s, env.estTokensIn, 'shadow');
      if ('refused' in r) {
        for (const h of held) env.ledger.release(h);
        return { kind: 'budget', detail: r.refused, selection: { strategy: mode, durationMs: 0 } };
      }
      held.push(r);
    }
    // ...along with the attempt's first primary call: a budget that cannot hold both refuses
    // before either goes out (the shadow is not sent for an attempt that cannot run).
    const probe = shadows.length && primary.length ? env.ledger.reserve(primary[0], env.estTokensIn) : undefined;
    if (probe && 'refused' in probe) {
      for (const h of held) env.ledger.release(h);
      return { kind: 'budget', detail: probe.refused, selection: { strategy: mode, durationMs: 0 } };
    }
    env.ledger.release(probe);
  }
  // Settled, never rejected: a shadow cancelled with the task must not surface as an unhandled rejection.
  const shadowCalls = Promise.allSettled(shadows.map((s, i) => callOnce(s, run, mode, 'shadow', held[i])));

  let outcome: StrategyOutcome | undefined;
  try {
    switch (mode) {
      case 'sequential':
      case 'cost':
        // cost: the providers come ordered by this call's estimated price (domain/routing.ts).
        outcome = await sequential(primary, strategy, run, mode);
        break;
      case 'parallel-any':
      case 'parallel-all':
        outcome = await parallel(primary, run, mode);
        break;
      case 'consensus':
        outcome = await consensus(votersOf(primary, strategy), strategy, run);
        break;
    }
    outcome.selection.durationMs = Date.now() - started;
  } finally {
    // Shadows are recorded and compared, never used; they are always awaited, so booked.
    const chosen = outcome?.kind === 'answer' ? outcome.result.changeDigest : undefined;
    for (const s of await shadowCalls) {
      if (s.status === 'fulfilled' && s.value.kind === 'answer') s.value.event.agreesWithChosen = chosen !== undefined && s.value.event.changeDigest === chosen;
    }
  }
  return outcome;
}

/**
 * Providers in order, each tried up to `maxTries` times in a row (less if it starts cooling
 * down) before the next. When none answered, the ones still worth waiting for are called again
 * as each becomes ready (backoff or Retry-After), until one answers or all are past the horizon.
 */
async function sequential(primary: ProviderSpec[], strategy: Strategy | undefined, env: RunEnv, label: 'sequential' | 'cost' = 'sequential'): Promise<StrategyOutcome> {
  const fallbackOn = new Set<string>(env.fallbackOn ?? (strategy?.fallbackOn ? [...strategy.fallbackOn, 'cooldown'] : DEFAULT_FALLBACK_ON));
  const selection: Selection = { strategy: label, durationMs: 0 };
  const tracks = primary.map(track);
  const runStarted = Date.now();
  for (;;) {
    let last: StrategyOutcome | undefined;
    let held: Extract<StrategyOutcome, { kind: 'answer' }> | undefined;
    let called = false;
    /** Why the provider before the next one did not do (the next one's reason, when routes are recorded). */
    let previous: { provider: string; family: string; message: string } | undefined;
    for (const [i, t] of tracks.entries()) {
      const spec = t.spec;
      if (coolingUntil(env.cooldowns, spec.id, Date.now()) !== undefined) {
        last = { kind: 'failed', family: 'cooldown', message: `${spec.id} is cooling down after repeated failures`, selection };
        previous = { provider: spec.id, family: 'cooldown', message: last.message };
        continue;
      }
      called = true;
      env.onRoute?.(spec, previous ? fallbackReason(previous) : (env.firstReason ?? 'first in order'));
      // A long Retry-After moves on at once when a provider further down can be asked now.
      const nextFree = () => tracks.slice(i + 1).some((n) => coolingUntil(env.cooldowns, n.spec.id, Date.now()) === undefined);
      const c = await callWithRetries(t, env, label, { preferNext: nextFree });
      if (c.kind === 'refused') return { kind: 'budget', detail: c.detail, selection };
      if (c.kind === 'answer') {
        t.done = true;
        const answer: StrategyOutcome = { kind: 'answer', result: c.result, spec, selection: { ...selection, chosen: spec.id } };
        if (c.result.outcome === 'schema_violation' && fallbackOn.has('schema_violation') && i < tracks.length - 1) {
          last = held = answer;
          previous = { provider: spec.id, family: 'schema_violation', message: c.result.error ?? 'invalid answer' };
          continue;
        }
        return answer;
      }
      last = { kind: 'failed', family: c.family, message: c.message, selection };
      previous = { provider: spec.id, family: c.family, message: c.message };
      if (!fallbackOn.has(c.family)) return last;
    }
    if (called || tracks.length === 0) {
      if (!last || last.kind !== 'failed') return last ?? { kind: 'failed', family: 'none', message: 'no primary providers', selection };
      // An answer that could not be read beats no answer: the Decider retries it with feedback.
      if (held && durable()) return held;
      const waiting = tracks.filter((t) => !t.done);
      if (!waiting.length || !durable()) return last;
      return waitOut(tracks, env, fallbackOn, selection, last, label);
    }
    // Every provider is cooling down and none was called: wait (a durable timer) for the first to come back.
    const next = Math.min(...tracks.map((t) => coolingUntil(env.cooldowns, t.spec.id, Date.now()) ?? Date.now()));
    const first = tracks.find((t) => coolingUntil(env.cooldowns, t.spec.id, Date.now()) === next) ?? tracks[0];
    if (next - runStarted > maxWaitMs(env) && durable()) {
      return { kind: 'failed', family: 'cooldown', message: `every provider is cooling down until ${new Date(next).toISOString()}, past strategy.retry.maxWaitSec (${maxWaitMs(env) / 1000}s)`, selection };
    }
    log.warn('all providers cooling down; waiting', { untilMs: next });
    await waitUntil(first, env, next, 'cooldown', 'all cooling down', runStarted);
  }
}

/**
 * Sequential, once every provider failed: nothing else to fall back on, so the providers still
 * within their horizon are called again as each becomes ready (earliest first, ties in order).
 */
async function waitOut(tracks: Track[], env: RunEnv, fallbackOn: Set<string>, selection: Selection, last: Extract<StrategyOutcome, { kind: 'failed' }>, label: string): Promise<StrategyOutcome> {
  for (;;) {
    const live = tracks.filter((t) => !t.done);
    if (!live.length) return last;
    // Providers skipped while cooling down (never called in this run) are ready when that ends.
    for (const n of live) if (!n.last) n.readyAt = Math.max(n.readyAt, coolingUntil(env.cooldowns, n.spec.id, Date.now()) ?? 0);
    const t = live.reduce((a, b) => (b.readyAt < a.readyAt ? b : a));
    t.since ??= Date.now();
    if (t.readyAt - t.since > maxWaitMs(env)) {
      t.done = true;
      last = { kind: 'failed', family: t.last?.family ?? 'cooldown', message: gaveUp(t, env), selection };
      continue;
    }
    if (t.readyAt > Date.now()) await waitUntil(t, env, t.readyAt, t.last?.family ?? 'cooldown', why(t));
    env.onRoute?.(t.spec, `waited for: every provider had failed (${last.family})`);
    const c = await callOnce(t.spec, env, label, 'primary');
    if (c.kind === 'refused') return { kind: 'budget', detail: c.detail, selection };
    if (c.kind === 'answer') return { kind: 'answer', result: c.result, spec: t.spec, selection: { ...selection, chosen: t.spec.id } };
    const next = afterFailure(t, c, env);
    if (next === 'stop') {
      t.done = true;
      last = { kind: 'failed', family: c.family, message: c.message, selection };
      if (!fallbackOn.has(c.family)) return last;
    }
  }
}
