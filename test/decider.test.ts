import { bestCandidate } from '../src/domain/candidates';
import { decide, feedbackFor, type Outcome, type TaskState } from '../src/domain/decider';

function state(over: Partial<TaskState> = {}): TaskState {
  // 'never' by default so exhaustion means fail; the ADaPT cases below opt into 'auto'.
  return { attempt: 1, maxAttempts: 3, depth: 0, maxDepth: 2, decomposition: 'never', ...over };
}

const failedTests = (over: Partial<Extract<Outcome, { kind: 'tests_failed' }>> = {}): Outcome => ({
  kind: 'tests_failed',
  exitCode: 1,
  timedOut: false,
  tail: 'FAIL src/a.test.ts\n  expected 2, received 3',
  ...over,
});

describe('decide: tests', () => {
  it('commits when the tests passed, on any attempt', () => {
    for (const attempt of [1, 2, 3]) {
      const v = decide(state({ attempt }), { kind: 'tests_passed' });
      expect(v.action).toBe('commit');
      expect(v.why).toContain(`attempt ${attempt} of 3`);
      expect(v.feedback).toBeUndefined();
    }
  });

  it('retries failed tests with feedback carrying the exit code and the output tail', () => {
    const v = decide(state({ attempt: 1 }), failedTests({ exitCode: 7 }));
    expect(v.action).toBe('retry');
    expect(v.why).toContain('exit 7');
    expect(v.feedback).toContain('exited with code 7');
    expect(v.feedback).toContain('expected 2, received 3');
    expect(v.feedback).not.toMatch(/timed out/);
  });

  it('names a sandbox limit in the decision and the feedback, even when the tail is too long to keep its first line', () => {
    const limit = 'killed: memory limit 128 MiB (1 process(es) ended by the OOM killer)';
    const tail = `weaver: ${limit}\n${'stack frame\n'.repeat(500)}`;
    const v = decide(state({ attempt: 1 }), failedTests({ exitCode: 137, tail, limit }));
    expect(v.why).toBe(`tests failed (exit 137): ${limit} on attempt 1 of 3; retrying with feedback`);
    expect(v.feedback).toContain(`It hit a sandbox limit: ${limit}.`);
    const last = decide(state({ attempt: 3 }), failedTests({ exitCode: 137, tail, limit }));
    expect(last).toMatchObject({ action: 'fail', why: `tests failed (exit 137): ${limit}; 3 attempt(s) exhausted` });
    // Without a limit, nothing is said about one.
    expect(decide(state(), failedTests()).feedback).not.toContain('sandbox limit');
  });

  it('keeps the end of a huge tail and bounds the feedback', () => {
    const tail = 'x'.repeat(1024 * 1024 - 'THE-LAST-LINE'.length) + 'THE-LAST-LINE';
    expect(tail.length).toBe(1024 * 1024);
    const v = decide(state(), failedTests({ tail }));
    expect(v.action).toBe('retry');
    expect(v.feedback).toContain('THE-LAST-LINE');
    expect(Buffer.byteLength(v.feedback ?? '', 'utf8')).toBeLessThan(4096);
    // Same bound through feedbackFor directly.
    expect(feedbackFor(failedTests({ tail })).length).toBeLessThan(4096);
  });

  it('says the tests timed out (and after how long) instead of quoting an exit code', () => {
    const v = decide(state(), failedTests({ exitCode: null, timedOut: true, timeoutSec: 600, tail: 'still running...' }));
    expect(v.action).toBe('retry');
    expect(v.why).toContain('timed out');
    expect(v.feedback).toContain('timed out after 600s');
    expect(v.feedback).toContain('still running...');
    expect(v.feedback).not.toContain('exited with code');

    const noSec = feedbackFor(failedTests({ exitCode: null, timedOut: true }));
    expect(noSec).toContain('timed out');
    expect(noSec).not.toContain('after');
  });

  it.each([
    [1, 3, 'retry'],
    [2, 3, 'retry'],
    [3, 3, 'fail'],
    [1, 1, 'fail'],
    [4, 3, 'fail'],
  ] as const)('attempt %i of %i with failing tests → %s', (attempt, maxAttempts, action) => {
    const v = decide(state({ attempt, maxAttempts }), failedTests());
    expect(v.action).toBe(action);
    if (action === 'fail') {
      expect(v.why).toContain(`${maxAttempts} attempt(s) exhausted`);
      expect(v.feedback).toBeUndefined();
    } else {
      expect(v.feedback).toBeTruthy();
    }
  });
});

