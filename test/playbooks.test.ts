// Playbooks (issue 14): conditions, the YAML reader, detection by stack, and end to end — the
// detected checks, `no_checks`, a lint step's feedback, `when`, the syntax gate — through the
// public entry points (real dev server, real git, the openai SDK to the scripted server, real
// commands in the sandbox).
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TaskInputError } from '../src/domain/schema';
import { evaluateCondition, parseCondition, type ConditionContext } from '../src/domain/conditions';
import { parsePlaybookText, PlaybookError } from '../src/domain/playbookText';
import { detectAt, detectForChange, resolvePlaybook } from '../src/activities/playbooks';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { simpleGit } from 'simple-git';
import { makeRepo } from './support/repos';
import { searchReplace, wholeFile } from './support/answers';
import { useRig, type Rig } from './support/weaver';

const ctx = (over: Partial<ConditionContext> = {}): ConditionContext => ({ changed: [], attempt: 1, stack: 'python', labels: [], steps: {}, ...over });
const holds = (src: string, c: ConditionContext, before: string[] = []) => evaluateCondition(parseCondition(src, before), c);

describe('conditions', () => {
  test('globs over changed paths, attempt, stack, labels and earlier steps', () => {
    expect(holds("changed('**/*.py')", ctx({ changed: ['pkg/a.py'] }))).toBe(true);
    expect(holds("changed('*.py')", ctx({ changed: ['pkg/deep/a.py'] }))).toBe(true);
    expect(holds("changed('docs/**')", ctx({ changed: ['src/a.py'] }))).toBe(false);
    expect(holds("changed('docs/**', 'README.md')", ctx({ changed: ['README.md'] }))).toBe(true);
    expect(holds('attempt > 1', ctx({ attempt: 1 }))).toBe(false);
    expect(holds('attempt > 1 && stack == "python"', ctx({ attempt: 2 }))).toBe(true);
    expect(holds("not label('docs') or stack != 'go'", ctx({ labels: ['docs'] }))).toBe(true);
    expect(holds("label('docs')", ctx({ labels: ['docs'] }))).toBe(true);
    const steps = { lint: { status: 'failed' as const, exitCode: 1 } };
    expect(holds('steps.lint.failed', ctx({ steps }), ['lint'])).toBe(true);
    expect(holds('!steps.lint.passed && steps.lint.exitCode == 1', ctx({ steps }), ['lint'])).toBe(true);
    expect(holds('(attempt >= 2 || steps.lint.ran) && true', ctx({ steps }), ['lint'])).toBe(true);
  });

  test('an unknown function, field or step is refused when parsed, never run', () => {
    expect(() => parseCondition("process('rm -rf /')")).toThrow(/unknown function "process" \(known: changed, label\)/);
    expect(() => parseCondition('require("fs")')).toThrow(/unknown function "require"/);
    expect(() => parseCondition('env.HOME == "x"')).toThrow(/unknown field "env.HOME"/);
    expect(() => parseCondition('steps.lint.failed', [])).toThrow(/no step named "lint" runs before this one/);
    expect(() => parseCondition('steps.lint.colour', ['lint'])).toThrow(/unknown field/);
    expect(() => parseCondition("changed('a'")).toThrow(/expected "," but found the end|expected "\)"/);
    expect(() => parseCondition('attempt > ; 1')).toThrow(/unexpected character ";" \(column 11\)/);
    expect(() => parseCondition('constructor.constructor("x")()')).toThrow(/unknown function|unknown field/);
  });

  test('globs are plain: no brace or extglob expansion (a repository playbook cannot stall the workflow), bounded when read', () => {
    // Braces and extglobs are literal characters here: matched as such, never expanded.
    expect(holds("changed('{1..100000}')", ctx({ changed: ['{1..100000}'] }))).toBe(true);
    expect(holds(`changed('${'{a,b}'.repeat(20)}')`, ctx({ changed: ['ab'] }))).toBe(false);
    expect(holds(`changed('${'+(a|'.repeat(8)}x${')'.repeat(8)}')`, ctx({ changed: ['a'] }))).toBe(false);
    expect(() => parseCondition(`changed('${'**/'.repeat(6)}a')`)).toThrow(/at most 4 "\*\*"/);
    expect(() => parseCondition(`changed('${'a'.repeat(201)}')`)).toThrow(/at most 200 characters/);
  });
});

