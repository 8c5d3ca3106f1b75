// Which logs an attempt left, one per step: the same answer for the `progress` query (a running
// task) and for the CLI reading a finished task's result. Pure: the workflow imports it too.
import type { AttemptLogs, AttemptRecord, StepLog } from './schema';

/**
 * An attempt's steps with their logs: its playbook `steps` when it has them; otherwise (records
 * made before playbooks) its test run as the step `test`; none when it never got to run one.
 */
export function stepLogs(record: Pick<AttemptRecord, 'steps' | 'tests'>): StepLog[] {
  if (record.steps) {
    return record.steps.map((s) => ({
      name: s.name,
      kind: s.kind,
      status: s.status,
      ...(s.log ? { log: s.log } : {}),
      ...(s.skippedBecause ? { skippedBecause: s.skippedBecause } : {}),
    }));
  }
  const t = record.tests;
  if (!t) return [];
  return [{ name: 'test', kind: 'test', status: t.passed ? 'passed' : 'failed', ...(t.log ? { log: t.log } : {}) }];
}

/** Every attempt's step logs, in attempt order (small: names and references only). */
export function attemptLogs(records: readonly AttemptRecord[]): AttemptLogs[] {
  return records.map((r) => ({ attempt: r.attempt, steps: stepLogs(r) }));
}
