// The spend of a child codingTask that ended without a result (terminated, timed out, or failed
// before it could report): its parent adds it to its usage and its budget (issue 9 item 6).
//
// Where it comes from, in order:
// 1. The closed child's `progress` query. A query on a closed workflow replays its history on a
//    worker, so the answer is the child's own ledger as it stood at the end: every settled call
//    at the prices the child resolved at its start, lost calls' estimates, shadow calls, and the
//    spend of its own finished children — exactly what its result would have said. (Its result
//    artifact does not exist: a terminated run never reaches `finish`.)
// 2. If the query fails (no worker for the workflow code any more, a replay that no longer fits
//    after a deploy, a child killed before it set its handler) — its recorded call events, summed
//    from the history: each generateChange's result priced with the provider spec it was sent
//    with. Approximate where the ledger knows more (a failure's billed tokens are read from its
//    details when present), but it needs no worker and no workflow code.
// Both then add what the ledger could not know at the end: a call still in flight when the child
// was stopped (the provider may bill it: estimated at its reservation, as the ledger books a
// lost call) and grandchildren still running then (asked the same way, a few levels deep).
import type { Client } from '@temporalio/client';
import type { PayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { Ledger, DEFAULT_RESERVED_OUTPUT_TOKENS, type CallEventInput } from '../domain/ledger';
import type { ProviderFailureDetails } from '../domain/errors';
import { costOf } from '../domain/pricing';
import type { Progress, ProviderSpec, Usage } from '../domain/schema';
import { resultFromFailure } from '../domain/taskOutcome';
import { mergeUsage } from '../domain/usage';
import { progressQuery } from '../workflows/messages';
import type { BuiltPrompt, GenerateChangeRequest, GenerateChangeResult } from './types';

export interface ChildUsageRequest {
  workflowId: string;
  /** The run that ended (a parent knows it from the child's start); absent: the latest. */
  runId?: string;
}

export interface ChildUsageResult {
  usage: Usage;
  /** Where the settled spend came from. */
  source: 'query' | 'history';
  /** Calls in flight when the child stopped, booked as estimated spend. */
  inFlight: number;
  /** Grandchildren still running when the child stopped, asked in turn. */
  openChildren: string[];
  /** Why the query was not used, when it was not. */
  queryError?: string;
}

const QUERY_TIMEOUT_MS = 20_000;
const MAX_DEPTH = 4;

type Event = temporal.api.history.v1.IHistoryEvent;

export interface ChildUsageOptions {
  /** Called between steps (the activity heartbeats). */
  beat?: () => void;
  /** How long the query may take before the history is summed instead. */
  queryTimeoutMs?: number;
  depth?: number;
}

export async function childUsage(client: Client, req: ChildUsageRequest, opts: ChildUsageOptions = {}): Promise<ChildUsageResult> {
  const { beat = () => undefined, queryTimeoutMs = QUERY_TIMEOUT_MS, depth = 0 } = opts;
  const handle = client.workflow.getHandle(req.workflowId, req.runId);
  const history = await handle.fetchHistory();
  beat();
  const converter = client.workflow.options.loadedDataConverter;
  const walk = walkHistory(history.events ?? [], converter.payloadConverter, (f) => converter.failureConverter.failureToError(f, converter.payloadConverter));

  let settled: Usage;
  let source: ChildUsageResult['source'] = 'query';
  let queryError: string | undefined;
  try {
    // A gRPC deadline, not a race: nothing keeps retrying in the background once we give up.
    const progress = await client.withDeadline(Date.now() + queryTimeoutMs, () => handle.query<Progress>(progressQuery));
    settled = progress.usage;
  } catch (err) {
    queryError = err instanceof Error ? err.message : String(err);
    source = 'history';
    settled = mergeUsage(walk.calls.usage, ...walk.childResults);
  }
  beat();
  const nested: Usage[] = [];
  // Open at the end: in no ledger. Ended without a result: in the child's ledger (it asked, as
  // its parent does now) but not in the history's sum.
  const ask = [...walk.openChildren, ...(source === 'history' ? walk.endedWithoutResult : [])];
  if (depth < MAX_DEPTH) {
    for (const id of ask) {
      try {
        nested.push((await childUsage(client, { workflowId: id }, { ...opts, depth: depth + 1 })).usage);
      } catch {
        // A grandchild never started (or is gone): it spent nothing we can find.
      }
    }
  }
  return { usage: mergeUsage(settled, walk.inFlight.usage, ...nested), source, inFlight: walk.inFlightCount, openChildren: walk.openChildren, ...(queryError ? { queryError } : {}) };
}

interface Walk {
  /** Every call the history recorded, priced (the fallback when the query fails). */
  calls: Ledger;
  /** Calls scheduled and never closed: estimated at their reservation. */
  inFlight: Ledger;
  inFlightCount: number;
  /** Usage of children that closed with a result (completed, or failed with one in details). */
  childResults: Usage[];
  /** Children started and not closed when the history ended. */
  openChildren: string[];
  /** Children that closed without a result (terminated, timed out, failed before reporting). */
  endedWithoutResult: string[];
}

/** One pass over the history: calls by outcome, children by how they ended. */
function walkHistory(events: Event[], pc: PayloadConverter, toError: (f: temporal.api.failure.v1.IFailure) => Error): Walk {
  const decode = <T>(payloads?: temporal.api.common.v1.IPayloads | null): T | undefined => {
    const p = payloads?.payloads?.[0];
    return p ? pc.fromPayload<T>(p) : undefined;
  };
  const calls = new Ledger({});
  const inFlight = new Ledger({});
  const scheduled = new Map<number, { req: GenerateChangeRequest; estTokensIn: number }>();
  const prompts = new Map<number, true>();
  let lastEstTokens = 0;
  const children = new Map<number, string>();
  const childResults: Usage[] = [];
  const unresolved: string[] = [];
  const base = (req: GenerateChangeRequest): Omit<CallEventInput, 'tokensIn' | 'tokensOut' | 'latencyMs' | 'outcome'> => ({
    provider: req.provider.id,
    model: req.provider.model,
    strategy: 'recorded',
    role: req.role,
    attempt: req.attempt,
    startedAt: '',
  });
  /** As the ledger books a lost call: its reservation (prompt + maxTokens) as estimated spend. */
  const lose = (ledger: Ledger, s: { req: GenerateChangeRequest; estTokensIn: number }, outcome: string) => {
    const spec: ProviderSpec = s.req.provider;
    // Shadow calls are paid too (counted apart, in usage.shadow).
    const costUsd = costOf(spec, s.estTokensIn, spec.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS);
    ledger.lost({ id: 0, costUsd, tokens: 0 }, { ...base(s.req), latencyMs: 0, tokensIn: 0, tokensOut: 0, outcome });
  };

  for (const e of events) {
    const id = Number(e.eventId);
    const a = e.activityTaskScheduledEventAttributes;
    if (a) {
      if (a.activityType?.name === 'generateChange') {
        const req = decode<GenerateChangeRequest>(a.input);
        if (req) scheduled.set(id, { req, estTokensIn: lastEstTokens });
      } else if (a.activityType?.name === 'buildPrompt') prompts.set(id, true);
      continue;
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const sid = Number(done.scheduledEventId);
      if (prompts.delete(sid)) lastEstTokens = decode<BuiltPrompt>(done.result)?.estTokens ?? lastEstTokens;
      const s = scheduled.get(sid);
      if (s) {
        scheduled.delete(sid);
        const r = decode<GenerateChangeResult>(done.result);
        calls.settle(undefined, s.req.provider, { ...base(s.req), latencyMs: r?.latencyMs ?? 0, tokensIn: r?.tokensIn ?? 0, tokensOut: r?.tokensOut ?? 0, outcome: r?.outcome ?? 'ok' });
      }
      continue;
    }
    const failed = e.activityTaskFailedEventAttributes;
    if (failed) {
      const s = scheduled.get(Number(failed.scheduledEventId));
      if (s) {
        scheduled.delete(Number(failed.scheduledEventId));
        // A failure after the provider billed carries the billed tokens in its details.
        const d = decode<ProviderFailureDetails>(failed.failure?.applicationFailureInfo?.details) ?? {};
        // A stream cut mid-answer: the tokens counted so far, as estimated spend (as the ledger books it).
        if (d.partial) calls.partial(undefined, s.req.provider, { ...base(s.req), latencyMs: d.latencyMs ?? 0, tokensIn: d.tokensIn ?? 0, tokensOut: d.tokensOut ?? 0, outcome: 'cut' });
        else if (d.sent && !d.tokensIn && !d.tokensOut) lose(calls, s, 'lost');
        else calls.settle(undefined, s.req.provider, { ...base(s.req), latencyMs: 0, tokensIn: d.tokensIn ?? 0, tokensOut: d.tokensOut ?? 0, outcome: 'error' });
      }
      continue;
    }
    const lost = e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
    if (lost) {
      const s = scheduled.get(Number(lost.scheduledEventId));
      if (s) {
        scheduled.delete(Number(lost.scheduledEventId));
        lose(calls, s, e.activityTaskTimedOutEventAttributes ? 'lost' : 'cancelled');
      }
      continue;
    }
    const started = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (started) {
      if (started.workflowId) children.set(id, started.workflowId);
      continue;
    }
    const notStarted = e.startChildWorkflowExecutionFailedEventAttributes;
    if (notStarted) {
      children.delete(Number(notStarted.initiatedEventId));
      continue;
    }
    const completed = e.childWorkflowExecutionCompletedEventAttributes;
    if (completed) {
      const r = decode<{ usage?: Usage }>(completed.result);
      if (r?.usage) childResults.push(r.usage);
      children.delete(Number(completed.initiatedEventId));
      continue;
    }
    const childFailed = e.childWorkflowExecutionFailedEventAttributes;
    if (childFailed) {
      const wid = children.get(Number(childFailed.initiatedEventId));
      children.delete(Number(childFailed.initiatedEventId));
      const r = childFailed.failure ? resultFromFailure(toError(childFailed.failure)) : undefined;
      if (r) childResults.push(r.usage);
      else if (wid) unresolved.push(wid);
      continue;
    }
    const childEnded = e.childWorkflowExecutionTerminatedEventAttributes ?? e.childWorkflowExecutionTimedOutEventAttributes ?? e.childWorkflowExecutionCanceledEventAttributes;
    if (childEnded) {
      const wid = children.get(Number(childEnded.initiatedEventId));
      children.delete(Number(childEnded.initiatedEventId));
      if (wid) unresolved.push(wid);
    }
  }
  for (const s of scheduled.values()) lose(inFlight, s, 'in flight when the workflow stopped');
  return { calls, inFlight, inFlightCount: scheduled.size, childResults, openChildren: [...children.values()], endedWithoutResult: unresolved };
}
