// Provider strategies as deterministic workflow code: sequential fallback, parallel-any,
// parallel-all, consensus, and shadow calls. One activity execution is one HTTP call, and
// each is booked once in the Ledger from its recorded result (or its loss).
//
// Waiting out trouble: a provider failing with a retryable family (server, network, timeout,
// rate_limit) is retried with backoff (or its Retry-After, however long) on durable timers up
// to `retry.maxWaitSec` from its first failure before it counts as failed. `retry.maxTries`
// and the cooldown decide when to move to ANOTHER provider; when there is none to move to (one
// provider, all failing or cooling), the strategy keeps waiting instead of giving up.
// Infrastructure failures (a worker shut down or lost mid-call) are asked again at once: not a
// try, not a cooldown failure, not an attempt. Runs recorded before this behaviour replay as
// they ran: each place where it differs asks `patched(DURABLE_WAITS)`.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  sleep,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { GenerateChangeResult } from '../activities/types';
import { coolingUntil, noteFailure, noteSuccess, type CooldownSettings, type CooldownState } from '../domain/cooldown';
import {
  ARTIFACT_STORE_FAILED,
  DEFAULT_MAX_WAIT_SEC,
  familyOfFailureType,
  RETRYABLE_FAMILIES,
  WORKER_SHUTDOWN,
  type ErrorFamily,
  type ProviderFailureDetails,
} from '../domain/errors';
import type { Ledger } from '../domain/ledger';
import { DEFAULT_FALLBACK_ON, type RetrySettings } from '../domain/retry';
import type { ArtifactRef, CallEvent, ProviderSpec, Selection, Strategy } from '../domain/schema';
import { llmFor } from './activityProxies';

// The defaults live in the domain: the worker resolves them once at a run's start (settings.ts).
export { DEFAULT_FALLBACK_ON, DEFAULT_RETRY, type RetrySettings } from '../domain/retry';

/** Marks runs that wait out provider trouble durably (see the top of this file). */
const DURABLE_WAITS = 'durable-provider-waits';
const durable = () => patched(DURABLE_WAITS);

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

export interface StrategyEnv {
  workflowId: string;
  attempt: number;
  prompt: ArtifactRef;
  estTokensIn: number;
  /** Values masked as [REDACTED] in the prompt (recorded on each call event when there are any). */
  promptRedactions?: number;
  ledger: Ledger;
  cooldowns: CooldownState;
  cooldown: CooldownSettings;
  retry: RetrySettings;
  warnings: string[];
  /** Digest of what an answer's change makes of the files (consensus and shadows compare these). */
  resultDigest?: (result: GenerateChangeResult) => Promise<string | undefined>;
  /** Told when a durable wait for a provider begins (and `undefined` when none is left). */
  onWait?: (w: ProviderWait | undefined) => void;
  /** Failure families that move on to the next provider, fixed at the run's start (default: the strategy's, else DEFAULT_FALLBACK_ON). */
  fallbackOn?: string[];
}

export type StrategyOutcome =
  | { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; selection: Selection }
  | { kind: 'failed'; family: string; message: string; selection: Selection }
  | { kind: 'no_consensus'; detail: string; selection: Selection }
  | { kind: 'budget'; detail: string; selection: Selection };

/** `infra`: not the provider's fault — a worker shut down or lost mid-call, or the answer could not be stored. */
type Infra = 'worker_shutdown' | 'worker_lost' | 'artifact_store';

type Failed = { kind: 'failed'; family: string; message: string; spec: ProviderSpec; retryAfterMs?: number; infra?: Infra };
type Call = { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; event: CallEvent } | Failed | { kind: 'refused'; spec: ProviderSpec; detail: string };

const isValid = (c: Call | undefined): c is Extract<Call, { kind: 'answer' }> =>
  c?.kind === 'answer' && (c.result.outcome === 'ok' || c.result.outcome === 'subtasks');

const retryable = (family: string) => RETRYABLE_FAMILIES.includes(family as ErrorFamily);

