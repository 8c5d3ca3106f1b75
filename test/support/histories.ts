// Workflow histories as JSON files (the format of `temporal workflow show --output json`), the
// replay fixtures' manifest, and a summary of a history for checking what a fixture holds.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { EPOCHS } from '../../src/workflows/patches';

/** Where `npx tsx scripts/record-replay-fixtures.ts` writes, and test/replayFixtures.test.ts reads. */
export const REPLAY_FIXTURES_DIR = path.join(__dirname, '..', 'fixtures', 'replay');
export const REPLAY_MANIFEST = path.join(REPLAY_FIXTURES_DIR, 'manifest.json');

interface ProtoJson {
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): History | null;
  toJson(type: unknown, message: unknown): unknown;
}

/**
 * The protojson and History type of @temporalio/proto's own protobufjs. With @temporalio/* 1.24.0
 * npm installs three copies of protobufjs 8 (root node_modules holds grpc's protobufjs 7), and the
 * SDK's historyFromJSON/historyToJSON (and Worker.runReplayHistory given JSON) pass a Type built
 * by @temporalio/proto's copy to @temporalio/common's copy of protojson, which rejects it with
 * "TypeError: type must be a Type". The same calls through one copy give the same result.
 */
function protoJson(): { protojson: ProtoJson; historyType: unknown } {
  const requireFromProto = createRequire(require.resolve('@temporalio/proto'));
  const protojson = requireFromProto('protobufjs/ext/protojson') as ProtoJson;
  const root = patchProtobufRoot(proto as unknown as Record<string, unknown>) as unknown as { lookupType(name: string): unknown };
  return { protojson, historyType: root.lookupType('temporal.api.history.v1.History') };
}

const isTypeMismatch = (err: unknown) => err instanceof TypeError && /must be a Type/.test(err.message);

/** historyFromJSON, working around the protobufjs duplication above (drop once the SDK call works here). */
export function historyFromJSONCompat(json: unknown): History {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
  }
  const { protojson, historyType } = protoJson();
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (!history) throw new TypeError('invalid history JSON');
  return history;
}

/** historyToJSON's JSON (the format every Temporal tool reads), as an object, with the same workaround. */
export function historyToJSONObject(history: History): { events: unknown[] } {
  try {
    return JSON.parse(historyToJSON(history)) as { events: unknown[] };
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
  }
  const { protojson, historyType } = protoJson();
  return protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)) as { events: unknown[] };
}

/** A history file: that JSON with one event per line (a quarter smaller than pretty-printed, and diffs by event). */
export function historyFileText(history: History): string {
  const { events } = historyToJSONObject(history);
  return `{"events": [\n${events.map((e) => JSON.stringify(e)).join(',\n')}\n]}\n`;
}

/** One recorded workflow history of a scenario (a parent and its children are one scenario). */
export interface ReplayFixture {
  /** File name under test/fixtures/replay. */
  file: string;
  /** Histories carry no workflow id; the workflow reads it (branch names, child ids), so replay with the recorded one. */
  workflowId: string;
  workflowType: string;
}

export interface ReplayScenarioRecord {
  name: string;
  about: string;
  /** The top workflow first, then its children. */
  histories: ReplayFixture[];
}

export interface ReplayManifest {
  /** How the fixtures were made, for whoever re-records them. */
  recordedWith: { command: string; sdk: string; at: string };
  scenarios: ReplayScenarioRecord[];
}

export async function readReplayManifest(file = REPLAY_MANIFEST): Promise<ReplayManifest> {
  return JSON.parse(await readFile(file, 'utf8')) as ReplayManifest;
}

/** A history with the id of its workflow (a HistoryAndWorkflowId whose history is decoded). */
export interface RecordedHistory extends HistoryAndWorkflowId {
  history: History;
}

/** A fixture's history, ready for Worker.runReplayHistories. */
export async function loadReplayFixture(f: ReplayFixture, dir = REPLAY_FIXTURES_DIR): Promise<RecordedHistory> {
  const json = JSON.parse(await readFile(path.join(dir, f.file), 'utf8')) as unknown;
  return { workflowId: f.workflowId, history: historyFromJSONCompat(json) };
}

