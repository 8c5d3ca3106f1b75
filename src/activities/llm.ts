// The provider call: one OpenAI-compatible chat completion through the real `openai` SDK.
// Temporal owns retries (maxRetries: 0); failures leave here as typed ApplicationFailures,
// a bad answer leaves as an outcome (design rule 2).
import { createHash } from 'node:crypto';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import { classifyHttpError, failureType, RETRYABLE_FAMILIES, retryAfterMs, type ErrorFamily } from '../domain/errors';
import { DEFAULT_RESERVED_OUTPUT_TOKENS } from '../domain/ledger';
import { redact, secretsFromEnv } from '../domain/redact';
import { ChangeSetSchema, SubtaskProposalSchema, type ChangeSet, type ModelAnswer, type ProviderSpec } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import type { ActivityDeps, GenerateChangeRequest, GenerateChangeResult } from './types';

export interface PromptMessages {
  system: string;
  user: string;
}

export async function generateChange(
  deps: ActivityDeps,
  store: ArtifactStore,
  req: GenerateChangeRequest,
): Promise<GenerateChangeResult> {
  const { provider } = req;
  const prompt = await store.readJson<PromptMessages>(req.prompt);
  const client = openaiClient(deps, provider);
  const secrets = providerSecrets(deps, provider);
  const ctx = Context.current();
  ctx.heartbeat({ provider: provider.id });
  const beat = setInterval(() => ctx.heartbeat({ provider: provider.id }), deps.heartbeatMs ?? 1000);
  const started = Date.now();
  let completion: OpenAI.Chat.Completions.ChatCompletion;
  try {
    completion = await client.chat.completions.create(
      {
        model: provider.model,
        messages: [
          { role: 'system', content: prompt.system },
          { role: 'user', content: prompt.user },
        ],
        // Always bounded: the budget reserved this many output tokens before the call.
        max_tokens: provider.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS,
        temperature: provider.temperature,
        response_format: { type: 'json_object' },
      },
      // Cancellation (a lost race, a cancelled task) aborts the HTTP request itself.
      { signal: ctx.cancellationSignal },
    );
  } catch (err) {
    // Reported to Temporal as a cancellation (not a failure): the workflow stopped this call.
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('provider call cancelled; HTTP request aborted');
    throw toApplicationFailure(deps, provider, err);
  } finally {
    clearInterval(beat);
  }
  const latencyMs = Date.now() - started;
  const content = completion.choices?.[0]?.message?.content ?? '';
  const tokensIn = completion.usage?.prompt_tokens ?? Math.ceil((prompt.system.length + prompt.user.length) / 4);
  const tokensOut = completion.usage?.completion_tokens ?? Math.ceil(content.length / 4);
  const response = await store.putJson('response', {
    provider: provider.id,
    model: provider.model,
    finishReason: completion.choices?.[0]?.finish_reason,
    content: redact(content, secrets),
  });
  const base = { provider: provider.id, model: provider.model, tokensIn, tokensOut, latencyMs, response };

  const parsed = parseAnswer(content);
  if (!parsed.ok) {
    // JSON.parse errors quote the text they choked on: redacted before it enters history.
    return { ...base, outcome: 'schema_violation', error: redact(parsed.error, secrets) };
  }
  const answer = parsed.value;
  if ('subtasks' in answer) {
    return { ...base, outcome: 'subtasks', subtasks: answer.subtasks, summary: answer.summary === undefined ? undefined : redact(answer.summary.slice(0, 500), secrets) };
  }
  // The summary is prose (history, report, commit message): redacted. File contents are code to
  // apply, kept as written (the raw response artifact above is redacted).
  const summary = redact(answer.summary, secrets);
  const change = await store.putJson('change-set', { ...answer, summary });
  return {
    ...base,
    outcome: 'ok',
    change,
    changeDigest: digestChangeSet(answer),
    summary: summary.slice(0, 500),
    files: answer.files.slice(0, 200).map((f) => ({ path: f.path, action: f.action })),
  };
}

