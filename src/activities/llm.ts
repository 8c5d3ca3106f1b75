// The provider call: one OpenAI-compatible chat completion through the real `openai` SDK.
// The workflow owns retries (maxRetries: 0 here, one HTTP call per activity execution);
// failures leave here as typed ApplicationFailures, a bad answer leaves as an outcome (design
// rule 2). A failure after the provider may have billed says so (`sent`, or the usage itself),
// so the workflow never books such a call at $0.
// The OpenAI SDK side (client, streaming, error typing) is ./openaiClient.ts.
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import OpenAI from 'openai';
import { ARTIFACT_STORE_FAILED, failureType, familyOfFailureType, retryAfterMs, WORKER_SHUTDOWN, type ProviderFailureDetails } from '../domain/errors';
import { quotaReportOf } from '../domain/quota';
import { reportQuota } from './quota';
import { editFormat } from '../domain/editformats';
import { resolveProvider } from '../domain/models';
import { redact } from '../domain/redact';
import type { ArtifactRef, ProviderSpec } from '../domain/schema';
import { judge, keepAnswer, keptAnswerOf, resultOf, type Keep } from './answers';
import type { ArtifactStore } from './artifacts';
import { openaiClient, providerSecrets, StreamCut, streamed, toApplicationFailure, whole, type Completion } from './openaiClient';
import { chatMessages, samplingOf } from './chatRequest';
import { countTokens } from './tokens';
import { recordProviderCall } from './metrics';
import { costOf } from '../domain/pricing';
import type { ActivityDeps, GenerateChangeRequest, GenerateChangeResult } from './types';

export { endpointOf, toApplicationFailure } from './openaiClient';
export { digestChangeSet, responseRecord } from './answers';

export interface PromptMessages {
  system: string;
  user: string;
  /** `change` (default): the provider's edit format is appended to the system prompt; `plan`: JSON subtasks only. */
  mode?: 'change' | 'plan';
  /** How much of `user` stays the same across attempts (task, map, files): the prefix a provider can cache. */
  stableChars?: number;
}

export async function generateChange(
  deps: ActivityDeps,
  store: ArtifactStore,
  req: GenerateChangeRequest,
): Promise<GenerateChangeResult> {
  try {
    return await callOrResume(deps, store, req);
  } catch (err) {
    // Every failure is final for this activity: the workflow retries calls itself (one request
    // per execution, one ledger entry each). Temporal retries it only after its worker was lost
    // (a timeout), and that retry delivers the kept answer or says the call was lost.
    if (err instanceof CancelledFailure) throw err;
    throw ApplicationFailure.fromError(err, { nonRetryable: true });
  }
}