/** One provider's run of failures within one strategy run. */
interface Track {
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

const track = (spec: ProviderSpec): Track => ({ spec, tries: 0, infra: 0, readyAt: 0, done: false });

/** Runs the task's strategy for one attempt, with its shadow providers alongside. */
export async function runStrategy(providers: ProviderSpec[], strategy: Strategy | undefined, env: StrategyEnv): Promise<StrategyOutcome> {
  const mode = strategy?.mode ?? 'sequential';
  const shadowIds = new Set(strategy?.shadow ?? []);
  const primary = providers.filter((p) => !shadowIds.has(p.id));
  const shadows = providers.filter((p) => shadowIds.has(p.id));
  const started = Date.now();
  const run = withWaits(env);
  // Settled, never rejected: a shadow cancelled with the task must not surface as an unhandled rejection.
  const shadowCalls = Promise.allSettled(shadows.map((s) => callOnce(s, run, mode, 'shadow')));

  let outcome: StrategyOutcome | undefined;
  try {
    switch (mode) {
      case 'sequential':
        outcome = await sequential(primary, strategy, run);
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

/** The env inside one strategy run: waits begin and end (parallel strategies wait concurrently). */
type RunEnv = StrategyEnv & { beginWait(w: ProviderWait): () => void };

/** `onWait` sees the latest wait still running, then `undefined` once none is. */
function withWaits(env: StrategyEnv): RunEnv {
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

/**
 * Providers in order, each tried up to `maxTries` times in a row (less if it starts cooling
 * down) before the next. When none answered, the ones still worth waiting for are called again
 * as each becomes ready (backoff or Retry-After), until one answers or all are past the horizon.
 */
async function sequential(primary: ProviderSpec[], strategy: Strategy | undefined, env: RunEnv): Promise<StrategyOutcome> {
  const fallbackOn = new Set<string>(env.fallbackOn ?? (strategy?.fallbackOn ? [...strategy.fallbackOn, 'cooldown'] : DEFAULT_FALLBACK_ON));
  const selection: Selection = { strategy: 'sequential', durationMs: 0 };
  const tracks = primary.map(track);
  const runStarted = Date.now();
  for (;;) {
    let last: StrategyOutcome | undefined;
    let held: Extract<StrategyOutcome, { kind: 'answer' }> | undefined;
    let called = false;
    for (const [i, t] of tracks.entries()) {
      const spec = t.spec;
      if (coolingUntil(env.cooldowns, spec.id, Date.now()) !== undefined) {
        last = { kind: 'failed', family: 'cooldown', message: `${spec.id} is cooling down after repeated failures`, selection };
        continue;
      }
      called = true;
      // A long Retry-After moves on at once when a provider further down can be asked now.
      const nextFree = () => tracks.slice(i + 1).some((n) => coolingUntil(env.cooldowns, n.spec.id, Date.now()) === undefined);
      const c = await callWithRetries(t, env, 'sequential', { preferNext: nextFree });
      if (c.kind === 'refused') return { kind: 'budget', detail: c.detail, selection };
      if (c.kind === 'answer') {
        t.done = true;
        const answer: StrategyOutcome = { kind: 'answer', result: c.result, spec, selection: { ...selection, chosen: spec.id } };
        if (c.result.outcome === 'schema_violation' && fallbackOn.has('schema_violation') && i < tracks.length - 1) {
          last = held = answer;
          continue;
        }
        return answer;
      }
      last = { kind: 'failed', family: c.family, message: c.message, selection };
      if (!fallbackOn.has(c.family)) return last;
    }
    if (called || tracks.length === 0) {
      if (!last || last.kind !== 'failed') return last ?? { kind: 'failed', family: 'none', message: 'no primary providers', selection };
      // An answer that could not be read beats no answer: the Decider retries it with feedback.
      if (held && durable()) return held;
      const waiting = tracks.filter((t) => !t.done);
      if (!waiting.length || !durable()) return last;
      return waitOut(tracks, env, fallbackOn, selection, last);
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
async function waitOut(tracks: Track[], env: RunEnv, fallbackOn: Set<string>, selection: Selection, last: Extract<StrategyOutcome, { kind: 'failed' }>): Promise<StrategyOutcome> {
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
    const c = await callOnce(t.spec, env, 'sequential', 'primary');
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

/** parallel-any: first valid answer wins, the rest are cancelled. parallel-all: wait for all, pick in provider order. */
async function parallel(primary: ProviderSpec[], env: RunEnv, mode: 'parallel-any' | 'parallel-all'): Promise<StrategyOutcome> {
  let winner: number | undefined;
  const results = await fanOut(primary, env, mode, isValid, (rs, i) => {
    if (winner === undefined && isValid(rs[i])) winner = i;
    return mode === 'parallel-any' && winner !== undefined;
  });
  if (mode === 'parallel-all') winner = results.findIndex(isValid);
  const selection: Selection = { strategy: mode, durationMs: 0 };
  if (winner !== undefined && winner >= 0) {
    const w = results[winner] as Extract<Call, { kind: 'answer' }>;
    selection.chosen = w.spec.id;
    selection.alternatives = results
      .filter((r, i): r is Extract<Call, { kind: 'answer' }> => i !== winner && isValid(r))
      .map((r) => ({ provider: r.spec.id, changeDigest: r.result.changeDigest, summary: r.result.summary }));
    return { kind: 'answer', result: w.result, spec: w.spec, selection };
  }
  return noValidAnswer(results, selection);
}

async function consensus(voters: ProviderSpec[], strategy: Strategy | undefined, env: RunEnv): Promise<StrategyOutcome> {
  const quorum = strategy?.quorum ?? Math.floor(voters.length / 2) + 1;
  const selection: Selection = { strategy: 'consensus', voters: voters.map((v) => v.id), durationMs: 0 };
  const isVote = (r: Call | undefined) => r?.kind === 'answer' && r.result.outcome === 'ok';
  const results = await fanOut(voters, env, 'consensus', isVote, (rs) => largestGroup(rs).size >= quorum);
  const valid = results.filter((r): r is Extract<Call, { kind: 'answer' }> => r?.kind === 'answer' && r.result.outcome === 'ok');
  if (!valid.length) return noValidAnswer(results, selection);
  const group = largestGroup(results);
  selection.voteShare = group.size / voters.length;
  selection.confidence = group.size / valid.length;
  selection.alternatives = valid
    .filter((r) => r.result.changeDigest !== group.digest)
    .map((r) => ({ provider: r.spec.id, changeDigest: r.result.changeDigest, summary: r.result.summary }));
  if (group.size < quorum) {
    return {
      kind: 'no_consensus',
      detail: `largest agreeing group ${group.size} of ${valid.length} valid answers from ${voters.length} voters; quorum is ${quorum}`,
      selection,
    };
  }
  const w = results[group.first] as Extract<Call, { kind: 'answer' }>;
  selection.chosen = w.spec.id;
  return { kind: 'answer', result: w.result, spec: w.spec, selection };
}

/** Groups valid change sets by digest; the largest wins, ties go to the earliest provider. */
function largestGroup(results: (Call | undefined)[]): { digest?: string; size: number; first: number } {
  const groups = new Map<string, { size: number; first: number }>();
  results.forEach((r, i) => {
    if (r?.kind !== 'answer' || r.result.outcome !== 'ok' || !r.result.changeDigest) return;
    const g = groups.get(r.result.changeDigest);
    if (g) g.size += 1;
    else groups.set(r.result.changeDigest, { size: 1, first: i });
  });
  let best: { digest?: string; size: number; first: number } = { size: 0, first: -1 };
  for (const [digest, g] of groups) {
    if (g.size > best.size || (g.size === best.size && g.first < best.first)) best = { digest, ...g };
  }
  return best;
}

function votersOf(primary: ProviderSpec[], strategy: Strategy | undefined): ProviderSpec[] {
  // N samples of one provider: same spec, distinct ids so events and votes stay apart.
  if (primary.length === 1 && strategy?.samples) {
    return Array.from({ length: strategy.samples }, (_, i) => ({ ...primary[0], id: `${primary[0].id}#${i + 1}` }));
  }
  return primary;
}

function noValidAnswer(results: (Call | undefined)[], selection: Selection): StrategyOutcome {
  const refused = results.find((r) => r?.kind === 'refused');
  const answered = results.find((r) => r?.kind === 'answer');
  if (answered?.kind === 'answer') return { kind: 'answer', result: answered.result, spec: answered.spec, selection };
  const failed = results.filter((r): r is Failed => r?.kind === 'failed');
  if (failed.length) {
    const last = failed[failed.length - 1];
    return { kind: 'failed', family: last.family, message: failed.map((f) => f.message).join(' | '), selection };
  }
  if (refused?.kind === 'refused') return { kind: 'budget', detail: refused.detail, selection };
  return { kind: 'failed', family: 'none', message: 'no provider answered', selection };
}

/**
 * Calls every provider at once inside one cancellation scope; `done` is asked after each
 * result and, once true, cancels the calls still running (the activities see the abort and
 * close their HTTP requests). Reservations are made in provider order before anything runs.
 * A provider out of tries keeps waiting for its next try only while no other gave an answer
 * that `counts` (there is nothing to fall back on yet).
 */
async function fanOut(
  specs: ProviderSpec[],
  env: RunEnv,
  strategy: string,
  counts: (r: Call | undefined) => boolean,
  done: (results: (Call | undefined)[], index: number) => boolean,
): Promise<(Call | undefined)[]> {
  const results: (Call | undefined)[] = specs.map(() => undefined);
  let stopped = false;
  const scope = new CancellationScope();
  const othersAnswered = (i: number) => () => results.some((r, j) => j !== i && counts(r));
  const othersFree = (i: number) => () => specs.some((s, j) => j !== i && coolingUntil(env.cooldowns, s.id, Date.now()) === undefined);
  // allSettled: every call is awaited (and booked) before anything propagates.
  const settled = await scope.run(() =>
    Promise.allSettled(
      specs.map(async (spec, i) => {
        try {
          results[i] = await callWithRetries(track(spec), env, strategy, { othersAnswered: othersAnswered(i), othersFree: othersFree(i) });
          if (!stopped && done(results, i)) {
            stopped = true;
            scope.cancel();
          }
        } catch (err) {
          // Our own early stop is expected; anything else (e.g. the task was cancelled) goes up.
          if (!(stopped && isCancellation(err))) throw err;
        }
      }),
    ),
  );
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return results;
}

interface RetryOptions {
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
async function callWithRetries(t: Track, env: RunEnv, strategy: string, opts: RetryOptions): Promise<Call> {
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
function afterFailure(t: Track, c: Failed, env: RunEnv): 'now' | 'retry' | 'stop' {
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
  if (c.infra === 'artifact_store') {
    // Each try is a paid call whose answer is lost: never more than maxTries of them.
    return t.tries >= env.retry.maxTries ? 'stop' : 'retry';
  }
  if (!retryable(c.family)) return 'stop';
  return 'retry';
}

function maxWaitMs(env: StrategyEnv): number {
  return (env.retry.maxWaitSec ?? DEFAULT_MAX_WAIT_SEC) * 1000;
}

function why(t: Track): string {
  return t.last?.retryAfterMs !== undefined ? 'Retry-After' : `backoff after ${t.tries} failure${t.tries === 1 ? '' : 's'}`;
}

function giveUp(t: Track, c: Failed, env: StrategyEnv): Failed {
  t.done = true;
  return { ...c, message: gaveUp(t, env) };
}

function gaveUp(t: Track, env: StrategyEnv): string {
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
async function waitUntil(t: Track, env: RunEnv, untilMs: number, family: string, reason: string, since = t.since, interrupt?: () => boolean): Promise<boolean> {
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

async function callOnce(spec: ProviderSpec, env: RunEnv, strategy: string, role: 'primary' | 'shadow'): Promise<Call> {
  const reservation = role === 'primary' ? env.ledger.reserve(spec, env.estTokensIn) : undefined;
  if (reservation && 'refused' in reservation) return { kind: 'refused', spec, detail: reservation.refused };
  const startedAt = Date.now();
  const base = {
    provider: spec.id,
    model: spec.model,
    strategy,
    role,
    attempt: env.attempt,
    startedAt: new Date(startedAt).toISOString(),
    ...(env.promptRedactions ? { promptRedactions: env.promptRedactions } : {}),
  };
  let answered: Extract<Call, { kind: 'answer' }>;
  try {
    // The summary is what the Web UI shows for this call in the timeline.
    const result = await llmFor(spec).generateChange.executeWithOptions(
      { summary: `${spec.id} (${spec.model}) · attempt ${env.attempt} · ${strategy}${role === 'shadow' ? ' · shadow' : ''}` },
      [{ workflowId: env.workflowId, attempt: env.attempt, provider: spec, prompt: env.prompt, role }],
    );
    const event = env.ledger.settle(reservation, spec, {
      ...base,
      latencyMs: result.latencyMs,
      tokensIn: result.tokensIn,
      tokensOut: result.tokensOut,
      outcome: result.outcome,
      changeDigest: result.changeDigest,
    });
    noteSuccess(env.cooldowns, spec.id);
    answered = { kind: 'answer', result, spec, event };
  } catch (err) {
    const latencyMs = Date.now() - startedAt;
    if (isCancellation(err)) {
      // Cancelled without the workflow asking (its worker stopped it): infrastructure, asked again.
      const unasked = err instanceof ActivityFailure && !CancellationScope.current().consideredCancelled && durable();
      if (err instanceof ActivityFailure) {
        // The request was (or may have been) on the wire when it was aborted: providers may bill
        // it, so its reservation is booked as estimated spend, never as known tokens.
        env.ledger.lost(reservation, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: unasked ? 'lost' : 'cancelled', ...(unasked ? { errorFamily: 'worker_shutdown' } : {}) });
      } else {
        // Cancelled before it was scheduled: nothing was sent.
        env.ledger.release(reservation);
      }
      if (unasked) return { kind: 'failed', spec, family: 'worker_shutdown', message: `${spec.id}: the call was cancelled by its worker`, infra: 'worker_shutdown' };
      throw err;
    }
    const f = describeFailure(err);
    // Booked as before in runs recorded before durable waits: budgets read the ledger, so a
    // replayed run must see the spend it saw.
    const current = !!(f.usage || f.sent || f.infra) && durable();
    if (f.usage && current) {
      // Answered and billed, but its answer was not stored: the real tokens, at their price.
      env.ledger.settle(reservation, spec, { ...base, latencyMs: f.usage.latencyMs ?? latencyMs, tokensIn: f.usage.tokensIn, tokensOut: f.usage.tokensOut, outcome: 'error', errorFamily: f.family });
    } else if (f.lost || (f.sent && current)) {
      // Sent, and no usage came back (timed out, or aborted by a stopping worker): estimated.
      env.ledger.lost(reservation, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: 'lost', errorFamily: f.family });
    } else if (f.infra === 'worker_shutdown' && current) {
      // Shut down before the request went out: nothing to pay.
      env.ledger.release(reservation);
    } else {
      env.ledger.settle(reservation, spec, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: 'error', errorFamily: f.family, retryAfterMs: f.retryAfterMs });
    }
    // A cooldown counts the provider's failures, not the infrastructure's.
    if (!f.infra || !current) noteFailure(env.cooldowns, spec.id, Date.now(), env.cooldown);
    if (f.family === 'auth') {
      const w = `provider ${spec.id} failed authentication: ${f.message}`;
      if (!env.warnings.includes(w)) env.warnings.push(w);
      log.error(w);
    }
    return { kind: 'failed', spec, family: f.family, message: f.message, retryAfterMs: f.retryAfterMs, ...(current && f.infra ? { infra: f.infra } : {}) };
  }
  // Booked above; comparing the resulting files is workspace work, not part of the call.
  const { result, event } = answered;
  if (env.resultDigest && result.outcome === 'ok' && result.change) {
    // A change that does not apply gets a digest of its own: it can only agree with its twin.
    const digest = (await env.resultDigest(result)) ?? `unapplicable-${result.changeDigest}`;
    result.changeDigest = digest;
    event.changeDigest = digest;
  }
  return answered;
}

export interface FailureDescription {
  family: string;
  message: string;
  retryAfterMs?: number;
  /** The activity's worker went silent mid-call (a Temporal timeout): the answer, if any, is lost. */
  lost?: boolean;
  /** The request went out and no usage came back (the provider's deadline passed, or the worker stopped it): it may be billed. */
  sent?: boolean;
  infra?: Infra;
  /** An answered call whose answer was lost to the artifact store: its real usage. */
  usage?: { tokensIn: number; tokensOut: number; latencyMs?: number };
}

export function describeFailure(err: unknown): FailureDescription {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as ProviderFailureDetails;
    if (cause.type === WORKER_SHUTDOWN) {
      return { family: 'worker_shutdown', message: cause.message, infra: 'worker_shutdown', sent: d.sent !== false };
    }
    if (cause.type === ARTIFACT_STORE_FAILED) {
      const usage = { tokensIn: d.tokensIn ?? 0, tokensOut: d.tokensOut ?? 0, latencyMs: d.latencyMs };
      return { family: 'artifact_store', message: cause.message, infra: 'artifact_store', usage };
    }
    // `sent`: the provider's own deadline passed with the request out (the openai SDK's timeout).
    return { family: familyOfFailureType(cause.type) ?? cause.type ?? 'error', message: cause.message, retryAfterMs: d.retryAfterMs ?? undefined, ...(d.sent ? { sent: true } : {}) };
  }
  if (cause instanceof TimeoutFailure) {
    // The worker went silent mid-call (crash or hang): the provider may have answered and billed.
    const message = `provider call timed out (${cause.timeoutType}); its answer, if any, was lost`;
    // A missed heartbeat is the worker's death, not the provider's slowness: asked again at once.
    return { family: 'timeout', message, lost: true, ...(cause.timeoutType === 'HEARTBEAT' ? { infra: 'worker_lost' as const } : {}) };
  }
  return { family: 'network', message: cause instanceof Error ? cause.message : String(cause) };
}