describe('decide: bad answers', () => {
  const cases: { name: string; outcome: Outcome; inFeedback: string[]; inWhy: string }[] = [
    {
      name: 'apply_failed',
      outcome: { kind: 'apply_failed', errors: ['../etc/passwd: path escapes the workspace', 'b.ts: does not exist'] },
      inFeedback: ['could not be applied', '- ../etc/passwd: path escapes the workspace', '- b.ts: does not exist'],
      inWhy: '+1 more',
    },
    {
      name: 'schema_violation',
      outcome: { kind: 'schema_violation', error: 'files.0.content: Required' },
      inFeedback: ['could not be read', 'files.0.content: Required'],
      inWhy: 'files.0.content: Required',
    },
    {
      name: 'no_consensus',
      outcome: { kind: 'no_consensus', detail: '3 distinct answers, quorum 2' },
      inFeedback: ['did not agree', '3 distinct answers, quorum 2'],
      inWhy: '3 distinct answers, quorum 2',
    },
  ];

  it.each(cases)('$name with attempts left → retry with feedback', ({ outcome, inFeedback, inWhy }) => {
    const v = decide(state({ attempt: 2, maxAttempts: 3 }), outcome);
    expect(v.action).toBe('retry');
    expect(v.why).toContain(inWhy);
    for (const s of inFeedback) expect(v.feedback).toContain(s);
  });

  it.each(cases)('$name on the last attempt → fail naming the count', ({ outcome, inWhy }) => {
    const v = decide(state({ attempt: 5, maxAttempts: 5 }), outcome);
    expect(v.action).toBe('fail');
    expect(v.why).toContain('5 attempt(s) exhausted');
    expect(v.why).toContain(inWhy);
  });

  it('bounds a long schema error in the reason', () => {
    const v = decide(state(), { kind: 'schema_violation', error: 'e'.repeat(10_000) });
    expect(v.why.length).toBeLessThan(400);
  });
});

describe('decide: provider and budget', () => {
  it('fails at once when no provider could answer, even with attempts left', () => {
    const v = decide(state({ attempt: 1, maxAttempts: 10 }), { kind: 'provider_failed', family: 'auth', message: 'HTTP 401' });
    expect(v.action).toBe('fail');
    expect(v.why).toContain('auth');
    expect(v.why).toContain('HTTP 401');
    expect(v.feedback).toBeUndefined();
  });

  it('stops with budget_exceeded when the budget is exhausted, even with attempts left', () => {
    const v = decide(state({ attempt: 1, maxAttempts: 10 }), { kind: 'budget_exhausted', detail: 'cost 1.02 > maxCostUsd 1' });
    expect(v.action).toBe('budget_exceeded');
    expect(v.why).toBe('cost 1.02 > maxCostUsd 1');
  });
});

describe('decide: subtasks proposed', () => {
  const proposed: Outcome = { kind: 'subtasks_proposed', count: 3 };

  it.each([
    ['auto', 0, 2],
    ['auto', 1, 2],
    ['always', 0, 2],
    ['always', 0, 1],
  ] as const)('decomposition %s at depth %i (max %i) → decompose', (decomposition, depth, maxDepth) => {
    const v = decide(state({ decomposition, depth, maxDepth }), proposed);
    expect(v.action).toBe('decompose');
    expect(v.why).toContain('3 subtasks');
    expect(v.feedback).toBeUndefined();
  });

  it.each([
    { decomposition: 'never', depth: 0, maxDepth: 2, reason: 'decomposition is "never"' },
    { decomposition: 'auto', depth: 2, maxDepth: 2, reason: 'depth 2 reached maxDepth 2' },
    { decomposition: 'always', depth: 1, maxDepth: 1, reason: 'depth 1 reached maxDepth 1' },
    { decomposition: 'auto', depth: 0, maxDepth: 0, reason: 'depth 0 reached maxDepth 0' },
  ] as const)('decomposition $decomposition at depth $depth/$maxDepth → retry, or fail when no attempts are left', ({ reason, ...s }) => {
    const retry = decide(state({ ...s, attempt: 1, maxAttempts: 3 }), proposed);
    expect(retry.action).toBe('retry');
    expect(retry.why).toContain(reason);
    expect(retry.feedback).toContain('answer with file changes');

    const fail = decide(state({ ...s, attempt: 3, maxAttempts: 3 }), proposed);
    expect(fail.action).toBe('fail');
    expect(fail.why).toContain(reason);
    expect(fail.why).toContain('no attempts left');
  });
});

