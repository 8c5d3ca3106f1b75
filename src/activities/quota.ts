// The activity side of provider quotas (src/domain/quota.ts): a provider call reports what its
// response said to the provider's quota workflow (signal-with-start), and a batch or
// decomposition reads the quotas of its providers (a query each) before launching children.
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { log } from '@temporalio/activity';
import { quotaWorkflowId, type QuotaReport, type QuotaState } from '../domain/quota';
import { quotaQuery, quotaReportSignal } from '../workflows/messages';
import type { providerQuota } from '../workflows/providerQuota';

/**
 * Sends `report` to its provider's quota workflow, starting it on `taskQueue` (where workflows
 * run) if it is not running. Never fails the call that reported: a quota unknown is a quota
 * not limited, and the provider's own 429s still arrive.
 */
export async function reportQuota(client: Client, taskQueue: string, report: QuotaReport): Promise<void> {
  try {
    await client.workflow.signalWithStart<typeof providerQuota, [QuotaReport]>('providerQuota', {
      workflowId: quotaWorkflowId(report.provider),
      taskQueue,
      args: [{ provider: report.provider }],
      signal: quotaReportSignal,
      signalArgs: [report],
    });
  } catch (err) {
    log.warn('provider quota not reported', { provider: report.provider, error: (err as Error)?.message ?? String(err) });
  }
}

/** The quota of each provider that reported one (providers never heard from are left out). */
export async function readQuotas(client: Client, providers: string[]): Promise<QuotaState[]> {
  const ids = [...new Set(providers.map(quotaWorkflowId))];
  const states = await Promise.all(
    ids.map(async (id) => {
      try {
        return await client.workflow.getHandle(id).query(quotaQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    }),
  );
  return states.filter((s): s is QuotaState => !!s);
}