describe('the playbook reader', () => {
  test('steps with their defaults', () => {
    const steps = parsePlaybookText(
      ['steps:', '  - name: setup', '    run: pip install -e .', '  - name: lint', '    run: [ruff, check, .]', "    when: changed('**/*.py')", '  - name: smoke', '    run: ./smoke.sh', '    onFailure: warn'].join('\n'),
      'test',
    );
    expect(steps.map((s) => [s.name, s.kind, s.network, s.onFailure, s.feedback])).toEqual([
      ['setup', 'setup', true, 'retry-with-feedback', 'tail'],
      ['lint', 'lint', false, 'retry-with-feedback', 'tail'],
      ['smoke', 'custom', false, 'warn', 'tail'],
    ]);
  });

  test('errors name the line and the field', () => {
    const bad = ['steps:', '  - name: test', '    run: pytest', '  - name: lint', '    run: ruff check .', '    onFailure: explode', '    colour: red'].join('\n');
    let err: PlaybookError | undefined;
    try {
      parsePlaybookText(bad, '.weaver/playbook.yaml');
    } catch (e) {
      err = e as PlaybookError;
    }
    expect(err).toBeInstanceOf(PlaybookError);
    expect(err!.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^line 6: steps\[1\]\.onFailure: /), expect.stringMatching(/^line 7: steps\[1\]\.colour: .*colour/)]));
    expect(() => parsePlaybookText("steps:\n  - name: lint\n    run: x\n    when: shell('id')\n", 'p')).toThrow(/line 4: steps\[0\]\.when: unknown function "shell"/);
    expect(() => parsePlaybookText('steps:\n  - name: test\n    run: [a\n', 'p')).toThrow(/line \d+/);
    expect(() => parsePlaybookText('- name: test\n  run: a\n- name: setup\n  run: b\n', 'p')).toThrow(/steps\[1\]\.kind: setup steps come first/);
    expect(() => parsePlaybookText('- name: test\n  run: a\n  network: true\n', 'p')).toThrow(/line 3: steps\[0\]\.network: is for setup steps only/);
  });
});

