// Reading back what a run recorded: its call events (JSONL artifact) and its timers' summaries.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { CallEvent, CodingTaskResult } from '../../src/domain/schema';

/** The call events of a result, from its `events` artifact in `artifactDir`. */
export async function eventsOf(result: CodingTaskResult, artifactDir: string): Promise<CallEvent[]> {
  const ref = result.artifacts.find((a) => a.kind === 'events');
  if (!ref) return [];
  const hex = ref.ref.slice('sha256:'.length);
  const text = await readFile(path.join(artifactDir, 'sha256', hex.slice(0, 2), hex), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l) as CallEvent);
}

/** The summary of every timer the workflow started, in order (what the Web UI labels them with). */
export async function timerSummaries(handle: Pick<WorkflowHandle, 'fetchHistory'>): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.timerStartedEventAttributes)
    .map((e) => (e.userMetadata?.summary ? String(defaultPayloadConverter.fromPayload(e.userMetadata.summary)) : ''));
}

/** The duration (ms) each timer the workflow started was set for, in order: what it planned to wait, however late it fired. */
export async function timerDurationsMs(handle: Pick<WorkflowHandle, 'fetchHistory'>): Promise<number[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .map((e) => e.timerStartedEventAttributes?.startToFireTimeout)
    .filter((d) => d !== undefined)
    .map((d) => Number(d?.seconds ?? 0) * 1000 + Math.floor((d?.nanos ?? 0) / 1e6));
}

/** startToClose and heartbeat timeouts (seconds) of each scheduled activity of `type`. */
export async function activityTimeouts(handle: Pick<WorkflowHandle, 'fetchHistory'>, type: string): Promise<{ startToCloseSec: number; heartbeatSec: number }[]> {
  const history = await handle.fetchHistory();
  const sec = (d: { seconds?: unknown } | null | undefined) => Number(d?.seconds ?? 0);
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => a?.activityType?.name === type)
    .map((a) => ({ startToCloseSec: sec(a!.startToCloseTimeout), heartbeatSec: sec(a!.heartbeatTimeout) }));
}