/**
 * The env var holding this provider's key. A provider with its own `baseURL` and no `apiKeyEnv`
 * gets none: the worker's OPENAI_API_KEY is for OpenAI, not for whatever server a task names.
 */
export function apiKeyEnvFor(provider: ProviderSpec): string | undefined {
  return provider.apiKeyEnv ?? (provider.baseURL ? undefined : 'OPENAI_API_KEY');
}

/** What to redact from anything this provider's call leaves behind: its key, by name, and the usual. */
function providerSecrets(deps: ActivityDeps, provider: ProviderSpec): string[] {
  const keyEnv = apiKeyEnvFor(provider);
  return secretsFromEnv(deps.env, keyEnv ? [keyEnv] : []);
}

function openaiClient(deps: ActivityDeps, provider: ProviderSpec): OpenAI {
  const baseURL = provider.baseURL ?? deps.env.OPENAI_BASE_URL;
  const keyEnv = apiKeyEnvFor(provider);
  const apiKey = keyEnv ? deps.env[keyEnv] : undefined;
  if (!apiKey && !baseURL) {
    throw ApplicationFailure.create({
      type: failureType('auth'),
      nonRetryable: true,
      message: `provider ${provider.id}: no API key — set ${keyEnv ?? 'apiKeyEnv'} in the worker's environment`,
      details: [{ family: 'auth', provider: provider.id }],
    });
  }
  return new OpenAI({
    baseURL,
    // Local endpoints (Ollama, vLLM, the demo model) accept any key.
    apiKey: apiKey ?? 'not-needed',
    maxRetries: 0,
    timeout: (provider.timeoutSec ?? 300) * 1000,
  });
}

/** Provider error → typed ApplicationFailure; Retry-After becomes the next retry delay. */
export function toApplicationFailure(deps: ActivityDeps, provider: ProviderSpec, err: unknown): ApplicationFailure {
  let family: ErrorFamily;
  let status: number | undefined;
  let delayMs: number | undefined;
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    family = 'timeout';
  } else if (err instanceof OpenAI.APIConnectionError) {
    family = 'network';
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
  const message = redact(
    `provider ${provider.id} (${provider.model}): ${family}${status ? ` (HTTP ${status})` : ''}: ${(err as Error)?.message ?? String(err)}`,
    providerSecrets(deps, provider),
  );
  return ApplicationFailure.create({
    type: failureType(family),
    message,
    nonRetryable: !RETRYABLE_FAMILIES.includes(family),
    nextRetryDelay: scaled,
    // The workflow sleeps `retryAfterMs` (scaled) as a durable timer before the next call.
    details: [{ family, provider: provider.id, status, retryAfterMs: scaled, retryAfterHeaderMs: delayMs }],
  });
}

/** Accepts bare JSON or JSON inside a ```json fence; validates against the answer schema. */
export function parseAnswer(content: string): { ok: true; value: ModelAnswer } | { ok: false; error: string } {
  const fenced = /```(?:json)?\s*\n?([\s\S]*?)\n?```/i.exec(content);
  const text = (fenced ? fenced[1] : content).trim();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not valid JSON: ${(e as Error).message}` };
  }
  // Pick the schema by shape, so a violation names the exact field (a union would not).
  const proposesSplit = typeof json === 'object' && json !== null && 'subtasks' in json && !('files' in json);
  const r = (proposesSplit ? SubtaskProposalSchema : ChangeSetSchema).safeParse(json);
  if (!r.success) {
    return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  }
  return { ok: true, value: r.data };
}

/** Same paths, actions and content up to whitespace → same digest (for consensus and shadow). */
export function digestChangeSet(change: ChangeSet): string {
  const norm = [...change.files]
    .map((f) => `${f.action} ${f.path.replace(/^\.\//, '')}\n${'content' in f ? f.content.replace(/\s+/g, ' ').trim() : ''}`)
    .sort();
  return createHash('sha256').update(norm.join('\n\0')).digest('hex').slice(0, 16);
}
