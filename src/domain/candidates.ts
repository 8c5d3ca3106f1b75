// parallel-all's choice among answers that were each checked in a workspace of their own
// (workflows/candidates.ts): by the checks' verdict, then the call's cost, then provider order.
// Pure, so the rule is unit-tested without Temporal.
import type { CandidateRecord } from './schema';

/**
 * Lower is better. An answer whose check could not run (its workspace lost) ranks above the
 * ones known to fail: it may pass, they did not. Answers never checked are not ranked.
 */
const VERDICT_RANK: Record<string, number> = {
  tests_passed: 0,
  checks_passed: 0,
  no_checks: 1,
  workspace_lost: 2,
  check_error: 2,
  tests_failed: 3,
  check_failed: 3,
  invalid_syntax: 4,
  apply_failed: 5,
};

/** Whether the outcome is one the checks gave (the answer was checked, or its check was tried). */
export function isRanked(outcome: string): boolean {
  return outcome in VERDICT_RANK;
}

/** The index of the answer to use among `candidates` (provider order), or -1 when none was checked. */
export function bestCandidate(candidates: Pick<CandidateRecord, 'outcome' | 'costUsd'>[]): number {
  let best = -1;
  for (const [i, c] of candidates.entries()) {
    if (!isRanked(c.outcome)) continue;
    const b = candidates[best];
    const byVerdict = b ? VERDICT_RANK[c.outcome] - VERDICT_RANK[b.outcome] : -1;
    // Strictly better only: ties keep the earlier provider.
    if (byVerdict < 0 || (byVerdict === 0 && c.costUsd < b.costUsd)) best = i;
  }
  return best;
}
