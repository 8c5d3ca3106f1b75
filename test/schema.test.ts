import {
  ChangeSetSchema,
  durationSeconds,
  ModelAnswerSchema,
  parseBatchInput,
  parseTaskInput,
  resolveLimits,
  TaskInputError,
  type CodingTaskInput,
} from '../src/domain/schema';

const minimal: CodingTaskInput = {
  repo: 'https://example.com/acme/app.git',
  task: { title: 'Fix the off-by-one', description: 'The pager skips the last item.' },
  providers: [{ id: 'main', model: 'gpt-4o-mini' }],
};

/** The issues of a rejected input; fails the test when the input was accepted. */
function issuesOf(raw: unknown): string[] {
  let caught: unknown;
  try {
    parseTaskInput(raw);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TaskInputError);
  const err = caught as TaskInputError;
  for (const issue of err.issues) expect(err.message).toContain(issue);
  return err.issues;
}

describe('parseTaskInput', () => {
  it('accepts a minimal input and leaves optional fields out', () => {
    const p = parseTaskInput(minimal);
    expect(p.repo).toBe(minimal.repo);
    expect(p.task).toEqual(minimal.task);
    expect(p.providers).toEqual(minimal.providers);
    expect(p.limits).toBeUndefined();
    expect(p.strategy).toBeUndefined();
  });

  it('resolves documented limit defaults', () => {
    expect(resolveLimits(parseTaskInput(minimal))).toEqual({
      maxAttempts: 3,
      testTimeoutSec: 600,
      maxDepth: 2,
      maxChildren: 8,
      childConcurrency: 2,
    });
  });

  it('keeps given limits and fills the rest', () => {
    const limits = resolveLimits(parseTaskInput({ ...minimal, limits: { maxAttempts: 5, maxCostUsd: 0.5, maxDepth: 0 } }));
    expect(limits).toEqual({
      maxAttempts: 5,
      maxCostUsd: 0.5,
      testTimeoutSec: 600,
      maxDepth: 0,
      maxChildren: 8,
      childConcurrency: 2,
    });
  });

  it('fills strategy and push defaults', () => {
    const p = parseTaskInput({ ...minimal, strategy: {}, push: {} });
    expect(p.strategy?.mode).toBe('sequential');
    expect(p.push).toEqual({ remote: 'origin' });
    const r = parseTaskInput({ ...minimal, strategy: { mode: 'consensus', quorum: 2, retry: {} } });
    expect(r.strategy?.retry).toEqual({ maxTries: 4, initialIntervalMs: 1000, maxIntervalMs: 60_000, maxWaitSec: 3600 });
  });

  it('accepts a string or an argv testCommand', () => {
    expect(parseTaskInput({ ...minimal, testCommand: 'npm test' }).testCommand).toBe('npm test');
    expect(parseTaskInput({ ...minimal, testCommand: ['npm', 'test'] }).testCommand).toEqual(['npm', 'test']);
  });

  it.each([
    ['task.title', { ...minimal, task: { title: '', description: 'd' } }],
    ['task.title', { ...minimal, task: { description: 'd' } }],
    ['providers', { ...minimal, providers: [] }],
    ['providers.0.baseURL', { ...minimal, providers: [{ id: 'a', model: 'm', baseURL: 'not a url' }] }],
    ['providers.0.apiKeyEnv', { ...minimal, providers: [{ id: 'a', model: 'm', apiKeyEnv: 'sk-abc' }] }],
    ['providers.0.apiKeyEnv', { ...minimal, providers: [{ id: 'a', model: 'm', apiKeyEnv: 'sk-proj-AbCdEf0123456789' }] }],
    ['limits.maxAttempts', { ...minimal, limits: { maxAttempts: -1 } }],
    ['limits.maxAttempts', { ...minimal, limits: { maxAttempts: 0 } }],
    ['strategy.mode', { ...minimal, strategy: { mode: 'yolo' } }],
    ['testCommand', { ...minimal, testCommand: [] }],
    ['testCommand', { ...minimal, testCommand: '' }],
    ['repo', { ...minimal, repo: '' }],
  ])('rejects a bad %s and names it', (field, raw) => {
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(1);
    expect(issues[0].startsWith(`${field}: `)).toBe(true);
  });

  it('refuses apiKeyEnv in a task, naming the fix (a provider id from the worker registry) and never echoing the value', () => {
    const [issue] = issuesOf({ ...minimal, providers: [{ id: 'a', model: 'm', apiKeyEnv: 'sk-abc' }] });
    expect(issue).toBe(
      "providers.0.apiKeyEnv: not accepted in a task input: name a provider id from the worker's registry (WEAVER_PROVIDERS) instead; the worker decides which key is sent where",
    );
    expect(issue).not.toContain('sk-abc');
  });

  it('names every bad field at once', () => {
    const issues = issuesOf({
      ...minimal,
      task: { title: '', description: 'd' },
      providers: [{ id: 'a', model: 'm', baseURL: 'nope', apiKeyEnv: 'sk-abc' }],
      limits: { maxAttempts: -2 },
      strategy: { mode: 'nope' },
      testCommand: [],
    });
    const fields = issues.map((i) => i.slice(0, i.indexOf(':'))).sort();
    expect(fields).toEqual(
      ['limits.maxAttempts', 'providers.0.apiKeyEnv', 'providers.0.baseURL', 'strategy.mode', 'task.title', 'testCommand'].sort(),
    );
  });

  it('reports a non-object input at the root', () => {
    expect(issuesOf('hello')[0]).toMatch(/^\(root\): /);
    expect(issuesOf(null)[0]).toMatch(/^\(root\): /);
  });
});

