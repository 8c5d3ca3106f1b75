// How many children a batch or a decomposition may run now, from its providers' quotas
// (src/domain/quota.ts decides; the providerQuota workflows hold what the providers said).
import { isCancellation, log, proxyActivities, sleep } from '@temporalio/workflow';
import { patched } from './patches';
import type { Activities } from '../activities';
import { decideWindow, type WindowOptions } from '../domain/quota';

/** Marks runs whose children are launched within their providers' quota (runs before launched `concurrency` at once). */
export const QUOTA_WINDOW = 'quota-window';

const quota = proxyActivities<Pick<Activities, 'readQuotas'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

/**
 * The number of children that may run at once now: at most half of what the providers have
 * left, at least 1, at most `concurrency`. While a provider is nearly spent (or throttled) it
 * waits for the reset on a durable timer instead of launching into a 429 storm. A quota that
 * cannot be read limits nothing (the providers' own 429s still pace the calls).
 */
export async function quotaWindow(providers: string[], concurrency: number, opts: WindowOptions = {}): Promise<number> {
  for (;;) {
    let states;
    try {
      states = await quota.readQuotas({ providers });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('provider quotas unreadable; launching up to the configured concurrency', { error: (err as Error)?.message });
      return Math.max(1, Math.floor(concurrency));
    }
    const d = decideWindow(states, concurrency, Date.now(), opts);
    if (d.waitMs <= 0) return d.window;
    log.info('waiting for a provider quota to reset before launching children', { why: d.why, waitMs: d.waitMs });
    await sleep(d.waitMs, { summary: `quota: ${d.why}` });
  }
}

/** The window function for runs that have it (`patched(QUOTA_WINDOW)`), else undefined: a fixed `concurrency`. */
export function quotaWindowOf(providers: string[], concurrency: number, opts: WindowOptions = {}): (() => Promise<number>) | undefined {
  return patched(QUOTA_WINDOW) ? () => quotaWindow(providers, concurrency, opts) : undefined;
}