describe('detection by stack', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'weaver-detect-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const put = async (files: Record<string, string>) => {
    for (const [rel, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), text);
    }
  };
  const runs = (rel = '') => detectAt(dir, rel)?.steps.map((s) => `${s.name}: ${Array.isArray(s.run) ? s.run.join(' ') : s.run}`);

  test('what a person would run, by manifest', async () => {
    await put({ 'package.json': JSON.stringify({ scripts: { test: 'node --test', lint: 'eslint .' }, devDependencies: { typescript: '5' } }), 'tsconfig.json': '{}' });
    expect(runs()).toEqual(['setup: npm install --no-audit --no-fund', 'lint: npm run lint', 'typecheck: npx --no-install tsc --noEmit', 'test: npm test']);
    await rm(dir, { recursive: true });
    await put({ 'package.json': JSON.stringify({ scripts: { test: 'echo "Error: no test specified" && exit 1' } }) });
    expect(runs()).toBeUndefined();
    await rm(dir, { recursive: true });
    await put({ 'pyproject.toml': '[tool.ruff]\nline-length = 100\n' });
    expect(runs()).toEqual(['lint: ruff check .', 'test: python3 -m pytest -q']);
    await rm(dir, { recursive: true });
    await put({ 'tests/test_x.py': 'def test_x(): pass\n' });
    expect(runs()).toEqual(['test: python3 -m pytest -q']);
    await rm(dir, { recursive: true });
    await put({ 'go.mod': 'module x\n' });
    expect(runs()).toEqual(['vet: go vet ./...', 'test: go test ./...']);
    await rm(dir, { recursive: true });
    await put({ 'Cargo.toml': '[package]\n' });
    expect(runs()).toEqual(['test: cargo test']);
    await rm(dir, { recursive: true });
    await put({ 'Makefile': 'all:\n\ttrue\ntest:\n\t./t.sh\n' });
    expect(runs()).toEqual(['test: make test']);
    await rm(dir, { recursive: true });
    await put({ 'notes.md': '# notes\n' });
    expect(runs()).toBeUndefined();
    expect(resolvePlaybook(dir, {})).toMatchObject({ source: 'none', steps: [] });
  });

  test('a package.json without checks hides no other stack; test files make only the root a Python project', async () => {
    await put({ 'package.json': JSON.stringify({ scripts: { format: 'prettier -w .' } }), 'pyproject.toml': '[project]\nname = "x"\n', 'tests/test_a.py': 'def test_a(): pass\n' });
    expect(resolvePlaybook(dir, {})).toMatchObject({ source: 'detected', stack: 'python', steps: [{ name: 'test' }] });
    // A flat layout: a change to tests/test_a.py runs pytest at the root, not in tests/.
    expect(detectForChange(dir, resolvePlaybook(dir, {}), ['tests/test_a.py'])).toBeUndefined();
    await put({ 'requirements.txt': 'requests\n' });
    expect(runs()).toEqual(['setup: sh -c python3 -m venv --system-site-packages .venv && .venv/bin/python -m pip install -q -r requirements.txt', 'test: .venv/bin/python -m pytest -q']);
  });

  test("a manifest the change wrote or edited never decides its checks (the tree before the change does)", async () => {
    await put({ 'pyproject.toml': '[project]\nname = "x"\n', 'lib/core.py': 'x = 1\n', 'lib/package.json': JSON.stringify({ scripts: { test: 'true' } }) });
    const base = resolvePlaybook(dir, {});
    // lib/package.json is new in the change: ignored, the root's pytest stands.
    expect(detectForChange(dir, base, ['lib/core.py', 'lib/package.json'], new Map([['lib/package.json', null]]))).toBeUndefined();
    // An existing package's manifest the change edited: read as it was.
    const before = JSON.stringify({ scripts: { test: 'node --test' } });
    expect(detectForChange(dir, base, ['lib/core.py', 'lib/package.json'], new Map([['lib/package.json', before]]))?.steps.map((s) => s.name)).toEqual(['test@lib']);
  });

  test('a monorepo: the nearest manifest above the changed files', async () => {
    await put({ 'package.json': JSON.stringify({ scripts: { test: 'node --test' } }), 'services/api/go.mod': 'module api\n', 'services/api/x/h.go': 'package x\n' });
    const base = resolvePlaybook(dir, {});
    expect(base).toMatchObject({ source: 'detected', stack: 'node' });
    const forGo = detectForChange(dir, base, ['services/api/x/h.go'])!;
    expect(forGo.steps.map((s) => [s.name, s.cwd])).toEqual([
      ['vet@services/api', 'services/api'],
      ['test@services/api', 'services/api'],
    ]);
    expect(detectForChange(dir, base, ['index.js'])).toBeUndefined();
    // No changed file is dropped however many packages a change touches.
    for (let i = 0; i < 6; i++) await put({ [`pkgs/p${i}/go.mod`]: `module p${i}\n` });
    const six = detectForChange(dir, base, [0, 1, 2, 3, 4, 5].map((i) => `pkgs/p${i}/x.go`))!;
    expect(six.steps.filter((s) => s.kind === 'test').map((s) => s.cwd)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `pkgs/p${i}`));
  });

  test('the task\'s playbook, then the repository\'s, then the shorthand', async () => {
    await put({ '.weaver/playbook.yaml': 'steps:\n  - name: test\n    run: ./check.sh\n', 'go.mod': 'module x\n' });
    expect(resolvePlaybook(dir, {})).toMatchObject({ source: 'repository', stack: 'go', steps: [{ name: 'test', run: './check.sh' }] });
    expect(resolvePlaybook(dir, { testCommand: 'make t', setupCommand: 'make deps' })).toMatchObject({ source: 'testCommand', steps: [{ name: 'setup' }, { name: 'test', run: 'make t' }] });
    expect(resolvePlaybook(dir, { playbook: { steps: [{ name: 'build', run: 'make' }] } })).toMatchObject({ source: 'task', steps: [{ name: 'build', kind: 'build' }] });
  });
});

// ---- end to end -------------------------------------------------------------------------

let rig: Rig;
useRig((r) => (rig = r));

const CALC_WRONG = 'def add(a, b):\n    return a - b\n';
const CALC_RIGHT = 'def add(a, b):\n    return a + b\n';
const pythonRepo = (name: string, extra: Record<string, string> = {}) =>
  makeRepo(path.join(rig.tmp, name), {
    'calc.py': 'def add(a, b):\n    raise NotImplementedError\n',
    'tests/test_calc.py': 'from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5, "add(2, 3) should be 5"\n',
    ...extra,
  });
const pyTask = (repo: string, model: string, extra: Record<string, unknown> = {}) => {
  const { testCommand: _t, ...task } = rig.task(repo, [rig.provider(model)], { limits: { maxAttempts: 3 }, decomposition: 'never', ...extra });
  return { ...task, task: { title: 'Implement add', description: 'Write add(a, b) in calc.py.', relatedFiles: ['calc.py'] } };
};

