// An answered provider call, kept (issue 17: no answer bought twice). The moment the answer
// arrives it is judged (parsed, checked, redacted: pure and quick) and written whole to the
// artifact store as one `answer` record, and its reference is heartbeated. A retry of the
// activity — on any worker, after the first one was lost — finds that reference in its
// heartbeat details and delivers the kept answer instead of calling the provider again: one
// request, one booking, at the tokens the provider reported.
import { createHash } from 'node:crypto';
import { ApplicationFailure, type Context } from '@temporalio/activity';
import { ARTIFACT_STORE_FAILED, WORKER_LOST, type ProviderFailureDetails } from '../domain/errors';
import type { EditFormat } from '../domain/editformats';
import { MIN_SECRET_LENGTH, redact } from '../domain/redact';
import type { ArtifactRef, ChangeSet, ProviderSpec, TaskSpec } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import type { Completion } from './openaiClient';
import type { GenerateChangeResult } from './types';

/** What the answer made of the call, without its artifacts (those are written from it). */
export type Verdict =
  | { outcome: 'truncated' | 'schema_violation'; error: string }
  | { outcome: 'needs_files'; needFiles: string[]; summary?: string }
  | { outcome: 'subtasks'; subtasks: TaskSpec[]; summary?: string }
  | { outcome: 'ok'; change: ChangeSet; changeDigest: string };

/** The `answer` record: everything the activity's result is made of. */
export interface KeptAnswer extends Pick<GenerateChangeResult, 'provider' | 'model' | 'tokensIn' | 'tokensOut' | 'tokensCached' | 'latencyMs'> {
  response: ReturnType<typeof responseRecord>;
  verdict: Verdict;
}

/** The generateChange heartbeat: the provider, and once the answer is kept, where and what it cost. */
export interface CallBeat {
  provider: string;
  answer?: ArtifactRef;
  tokensIn?: number;
  tokensOut?: number;
  latencyMs?: number;
}

/** The raw answer as the `response` artifact keeps it (content already redacted). */
export function responseRecord(provider: Pick<ProviderSpec, 'id' | 'model'>, editFormatName: string, finishReason: string | undefined, content: string) {
  return { provider: provider.id, model: provider.model, editFormat: editFormatName, finishReason, content };
}

/** The answer judged: parsed in the provider's edit format, redacted, refused where it writes a secret. */
export function judge(
  provider: ProviderSpec,
  format: EditFormat,
  plan: boolean,
  completion: Completion,
  call: { tokensIn: number; tokensOut: number; tokensCached?: number; latencyMs: number },
  secrets: string[],
): KeptAnswer {
  const { content, finishReason } = completion;
  const response = responseRecord(provider, plan ? 'json-plan' : format.name, finishReason, redact(content, secrets));
  const kept = (verdict: Verdict): KeptAnswer => ({ provider: provider.id, model: provider.model, ...call, response, verdict });
  // A cut-off answer is never applied: its last block may be half a file.
  if (finishReason === 'length') return kept({ outcome: 'truncated', error: `the answer was cut off at the output limit (${provider.maxTokens} tokens)` });
  const parsed = format.parse(content);
  // Parser errors may quote the text they choked on: redacted before it enters history.
  if (!parsed.ok) return kept({ outcome: 'schema_violation', error: redact(parsed.error, secrets).slice(0, 2000) });
  const answer = parsed.value;
  const shortSummary = (s: string | undefined) => (s === undefined ? undefined : redact(s.slice(0, 500), secrets));
  if ('needFiles' in answer) {
    return kept({ outcome: 'needs_files', needFiles: answer.needFiles.slice(0, 50).map((f) => redact(f.slice(0, 300), secrets)), summary: shortSummary(answer.summary) });
  }
  if ('subtasks' in answer) return kept({ outcome: 'subtasks', subtasks: answer.subtasks, summary: shortSummary(answer.summary) });
  // The summary is prose (history, report, commit message): redacted. File contents are code to
  // apply, kept as written (the raw response above is redacted) — unless they hold a secret of
  // the worker: masking it would change what is applied, so the answer is refused.
  if (answer.files.some((f) => holdsSecret(f, secrets))) {
    return kept({
      outcome: 'schema_violation',
      error: "it was refused: its edits write a value that is one of the worker's secrets (never put credentials in files; read them from the environment)",
    });
  }
  return kept({ outcome: 'ok', change: { ...answer, summary: redact(answer.summary, secrets) }, changeDigest: digestChangeSet(answer) });
}

/** Writes one artifact of an answered (paid) call; a failure carries the call's real usage. */
export type Keep = (kind: string, value: unknown) => Promise<ArtifactRef>;