/** What a history did, in the terms the scenarios are told apart by. */
export interface HistoryShape {
  workflowType: string;
  /** How it closed: COMPLETED, FAILED, CANCELED… */
  closed: string;
  /** Scheduled activities by type. */
  activities: Record<string, number>;
  /** Local activities by type (their markers). */
  localActivities: Record<string, number>;
  /** Upserts of Weaver's search attributes, each with the names it set (the SDK's patch bookkeeping, TemporalChangeVersion, left out). */
  upserts: string[][];
  workflowTasks: number;
  /** Activities whose cancellation was requested (a lost race, a cancelled task). */
  activitiesCancelled: number;
  /** Timer summaries (durable waits), in order. */
  timers: string[];
  /** Child workflow ids started. */
  children: string[];
  /** The workflow changes (patched() ids) in effect for the run: its patch markers, the epoch's expanded to every id it covers. */
  patches: string[];
  /** The patch markers themselves, as recorded (one, the epoch, for a run of current code). */
  patchMarkers: string[];
  /** The SDK's TemporalChangeVersion upserts (one per patch marker). */
  changeVersionUpserts: number;
  signals: string[];
  updates: string[];
  cancelRequested: boolean;
  /** It continued a run before it (started with a carry: a second workflow argument). */
  continued: boolean;
}

export function historyShape(history: History): HistoryShape {
  const shape: HistoryShape = {
    workflowType: '',
    closed: 'OPEN',
    activities: {},
    localActivities: {},
    upserts: [],
    workflowTasks: 0,
    activitiesCancelled: 0,
    timers: [],
    children: [],
    patches: [],
    patchMarkers: [],
    changeVersionUpserts: 0,
    signals: [],
    updates: [],
    cancelRequested: false,
    continued: false,
  };
  const text = (p: proto.temporal.api.common.v1.IPayload | null | undefined) => (p ? String(defaultPayloadConverter.fromPayload(p)) : '');
  for (const e of history.events ?? []) {
    const started = e.workflowExecutionStartedEventAttributes;
    if (started) shape.workflowType = started.workflowType?.name ?? '';
    if (started?.continuedExecutionRunId) shape.continued = true;
    const activity = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (activity) shape.activities[activity] = (shape.activities[activity] ?? 0) + 1;
    if (e.activityTaskCancelRequestedEventAttributes) shape.activitiesCancelled += 1;
    if (e.timerStartedEventAttributes) shape.timers.push(text(e.userMetadata?.summary));
    const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (child) shape.children.push(child);
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = marker.details?.data?.payloads?.[0];
      const type = data ? (defaultPayloadConverter.fromPayload(data) as { activity_type?: string }).activity_type : undefined;
      if (type) shape.localActivities[type] = (shape.localActivities[type] ?? 0) + 1;
    }
    const upserted = Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).filter((k) => k !== 'TemporalChangeVersion');
    if (upserted.length) shape.upserts.push(upserted.sort());
    if (e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.TemporalChangeVersion) shape.changeVersionUpserts += 1;
    if (e.workflowTaskCompletedEventAttributes) shape.workflowTasks += 1;
    if (marker?.markerName === 'core_patch') {
      const id = marker.details?.['patch-data']?.payloads?.[0];
      const data = id ? (defaultPayloadConverter.fromPayload(id) as { id?: string }) : undefined;
      if (data?.id) shape.patchMarkers.push(data.id);
      if (data?.id) shape.patches.push(data.id, ...(EPOCHS.find((e) => e.marker === data.id)?.covers ?? []));
    }
    const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
    if (signal) shape.signals.push(signal);
    const update = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name;
    if (update) shape.updates.push(update);
    if (e.workflowExecutionCancelRequestedEventAttributes) shape.cancelRequested = true;
    if (e.workflowExecutionCompletedEventAttributes) shape.closed = 'COMPLETED';
    if (e.workflowExecutionFailedEventAttributes) shape.closed = 'FAILED';
    if (e.workflowExecutionCanceledEventAttributes) shape.closed = 'CANCELED';
    if (e.workflowExecutionTerminatedEventAttributes) shape.closed = 'TERMINATED';
    if (e.workflowExecutionTimedOutEventAttributes) shape.closed = 'TIMED_OUT';
    if (e.workflowExecutionContinuedAsNewEventAttributes) shape.closed = 'CONTINUED_AS_NEW';
  }
  return shape;
}
