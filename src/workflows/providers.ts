// Calling providers from workflow code. One activity execution = one HTTP call = one
// ledger entry, recorded from the activity's result, so nothing is lost or counted twice.
// Retryable failures are retried here, with Retry-After as a durable timer.
import { ActivityFailure, ApplicationFailure, isCancellation, sleep, TimeoutFailure } from '@temporalio/workflow';
import type { GenerateChangeResult } from '../activities/types';
import { familyOfFailureType, RETRYABLE_FAMILIES, type ErrorFamily } from '../domain/errors';
import { costOf } from '../domain/pricing';
import type { ArtifactRef, ProviderCallRecord, ProviderSpec, Usage } from '../domain/schema';
import { recordCall } from '../domain/usage';
import { llm } from './activityProxies';

export interface RetrySettings {
  maxTries: number;
  initialIntervalMs: number;
  maxIntervalMs: number;
}

export const DEFAULT_RETRY: RetrySettings = { maxTries: 4, initialIntervalMs: 1000, maxIntervalMs: 60_000 };

export interface CallContext {
  workflowId: string;
  attempt: number;
  prompt: ArtifactRef;
  usage: Usage;
  calls: ProviderCallRecord[];
  retry: RetrySettings;
}

export type ProviderOutcome =
  | { kind: 'answer'; result: GenerateChangeResult; spec: ProviderSpec }
  | { kind: 'failed'; family: string; message: string; spec: ProviderSpec; retryAfterMs?: number };

/** Sequential: each provider in order until one answers; failures fall through to the next. */
export async function callProviders(providers: ProviderSpec[], ctx: CallContext): Promise<ProviderOutcome> {
  let last: ProviderOutcome | undefined;
  for (const spec of providers) {
    last = await callWithRetries(spec, ctx);
    if (last.kind === 'answer') return last;
  }
  return last!;
}

/** One provider, retried on retryable families with backoff or the server's Retry-After. */
export async function callWithRetries(spec: ProviderSpec, ctx: CallContext): Promise<ProviderOutcome> {
  for (let tryNo = 1; ; tryNo++) {
    const r = await callOnce(spec, ctx);
    if (r.kind === 'answer') return r;
    if (!RETRYABLE_FAMILIES.includes(r.family as ErrorFamily) || tryNo >= ctx.retry.maxTries) return r;
    const backoff = Math.min(ctx.retry.initialIntervalMs * 2 ** (tryNo - 1), ctx.retry.maxIntervalMs);
    await sleep(r.retryAfterMs ?? backoff);
  }
}

export async function callOnce(
  spec: ProviderSpec,
  ctx: CallContext,
): Promise<ProviderOutcome> {
  const startedAt = Date.now();
  try {
    const result = await llm.generateChange({
      workflowId: ctx.workflowId,
      attempt: ctx.attempt,
      provider: spec,
      prompt: ctx.prompt,
      role: 'primary',
    });
    const costUsd = costOf(spec, result.tokensIn, result.tokensOut);
    recordCall(ctx.usage, { provider: spec.id, tokensIn: result.tokensIn, tokensOut: result.tokensOut, costUsd, latencyMs: result.latencyMs });
    ctx.calls.push({
      provider: spec.id,
      model: spec.model,
      role: 'primary',
      outcome: result.outcome,
      tokensIn: result.tokensIn,
      tokensOut: result.tokensOut,
      costUsd,
      latencyMs: result.latencyMs,
    });
    return { kind: 'answer', result, spec };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const f = describeFailure(err);
    const latencyMs = Date.now() - startedAt;
    recordCall(ctx.usage, { provider: spec.id, tokensIn: 0, tokensOut: 0, costUsd: 0, latencyMs, errorFamily: f.family });
    ctx.calls.push({ provider: spec.id, model: spec.model, role: 'primary', outcome: 'error', errorFamily: f.family, tokensIn: 0, tokensOut: 0, costUsd: 0, latencyMs });
    return { kind: 'failed', spec, ...f };
  }
}

export function describeFailure(err: unknown): { family: string; message: string; retryAfterMs?: number } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as { retryAfterMs?: number };
    return { family: familyOfFailureType(cause.type) ?? cause.type ?? 'error', message: cause.message, retryAfterMs: d.retryAfterMs ?? undefined };
  }
  if (cause instanceof TimeoutFailure) {
    // The worker went silent mid-call (crash or hang): the call may have been paid for.
    return { family: 'timeout', message: `provider call timed out (${cause.timeoutType})` };
  }
  return { family: 'network', message: cause instanceof Error ? cause.message : String(cause) };
}
