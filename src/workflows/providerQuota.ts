// providerQuota: one long-lived workflow per provider (id `weaver-quota/<provider>`), the
// durable owner of that provider's quota state. Provider-call activities report what each
// response's rate-limit headers said (signal-with-start: the first report starts it); batches and
// decompositions read it (a query, through the readQuotas activity) before they launch children.
// It keeps only the newest reading, so its history is its reports: it continues as new every
// QUOTA_REPORTS_PER_RUN reports (or when Temporal suggests it), carrying the state over.
import { condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { mergeQuota, QUOTA_REPORTS_PER_RUN, type QuotaState } from '../domain/quota';
import { quotaQuery, quotaReportSignal } from './messages';

export async function providerQuota(input: { provider: string; state?: QuotaState }): Promise<void> {
  let state = input.state ? { ...input.state, reports: 0 } : undefined;
  let reports = 0;
  setHandler(quotaReportSignal, (report) => {
    state = mergeQuota(state, report);
    reports += 1;
  });
  setHandler(quotaQuery, () => state ?? null);
  await condition(() => reports >= QUOTA_REPORTS_PER_RUN || workflowInfo().continueAsNewSuggested);
  // Signals delivered with the last workflow task are in `state` already (handlers ran first).
  await continueAsNew<typeof providerQuota>({ provider: input.provider, state });
}