describe('parseBatchInput', () => {
  it('accepts tasks and defaults concurrency to 2', () => {
    const b = parseBatchInput({ tasks: [minimal, { ...minimal, repo: '/srv/other' }] });
    expect(b.tasks).toHaveLength(2);
    expect(b.tasks![1].repo).toBe('/srv/other');
    expect(b.concurrency).toBe(2);
    expect(parseBatchInput({ tasks: [minimal], concurrency: 5 }).concurrency).toBe(5);
  });

  it('rejects an empty batch and names a bad field inside a task', () => {
    expect(() => parseBatchInput({ tasks: [] })).toThrow(TaskInputError);
    expect(() => parseBatchInput({ tasks: [] })).toThrow(/tasks: /);
    expect(() => parseBatchInput({ tasks: [minimal, { ...minimal, providers: [] }] })).toThrow(/tasks\.1\.providers: /);
    expect(() => parseBatchInput({ tasks: [minimal], concurrency: 0 })).toThrow(/concurrency: /);
  });
});

describe('ChangeSetSchema', () => {
  it('accepts create, modify and delete', () => {
    const cs = {
      summary: 'three kinds',
      files: [
        { path: 'src/new.ts', action: 'write', content: 'export {};\n' },
        { path: 'src/old.ts', action: 'edit', search: 'a\n', replace: '' },
        { path: 'src/gone.ts', action: 'delete' },
      ],
    };
    const r = ChangeSetSchema.safeParse(cs);
    expect(r.success).toBe(true);
    expect(r.data).toEqual(cs);
  });

  it.each([
    ['rename', { summary: 's', files: [{ path: 'a', action: 'rename', to: 'b' }] }, 'files.0.action'],
    ['write without content', { summary: 's', files: [{ path: 'a', action: 'write' }] }, 'files.0.content'],
    ['edit without a replacement', { summary: 's', files: [{ path: 'a', action: 'edit', search: 'x' }] }, 'files.0.replace'],
    ['an empty files array', { summary: 's', files: [] }, 'files'],
    ['an empty path', { summary: 's', files: [{ path: '', action: 'delete' }] }, 'files.0.path'],
    ['a missing summary', { files: [{ path: 'a', action: 'delete' }] }, 'summary'],
  ])('rejects %s', (_name, cs, path) => {
    const r = ChangeSetSchema.safeParse(cs);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});

describe('ModelAnswerSchema', () => {
  it('accepts a subtask proposal', () => {
    const answer = {
      summary: 'two steps',
      subtasks: [
        { title: 'Add the parser', description: 'Parse the config.' },
        { title: 'Use it', description: 'Wire the parser in.', relatedFiles: ['src/cli.ts'] },
      ],
    };
    const r = ModelAnswerSchema.safeParse(answer);
    expect(r.success).toBe(true);
    expect(r.data && 'subtasks' in r.data ? r.data.subtasks.map((s) => s.title) : []).toEqual(['Add the parser', 'Use it']);
  });

  it('accepts a change set', () => {
    const r = ModelAnswerSchema.safeParse({ summary: 's', files: [{ path: 'a', action: 'delete' }] });
    expect(r.success).toBe(true);
    expect(r.data && 'files' in r.data).toBe(true);
  });

  it('accepts a request for files, and refuses an empty one', () => {
    expect(ModelAnswerSchema.safeParse({ needFiles: ['src/a.ts'] }).success).toBe(true);
    expect(ModelAnswerSchema.safeParse({ needFiles: [] }).success).toBe(false);
  });

  it('rejects an empty proposal and a subtask without a title', () => {
    expect(ModelAnswerSchema.safeParse({ subtasks: [] }).success).toBe(false);
    expect(ModelAnswerSchema.safeParse({ subtasks: [{ description: 'd' }] }).success).toBe(false);
    expect(ModelAnswerSchema.safeParse({ summary: 'nothing' }).success).toBe(false);
  });
});

describe('secrets and URLs in provider specs', () => {
  it.each([
    ['a Groq-style key', 'gsk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP'],
    ['an OpenAI-style key with underscores', 'sk_live_abc123'],
    ['a long mixed-case token', 'AbCdEf0123456789GhIjKlMnOp'],
  ])('rejects %s as apiKeyEnv (and does not echo it)', (_what, value) => {
    const issues = issuesOf({ ...minimal, providers: [{ id: 'a', model: 'm', apiKeyEnv: value }] });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^providers\.0\.apiKeyEnv: not accepted in a task input/);
    expect(issues[0]).not.toContain(value);
  });

  it('rejects ordinary variable names too: a task never chooses which env var is sent where', () => {
    for (const name of ['OPENAI_API_KEY', 'AWS_SECRET_ACCESS_KEY', 'my_llm_key']) {
      expect(issuesOf({ ...minimal, providers: [{ id: 'a', model: 'm', baseURL: 'https://evil.example/v1', apiKeyEnv: name }] })).toEqual([
        expect.stringMatching(/^providers\.0\.apiKeyEnv: not accepted in a task input: name a provider id from the worker's registry \(WEAVER_PROVIDERS\)/),
      ]);
    }
    expect(issuesOf({ ...minimal, providers: [{ id: 'a', model: 'm', apiKey: 'sk-live-0123456789' }] })).toEqual([
      expect.stringMatching(/^providers\.0\.apiKey: not accepted in a task input/),
    ]);
  });

  it('a registry id alone is a provider (the model defaults to the registry\'s); an inline baseURL needs a model', () => {
    expect(parseTaskInput({ ...minimal, providers: [{ id: 'openai' }] }).providers).toEqual([{ id: 'openai' }]);
    expect(issuesOf({ ...minimal, providers: [{ id: 'local', baseURL: 'http://localhost:11434/v1' }] })).toEqual([
      'providers.0.model: required with an inline baseURL (a keyless endpoint the registry does not describe)',
    ]);
  });

  it('rejects a baseURL without http(s)', () => {
    expect(issuesOf({ ...minimal, providers: [{ id: 'a', model: 'm', baseURL: 'localhost:11434/v1' }] })).toEqual([
      'providers.0.baseURL: must be an http:// or https:// URL',
    ]);
    expect(parseTaskInput({ ...minimal, providers: [{ id: 'a', model: 'm', baseURL: 'http://localhost:11434/v1' }] }).providers[0].baseURL).toBe(
      'http://localhost:11434/v1',
    );
  });
});

describe('approvalTimeout: a duration, parsed into approvalTimeoutSec', () => {
  it.each([
    [90, 90],
    ['90', 90],
    ['90s', 90],
    ['30m', 1800],
    ['2h', 7200],
    ['1d', 86_400],
    ['1w', 604_800],
    ['1.5h', 5400],
    ['1h30m', 5400],
    [' 2 D ', 172_800],
  ])('%j is %d seconds', (given, seconds) => {
    expect(durationSeconds(given)).toBe(seconds);
    const p = parseTaskInput({ ...minimal, requireApproval: true, push: true, approvalTimeout: given });
    expect(p.approvalTimeoutSec).toBe(seconds);
    // One field after parsing: the workflow reads approvalTimeoutSec only.
    expect(p).not.toHaveProperty('approvalTimeout');
  });

  it.each([['soon'], ['30 minutes'], ['1e3'], ['-5s'], ['0s'], ['h'], [''], [0], [-1], [Infinity], [Number.NaN]])('refuses %j, naming the field', (given) => {
    expect(durationSeconds(given)).toBeUndefined();
    expect(issuesOf({ ...minimal, approvalTimeout: given })).toEqual([expect.stringMatching(/^approvalTimeout: must be a positive number of seconds or a duration like "90s", "30m", "2h", "1d"/)]);
  });

  it('both given: the same duration is fine, different ones are refused naming both fields', () => {
    expect(parseTaskInput({ ...minimal, approvalTimeout: '2h', approvalTimeoutSec: 7200 }).approvalTimeoutSec).toBe(7200);
    expect(issuesOf({ ...minimal, approvalTimeout: '2h', approvalTimeoutSec: 60 })).toEqual([
      'approvalTimeout: conflicts with approvalTimeoutSec (both given, different values): give one of them',
    ]);
  });

  it('approvalTimeoutSec alone is as before; neither leaves both out', () => {
    expect(parseTaskInput({ ...minimal, approvalTimeoutSec: 45 }).approvalTimeoutSec).toBe(45);
    const p = parseTaskInput(minimal);
    expect(p.approvalTimeoutSec).toBeUndefined();
    expect(p).not.toHaveProperty('approvalTimeout');
  });

  it('a batch normalises each task', () => {
    const b = parseBatchInput({ tasks: [{ ...minimal, approvalTimeout: '1m' }, { ...minimal, approvalTimeoutSec: 5 }] });
    expect(b.tasks!.map((t) => t.approvalTimeoutSec)).toEqual([60, 5]);
  });
});

describe('inherited.namedSecretFiles', () => {
  it('is accepted as a list of paths and kept', () => {
    expect(parseTaskInput({ ...minimal, inherited: { namedSecretFiles: ['.env', 'certs/a.pem'] } }).inherited?.namedSecretFiles).toEqual(['.env', 'certs/a.pem']);
    expect(issuesOf({ ...minimal, inherited: { namedSecretFiles: '.env' } })[0]).toMatch(/^inherited\.namedSecretFiles: /);
  });
});

describe('strategy.candidateChecks: parallel-all answers checked at once', () => {
  it('is optional, a whole number from 1 to 10, and says why when it is not', () => {
    expect(parseTaskInput({ ...minimal, strategy: { mode: 'parallel-all' } }).strategy?.candidateChecks).toBeUndefined();
    expect(parseTaskInput({ ...minimal, strategy: { mode: 'parallel-all', candidateChecks: 2 } }).strategy?.candidateChecks).toBe(2);
    expect(issuesOf({ ...minimal, strategy: { mode: 'parallel-all', candidateChecks: 0 } })[0]).toMatch(/^strategy\.candidateChecks: .*at least 1/);
    expect(issuesOf({ ...minimal, strategy: { mode: 'parallel-all', candidateChecks: 11 } })[0]).toMatch(/^strategy\.candidateChecks: .*at most 10/);
    expect(issuesOf({ ...minimal, strategy: { mode: 'parallel-all', candidateChecks: 1.5 } })[0]).toMatch(/^strategy\.candidateChecks: .*whole number/);
    expect(issuesOf({ ...minimal, strategy: { mode: 'parallel-all', candidateChecks: 'three' } })[0]).toMatch(/^strategy\.candidateChecks: .*whole number/);
  });
});
