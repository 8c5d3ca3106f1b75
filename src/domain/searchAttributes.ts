// Search attributes Weaver sets on its workflows, for filtering in the Web UI and
// `temporal workflow list --query 'WeaverStatus="failed"'`. The worker registers them.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const WeaverStatus = defineSearchAttributeKey('WeaverStatus', SearchAttributeType.KEYWORD);
export const WeaverPhase = defineSearchAttributeKey('WeaverPhase', SearchAttributeType.KEYWORD);
export const WeaverRepo = defineSearchAttributeKey('WeaverRepo', SearchAttributeType.KEYWORD);
export const WeaverCostUsd = defineSearchAttributeKey('WeaverCostUsd', SearchAttributeType.DOUBLE);
export const WeaverAttempt = defineSearchAttributeKey('WeaverAttempt', SearchAttributeType.INT);

export const WEAVER_SEARCH_ATTRIBUTES = [WeaverStatus, WeaverPhase, WeaverRepo, WeaverCostUsd, WeaverAttempt];