describe('decide: decomposition after failure (ADaPT)', () => {
  it('asks for a split once attempts are exhausted in auto mode below maxDepth', () => {
    const v = decide(state({ attempt: 3, decomposition: 'auto', depth: 0, maxDepth: 2 }), failedTests());
    expect(v.action).toBe('decompose');
    expect(v.plan).toBe(true);
    expect(v.why).toMatch(/3 attempt\(s\) exhausted at depth 0 \(max 2\)/);
    expect(v.feedback).toContain('exited with code 1');
  });

  it('fails instead at maxDepth', () => {
    expect(decide(state({ attempt: 3, decomposition: 'auto', depth: 2, maxDepth: 2 }), failedTests()).action).toBe('fail');
  });

  it('never splits on provider failures or budget exhaustion', () => {
    const s = state({ attempt: 3, decomposition: 'auto' });
    expect(decide(s, { kind: 'provider_failed', family: 'server', message: 'down' }).action).toBe('fail');
    expect(decide(s, { kind: 'budget_exhausted', detail: 'maxCostUsd' }).action).toBe('budget_exceeded');
  });
});

describe('decide: cut-off answers and endless file requests', () => {
  it('retries a truncated answer, asking for smaller targeted edits', () => {
    const v = decide(state({ attempt: 1 }), { kind: 'truncated', detail: 'the answer was cut off at the output limit (4096 tokens)' });
    expect(v.action).toBe('retry');
    expect(v.why).toContain('cut off');
    expect(v.feedback).toContain('4096 tokens');
    expect(v.feedback).toMatch(/smaller, targeted SEARCH\/REPLACE edits/);
  });

  it('tells a model that keeps asking for files to answer with what it has', () => {
    const v = decide(state({ attempt: 1 }), { kind: 'files_request_limit', rounds: 2, files: ['a.py', 'b.py'] });
    expect(v.action).toBe('retry');
    expect(v.feedback).toContain('2 times');
    expect(v.feedback).toContain('a.py, b.py');
    expect(decide(state({ attempt: 3, maxAttempts: 3, decomposition: 'never' }), { kind: 'truncated', detail: 'x' }).action).toBe('fail');
  });
});

describe('parallel-all: the answer used is the best by its checks, then cost, then provider order', () => {
  const c = (outcome: string, costUsd = 1) => ({ outcome, costUsd });
  test('a pass beats an earlier, cheaper failure', () => {
    expect(bestCandidate([c('tests_failed', 0.1), c('invalid_syntax', 0.1), c('tests_passed', 5)])).toBe(2);
  });
  test('between passes the cheaper wins, and equal costs keep provider order', () => {
    expect(bestCandidate([c('tests_passed', 2), c('checks_passed', 1), c('tests_passed', 1)])).toBe(1);
  });
  test('with no pass: an answer whose check could not run beats a known failure, a failure beats broken syntax and a change that did not apply', () => {
    expect(bestCandidate([c('apply_failed'), c('invalid_syntax'), c('tests_failed'), c('workspace_lost')])).toBe(3);
    expect(bestCandidate([c('apply_failed'), c('invalid_syntax'), c('check_failed')])).toBe(2);
  });
  test('answers never checked are not candidates', () => {
    expect(bestCandidate([c('invalid_answer', 0), c('provider_failed', 0), c('apply_failed', 3)])).toBe(2);
    expect(bestCandidate([c('invalid_answer'), c('not_called')])).toBe(-1);
  });
});