/** The activity's result from a kept answer: its response and change-set artifacts written (idempotent: content-addressed). */
export async function resultOf(kept: KeptAnswer, keep: Keep): Promise<GenerateChangeResult> {
  const { verdict: v } = kept;
  const base = { provider: kept.provider, model: kept.model, tokensIn: kept.tokensIn, tokensOut: kept.tokensOut, ...(kept.tokensCached ? { tokensCached: kept.tokensCached } : {}), latencyMs: kept.latencyMs, response: await keep('response', kept.response) };
  if (v.outcome !== 'ok') return { ...base, ...v };
  return {
    ...base,
    outcome: 'ok',
    change: await keep('change-set', v.change),
    changeDigest: v.changeDigest,
    summary: v.change.summary.slice(0, 500),
    files: v.change.files.slice(0, 200).map((f) => ({ path: f.path, action: f.action })),
  };
}

/**
 * Keeps the answer and heartbeats its reference. Heartbeats are throttled by the SDK (Core sends
 * the first at once, then at most one per throttle interval — here WEAVER_HEARTBEAT_MS, 1 s by
 * default — the latest pending one at the interval's end). A call answered within one period
 * beat nothing before (llm.ts): this beat is its first and goes out at once; a longer call's own
 * beats keep that throttle busy, so this beat may wait up to one interval. `stopBeats` ends the
 * call's periodic beats first: none may follow this one. No wait for it is added: the activity
 * completes milliseconds later, and its completion carries the same answer and drops a pending
 * beat; waiting would only delay every call by up to a second without narrowing the window in
 * which a lost worker loses the answer (until the beat or the completion reaches the server).
 */
export async function keepAnswer(ctx: Context, kept: KeptAnswer, keep: Keep, stopBeats: () => void): Promise<void> {
  const answer = await keep('answer', kept);
  // A later periodic beat would replace the reference in Temporal's record.
  stopBeats();
  ctx.heartbeat({ provider: kept.provider, answer, tokensIn: kept.tokensIn, tokensOut: kept.tokensOut, latencyMs: kept.latencyMs } satisfies CallBeat);
}

/**
 * A retry of the call (its first execution's worker was lost): the answer that execution kept, or
 * a failure saying the call was lost on the wire. Never a new request: the workflow books the lost
 * one as estimated spend and decides itself whether to ask again.
 */
export async function keptAnswerOf(ctx: Context, store: ArtifactStore, provider: ProviderSpec): Promise<KeptAnswer> {
  const beat = ctx.info.heartbeatDetails as CallBeat | undefined;
  const lost = (why: string, type: string, details: ProviderFailureDetails) =>
    ApplicationFailure.create({ type, nonRetryable: true, message: `provider ${provider.id} (${provider.model}): ${why}`, details: [details] });
  if (!beat?.answer) {
    // The first execution ran out its start-to-close (a provider too slow for its deadline, with
    // the worker alive) rather than going silent: the provider's failure, not the infrastructure's.
    const { scheduledTimestampMs, currentAttemptScheduledTimestampMs, startToCloseTimeoutMs } = ctx.info;
    const ranOut = currentAttemptScheduledTimestampMs - scheduledTimestampMs >= startToCloseTimeoutMs;
    const why = ranOut ? 'the call ran out its start-to-close timeout' : 'the worker running this call was lost before its answer was kept';
    throw lost(`${why}; the request may have been billed`, WORKER_LOST, { provider: provider.id, sent: true, ...(ranOut ? { ranOut } : {}) });
  }
  // Beaten again: a retry lost in its turn leaves the reference to the next.
  ctx.heartbeat(beat);
  try {
    return await store.readJson<KeptAnswer>(beat.answer);
  } catch (err) {
    // Paid, and unreadable here (a store local to the lost host): booked at its real tokens, asked again.
    const { tokensIn = 0, tokensOut = 0, latencyMs } = beat;
    throw lost(`answered, but the answer its lost worker kept cannot be read here: ${(err as Error).message}`, ARTIFACT_STORE_FAILED, { provider: provider.id, tokensIn, tokensOut, latencyMs });
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
  const text = (f: ChangeSet['files'][number]) => (f.action === 'edit' ? `${f.search}\0${f.replace}` : f.action === 'write' ? f.content : '');
  const norm = change.files.map((f) => `${f.action} ${f.path.replace(/^\.\//, '')}\n${text(f).replace(/[ \t]+/g, ' ').trim()}`).sort();
  return createHash('sha256').update(norm.join('\n\0')).digest('hex').slice(0, 16);
}
