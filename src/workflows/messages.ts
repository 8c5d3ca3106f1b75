// Queries, signals and updates, defined once: the workflows set their handlers with these and
// the client and CLI send them (no message name is spelled twice).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { QuotaReport, QuotaState } from '../domain/quota';
import type { BatchProgress, Progress } from '../domain/schema';

/** Where a codingTask is: phase, attempt, spend, last decision, children, sandbox. */
export const progressQuery = defineQuery<Progress>('progress');
/** A taskBatch's counts and its children (same name as the task's: `temporal workflow query --name progress`). */
export const batchProgressQuery = defineQuery<BatchProgress>('progress');
/** A person's hint, added to the next prompt. */
export const addGuidanceSignal = defineSignal<[string]>('addGuidance');

export interface PushDecision {
  approved: boolean;
  by?: string;
  comment?: string;
  /**
   * The commit this decision is about (full or abbreviated SHA, at least 7 hex digits): refused
   * when it is not the commit awaiting approval, so nobody approves a commit they did not see.
   */
  commit?: string;
}

/** A person's decision on pushing, when the task has `requireApproval`; answers what happens next. */
export const approvePushUpdate = defineUpdate<string, [PushDecision]>('approvePush');
/** The same decision as a signal (e.g. `temporal workflow signal --name approvePush`); checked like the update. */
export const approvePushSignal = defineSignal<[PushDecision]>('approvePush');

/** A provider response's quota facts, sent by the provider-call activity to its providerQuota workflow. */
export const quotaReportSignal = defineSignal<[QuotaReport]>('quotaReport');
/** A provider's quota as last reported (null: nothing reported yet). */
export const quotaQuery = defineQuery<QuotaState | null>('quota');
