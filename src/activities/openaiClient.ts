// The OpenAI-compatible transport of a provider call: the client for a provider (its endpoint
// and key from the worker's registry, never from the request), a whole or streamed completion,
// and an SDK error as a typed ApplicationFailure (Retry-After as the next retry's delay).
import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';
import {
  classifyHttpError,
  DEFAULT_PROVIDER_TIMEOUT_SEC,
  failureType,
  mayHaveBeenSent,
  RETRYABLE_FAMILIES,
  retryAfterMs,
  type ErrorFamily,
  type ProviderFailureDetails,
} from '../domain/errors';
import { endpointFor, PROVIDER_NOT_ALLOWED, ProviderPolicyError, registryKeyEnvNames, type Endpoint } from '../domain/registry';
import { redactCut, secretsFromEnv } from '../domain/redact';
import type { ProviderSpec } from '../domain/schema';
import { registryOf } from './providers';
import type { ActivityDeps } from './types';

export type Completion = {
  content: string;
  finishReason?: string;
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
  /** The response's headers: its rate-limit state (src/domain/quota.ts). */
  headers?: Headers;
};

type Body = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;

export async function whole(client: OpenAI, body: object, signal: AbortSignal): Promise<Completion> {
  const { data: c, response } = await client.chat.completions.create(body as Body, { signal }).withResponse();
  return { content: c.choices?.[0]?.message?.content ?? '', finishReason: c.choices?.[0]?.finish_reason ?? undefined, usage: c.usage ?? undefined, headers: response.headers };
}

/**
 * The answer stream ended or broke (after its 200) before the model finished: the request was
 * sent and the provider may bill what it generated. `received` is the text that arrived, so the
 * call can be booked at the tokens it got (llm.ts) rather than at $0.
 */
export class StreamCut extends Error {
  constructor(
    readonly received: string,
    message: string,
  ) {
    super(message);
    this.name = 'StreamCut';
  }
}

/** Streams the answer (idle proxies do not cut a long one); the usage comes once, in the last chunk. */
export async function streamed(client: OpenAI, body: object, signal: AbortSignal, onChunk: () => void): Promise<Completion> {
  const { data: stream, response } = await client.chat.completions
    .create({ ...(body as Body), stream: true, stream_options: { include_usage: true } }, { signal })
    .withResponse();
  const parts: string[] = [];
  const out: Completion = { content: '', headers: response.headers };
  try {
    for await (const chunk of stream) {
      onChunk();
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) parts.push(choice.delta.content);
      if (choice?.finish_reason) out.finishReason = choice.finish_reason;
      if (chunk.usage) out.usage = chunk.usage;
    }
  } catch (err) {
    // A connection reset mid-answer: a cut like the quiet one below, with what had arrived.
    if (signal.aborted || out.finishReason) throw err;
    throw new StreamCut(parts.join(''), `the answer stream broke before the model finished: ${(err as Error)?.message ?? String(err)}`);
  }
  out.content = parts.join('');
  // The SDK ends the iteration quietly on an abort or a connection closed mid-answer: neither
  // is an answer. An abort becomes a cancellation (the caller checks the signal); a stream
  // without a finish_reason is a cut: retried like a network failure, its tokens booked.
  if (signal.aborted) throw new Error('stream aborted');
  if (!out.finishReason) throw new StreamCut(out.content, 'the answer stream ended before the model finished (no finish_reason)');
  return out;
}

/** The `code`s along an error's cause chain (undici puts the socket's code on `cause`). */
function causeCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && typeof e === 'object' && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string') codes.push(e.code);
  }
  return codes;
}

/**
 * Where this call goes and which of the worker's env vars holds its key: from the worker's
 * registry by provider id, never from the request. A spec's own `baseURL` (an inline endpoint
 * WEAVER_INLINE_ENDPOINTS allows) gets no key of the worker's; a registry provider's endpoint is the registry's.
 */
export function endpointOf(deps: ActivityDeps, provider: ProviderSpec): Endpoint {
  try {
    return endpointFor(registryOf(deps), provider, { inlineEndpoints: deps.inlineEndpoints });
  } catch (err) {
    if (!(err instanceof ProviderPolicyError)) throw err;
    throw ApplicationFailure.create({ type: PROVIDER_NOT_ALLOWED, nonRetryable: true, message: err.message, details: [{ provider: provider.id }] });
  }
}

/** What to redact from anything a provider call leaves behind: every key the registry names, and the usual. */
export function providerSecrets(deps: ActivityDeps): string[] {
  return secretsFromEnv(deps.env, registryKeyEnvNames(registryOf(deps)));
}