test('a Python repository without a testCommand runs the detected pytest; a failing test comes back as feedback', async () => {
  const repo = await pythonRepo('py-detected');
  rig.model.script('m-py', [{ content: wholeFile('calc.py', CALC_WRONG) }, { content: wholeFile('calc.py', CALC_RIGHT) }]);
  const result = await rig.run(pyTask(repo, 'm-py'));
  expect(result.status).toBe('succeeded');
  expect(result.checks).toMatchObject({ source: 'detected', stack: 'python' });
  expect(result.checks!.description).toMatch(/detected \(python: tests\/\): test/);
  expect(result.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
  expect(result.attempts[0].steps).toMatchObject([{ name: 'test', kind: 'test', status: 'failed' }]);
  // The failing assertion reaches the second prompt.
  expect(lastUserText(rig.model.requestsFor('m-py')[1])).toMatch(/add\(2, 3\) should be 5|assert -1 == 5/);
});

test('nothing detected is no_checks: failed, unless allowNoChecks', async () => {
  const notes = () => makeRepo(path.join(rig.tmp, `notes-${Math.random().toString(36).slice(2, 6)}`), { 'notes.md': '# Notes\n\n- one\n' });
  const answer = { content: searchReplace('notes.md', '- one\n', '- one\n- two\n') };
  const task = (repo: string, model: string, extra = {}) => {
    const { testCommand: _t, ...rest } = rig.task(repo, [rig.provider(model)], { decomposition: 'never', ...extra });
    return { ...rest, task: { title: 'Add a note', description: 'Add "two" to notes.md.' } };
  };
  rig.model.script('m-notes', [answer]);
  const failed = await rig.run(task(await notes(), 'm-notes'));
  expect(failed.status).toBe('failed');
  expect(failed.reason).toMatch(/^no_checks: nothing to check the change with/);
  expect(failed.commit).toBeUndefined();
  expect(failed.checks).toMatchObject({ source: 'none' });
  // Known when the workspace was prepared: no model was paid for a change nothing could check.
  expect(rig.model.count('m-notes')).toBe(0);
  expect(failed.attempts).toEqual([]);

  rig.model.script('m-notes-ok', [answer]);
  const allowed = await rig.run(task(await notes(), 'm-notes-ok', { allowNoChecks: true }));
  expect(allowed.status).toBe('succeeded');
  expect(allowed.reason).toMatch(/nothing was checked \(allowNoChecks\)/);
  expect(allowed.commit).toBeDefined();
});

test('a JS repository whose lint step fails on attempt 1 gets the lint output, and passes on attempt 2', async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'js-lint'), {
    'package.json': JSON.stringify({ name: 'x', scripts: { lint: 'node lint.js', test: 'node --test test/' } }),
    'lint.js': "const s = require('fs').readFileSync('src/add.js', 'utf8');\nif (/\\bvar\\b/.test(s)) { console.error('src/add.js: no-var: use let or const (LINT-7431)'); process.exit(1); }\n",
    'src/add.js': 'module.exports = function add(a, b) { throw new Error("todo"); };\n',
    'test/add.test.js': "const test = require('node:test');\nconst assert = require('node:assert');\nconst add = require('../src/add.js');\ntest('add', () => assert.strictEqual(add(2, 3), 5));\n",
  });
  const withVar = 'module.exports = function add(a, b) { var s = a + b; return s; };\n';
  const clean = 'module.exports = function add(a, b) { const s = a + b; return s; };\n';
  rig.model.script('m-lint', [{ content: wholeFile('src/add.js', withVar) }, { content: wholeFile('src/add.js', clean) }]);
  const { testCommand: _t, ...task } = rig.task(repo, [rig.provider('m-lint')], { decomposition: 'never' });
  const result = await rig.run({ ...task, task: { title: 'Implement add', description: 'Write add in src/add.js.', relatedFiles: ['src/add.js'] } });
  expect(result.status).toBe('succeeded');
  expect(result.checks?.description).toMatch(/detected \(node: package.json\): lint, test/);
  expect(result.attempts.map((a) => a.outcome)).toEqual(['check_failed', 'tests_passed']);
  expect(result.attempts[0].steps?.map((s) => [s.name, s.status])).toEqual([['lint', 'failed']]);
  expect(result.attempts[1].steps?.map((s) => [s.name, s.status])).toEqual([
    ['lint', 'passed'],
    ['test', 'passed'],
  ]);
  expect(result.attempts[0].decision.why).toMatch(/lint step failed \(exit 1\)/);
  const second = lastUserText(rig.model.requestsFor('m-lint')[1]);
  expect(second).toContain('The lint step (`npm run lint`) exited with code 1');
  expect(second).toContain('no-var: use let or const (LINT-7431)');
  expect(result.reason).toMatch(/checks passed \(lint, test\) on attempt 2/);
});

