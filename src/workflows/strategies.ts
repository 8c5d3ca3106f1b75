// Provider strategies as deterministic workflow code: sequential fallback, parallel-any,
// parallel-all, consensus, and shadow calls. One activity execution is one HTTP call, and
// each is booked once in the Ledger from its recorded result (or its loss).
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  sleep,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { GenerateChangeResult } from '../activities/types';
import { coolingUntil, noteFailure, noteSuccess, type CooldownSettings, type CooldownState } from '../domain/cooldown';
import { familyOfFailureType, RETRYABLE_FAMILIES, type ErrorFamily } from '../domain/errors';
import type { Ledger } from '../domain/ledger';
import type { ArtifactRef, CallEvent, ProviderSpec, Selection, Strategy } from '../domain/schema';
import { llm } from './activityProxies';

export interface RetrySettings {
  maxTries: number;
  initialIntervalMs: number;
  maxIntervalMs: number;
}

export const DEFAULT_RETRY: RetrySettings = { maxTries: 4, initialIntervalMs: 1000, maxIntervalMs: 60_000 };
export const DEFAULT_FALLBACK_ON: string[] = ['rate_limit', 'server', 'timeout', 'network', 'context_length', 'schema_violation', 'auth', 'cooldown'];

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
}

export type StrategyOutcome =
  | { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; selection: Selection }
  | { kind: 'failed'; family: string; message: string; selection: Selection }
  | { kind: 'no_consensus'; detail: string; selection: Selection }
  | { kind: 'budget'; detail: string; selection: Selection };

type Call =
  | { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; event: CallEvent }
  | { kind: 'failed'; family: string; message: string; spec: ProviderSpec; retryAfterMs?: number }
  | { kind: 'refused'; spec: ProviderSpec; detail: string };

const isValid = (c: Call | undefined): c is Extract<Call, { kind: 'answer' }> =>
  c?.kind === 'answer' && (c.result.outcome === 'ok' || c.result.outcome === 'subtasks');