export function openaiClient(deps: ActivityDeps, provider: ProviderSpec): OpenAI {
  const endpoint = endpointOf(deps, provider);
  const baseURL = endpoint.baseURL ?? deps.env.OPENAI_BASE_URL;
  const keyEnv = endpoint.apiKeyEnv;
  const apiKey = keyEnv ? deps.env[keyEnv] : undefined;
  if (!apiKey && !baseURL) {
    throw ApplicationFailure.create({
      type: failureType('auth'),
      nonRetryable: true,
      message: `provider ${provider.id}: no API key — set ${keyEnv ?? 'its apiKeyEnv (WEAVER_PROVIDERS)'} in the worker's environment`,
      details: [{ family: 'auth', provider: provider.id }],
    });
  }
  return new OpenAI({
    baseURL,
    // The SDK insists on a key; a keyless endpoint (Ollama, vLLM, a task's own allowed endpoint)
    // is sent none: the placeholder's header is removed, and with it whatever else of the
    // worker's the SDK would add from its env (organization, project, OPENAI_CUSTOM_HEADERS).
    apiKey: apiKey ?? 'keyless',
    ...(apiKey ? {} : { adminAPIKey: null, organization: null, project: null, defaultHeaders: keylessHeaders() }),
    maxRetries: 0,
    // A redirect would carry the prompt (repository code) to a host nobody allowed: an error instead.
    fetchOptions: { redirect: 'error' },
    // The LLM activity's start-to-close derives from the same number (workflows/activityProxies.ts).
    timeout: (provider.timeoutSec ?? DEFAULT_PROVIDER_TIMEOUT_SEC) * 1000,
  });
}

/** Headers removed from a keyless call: authorization, and any the SDK takes from the process env. */
function keylessHeaders(): Record<string, null> {
  const custom = (process.env.OPENAI_CUSTOM_HEADERS ?? '')
    .split('\n')
    .filter((line) => line.includes(':'))
    .map((line) => line.slice(0, line.indexOf(':')).trim())
    .filter(Boolean);
  return Object.fromEntries(['Authorization', 'api-key', ...custom].map((h) => [h, null]));
}

/**
 * Provider error → typed ApplicationFailure; Retry-After becomes the next retry delay.
 * `elapsedMs`: how long the call ran, to tell the provider's deadline from a dropped connection.
 */
export function toApplicationFailure(deps: ActivityDeps, provider: ProviderSpec, err: unknown, elapsedMs?: number): ApplicationFailure {
  let family: ErrorFamily;
  let status: number | undefined;
  let delayMs: number | undefined;
  let sent: boolean | undefined;
  const deadlineMs = (provider.timeoutSec ?? DEFAULT_PROVIDER_TIMEOUT_SEC) * 1000;
  if (
    err instanceof OpenAI.APIConnectionTimeoutError ||
    // The SDK reports its own deadline as a plain connection error when it cannot recognise the
    // abort (fetch implementations differ): the clock tells.
    (err instanceof OpenAI.APIConnectionError && elapsedMs !== undefined && elapsedMs >= deadlineMs)
  ) {
    // The request went out and no answer came in time: the provider may still bill it.
    family = 'timeout';
    sent = true;
  } else if (err instanceof OpenAI.APIConnectionError) {
    family = 'network';
    // A connection dropped after the request went out may be billed: estimated spend, like a timeout.
    if (mayHaveBeenSent(causeCodes(err))) sent = true;
  } else if (err instanceof OpenAI.APIError) {
    status = err.status;
    const code = typeof err.code === 'string' ? err.code : undefined;
    family = status === undefined ? 'server' : classifyHttpError(status, code, err.message);
    delayMs = retryAfterMs(err.headers, Date.now());
  } else {
    // A 200 whose body is not JSON, or anything else the SDK could not read: the server's fault.
    family = 'server';
  }
  const scaled = delayMs === undefined ? undefined : Math.round(delayMs * (deps.retryDelayScale ?? 1));
  // The SDK's message carries the provider's error body, whatever its size and content: it lands
  // in history (this failure, call events, warnings), so it is redacted and cut here, once.
  const detail = redactCut((err as Error)?.message ?? String(err), providerSecrets(deps));
  const message = `provider ${provider.id} (${provider.model}): ${family}${status ? ` (HTTP ${status})` : ''}: ${detail}`;
  return ApplicationFailure.create({
    type: failureType(family),
    message,
    nonRetryable: !RETRYABLE_FAMILIES.includes(family),
    nextRetryDelay: scaled,
    // The workflow sleeps `retryAfterMs` (scaled) as a durable timer before the next call.
    details: [{ family, provider: provider.id, status, retryAfterMs: scaled, ...(sent ? { sent } : {}) } satisfies ProviderFailureDetails],
  });
}
