// One classification of provider failures, used by the activities (to throw typed
// ApplicationFailures), by strategies (to decide fallback) and by usage reports; and the
// infrastructure failures of a provider call that are not the provider's fault.

export const ERROR_FAMILIES = [
  'rate_limit',
  'timeout',
  'network',
  'server',
  'auth',
  'bad_request',
  'context_length',
  'content_filter',
  'schema_violation',
] as const;
export type ErrorFamily = (typeof ERROR_FAMILIES)[number];

/** Families Temporal should retry with backoff; the others fail the call at once. */
export const RETRYABLE_FAMILIES: readonly ErrorFamily[] = ['rate_limit', 'timeout', 'network', 'server'];

/** ApplicationFailure `type` for a family, e.g. `ProviderRateLimit`. */
export function failureType(family: ErrorFamily): string {
  return 'Provider' + family.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

const BY_TYPE = new Map<string, ErrorFamily>(ERROR_FAMILIES.map((f) => [failureType(f), f]));

export function familyOfFailureType(type: string | undefined | null): ErrorFamily | undefined {
  return type ? BY_TYPE.get(type) : undefined;
}

export const NON_RETRYABLE_FAILURE_TYPES = ERROR_FAMILIES.filter((f) => !RETRYABLE_FAMILIES.includes(f)).map(failureType);

/**
 * Infrastructure failures of the LLM activity (retryable, never the provider's fault, never a
 * cooldown failure):
 * - `WorkerShutdown`: the worker running the call stopped (deploy, Ctrl-C) and cancelled it.
 *   Retried at once on another worker; not a try, not an attempt. Details: `{ provider, sent }`.
 * - `ArtifactStoreFailed`: the provider answered (and billed) but its answer could not be
 *   stored. Details carry the usage (`tokensIn`, `tokensOut`, `latencyMs`) so the workflow
 *   books the real tokens, never $0.
 * - `WorkerLost`: a retry of a call whose worker was lost (heartbeat or start-to-close timeout)
 *   before it kept the answer: booked as lost (estimated spend) and asked again, as the timeout
 *   itself was before retries delivered kept answers. Details: `{ provider, sent }`.
 */
export const WORKER_SHUTDOWN = 'WorkerShutdown';
export const WORKER_LOST = 'WorkerLost';
export const ARTIFACT_STORE_FAILED = 'ArtifactStoreFailed';

/** Details of a provider call failure, as the LLM activity attaches them (first detail). */
export interface ProviderFailureDetails {
  family?: string;
  provider?: string;
  status?: number;
  /** Retry-After (scaled by the worker's retryDelayScale): the earliest the next call may go. */
  retryAfterMs?: number;
  /** The request reached the provider and no usage came back: it may be billed (estimated spend). */
  sent?: boolean;
  /** ArtifactStoreFailed: the answered call's real usage. A cut stream (`partial`): the tokens counted so far. */
  tokensIn?: number;
  tokensOut?: number;
  latencyMs?: number;
  /** The answer stream was cut mid-answer: `tokensIn`/`tokensOut` are what the worker counted (prompt, text received), booked as estimated spend. */
  partial?: boolean;
  /** WorkerLost: the lost execution ran out its start-to-close timeout (the provider's slowness, not a dead worker). */
  ranOut?: boolean;
}

/**
 * Error codes (of a connection error's cause chain) that mean the request never left: no
 * connection was made, so the provider cannot bill it. Any other connection failure may come
 * after the request went out (a reset, the peer closing mid-answer) and is booked as
 * estimated spend: unknown counts as sent, so the ledger errs on the side of spend.
 */
export const UNSENT_CONNECTION_CODES: readonly string[] = [
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
];

/** Whether a connection error whose cause chain carries `codes` may have reached the provider. */
export function mayHaveBeenSent(codes: readonly string[]): boolean {
  return !codes.some((c) => UNSENT_CONNECTION_CODES.includes(c));
}

/**
 * How long a provider call may take (the openai SDK's per-request timeout), when neither the
 * registry nor the task sets `timeoutSec`. The LLM activity's Temporal timeouts derive from it.
 */
export const DEFAULT_PROVIDER_TIMEOUT_SEC = 300;

/** How long a provider failing retryably is waited for, from its first failure (`strategy.retry.maxWaitSec`). */
export const DEFAULT_MAX_WAIT_SEC = 3600;

/** Maps an HTTP status and OpenAI-style error code/message to a family. */
export function classifyHttpError(status: number | undefined, code?: string | null, message?: string): ErrorFamily {
  const text = `${code ?? ''} ${message ?? ''}`.toLowerCase();
  if (/context_length|context length|maximum context|too many tokens|string_above_max_length/.test(text)) return 'context_length';
  if (/content_filter|content management policy|safety system/.test(text)) return 'content_filter';
  if (status === undefined) return 'network';
  if (status === 429) return 'rate_limit';
  if (status === 401 || status === 403) return 'auth';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'server';
  if (status === 413) return 'context_length';
  return 'bad_request';
}

/** Parses `retry-after-ms` / `retry-after` (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(headers: { get(name: string): string | null } | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const number = /^\s*\d+(\.\d+)?\s*$/;
  const ms = headers.get('retry-after-ms');
  if (ms && number.test(ms)) return Number(ms);
  const ra = headers.get('retry-after');
  if (!ra) return undefined;
  if (number.test(ra)) return Number(ra) * 1000;
  // Only a real HTTP-date, e.g. "Wed, 21 Oct 2026 07:28:00 GMT" (Date.parse accepts junk).
  if (!/^\s*[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\s*$/.test(ra)) return undefined;
  const at = Date.parse(ra);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
