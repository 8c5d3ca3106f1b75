// Search attributes Weaver sets on its workflows, for filtering in the Web UI and
// `temporal workflow list --query 'WeaverStatus="failed"'`. The worker registers them.
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributeUpdatePair, type TypedSearchAttributes } from '@temporalio/common';

export const WeaverStatus = defineSearchAttributeKey('WeaverStatus', SearchAttributeType.KEYWORD);
export const WeaverPhase = defineSearchAttributeKey('WeaverPhase', SearchAttributeType.KEYWORD);
export const WeaverRepo = defineSearchAttributeKey('WeaverRepo', SearchAttributeType.KEYWORD);
export const WeaverCostUsd = defineSearchAttributeKey('WeaverCostUsd', SearchAttributeType.DOUBLE);
export const WeaverAttempt = defineSearchAttributeKey('WeaverAttempt', SearchAttributeType.INT);

export const WEAVER_SEARCH_ATTRIBUTES = [WeaverStatus, WeaverPhase, WeaverRepo, WeaverCostUsd, WeaverAttempt];

/**
 * What a run upserts when its status changes (runs since LEAN_ROUND_TRIPS), all in one upsert:
 * the status with the phase, attempt and spend it got to. Between status changes the phase is in
 * the Web UI's details and the `progress` query, not in search attributes.
 */
export function statusAttributes(s: { status: string; phase: string; attempt: number; costUsd: number }): SearchAttributeUpdatePair[] {
  return [
    { key: WeaverStatus, value: s.status },
    { key: WeaverPhase, value: s.phase },
    { key: WeaverAttempt, value: s.attempt },
    { key: WeaverCostUsd, value: s.costUsd },
  ];
}

/** The pairs whose value differs from the run's current attributes (the client sets some at start). */
export function changedAttributes(current: TypedSearchAttributes, pairs: SearchAttributeUpdatePair[]): SearchAttributeUpdatePair[] {
  return pairs.filter((p) => current.get(p.key) !== p.value);
}
