// What a parent or a batch keeps of its children's results (payload and history limits).
import { resultRows, slimResult } from '../src/domain/slim';
import type { CodingTaskResult } from '../src/domain/schema';
import { emptyUsage } from '../src/domain/usage';

function result(i: number): CodingTaskResult {
  const usage = emptyUsage();
  usage.calls = 2;
  usage.costUsd = 0.5;
  usage.byProvider.p = { calls: 2, failures: {}, tokensIn: 10, tokensOut: 5, costUsd: 0.5, meanLatencyMs: 3, latencyMsSum: 6 };
  return {
    workflowId: `batch/${i}`,
    status: 'succeeded',
    reason: 'x'.repeat(5000),
    branch: `weaver/b--${i}`,
    commit: 'c'.repeat(40),
    attempts: [
      {
        attempt: 1,
        calls: [],
        outcome: 'tests_passed',
        decision: { action: 'commit', why: 'ok' },
        tests: { passed: true, exitCode: 0, timedOut: false, durationMs: 1, tail: 't'.repeat(4096) },
        artifacts: [{ ref: 'sha256:p', bytes: 1, kind: 'prompt' }],
      },
    ],
    usage,
    artifacts: [
      { ref: 'sha256:r', bytes: 1, kind: 'report' },
      { ref: 'sha256:f', bytes: 1, kind: 'result' },
      { ref: 'sha256:d', bytes: 1, kind: 'diff' },
    ],
  };
}

test('slimResult drops test tails and per-attempt artifacts but keeps decisions, usage and the report/result refs', () => {
  const s = slimResult(result(1));
  expect(JSON.stringify(s).length).toBeLessThan(JSON.stringify(result(1)).length / 2);
  expect(s.attempts[0]).toMatchObject({ outcome: 'tests_passed', decision: { action: 'commit' }, artifacts: [] });
  expect(s.attempts[0].tests).toBeUndefined();
  expect(s.artifacts.map((a) => a.kind)).toEqual(['report', 'result']);
  expect(s.usage.costUsd).toBe(0.5);
});

test('resultRows keeps results whole while they fit, and one short line per task in order when they do not', () => {
  const results = [1, 2, 3].map((i) => slimResult(result(i)));
  expect(resultRows(results, 1_000_000)).toBe(results);
  const rows = resultRows(results, 1000);
  expect(rows.map((r) => r.workflowId)).toEqual(['batch/1', 'batch/2', 'batch/3']);
  expect(rows[0].reason).toHaveLength(200);
  expect(rows[0].attempts).toEqual([]);
  expect(rows[0].usage).toMatchObject({ calls: 2, costUsd: 0.5, byProvider: {} });
  expect(rows[0].artifacts.map((a) => a.kind)).toEqual(['report', 'result']);
  expect(JSON.stringify(rows).length).toBeLessThan(JSON.stringify(results).length / 4);
});
