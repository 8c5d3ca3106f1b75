// The provider call: one OpenAI-compatible chat completion through the real `openai` SDK.
// The workflow owns retries (maxRetries: 0 here, one HTTP call per activity execution);
// failures leave here as typed ApplicationFailures, a bad answer leaves as an outcome (design
// rule 2). A failure after the provider may have billed says so (`sent`, or the usage itself),
// so the workflow never books such a call at $0.
// The OpenAI SDK side (client, streaming, error typing) is ./openaiClient.ts.
import { createHash } from 'node:crypto';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ARTIFACT_STORE_FAILED, failureType, WORKER_SHUTDOWN, type ProviderFailureDetails } from '../domain/errors';
import { editFormat } from '../domain/editformats';
import { resolveProvider } from '../domain/models';
import { MIN_SECRET_LENGTH, redact } from '../domain/redact';
import type { ArtifactRef, ChangeSet, ProviderSpec } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import { openaiClient, providerSecrets, StreamCut, streamed, toApplicationFailure, whole, type Completion } from './openaiClient';
import { countTokens } from './tokens';
import type { ActivityDeps, GenerateChangeRequest, GenerateChangeResult } from './types';

export { endpointOf, toApplicationFailure } from './openaiClient';

export interface PromptMessages {
  system: string;
  user: string;
  /** `change` (default): the provider's edit format is appended to the system prompt; `plan`: JSON subtasks only. */
  mode?: 'change' | 'plan';
}