test("a step with when: changed('docs/**') is skipped when no docs changed and runs when they did", async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'docs-when'), { 'src/a.txt': 'a\n', 'docs/index.md': '# Docs\n' });
  const playbook = [
    'steps:',
    '  - name: test',
    '    run: [sh, -c, "test -s src/a.txt"]',
    '  - name: docs',
    "    when: changed('docs/**')",
    '    run: [sh, -c, "grep -q Usage docs/index.md"]',
  ].join('\n');
  const task = (model: string) => {
    const { testCommand: _t, ...rest } = rig.task(repo, [rig.provider(model)], { decomposition: 'never', playbook });
    return { ...rest, task: { title: 'Edit', description: 'Edit files.' } };
  };
  rig.model.script('m-nodocs', [{ content: searchReplace('src/a.txt', 'a\n', 'a\nb\n') }]);
  const noDocs = await rig.run(task('m-nodocs'));
  expect(noDocs.status).toBe('succeeded');
  expect(noDocs.checks).toMatchObject({ source: 'task' });
  expect(noDocs.attempts[0].steps).toMatchObject([
    { name: 'test', status: 'passed' },
    { name: 'docs', status: 'skipped', skippedBecause: "when: changed('docs/**')" },
  ]);
  rig.model.script('m-docs', [{ content: searchReplace('docs/index.md', '# Docs\n', '# Docs\n\nNo usage yet.\n') }, { content: searchReplace('docs/index.md', '# Docs\n', '# Docs\n\n## Usage\n') }]);
  const docs = await rig.run(task('m-docs'));
  expect(docs.status).toBe('succeeded');
  expect(docs.attempts.map((a) => a.steps?.map((s) => `${s.name}:${s.status}`))).toEqual([
    ['test:passed', 'docs:failed'],
    ['test:passed', 'docs:passed'],
  ]);
});

test('an invalid playbook is refused before the task starts, naming line and field; an unknown condition function too', async () => {
  const base = rig.task(await rig.newRepo(), [rig.provider('m-never')]);
  await expect(rig.start({ ...base, playbook: 'steps:\n  - name: test\n    run: make test\n    timeoutSec: soon\n' })).rejects.toThrow(
    /playbook: line 4: steps\[0\]\.timeoutSec: /,
  );
  let err: unknown;
  try {
    await rig.start({ ...base, playbook: "steps:\n  - name: test\n    run: make test\n    when: exec('touch /tmp/pwned')\n" });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TaskInputError);
  expect((err as Error).message).toMatch(/playbook: line 4: steps\[0\]\.when: unknown function "exec"/);
  // As steps (not text), the schema refuses it the same way.
  await expect(rig.start({ ...base, playbook: { steps: [{ name: 'test', run: 'x', when: "exec('id')" }] } })).rejects.toThrow(/playbook\.steps\.0\.when: unknown function "exec"/);
  expect(rig.model.count('m-never')).toBe(0);
});