async function callOrResume(deps: ActivityDeps, store: ArtifactStore, req: GenerateChangeRequest): Promise<GenerateChangeResult> {
  const provider = resolveProvider(req.provider);
  const ctx = Context.current();
  const keeper = (call: { tokensIn: number; tokensOut: number; latencyMs: number }): Keep => (kind, value) => storeAnswered(store, kind, value, { provider, ...call });
  if (ctx.info.attempt > 1) {
    const kept = await keptAnswerOf(ctx, store, provider);
    log.info('answer delivered from the store: kept by a worker lost before it completed', { provider: provider.id });
    return resultOf(kept, keeper(kept));
  }
  const prompt = await store.readJson<PromptMessages>(req.prompt);
  const format = editFormat(provider.editFormat);
  const plan = prompt.mode === 'plan';
  const system = plan ? prompt.system : `${prompt.system}\n\n${format.instructions}`;
  const user = plan ? prompt.user : `${prompt.user}\n\n${format.reminder}`;
  const client = openaiClient(deps, provider);
  const secrets = providerSecrets(deps);
  // No beat at the start (each is a server write, and a billable action): a call answered within
  // one period sends none before its kept answer's, which then goes out at once (Core sends a
  // first beat immediately; a streamed call's chunks beat before it, as its period's do). The
  // period is well inside the heartbeat timeout whatever WEAVER_HEARTBEAT_MS says: a live call is
  // never taken for a dead worker.
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  const beatMs = Math.max(10, Math.min(deps.heartbeatMs ?? 1000, timeoutMs ? Math.floor(timeoutMs / 3) : Infinity));
  // Beating until the answer is kept, not only while it is awaited: a store slow to keep it (its
  // tries) must not let the heartbeat timeout hand the paid call to a retry that finds nothing kept.
  const beat = setInterval(() => ctx.heartbeat({ provider: provider.id }), beatMs);
  try {
    const started = Date.now();
    let completion: Completion;
    // Whether the request went out: from then on the provider may bill it.
    let sent = false;
    try {
      const body = {
        model: provider.model,
        messages: chatMessages(provider, system, user, prompt.stableChars),
        // Always bounded: the budget reserved this many output tokens before the call. Reasoning
        // models refuse `max_tokens` and want `max_completion_tokens`.
        [provider.tokenParam]: provider.maxTokens,
        ...samplingOf(provider),
        // Only where it helps: a plan is one JSON object; edits are plain text.
        ...(plan ? { response_format: { type: 'json_object' as const } } : {}),
      };
      // Cancellation (a lost race, a cancelled task) aborts the HTTP request itself.
      sent = !ctx.cancellationSignal.aborted;
      completion = provider.stream
        ? await streamed(client, body, ctx.cancellationSignal, () => ctx.heartbeat({ provider: provider.id }))
        : await whole(client, body, ctx.cancellationSignal);
    } catch (err) {
      // A 429 (or any error carrying rate-limit headers) tells the provider's quota workflow.
      if (err instanceof OpenAI.APIError) await report(deps, provider.id, err.headers, err.status, retryAfterMs(err.headers, Date.now()));
      const failure = callFailure(deps, ctx, provider, err, sent, { tokensIn: () => countTokens(system) + countTokens(user), latencyMs: Date.now() - started }, secrets);
      if (sent) recordProviderCall({ provider: provider.id, model: provider.model, outcome: outcomeOf(failure), latencyMs: Date.now() - started });
      throw failure;
    }
    const answeredAt = performance.now();
    const cached = completion.usage?.prompt_tokens_details?.cached_tokens;
    const call = {
      tokensIn: completion.usage?.prompt_tokens ?? countTokens(system) + countTokens(user),
      tokensOut: completion.usage?.completion_tokens ?? countTokens(completion.content),
      ...(cached ? { tokensCached: cached } : {}),
      latencyMs: Date.now() - started,
    };
    // From here on the call is paid: kept whole at once, so a retry after this worker is lost
    // delivers it instead of buying it again; a store that cannot keep it must not make it $0.
    const keep = keeper(call);
    const kept = judge(provider, format, plan, completion, call, secrets);
    // Counted here, by the execution that was answered: a retry delivering the kept answer does not.
    recordProviderCall({ provider: provider.id, model: provider.model, outcome: kept.verdict.outcome, ...call, costUsd: costOf(provider, call.tokensIn, call.tokensOut, call.tokensCached) });
    await keepAnswer(ctx, kept, keep, () => clearInterval(beat));
    // The window in which a crash still loses the answer (printed by scripts/bench-kept-answer.ts).
    log.debug('answer kept', { provider: provider.id, keptMs: Math.round((performance.now() - answeredAt) * 100) / 100 });
    // After the answer is kept: a slow report never widens the window in which a crash loses it.
    await report(deps, provider.id, completion.headers);
    // Fault injection for crash tests (WEAVER_FAULT_HOLD_AFTER_ANSWER_MS): the worker waits between
    // keeping the answer and completing, where the test kills it.
    if (deps.holdAfterAnswerMs) await new Promise((r) => setTimeout(r, deps.holdAfterAnswerMs));
    return resultOf(kept, keep);
  } finally {
    clearInterval(beat);
  }
}