/** Runs the task's strategy for one attempt, with its shadow providers alongside. */
export async function runStrategy(providers: ProviderSpec[], strategy: Strategy | undefined, env: StrategyEnv): Promise<StrategyOutcome> {
  const mode = strategy?.mode ?? 'sequential';
  const shadowIds = new Set(strategy?.shadow ?? []);
  const primary = providers.filter((p) => !shadowIds.has(p.id));
  const shadows = providers.filter((p) => shadowIds.has(p.id));
  const started = Date.now();
  // Settled, never rejected: a shadow cancelled with the task must not surface as an unhandled rejection.
  const shadowCalls = Promise.allSettled(shadows.map((s) => callOnce(s, env, mode, 'shadow')));

  let outcome: StrategyOutcome | undefined;
  try {
    switch (mode) {
      case 'sequential':
        outcome = await sequential(primary, strategy, env);
        break;
      case 'parallel-any':
      case 'parallel-all':
        outcome = await parallel(primary, env, mode);
        break;
      case 'consensus':
        outcome = await consensus(votersOf(primary, strategy), strategy, env);
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

async function sequential(primary: ProviderSpec[], strategy: Strategy | undefined, env: StrategyEnv): Promise<StrategyOutcome> {
  const fallbackOn = new Set<string>(strategy?.fallbackOn ? [...strategy.fallbackOn, 'cooldown'] : DEFAULT_FALLBACK_ON);
  const selection: Selection = { strategy: 'sequential', durationMs: 0 };
  for (;;) {
    let last: StrategyOutcome | undefined;
    let called = false;
    for (const [i, spec] of primary.entries()) {
      const until = coolingUntil(env.cooldowns, spec.id, Date.now());
      if (until !== undefined) {
        last = { kind: 'failed', family: 'cooldown', message: `${spec.id} is cooling down after repeated failures`, selection };
        continue;
      }
      called = true;
      const c = await callWithRetries(spec, env, 'sequential', 'primary');
      if (c.kind === 'refused') return { kind: 'budget', detail: c.detail, selection };
      if (c.kind === 'answer') {
        const answer: StrategyOutcome = { kind: 'answer', result: c.result, spec, selection: { ...selection, chosen: spec.id } };
        if (c.result.outcome === 'schema_violation' && fallbackOn.has('schema_violation') && i < primary.length - 1) {
          last = answer;
          continue;
        }
        return answer;
      }
      last = { kind: 'failed', family: c.family, message: c.message, selection };
      if (!fallbackOn.has(c.family)) return last;
    }
    if (called || primary.length === 0) return last ?? { kind: 'failed', family: 'none', message: 'no primary providers', selection };
    // Every provider is cooling down: wait (a durable timer) for the first to come back.
    const next = Math.min(...primary.map((p) => coolingUntil(env.cooldowns, p.id, Date.now()) ?? Date.now()));
    log.warn('all providers cooling down; waiting', { untilMs: next });
    await sleep(Math.max(1, next - Date.now()));
  }
}

/** parallel-any: first valid answer wins, the rest are cancelled. parallel-all: wait for all, pick in provider order. */
async function parallel(primary: ProviderSpec[], env: StrategyEnv, mode: 'parallel-any' | 'parallel-all'): Promise<StrategyOutcome> {
  let winner: number | undefined;
  const results = await fanOut(primary, env, mode, (rs, i) => {
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

async function consensus(voters: ProviderSpec[], strategy: Strategy | undefined, env: StrategyEnv): Promise<StrategyOutcome> {
  const quorum = strategy?.quorum ?? Math.floor(voters.length / 2) + 1;
  const selection: Selection = { strategy: 'consensus', voters: voters.map((v) => v.id), durationMs: 0 };
  const results = await fanOut(voters, env, 'consensus', (rs) => largestGroup(rs).size >= quorum);
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
  const failed = results.filter((r): r is Extract<Call, { kind: 'failed' }> => r?.kind === 'failed');
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
 */
async function fanOut(
  specs: ProviderSpec[],
  env: StrategyEnv,
  strategy: string,
  done: (results: (Call | undefined)[], index: number) => boolean,
): Promise<(Call | undefined)[]> {
  const results: (Call | undefined)[] = specs.map(() => undefined);
  let stopped = false;
  const scope = new CancellationScope();
  // allSettled: every call is awaited (and booked) before anything propagates.
  const settled = await scope.run(() =>
    Promise.allSettled(
      specs.map(async (spec, i) => {
        try {
          results[i] = await callWithRetries(spec, env, strategy, 'primary');
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

async function callWithRetries(spec: ProviderSpec, env: StrategyEnv, strategy: string, role: 'primary' | 'shadow'): Promise<Call> {
  if (coolingUntil(env.cooldowns, spec.id, Date.now()) !== undefined) {
    return { kind: 'failed', family: 'cooldown', message: `${spec.id} is cooling down after repeated failures`, spec };
  }
  for (let tryNo = 1; ; tryNo++) {
    const c = await callOnce(spec, env, strategy, role);
    if (c.kind !== 'failed') return c;
    if (!RETRYABLE_FAMILIES.includes(c.family as ErrorFamily) || tryNo >= env.retry.maxTries) return c;
    if (coolingUntil(env.cooldowns, spec.id, Date.now()) !== undefined) return c;
    // Retry-After (or a quota reset) becomes a durable timer, however long.
    const backoff = Math.min(env.retry.initialIntervalMs * 2 ** (tryNo - 1), env.retry.maxIntervalMs);
    await sleep(c.retryAfterMs ?? backoff);
  }
}

async function callOnce(spec: ProviderSpec, env: StrategyEnv, strategy: string, role: 'primary' | 'shadow'): Promise<Call> {
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
    const result = await llm.generateChange.executeWithOptions(
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
      if (err instanceof ActivityFailure) {
        // The request was (or may have been) on the wire when it was aborted: providers may bill
        // it, so its reservation is booked as estimated spend, never as known tokens.
        env.ledger.lost(reservation, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: 'cancelled' });
      } else {
        // Cancelled before it was scheduled: nothing was sent.
        env.ledger.release(reservation);
      }
      throw err;
    }
    const f = describeFailure(err);
    if (f.lost) {
      env.ledger.lost(reservation, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: 'lost', errorFamily: f.family });
    } else {
      env.ledger.settle(reservation, spec, { ...base, latencyMs, tokensIn: 0, tokensOut: 0, outcome: 'error', errorFamily: f.family, retryAfterMs: f.retryAfterMs });
    }
    noteFailure(env.cooldowns, spec.id, Date.now(), env.cooldown);
    if (f.family === 'auth') {
      const w = `provider ${spec.id} failed authentication: ${f.message}`;
      if (!env.warnings.includes(w)) env.warnings.push(w);
      log.error(w);
    }
    return { kind: 'failed', spec, family: f.family, message: f.message, retryAfterMs: f.retryAfterMs };
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

export function describeFailure(err: unknown): { family: string; message: string; retryAfterMs?: number; lost?: boolean } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as { retryAfterMs?: number };
    return { family: familyOfFailureType(cause.type) ?? cause.type ?? 'error', message: cause.message, retryAfterMs: d.retryAfterMs ?? undefined };
  }
  if (cause instanceof TimeoutFailure) {
    // The worker went silent mid-call (crash or hang): the provider may have answered and billed.
    return { family: 'timeout', message: `provider call timed out (${cause.timeoutType}); its answer, if any, was lost`, lost: true };
  }
  return { family: 'network', message: cause instanceof Error ? cause.message : String(cause) };
}
