// One provider call as an activity, booked once in the Ledger from its recorded result (or its
// loss): an answer at its tokens; a call on the wire when it was lost, timed out or aborted as
// estimated spend; a failure before anything was sent at nothing. Infrastructure failures (a
// worker shut down or lost mid-call, an answer the artifact store could not keep) are marked so
// the strategy asks again instead of counting them against the provider.
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, log, TimeoutFailure } from '@temporalio/workflow';
import { patched } from './patches';
import type { GenerateChangeResult } from '../activities/types';
import { noteFailure, noteSuccess, type CooldownSettings, type CooldownState } from '../domain/cooldown';
import { ARTIFACT_STORE_FAILED, familyOfFailureType, WORKER_LOST, WORKER_SHUTDOWN, type ProviderFailureDetails } from '../domain/errors';
import type { Ledger, Reservation } from '../domain/ledger';
import { providerTaskQueue } from '../domain/quota';
import type { RetrySettings } from '../domain/retry';
import type { ArtifactRef, CallEvent, ProviderSpec } from '../domain/schema';
import { llmFor } from './activityProxies';
import type { ProviderWait } from './providerWaits';

/** Marks runs that wait out provider trouble durably (see the top of this file). */
export const DURABLE_WAITS = 'durable-provider-waits';
export const durable = () => patched(DURABLE_WAITS);

/**
 * Marks runs where a stream cut mid-answer is booked at the tokens it received (estimated) and
 * retried at most `retry.maxTries` times in a row, each try being paid (runs before booked it
 * at $0 and waited it out up to `retry.maxWaitSec`).
 */
export const CUT_STREAMS = 'book-cut-streams';

/** Marks runs whose provider calls are retried after a lost worker, delivering the answer it kept (never calling again). */
export const KEPT_ANSWERS = 'kept-answers';

/** Marks runs whose calls to a provider with a registry `rateLimit` wait in its own rate-limited task queue. */
export const PROVIDER_QUEUES = 'provider-rate-queues';

/** The rate-limited queue of `spec`'s calls, in runs since PROVIDER_QUEUES; else undefined (the workflow's queue). */
const queueOf = (spec: ProviderSpec) => (spec.rateLimit && patched(PROVIDER_QUEUES) ? providerTaskQueue(spec.id) : undefined);


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
  /** Sequential and cost routes: why the first provider is called (domain/routing.ts), and told each provider called with its reason. */
  firstReason?: string;
  onRoute?: (spec: ProviderSpec, reason: string) => void;
}

/** `infra`: not the provider's fault — a worker shut down or lost mid-call, or the answer could not be stored. */
export type Infra = 'worker_shutdown' | 'worker_lost' | 'artifact_store';

/** `cut`: the answer stream was cut mid-answer (paid: its retries are bounded by maxTries). */
export type Failed = { kind: 'failed'; family: string; message: string; spec: ProviderSpec; retryAfterMs?: number; infra?: Infra; cut?: boolean };
export type Call = { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec; event: CallEvent } | Failed | { kind: 'refused'; spec: ProviderSpec; detail: string };

export const isValid = (c: Call | undefined): c is Extract<Call, { kind: 'answer' }> =>
  c?.kind === 'answer' && (c.result.outcome === 'ok' || c.result.outcome === 'subtasks');

/** An answer not used, as the attempt's selection lists it. */
export const alternativeOf = (r: Extract<Call, { kind: 'answer' }>) => ({ provider: r.spec.id, changeDigest: r.result.changeDigest, summary: r.result.summary });


/**
 * One call, booked once. A primary call reserves here; a shadow call brings the reservation its
 * strategy made for it before anything was called (`held`; none in runs before shadows were reserved).
 */
export async function callOnce(spec: ProviderSpec, env: StrategyEnv, strategy: string, role: 'primary' | 'shadow', held?: Reservation): Promise<Call> {
  const reservation = role === 'primary' ? env.ledger.reserve(spec, env.estTokensIn) : held;
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
    // A lost worker's kept answer is delivered by a retry (runs before asked again and paid twice).
    const result = await llmFor(spec, patched(KEPT_ANSWERS), queueOf(spec)).generateChange.executeWithOptions(
      { summary: `${spec.id} (${spec.model}) · attempt ${env.attempt} · ${strategy}${role === 'shadow' ? ' · shadow' : ''}` },
      [{ workflowId: env.workflowId, attempt: env.attempt, provider: spec, prompt: env.prompt, role }],
    );
    const event = env.ledger.settle(reservation, spec, {
      ...base,
      latencyMs: result.latencyMs,
      tokensIn: result.tokensIn,
      tokensOut: result.tokensOut,
      // Absent before prompt-cache booking: a replayed run books its calls as it did.
      ...(result.tokensCached ? { tokensCached: result.tokensCached } : {}),
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
    const cut = !!f.partial && current && patched(CUT_STREAMS);
    if (cut && f.usage) {
      // Cut mid-answer: the tokens received so far (counted by the worker), as estimated spend.
      env.ledger.partial(reservation, spec, { ...base, latencyMs: f.usage.latencyMs ?? latencyMs, tokensIn: f.usage.tokensIn, tokensOut: f.usage.tokensOut, outcome: 'cut', errorFamily: f.family });
    } else if (f.usage && current) {
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
    return { kind: 'failed', spec, family: f.family, message: f.message, retryAfterMs: f.retryAfterMs, ...(current && f.infra ? { infra: f.infra } : {}), ...(cut ? { cut } : {}) };
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
  /** An answered call whose answer was lost to the artifact store: its real usage. A cut stream: the tokens counted so far. */
  usage?: { tokensIn: number; tokensOut: number; latencyMs?: number };
  /** The answer stream was cut mid-answer (sent, and `usage` holds what was counted). */
  partial?: boolean;
}

export function describeFailure(err: unknown): FailureDescription {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as ProviderFailureDetails;
    if (cause.type === WORKER_SHUTDOWN) {
      return { family: 'worker_shutdown', message: cause.message, infra: 'worker_shutdown', sent: d.sent !== false };
    }
    if (cause.type === WORKER_LOST) {
      // The retry of a call whose first execution ended before keeping an answer: as that
      // timeout was — a missed heartbeat is infrastructure, a start-to-close is not.
      return { family: 'timeout', message: cause.message, lost: true, ...(d.ranOut ? {} : { infra: 'worker_lost' as const }) };
    }
    if (cause.type === ARTIFACT_STORE_FAILED) {
      const usage = { tokensIn: d.tokensIn ?? 0, tokensOut: d.tokensOut ?? 0, latencyMs: d.latencyMs };
      return { family: 'artifact_store', message: cause.message, infra: 'artifact_store', usage };
    }
    if (d.partial) {
      const usage = { tokensIn: d.tokensIn ?? 0, tokensOut: d.tokensOut ?? 0, latencyMs: d.latencyMs };
      return { family: familyOfFailureType(cause.type) ?? 'network', message: cause.message, sent: true, partial: true, usage };
    }
    // `sent`: the request went out and no usage came back (the provider's deadline passed, or
    // the connection dropped after sending).
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