/** The failure a call that did not answer leaves with (see the cases below). */
function callFailure(deps: ActivityDeps, ctx: Context, provider: ProviderSpec, err: unknown, sent: boolean, sentSoFar: { tokensIn: () => number; latencyMs: number }, secrets: string[]): Error {
  if (ctx.cancellationSignal.aborted) {
    // The worker is stopping (deploy, Ctrl-C) past its grace time: infrastructure, not the
    // provider's fault and not the workflow's wish. The workflow asks again at once (another
    // worker picks it up) and books this one as estimated spend.
    if (cancelledByShutdown(ctx)) {
      return ApplicationFailure.create({
        type: WORKER_SHUTDOWN,
        message: `provider ${provider.id} (${provider.model}): the worker shut down during the call${sent ? '; the request was aborted on the wire' : ''}`,
        details: [{ provider: provider.id, sent } satisfies ProviderFailureDetails],
      });
    }
    // Reported to Temporal as a cancellation (not a failure): the workflow stopped this call.
    return new CancelledFailure('provider call cancelled; HTTP request aborted');
  }
  if (err instanceof StreamCut) return streamCutFailure(provider, err, sentSoFar.tokensIn(), sentSoFar.latencyMs, secrets);
  return toApplicationFailure(deps, provider, err, sentSoFar.latencyMs);
}

/** A failed call's outcome label: its error family, or why it stopped. */
function outcomeOf(failure: Error): string {
  if (failure instanceof CancelledFailure) return 'cancelled';
  const type = failure instanceof ApplicationFailure ? failure.type : undefined;
  if (type === WORKER_SHUTDOWN) return 'worker_shutdown';
  return familyOfFailureType(type) ?? 'error';
}

/**
 * A stream cut mid-answer: a retryable network failure that carries the tokens counted so far
 * (the prompt sent, the text received), so the workflow books them as estimated spend and
 * bounds its retries by `retry.maxTries` (each one is paid).
 */
function streamCutFailure(provider: ProviderSpec, cut: StreamCut, tokensIn: number, latencyMs: number, secrets: string[]): ApplicationFailure {
  const tokensOut = countTokens(cut.received);
  return ApplicationFailure.create({
    type: failureType('network'),
    message: redact(`provider ${provider.id} (${provider.model}): network: ${cut.message} after ${tokensOut} output token(s)`, secrets),
    details: [{ family: 'network', provider: provider.id, sent: true, partial: true, tokensIn, tokensOut, latencyMs } satisfies ProviderFailureDetails],
  });
}

/** What the response said of the provider's quota, sent to its quota workflow (when it said anything); a 429's Retry-After scaled as the workflow's wait is. */
async function report(deps: ActivityDeps, provider: string, headers: Headers | undefined, status?: number, retryAfter?: number): Promise<void> {
  const scaled = retryAfter === undefined ? undefined : Math.round(retryAfter * (deps.retryDelayScale ?? 1));
  const found = quotaReportOf(provider, headers, Date.now(), status, scaled);
  const ctx = Context.current();
  if (found) await reportQuota(ctx.client, deps.workflowQueue ?? ctx.info.taskQueue, found);
}

/** Whether the activity was cancelled because its worker is shutting down (not by the workflow). */
function cancelledByShutdown(ctx: Context): boolean {
  const reason = ctx.cancellationSignal.reason as unknown;
  return ctx.cancellationDetails?.workerShutdown === true || (reason instanceof Error && reason.message === 'WORKER_SHUTDOWN');
}

/** Tries of an artifact write after a paid call, and the pause before the first retry (doubling). */
const STORE_TRIES = 3;
const STORE_RETRY_MS = 200;

/**
 * Stores part of an answered call, retrying a failing store a few times (a full disk, a
 * network file system hiccup). Failing that, a retryable `ArtifactStoreFailed` carrying the
 * call's real usage: the workflow books the tokens the provider billed and asks again.
 */
async function storeAnswered(
  store: ArtifactStore,
  kind: string,
  value: unknown,
  call: { provider: ProviderSpec; tokensIn: number; tokensOut: number; latencyMs: number },
): Promise<ArtifactRef> {
  for (let i = 1; ; i++) {
    try {
      return await store.putJson(kind, value);
    } catch (err) {
      if (i >= STORE_TRIES) {
        const { provider, tokensIn, tokensOut, latencyMs } = call;
        throw ApplicationFailure.create({
          type: ARTIFACT_STORE_FAILED,
          message: `provider ${provider.id} (${provider.model}) answered, but its ${kind} could not be stored after ${STORE_TRIES} tries: ${(err as Error)?.message ?? String(err)}`,
          details: [{ provider: provider.id, tokensIn, tokensOut, latencyMs } satisfies ProviderFailureDetails],
        });
      }
      await new Promise((r) => setTimeout(r, STORE_RETRY_MS * 2 ** (i - 1)));
    }
  }
}