export async function generateChange(
  deps: ActivityDeps,
  store: ArtifactStore,
  req: GenerateChangeRequest,
): Promise<GenerateChangeResult> {
  const provider = resolveProvider(req.provider);
  const prompt = await store.readJson<PromptMessages>(req.prompt);
  const format = editFormat(provider.editFormat);
  const plan = prompt.mode === 'plan';
  const system = plan ? prompt.system : `${prompt.system}\n\n${format.instructions}`;
  const user = plan ? prompt.user : `${prompt.user}\n\n${format.reminder}`;
  const client = openaiClient(deps, provider);
  const secrets = providerSecrets(deps);
  const ctx = Context.current();
  ctx.heartbeat({ provider: provider.id });
  // Well inside the heartbeat timeout whatever WEAVER_HEARTBEAT_MS says: a live call is never
  // taken for a dead worker.
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  const beatMs = Math.max(10, Math.min(deps.heartbeatMs ?? 1000, timeoutMs ? Math.floor(timeoutMs / 3) : Infinity));
  const beat = setInterval(() => ctx.heartbeat({ provider: provider.id }), beatMs);
  const started = Date.now();
  let completion: Completion;
  // Whether the request went out: from then on the provider may bill it.
  let sent = false;
  try {
    const body = {
      model: provider.model,
      messages: [
        { role: 'system' as const, content: system },
        { role: 'user' as const, content: user },
      ],
      // Always bounded: the budget reserved this many output tokens before the call. Reasoning
      // models refuse `max_tokens` and want `max_completion_tokens`.
      [provider.tokenParam]: provider.maxTokens,
      temperature: provider.temperature,
      // Only where it helps: a plan is one JSON object; edits are plain text.
      ...(plan ? { response_format: { type: 'json_object' as const } } : {}),
    };
    // Cancellation (a lost race, a cancelled task) aborts the HTTP request itself.
    sent = !ctx.cancellationSignal.aborted;
    completion = provider.stream
      ? await streamed(client, body, ctx.cancellationSignal, () => ctx.heartbeat({ provider: provider.id }))
      : await whole(client, body, ctx.cancellationSignal);
  } catch (err) {
    if (ctx.cancellationSignal.aborted) {
      // The worker is stopping (deploy, Ctrl-C) past its grace time: infrastructure, not the
      // provider's fault and not the workflow's wish. A retryable failure, so the workflow asks
      // again at once (another worker picks it up) and books this one as estimated spend.
      if (cancelledByShutdown(ctx)) {
        throw ApplicationFailure.create({
          type: WORKER_SHUTDOWN,
          message: `provider ${provider.id} (${provider.model}): the worker shut down during the call${sent ? '; the request was aborted on the wire' : ''}`,
          details: [{ provider: provider.id, sent } satisfies ProviderFailureDetails],
        });
      }
      // Reported to Temporal as a cancellation (not a failure): the workflow stopped this call.
      throw new CancelledFailure('provider call cancelled; HTTP request aborted');
    }
    if (err instanceof StreamCut) throw streamCutFailure(provider, err, countTokens(system) + countTokens(user), Date.now() - started, secrets);
    throw toApplicationFailure(deps, provider, err, Date.now() - started);
  } finally {
    clearInterval(beat);
  }
  const latencyMs = Date.now() - started;
  const { content, finishReason } = completion;
  const tokensIn = completion.usage?.prompt_tokens ?? countTokens(system) + countTokens(user);
  const tokensOut = completion.usage?.completion_tokens ?? countTokens(content);
  // From here on the call is paid: a store that cannot keep the answer must not make it $0.
  const keep = (kind: string, value: unknown) => storeAnswered(store, kind, value, { provider, tokensIn, tokensOut, latencyMs });
  const response = await keep('response', responseRecord(provider, plan ? 'json-plan' : format.name, finishReason, redact(content, secrets)));
  const base = { provider: provider.id, model: provider.model, tokensIn, tokensOut, latencyMs, response };

  if (finishReason === 'length') {
    // A cut-off answer is never applied: its last block may be half a file.
    return { ...base, outcome: 'truncated', error: `the answer was cut off at the output limit (${provider.maxTokens} tokens)` };
  }
  const parsed = format.parse(content);
  if (!parsed.ok) {
    // Parser errors may quote the text they choked on: redacted before it enters history.
    return { ...base, outcome: 'schema_violation', error: redact(parsed.error, secrets).slice(0, 2000) };
  }
  const answer = parsed.value;
  const shortSummary = (s: string | undefined) => (s === undefined ? undefined : redact(s.slice(0, 500), secrets));
  if ('needFiles' in answer) {
    return { ...base, outcome: 'needs_files', needFiles: answer.needFiles.slice(0, 50).map((f) => redact(f.slice(0, 300), secrets)), summary: shortSummary(answer.summary) };
  }
  if ('subtasks' in answer) {
    return { ...base, outcome: 'subtasks', subtasks: answer.subtasks, summary: shortSummary(answer.summary) };
  }
  // The summary is prose (history, report, commit message): redacted. File contents are code to
  // apply, kept as written (the raw response artifact above is redacted) — unless they hold a
  // secret of the worker: masking it would change what is applied, so the answer is refused.
  if (answer.files.some((f) => holdsSecret(f, secrets))) {
    return {
      ...base,
      outcome: 'schema_violation',
      error: 'it was refused: its edits write a value that is one of the worker\'s secrets (never put credentials in files; read them from the environment)',
    };
  }
  const summary = redact(answer.summary, secrets);
  const change = await keep('change-set', { ...answer, summary });
  return {
    ...base,
    outcome: 'ok',
    change,
    changeDigest: digestChangeSet(answer),
    summary: summary.slice(0, 500),
    files: answer.files.slice(0, 200).map((f) => ({ path: f.path, action: f.action })),
  };
}

/** The raw answer as the `response` artifact keeps it (content already redacted). */
export function responseRecord(provider: Pick<ProviderSpec, 'id' | 'model'>, editFormatName: string, finishReason: string | undefined, content: string) {
  return { provider: provider.id, model: provider.model, editFormat: editFormatName, finishReason, content };
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

/** Whether a file change writes one of `secrets` (literal values of the worker's secret env vars). */
function holdsSecret(f: ChangeSet['files'][number], secrets: readonly string[]): boolean {
  const text = f.action === 'edit' ? `${f.path}\0${f.replace}` : f.action === 'write' ? `${f.path}\0${f.content}` : f.path;
  return secrets.some((s) => s.length >= MIN_SECRET_LENGTH && text.includes(s));
}

/**
 * Same edits up to whitespace → same digest. A first comparison only: consensus compares the
 * files the edits produce (the workflow's `previewChange` on the workspace).
 */
export function digestChangeSet(change: ChangeSet): string {
  const text = (f: ChangeSet['files'][number]) =>
    f.action === 'edit' ? `${f.search}\0${f.replace}` : f.action === 'write' ? f.content : '';
  const norm = change.files.map((f) => `${f.action} ${f.path.replace(/^\.\//, '')}\n${text(f).replace(/[ \t]+/g, ' ').trim()}`).sort();
  return createHash('sha256').update(norm.join('\n\0')).digest('hex').slice(0, 16);
}