test('an answer that breaks a Python file\'s syntax ends the attempt invalid_syntax without running any check; the error lines reach the next prompt', async () => {
  const repo = await pythonRepo('py-syntax', { 'util.py': 'def twice(x):\n    return 2 * x\n' });
  const broken = 'def add(a, b):\n    return (a + b\n\n\ndef other():\n    return 1\n';
  rig.model.script('m-syntax', [{ content: wholeFile('calc.py', broken) }, { content: wholeFile('calc.py', CALC_RIGHT) }]);
  const handle = await rig.start(pyTask(repo, 'm-syntax'));
  const { resultOf } = await import('../src/client');
  const result = await resultOf(handle);
  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['invalid_syntax', 'tests_passed']);
  expect(result.attempts[0].steps).toBeUndefined();
  expect(result.attempts[0].tests).toBeUndefined();
  expect(result.attempts[0].detail).toMatch(/^calc\.py:\d+:\d+: (syntax error|missing token)/);
  // No check ran for attempt 1: each change was applied and checked in one activity, and only
  // attempt 2's ran a step; no runCheck or runTests of their own.
  const checks: string[] = [];
  const stepsRun: number[] = [];
  for (const e of (await handle.fetchHistory()).events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (['runCheck', 'runTests', 'applyChangeAndCheck'].includes(s?.activityType?.name ?? '')) checks.push(s!.activityType!.name!);
    const done = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
    const r = done?.length ? (JSON.parse(Buffer.from(done).toString('utf8')) as { checked?: unknown[] } | null) : undefined;
    if (r?.checked) stepsRun.push(r.checked.length);
  }
  expect(checks).toEqual(['applyChangeAndCheck', 'applyChangeAndCheck']);
  expect(stepsRun).toEqual([0, 1]);
  const second = lastUserText(rig.model.requestsFor('m-syntax')[1]);
  expect(second).toContain('broke the syntax');
  expect(second).toMatch(/calc\.py:\d+:\d+/);
  expect(second).toContain('return (a + b');
});

test('a passing step whose output mentions ENOTFOUND or ENOSPC passes; a check whose tool is missing fails the task once, naming it; steps that only failed under warn check nothing', async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'quirks'), { 'src/a.txt': 'a\n' });
  const edit = { content: searchReplace('src/a.txt', 'a\n', 'a\nb\n') };
  const run = async (model: string, playbook: string, extra = {}) => {
    rig.model.script(model, [edit, edit, edit]);
    const { testCommand: _t, ...rest } = rig.task(repo, [rig.provider(model)], { decomposition: 'never', playbook, ...extra });
    return rig.run({ ...rest, task: { title: 'Edit', description: 'Edit src/a.txt.' } });
  };
  const noisy = await run('m-noisy', 'steps:\n  - name: test\n    run: [sh, -c, "echo getaddrinfo ENOTFOUND example.invalid handled; echo No space left on device, retried; exit 0"]\n');
  expect(noisy.status).toBe('succeeded');
  expect(noisy.attempts[0].steps).toMatchObject([{ name: 'test', status: 'passed' }]);
  expect(noisy.attempts[0].steps![0].limit).toBeUndefined();

  const missing = await run('m-missing', 'steps:\n  - name: lint\n    run: [weaver-no-such-linter, check]\n  - name: test\n    run: "true"\n');
  expect(missing.status).toBe('failed');
  expect(missing.reason).toMatch(/^checks_unavailable: the lint step cannot run on this worker \(`weaver-no-such-linter` not found/);
  expect(missing.attempts).toHaveLength(1);
  expect(rig.model.count('m-missing')).toBe(1);

  const warned = await run('m-warned', 'steps:\n  - name: lint\n    run: [sh, -c, "exit 3"]\n    onFailure: warn\n');
  expect(warned.status).toBe('failed');
  expect(warned.reason).toMatch(/^no_checks: .*no check passed \(lint: failed, onFailure warn\)/);
  expect(warned.warnings?.join('\n')).toMatch(/the lint step failed on attempt 1 \(onFailure: warn\): exit 3/);
});

test('a step that rewrites the change is undone before the next step: what is committed is what the checks saw', async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'rewrites'), { 'src/a.txt': 'a\n' });
  const playbook = [
    'steps:',
    '  - name: format',
    '    run: [sh, -c, "echo formatted >> src/a.txt"]',
    '  - name: test',
    '    run: [sh, -c, "grep -qx b src/a.txt && ! grep -q formatted src/a.txt"]',
  ].join('\n');
  rig.model.script('m-rewrite', [{ content: searchReplace('src/a.txt', 'a\n', 'a\nb\n') }]);
  const { testCommand: _t, ...rest } = rig.task(repo, [rig.provider('m-rewrite')], { decomposition: 'never', playbook, push: true });
  const r = await rig.run({ ...rest, task: { title: 'Edit', description: 'Edit src/a.txt.' } });
  expect(r.status).toBe('succeeded');
  expect(r.attempts[0].steps).toMatchObject([{ name: 'format', status: 'passed', altered: ['src/a.txt'] }, { name: 'test', status: 'passed' }]);
  expect(r.warnings?.join('\n')).toMatch(/the format step rewrote src\/a\.txt on attempt 1: put back as the change wrote them/);
  expect(await simpleGit(repo).show([`${r.branch}:src/a.txt`])).toBe('a\nb\n');
});
