/**
 * extractFailures on REAL runner output: every log below (except mocha's and JUnit's, see
 * there) is produced in beforeAll by actually running the runner on a tiny project in a temp
 * dir — pytest, python -m unittest, jest (this repo's binary, with its own inline config so
 * the project's jest.config.js is not picked up), node --test (TAP and spec reporters), go
 * test and cargo test (offline, no dependencies). All runs happen once, concurrently.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { extractFailures, type FailureExtract } from '../src/domain/testFailures';
import { DEFAULT_EXCERPT_BUDGET, LogExcerpt } from '../src/domain/testFailures/excerpt';
import { extractFailuresFromFile } from '../src/activities/failureLog';

const JEST_BIN = path.resolve(__dirname, '../node_modules/.bin/jest');

interface Run {
  output: string;
  code: number | null;
}

/** Runs a command with stdout and stderr interleaved into one log, as a CI console shows it. */
const RUNNER_GUARD_MS = 600_000;

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // The outer jest's own variables must not leak into the runners under test.
    if (v !== undefined && !k.startsWith('JEST_') && k !== 'NODE_OPTIONS' && k !== 'NODE_ENV') base[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    // Only a guard against a hung runner: on a loaded machine a cold `go test`/`cargo test`
    // compile takes minutes, and a run cut short would hand the assertions partial output.
    const timer = setTimeout(() => child.kill('SIGKILL'), RUNNER_GUARD_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) return reject(new Error(`${cmd} ${args.join(' ')} was killed (${signal}) after ${RUNNER_GUARD_MS / 1000} s: the assertions need its whole output`));
      resolve({ output: Buffer.concat(chunks).toString('utf8'), code });
    });
  });
}

function write(dir: string, files: Record<string, string>): string {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  return dir;
}

/** Invariants every extract must hold, whatever the runner. */
function checked(r: FailureExtract, maxChars = 6000): FailureExtract {
  expect(r.text.length).toBeLessThanOrEqual(maxChars);
  expect(r.text).not.toContain('\x1b');
  for (const f of r.files) expect(f).not.toMatch(/node_modules|site-packages|^\/rustc\/|\/src\/(?:runtime|testing)\/|^node:/);
  expect(new Set(r.files).size).toBe(r.files.length);
  expect(new Set(r.symbols).size).toBe(r.symbols.length);
  return r;
}

let tmp: string;
const logs: Record<string, Run> = {};
const dirs: Record<string, string> = {};

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'weaver-failures-'));

  dirs.py = write(path.join(tmp, 'py'), {
    'test_calc.py': [
      'def add(a, b):',
      '    return a + b',
      '',
      'def test_add_ok():',
      '    assert add(1, 1) == 2',
      '',
      'def test_add_wrong():',
      '    assert add(1, 1) == 3',
      '',
      'def helper(x):',
      '    raise ValueError("bad value %d" % x)',
      '',
      'def test_raises():',
      '    helper(5)',
      '',
    ].join('\n'),
    'pkg/tests/test_cls.py': [
      'import pytest',
      '',
      '@pytest.fixture',
      'def broken():',
      '    raise RuntimeError("fixture exploded")',
      '',
      'class TestThing:',
      '    def test_eq(self):',
      '        assert "a-b" == "a_b"',
      '',
      '    def test_fixture(self, broken):',
      '        pass',
      '',
    ].join('\n'),
  });
  dirs.pyMany = write(path.join(tmp, 'py-many'), {
    'test_many.py': [
      'import pytest',
      '',
      'def double(x):',
      '    return x * 3',
      '',
      '@pytest.mark.parametrize("n", range(30))',
      'def test_double(n):',
      '    assert double(n) == n * 2, f"double({n}) is wrong"',
      '',
    ].join('\n'),
  });
  dirs.pyCollect = write(path.join(tmp, 'py-collect'), { 'tests/test_imp.py': 'import nonexistent_module_xyz\n' });
  dirs.unittest = write(path.join(tmp, 'unittest'), {
    'test_ut.py': [
      'import unittest',
      '',
      'def add(a, b):',
      '    return a - b',
      '',
      'class TestCalc(unittest.TestCase):',
      '    def test_add(self):',
      '        self.assertEqual(add(1, 1), 2)',
      '',
    ].join('\n'),
  });
  dirs.tool = write(path.join(tmp, 'tool'), {
    'tool.py': [
      'import sys',
      'def ratio(a, b):',
      '    return a / b',
      'for i in range(200):',
      '    print(f"step {i}: ok")',
      'print(ratio(1, 0))',
      '',
    ].join('\n'),
  });

  dirs.jest = write(path.join(tmp, 'jest'), {
    'src/slug.js': [
      "function slug(s) { return s.toLowerCase().replace(/\\s+/g, '_'); }",
      "function boom() { throw new TypeError('cannot read x of undefined'); }",
      'module.exports = { slug, boom };',
      '',
    ].join('\n'),
    'src/slug.test.js': [
      "const { slug, boom } = require('./slug');",
      "describe('slug', () => {",
      "  test('joins words with a dash', () => {",
      "    console.log('debug: slugging A B');",
      "    expect(slug('A B')).toBe('a-b');",
      '  });',
      "  test('keeps a single word', () => { expect(slug('a')).toBe('a'); });",
      "  test('throws', () => { boom(); });",
      '});',
      '',
    ].join('\n'),
    // A library frame (node_modules) that jest prints and the extract must drop.
    'node_modules/fake-lib/index.js': "exports.parse = function parse(s) {\n  if (!s) throw new Error('fake-lib: empty input');\n  return s;\n};\n",
    'src/config.test.js': [
      "const { parse } = require('fake-lib');",
      'function loadConfig(text) { return parse(text); }',
      "test('loads config', () => { expect(loadConfig('')).toBe('x'); });",
      '',
    ].join('\n'),
  });

  dirs.node = write(path.join(tmp, 'node'), {
    'test/math.test.js': [
      "const test = require('node:test');",
      "const assert = require('node:assert');",
      'function mul(a, b) { return a + b; }',
      "test('mul multiplies', () => {",
      '  assert.strictEqual(mul(2, 3), 6);',
      '});',
      "test('passes', () => { assert.ok(true); });",
      "test.describe('group', () => {",
      "  test.it('nested deep', () => { assert.deepStrictEqual({ a: 1 }, { a: 2 }); });",
      '});',
      '',
    ].join('\n'),
  });
  // ~1.3 MB: the failing test prints 10k lines before its assert; a second file prints 10k more after.
  dirs.big = write(path.join(tmp, 'big'), {
    'test/parse.test.js': [
      "const test = require('node:test');",
      "const assert = require('node:assert');",
      "test('parses the total', () => {",
      "  for (let i = 0; i < 10000; i++) console.log(`noise line ${i}: everything is fine, ok, passing along nicely ${'x'.repeat(20)}`);",
      "  assert.strictEqual(1 + 1, 3, 'total should be three');",
      '});',
      '',
    ].join('\n'),
    'test/zz.test.js': [
      "const test = require('node:test');",
      "test('more noise', () => {",
      "  for (let i = 0; i < 10000; i++) console.log(`after line ${i}: still fine ${'y'.repeat(20)}`);",
      '});',
      '',
    ].join('\n'),
  });

  dirs.go = write(path.join(tmp, 'go'), {
    'go.mod': 'module example.com/m\n\ngo 1.21\n',
    'calc/calc.go': 'package calc\n\nfunc Add(a, b int) int { return a - b }\n',
    'calc/calc_test.go': [
      'package calc',
      '',
      'import "testing"',
      '',
      'func TestAdd(t *testing.T) {',
      '\tif got := Add(2, 2); got != 4 {',
      '\t\tt.Errorf("Add(2, 2) = %d, want 4", got)',
      '\t}',
      '}',
      '',
      'func TestSub(t *testing.T) {',
      '\tt.Run("case one", func(t *testing.T) {',
      '\t\tt.Fatalf("sub case failed: %v", 42)',
      '\t})',
      '}',
      '',
      'func TestOK(t *testing.T) {}',
      '',
    ].join('\n'),
    'pan/pan_test.go': [
      'package pan',
      '',
      'import "testing"',
      '',
      'func index(xs []int, i int) int { return xs[i] }',
      '',
      'func TestPanics(t *testing.T) {',
      '\tindex([]int{1, 2}, 5)',
      '}',
      '',
    ].join('\n'),
    'broken/broken.go': 'package broken\n\nfunc Broken() int { return "x" }\n',
  });

  dirs.cargo = write(path.join(tmp, 'cargo'), {
    'Cargo.toml': '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n',
    'src/lib.rs': [
      'pub fn add(a: i32, b: i32) -> i32 { a * b }',
      '',
      '#[cfg(test)]',
      'mod tests {',
      '    use super::*;',
      '',
      '    #[test]',
      '    fn adds_two() {',
      '        assert_eq!(add(2, 2), 4);',
      '    }',
      '',
      '    #[test]',
      '    fn adds_three() {',
      '        assert_eq!(add(1, 3), 4, "adding {} and {}", 1, 3);',
      '    }',
      '',
      '    #[test]',
      '    fn explodes() {',
      '        let v: Vec<i32> = vec![];',
      '        let _ = v[3];',
      '    }',
      '}',
      '',
    ].join('\n'),
  });
  dirs.cargoBroken = write(path.join(tmp, 'cargo-broken'), {
    'Cargo.toml': '[package]\nname = "broken"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n',
    'src/lib.rs': 'pub fn answer() -> i32 {\n    "forty-two"\n}\n',
  });

  const goEnv = { GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local', GOWORK: 'off' };
  const cargoEnv = { CARGO_NET_OFFLINE: 'true', RUST_BACKTRACE: '1', CARGO_TERM_COLOR: 'never' };
  const jestConfig = JSON.stringify({ transform: {}, testEnvironment: 'node' });
  const jobs: Record<string, Promise<Run>> = {
    pytest: run('python3', ['-m', 'pytest', '-p', 'no:cacheprovider', '--color=yes'], dirs.py),
    pytestMany: run('python3', ['-m', 'pytest', '-p', 'no:cacheprovider'], dirs.pyMany),
    pytestCollect: run('python3', ['-m', 'pytest', '-p', 'no:cacheprovider'], dirs.pyCollect),
    unittest: run('python3', ['-m', 'unittest', 'test_ut'], dirs.unittest),
    tool: run('python3', ['tool.py'], dirs.tool),
    jest: run(JEST_BIN, ['--rootDir', dirs.jest, '--config', jestConfig, '--ci', '--colors', '--watchman=false'], dirs.jest),
    nodeTap: run(process.execPath, ['--test', '--test-reporter=tap'], dirs.node),
    nodeSpec: run(process.execPath, ['--test', '--test-reporter=spec'], dirs.node),
    nodeBig: run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', 'test/parse.test.js', 'test/zz.test.js'], dirs.big),
    goAll: run('go', ['test', './...'], dirs.go, goEnv),
    goVerbose: run('go', ['test', '-v', './calc'], dirs.go, goEnv),
    cargo: run('cargo', ['test', '--target-dir', path.join(tmp, 'cargo-target')], dirs.cargo, cargoEnv),
    cargoBroken: run('cargo', ['test', '--target-dir', path.join(tmp, 'cargo-target-broken')], dirs.cargoBroken, cargoEnv),
  };
  const names = Object.keys(jobs);
  const results = await Promise.all(Object.values(jobs));
  names.forEach((name, i) => (logs[name] = results[i]));
  // Every run must have failed (the projects are broken on purpose); a zero exit means the
  // runner did not run what we think and the assertions below would test the wrong thing.
  for (const name of names) {
    if (logs[name].code === 0) throw new Error(`${name} unexpectedly passed:\n${logs[name].output.slice(-2000)}`);
  }
}, RUNNER_GUARD_MS + 60_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('pytest (real runs)', () => {
  test('assertion and traceback blocks, with the test file and functions named', () => {
    const log = logs.pytest.output;
    expect(log).toContain('\x1b['); // --color=yes: the extract must strip it

    const r = checked(extractFailures(log));

    expect(r.framework).toBe('pytest');
    expect(r.text).toContain('assert 2 == 3');
    expect(r.text).toContain('test_calc.py:8: AssertionError');
    expect(r.text).toContain('ValueError: bad value 5');
    expect(r.text).toContain("AssertionError: assert 'a-b' == 'a_b'");
    expect(r.text).toContain('RuntimeError: fixture exploded');
    expect(r.text).not.toContain('test session starts');
    expect(r.failures).toBe(4); // 3 failed + 1 error at setup
    expect(r.files).toEqual(expect.arrayContaining(['test_calc.py', 'pkg/tests/test_cls.py']));
    expect(r.symbols).toEqual(expect.arrayContaining(['test_add_wrong', 'test_raises', 'helper', 'TestThing.test_eq', 'test_eq']));

    // The same log with CRLF line ends (a Windows runner, a captured CI log) extracts the same.
    expect(extractFailures(log.replace(/\n/g, '\r\n'))).toEqual(r);
  });

  test('many failures: the first few whole, the rest listed by name, within maxChars', () => {
    const r = checked(extractFailures(logs.pytestMany.output, { maxChars: 3000 }), 3000);

    expect(r.failures).toBe(29); // n = 0 passes
    expect(r.text).toContain('__ test_double[1] __');
    expect(r.text).toContain('assert 3 == (1 * 2)'); // the first failure, whole
    expect(r.text).toMatch(/… \d+ more failing tests omitted:/);
    const omitted = Number(/… (\d+) more failing tests omitted/.exec(r.text)?.[1]);
    const shown = (r.text.match(/^__ test_double\[\d+\] __$/gm) ?? []).length;
    expect(shown).toBeGreaterThanOrEqual(2);
    expect(shown + omitted).toBe(29);
    expect(r.text).toMatch(/^- test_double\[\d+\]$/m);
    // Parametrised ids collapse to the function's name.
    expect(r.symbols).toContain('test_double');
    expect(r.symbols.filter((s) => s.startsWith('test_double'))).toHaveLength(1);
    expect(r.files).toEqual(['test_many.py']);
  });

  test('a collection error names the module and keeps the ImportError', () => {
    const r = checked(extractFailures(logs.pytestCollect.output));

    expect(r.framework).toBe('pytest');
    expect(r.text).toContain("ModuleNotFoundError: No module named 'nonexistent_module_xyz'");
    expect(r.files).toContain('tests/test_imp.py');
    expect(r.files.some((f) => f.includes('importlib'))).toBe(false); // the stdlib frame is not the project's
    expect(r.failures).toBe(1);
  });

  test('python -m unittest', () => {
    const r = checked(extractFailures(logs.unittest.output, { root: dirs.unittest }));

    expect(r.framework).toBe('unittest');
    expect(r.text).toContain('AssertionError: 0 != 2');
    expect(r.text).toContain('self.assertEqual(add(1, 1), 2)');
    expect(r.files).toEqual(['test_ut.py']);
    expect(r.symbols).toEqual(expect.arrayContaining(['TestCalc.test_add', 'test_add']));
    expect(r.failures).toBe(1);
  });
});

describe('jest (real run)', () => {
  test('● blocks with Expected/Received and the project frames; node_modules frames dropped', () => {
    const log = logs.jest.output;
    expect(log).toContain('\x1b[');
    expect(log).toContain('node_modules/fake-lib/index.js'); // jest prints it…
    const plain = log.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
    expect(plain).toContain('● Console'); // console output of a suite, when several run

    const r = checked(extractFailures(log));

    expect(r.framework).toBe('jest');
    expect(r.text).toContain('● slug › joins words with a dash');
    expect(r.text).toContain('Expected: "a-b"');
    expect(r.text).toContain('Received: "a_b"');
    expect(r.text).toContain('TypeError: cannot read x of undefined');
    expect(r.text).toContain('fake-lib: empty input');
    expect(r.text).not.toContain('node_modules'); // …the extract does not
    expect(r.text).not.toContain('Test Suites:');
    expect(r.text).not.toContain('Console');
    expect(r.text).not.toMatch(/^\s*debug: slugging A B$/m); // the logged line (its source line may show in a code frame)
    expect(r.text).not.toMatch(/^\s*FAIL /m);
    expect(r.failures).toBe(3);
    expect(r.symbols).not.toContain('Console');
    expect(r.files).toEqual(expect.arrayContaining(['src/slug.test.js', 'src/slug.js', 'src/config.test.js']));
    expect(r.symbols).toEqual(expect.arrayContaining(['slug › joins words with a dash', 'slug', 'boom', 'loadConfig']));
  });
});

describe('node:test (real runs)', () => {
  test('TAP reporter: not ok + YAML error/expected/actual/stack, internals dropped', () => {
    const r = checked(extractFailures(logs.nodeTap.output, { root: dirs.node }));

    expect(r.framework).toBe('node:test');
    expect(r.text).toContain('not ok - mul multiplies');
    expect(r.text).toContain('5 !== 6');
    expect(r.text).toContain('expected: 6');
    expect(r.text).toContain('actual: 5');
    expect(r.text).toContain('nested deep');
    expect(r.text).not.toContain('node:internal');
    expect(r.text).not.toContain('subtests failed'); // the suite adds nothing
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['test/math.test.js']);
    expect(r.symbols).toEqual(expect.arrayContaining(['mul multiplies', 'nested deep']));
  });

  test('spec reporter: the `failing tests:` section, relative paths without being told the root', () => {
    const log = logs.nodeSpec.output;
    expect(log).toContain('✖ failing tests:');

    const r = checked(extractFailures(log));

    expect(r.framework).toBe('node:test');
    expect(r.text).toContain('✖ mul multiplies');
    expect(r.text).toContain('5 !== 6');
    expect(r.text).toContain('a: 2');
    expect(r.text).not.toContain('node:internal');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['test/math.test.js']);
    expect(r.symbols).toEqual(expect.arrayContaining(['mul multiplies', 'nested deep']));
  });

  // How long it takes is a benchmark's figure (scripts/bench-output.ts), not an assertion: a
  // loaded 2-core machine took 769 ms where an idle one takes 10-30.
  test('a 1 MB log with the failure in the middle: found', () => {
    const log = logs.nodeBig.output;
    expect(log.length).toBeGreaterThan(1_000_000);
    expect(log.split('\n').length).toBeGreaterThan(20_000);
    // The old feedback (the last 3000 characters) never saw it.
    expect(log.slice(-3000)).not.toContain('total should be three');

    const x = checked(extractFailures(log, { root: dirs.big }));
    expect(x.text).toContain('total should be three');
    expect(x.text).toContain('2 !== 3');
    expect(x.text).not.toContain('noise line');
    expect(x.text.length).toBeLessThan(1000);
    expect(x.files).toEqual(['test/parse.test.js']);
    expect(x.symbols).toEqual(['parses the total']);
    expect(x.failures).toBe(1);
  });
});

describe('go test (real runs)', () => {
  test('--- FAIL blocks with file:line messages, a panic trimmed to the project frames, a build failure', () => {
    const r = checked(extractFailures(logs.goAll.output, { root: dirs.go }));

    expect(r.framework).toBe('go');
    expect(r.text).toContain('--- FAIL: TestAdd');
    expect(r.text).toContain('calc_test.go:7: Add(2, 2) = 0, want 4');
    expect(r.text).toContain('calc_test.go:13: sub case failed: 42');
    expect(r.text).toContain('panic: runtime error: index out of range [5] with length 2');
    expect(r.text).toContain('pan/pan_test.go:8');
    expect(r.text).not.toMatch(/\/src\/(?:testing|runtime)\//); // runtime frames trimmed
    expect(r.text).toMatch(/broken\/broken\.go:3:\d+: cannot use "x"/);
    // TestSub only failed through its subtest: counted once, as the subtest.
    expect(r.failures).toBe(3);
    expect(r.text).not.toMatch(/^--- FAIL: TestSub \(/m);
    expect(r.files).toEqual(expect.arrayContaining(['calc_test.go', 'pan/pan_test.go', 'broken/broken.go']));
    expect(r.symbols).toEqual(expect.arrayContaining(['TestAdd', 'TestSub/case_one', 'TestSub', 'TestPanics', 'index']));
  });

  test('-v: the messages printed under === RUN are attached to their --- FAIL', () => {
    const log = logs.goVerbose.output;
    expect(log).toContain('=== RUN   TestAdd');

    const r = checked(extractFailures(log));

    expect(r.text).toMatch(/--- FAIL: TestAdd \([\d.]+s\)\n\s+calc_test\.go:7: Add\(2, 2\) = 0, want 4/);
    expect(r.text).toContain('sub case failed: 42');
    expect(r.text).not.toContain('TestOK');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['calc_test.go']);
    expect(r.symbols).toEqual(expect.arrayContaining(['TestAdd', 'TestSub']));
  });
});

describe('cargo test (real runs)', () => {
  test('---- stdout ---- blocks with the panic location and left/right; std frames trimmed', () => {
    const log = logs.cargo.output;
    expect(log).toContain('stack backtrace:');

    const r = checked(extractFailures(log));

    expect(r.framework).toBe('cargo');
    expect(r.text).toContain('---- tests::adds_three stdout ----');
    expect(r.text).toMatch(/panicked at src\/lib\.rs:14:9/);
    expect(r.text).toContain('left: 3');
    expect(r.text).toContain('right: 4');
    expect(r.text).toContain('adding 1 and 3');
    expect(r.text).toContain('index out of bounds: the len is 0 but the index is 3');
    expect(r.text).not.toContain('/rustc/');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['src/lib.rs']);
    expect(r.symbols).toEqual(expect.arrayContaining(['tests::adds_three', 'adds_three', 'explodes']));
  });

  test('a compile error is extracted with its location (no failing test)', () => {
    const r = checked(extractFailures(logs.cargoBroken.output));

    expect(r.framework).toBe('cargo');
    expect(r.text).toMatch(/error\[E0308\]: mismatched types/);
    expect(r.text).toContain('--> src/lib.rs:2:5');
    expect(r.files).toEqual(['src/lib.rs']);
    expect(r.failures).toBe(0);
  });
});

// mocha is not installed here: a captured run of mocha 10's default spec reporter (node's
// assert and a TypeError from the code under test), byte for byte as printed without colours.
const MOCHA_LOG = `

  slug
    ✔ keeps lowercase words
    1) joins words with a dash
    2) trims surrounding spaces


  1 passing (7ms)
  2 failing

  1) slug
       joins words with a dash:

      AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
+ actual - expected

+ 'a_b'
- 'a-b'
      + expected - actual

      -a_b
      +a-b
      
      at Context.<anonymous> (test/slug.spec.js:9:12)
      at process.processImmediate (node:internal/timers:476:21)

  2) slug
       trims surrounding spaces:
     TypeError: Cannot read properties of undefined (reading 'trim')
      at slugify (lib/slug.js:4:18)
      at Context.<anonymous> (test/slug.spec.js:13:12)
      at process.processImmediate (node:internal/timers:476:21)



`;

describe('mocha (captured sample)', () => {
  test('N failing, then numbered blocks with the multi-line title and the error', () => {
    const r = checked(extractFailures(MOCHA_LOG));

    expect(r.framework).toBe('mocha');
    expect(r.text).toContain('1) slug joins words with a dash:');
    expect(r.text).toContain("+ 'a_b'");
    expect(r.text).toContain("- 'a-b'");
    expect(r.text).toContain("TypeError: Cannot read properties of undefined (reading 'trim')");
    expect(r.text).not.toContain('node:internal');
    expect(r.text).not.toContain('keeps lowercase words');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['test/slug.spec.js', 'lib/slug.js']);
    expect(r.symbols).toEqual(expect.arrayContaining(['slug joins words with a dash', 'slugify']));
  });
});

// Maven needs the network for its plugins on a fresh machine, so the JUnit logs are captured
// samples: Surefire 3.2 with JUnit 5 (`Class.method -- Time elapsed`), Surefire 2.22 with
// JUnit 4 (`method(Class)  Time elapsed`), and Gradle 8 with exceptionFormat FULL and SHORT.
const SUREFIRE3_LOG = `[INFO] -------------------------------------------------------
[INFO]  T E S T S
[INFO] -------------------------------------------------------
[INFO] Running com.example.calc.CalculatorTest
[ERROR] Tests run: 3, Failures: 1, Errors: 1, Skipped: 0, Time elapsed: 0.041 s <<< FAILURE! -- in com.example.calc.CalculatorTest
[ERROR] com.example.calc.CalculatorTest.addsTwoNumbers -- Time elapsed: 0.012 s <<< FAILURE!
org.opentest4j.AssertionFailedError: expected: <5> but was: <-1>
\tat org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)
\tat org.junit.jupiter.api.AssertionFailureBuilder.buildAndThrow(AssertionFailureBuilder.java:132)
\tat org.junit.jupiter.api.AssertEquals.failNotEqual(AssertEquals.java:197)
\tat org.junit.jupiter.api.AssertEquals.assertEquals(AssertEquals.java:150)
\tat org.junit.jupiter.api.AssertEquals.assertEquals(AssertEquals.java:145)
\tat org.junit.jupiter.api.Assertions.assertEquals(Assertions.java:531)
\tat com.example.calc.CalculatorTest.addsTwoNumbers(CalculatorTest.java:14)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)
\tat java.base/java.util.ArrayList.forEach(ArrayList.java:1596)
\tat java.base/java.util.ArrayList.forEach(ArrayList.java:1596)

[ERROR] com.example.calc.CalculatorTest.dividesByZero -- Time elapsed: 0.002 s <<< ERROR!
java.lang.ArithmeticException: / by zero
\tat com.example.calc.Calculator.divide(Calculator.java:9)
\tat com.example.calc.CalculatorTest.dividesByZero(CalculatorTest.java:20)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)
\tat java.base/java.util.ArrayList.forEach(ArrayList.java:1596)

[INFO] 
[INFO] Results:
[INFO] 
[ERROR] Failures: 
[ERROR]   CalculatorTest.addsTwoNumbers:14 expected: <5> but was: <-1>
[ERROR] Errors: 
[ERROR]   CalculatorTest.dividesByZero:20 » Arithmetic / by zero
[INFO] 
[ERROR] Tests run: 3, Failures: 1, Errors: 1, Skipped: 0
[INFO] 
[INFO] ------------------------------------------------------------------------
[INFO] BUILD FAILURE
[INFO] ------------------------------------------------------------------------
`;

const SUREFIRE2_LOG = `-------------------------------------------------------
 T E S T S
-------------------------------------------------------
Running com.example.StackTest
Tests run: 2, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.052 sec <<< FAILURE! - in com.example.StackTest
popReturnsLastPushed(com.example.StackTest)  Time elapsed: 0.007 sec  <<< FAILURE!
java.lang.AssertionError: expected:<3> but was:<1>
\tat org.junit.Assert.fail(Assert.java:89)
\tat org.junit.Assert.failNotEquals(Assert.java:835)
\tat org.junit.Assert.assertEquals(Assert.java:647)
\tat org.junit.Assert.assertEquals(Assert.java:633)
\tat com.example.StackTest.popReturnsLastPushed(StackTest.java:21)


Results :

Failed tests: 
  StackTest.popReturnsLastPushed:21 expected:<3> but was:<1>

Tests run: 2, Failures: 1, Errors: 0, Skipped: 0
`;

const GRADLE_LOG = `> Task :app:compileJava
> Task :app:compileTestJava
> Task :app:test FAILED

CalculatorTest > addsTwoNumbers() FAILED
    org.opentest4j.AssertionFailedError: expected: <5> but was: <-1>
        at app//org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)
        at app//org.junit.jupiter.api.AssertionFailureBuilder.buildAndThrow(AssertionFailureBuilder.java:132)
        at app//org.junit.jupiter.api.AssertEquals.failNotEqual(AssertEquals.java:197)
        at app//org.junit.jupiter.api.AssertEquals.assertEquals(AssertEquals.java:150)
        at app//org.junit.jupiter.api.Assertions.assertEquals(Assertions.java:531)
        at app//com.example.calc.CalculatorTest.addsTwoNumbers(CalculatorTest.java:14)

CalculatorTest > dividesByZero() FAILED
    java.lang.ArithmeticException at Calculator.java:9

3 tests completed, 2 failed

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:test'.
> There were failing tests. See the report at: file:///home/dev/calc/app/build/reports/tests/test/index.html
`;

describe('JUnit (captured samples)', () => {
  test('Surefire 3 / JUnit 5: the exception and the project frames, library frames dropped', () => {
    const r = checked(extractFailures(SUREFIRE3_LOG));

    expect(r.framework).toBe('junit');
    expect(r.text).toContain('org.opentest4j.AssertionFailedError: expected: <5> but was: <-1>');
    expect(r.text).toContain('at com.example.calc.CalculatorTest.addsTwoNumbers(CalculatorTest.java:14)');
    expect(r.text).toContain('java.lang.ArithmeticException: / by zero');
    expect(r.text).not.toContain('org.junit.jupiter.api.AssertEquals');
    expect(r.text).not.toContain('java.base/');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['com/example/calc/CalculatorTest.java', 'com/example/calc/Calculator.java']);
    expect(r.symbols).toEqual(expect.arrayContaining(['CalculatorTest.addsTwoNumbers', 'addsTwoNumbers', 'dividesByZero', 'divide']));
  });

  test('Surefire 2 / JUnit 4: method(Class) names', () => {
    const r = checked(extractFailures(SUREFIRE2_LOG));

    expect(r.framework).toBe('junit');
    expect(r.text).toContain('java.lang.AssertionError: expected:<3> but was:<1>');
    expect(r.failures).toBe(1);
    expect(r.files).toEqual(['com/example/StackTest.java']);
    expect(r.symbols).toEqual(expect.arrayContaining(['StackTest.popReturnsLastPushed', 'popReturnsLastPushed']));
  });

  test('Gradle: `Class > test() FAILED` with full and short exception formats', () => {
    const r = checked(extractFailures(GRADLE_LOG));

    expect(r.framework).toBe('junit');
    expect(r.text).toContain('CalculatorTest > addsTwoNumbers() FAILED');
    expect(r.text).toContain('expected: <5> but was: <-1>');
    expect(r.text).toContain('java.lang.ArithmeticException at Calculator.java:9');
    expect(r.text).not.toContain('org.junit.jupiter');
    expect(r.failures).toBe(2);
    expect(r.files).toEqual(['com/example/calc/CalculatorTest.java', 'Calculator.java']);
    expect(r.symbols).toEqual(expect.arrayContaining(['CalculatorTest.addsTwoNumbers', 'addsTwoNumbers', 'dividesByZero']));
  });
});

describe('generic fallback', () => {
  test('a plain Python traceback after 200 lines of output (real run)', () => {
    const log = logs.tool.output;
    expect(log).toContain('step 199: ok');

    const r = checked(extractFailures(log, { root: dirs.tool }));

    expect(r.framework).toBe('generic');
    expect(r.text).toContain('Traceback (most recent call last):');
    expect(r.text).toContain('ZeroDivisionError: division by zero');
    expect(r.text).toContain('return a / b');
    expect(r.text).not.toContain('step 3: ok');
    expect(r.files).toEqual(['tool.py']);
    expect(r.symbols).toContain('ratio');
    expect(r.failures).toBe(0);
  });

  test('no recognisable line: the tail, bounded; an empty log gives an empty text', () => {
    const log = Array.from({ length: 5000 }, (_, i) => `line ${i} of some build output`).join('\n');
    const r = checked(extractFailures(log, { maxChars: 500 }), 500);
    expect(r.framework).toBe('generic');
    expect(r.text.endsWith('line 4999 of some build output')).toBe(true);
    expect(r.text).not.toContain('line 4000 ');

    expect(extractFailures('')).toEqual({ text: '', framework: 'generic', files: [], symbols: [], failures: 0 });
    expect(extractFailures('  \n\n').text).toBe('');
  });

  test('many matching lines keep the last sections within maxChars; pathological lines stay fast', () => {
    // Every 10th line mentions an error: separate sections, the last ones kept.
    const sparse = Array.from({ length: 20000 }, (_, i) => (i % 10 === 0 ? `step ${i}: retrying after error ${i}` : `step ${i}: ok`)).join('\n');
    // Every line matches: one section, its last lines kept whole.
    const dense = Array.from({ length: 20000 }, (_, i) => `line ${i}: error handling ok, assert fine, exception ${i}`).join('\n');
    // Against catastrophic backtracking: no regex has nested quantifiers and lines are capped
    // first (blocks.ts); a regression that takes minutes ends in jest's test timeout. Timings
    // belong to scripts/bench-output.ts.
    const r = checked(extractFailures(`${sparse}\nFATAL: the build failed at the end`, { maxChars: 2000 }), 2000);
    const d = checked(extractFailures(`${dense}\nFATAL: the build failed at the end`, { maxChars: 2000 }), 2000);
    const oneLine = checked(extractFailures('x'.repeat(2_000_000)));
    const colons = checked(extractFailures(`Traceback (most recent call last):\n${`a.py:${'b.py:'.repeat(400)}\n`.repeat(2000)}`));

    expect(r.text).toContain('FATAL: the build failed at the end');
    expect(r.text).toContain('retrying after error 19990');
    expect(r.text).not.toContain('retrying after error 100\n');
    expect(r.text).toMatch(/^… \d+ earlier matching sections omitted/);
    expect(d.text).toContain('FATAL: the build failed at the end');
    expect(d.text).toMatch(/^… \d+ earlier lines omitted\nline \d+: error/);
    expect(oneLine.text.length).toBeGreaterThan(0);
    expect(colons.text).toContain('Traceback (most recent call last):');
  });
});

describe('several runners in one log', () => {
  test('frameworks are listed in order and failures add up', () => {
    const r = checked(extractFailures(`${logs.goVerbose.output}\n${logs.pytest.output}`));
    expect(r.framework).toBe('go,pytest');
    expect(r.failures).toBe(6);
    expect(r.text).toContain('Add(2, 2) = 0, want 4');
    expect(r.text).toContain('assert 2 == 3');
  });
});

// A large log is reduced to a bounded excerpt as it streams (excerpt.ts, activities/failureLog.ts):
// what is shown must be what the whole log gives, with memory and text bounded whatever its size.
describe('large logs: streamed through a bounded excerpt', () => {
  const CHUNK = 64 * 1024;
  /** Feeds `parts` (strings or generators of strings) to an excerpt in CHUNK pieces; never holds the whole log. */
  function excerptOf(parts: (string | (() => Iterable<string>))[]): { text: string; excerpt: LogExcerpt; fed: number } {
    const excerpt = new LogExcerpt();
    let fed = 0;
    const feed = (s: string) => {
      for (let i = 0; i < s.length; i += CHUNK) excerpt.push(s.slice(i, i + CHUNK));
      fed += s.length;
    };
    for (const p of parts) {
      if (typeof p === 'string') feed(p);
      else for (const s of p()) feed(s);
    }
    return { text: excerpt.end(), excerpt, fed };
  }
  const BUDGET = DEFAULT_EXCERPT_BUDGET.firstChars + DEFAULT_EXCERPT_BUDGET.regionChars + DEFAULT_EXCERPT_BUDGET.lastChars;
  /** About `mb` MB of passing-test progress lines, made a batch at a time. */
  const progress = (mb: number) =>
    function* () {
      let made = 0;
      for (let i = 0; made < mb * 1e6; i++) {
        const batch = Array.from({ length: 1000 }, (_, k) => `tests/test_bulk.py::test_case_${i * 1000 + k} PASSED`).join('\n') + '\n';
        made += batch.length;
        yield batch;
      }
    };
  const same = (r: FailureExtract) => ({ text: r.text, framework: r.framework, files: r.files, symbols: r.symbols, failures: r.failures });

  test('real pytest output with 40 MB of progress lines in it: the same failures as without them, from an excerpt within its budget', () => {
    const log = logs.pytest.output;
    // Where pytest prints its progress: before its first report section.
    const sectionStart = log.search(/^\S*=+ (?:ERRORS|FAILURES) =+/m);
    expect(sectionStart).toBeGreaterThan(0);
    const { text, excerpt, fed } = excerptOf([log.slice(0, sectionStart), progress(40), log.slice(sectionStart)]);
    expect(fed).toBeGreaterThan(40e6);
    expect(excerpt.chars).toBe(fed);
    expect(text.length).toBeLessThanOrEqual(BUDGET + 10 * 4000);
    expect(text).toMatch(/\n… \d+ lines omitted …\n/);
    expect(same(checked(extractFailures(text)))).toEqual(same(extractFailures(log)));
  });

  test('a flood of failure-looking lines: the regions stop at their budget, the last lines are kept', () => {
    const flood = function* () {
      for (let i = 0; i < 400; i++) yield Array.from({ length: 1000 }, (_, k) => `step ${i * 1000 + k}: error retrying`).join('\n') + '\n';
    };
    const { text, fed } = excerptOf([flood, 'FATAL: the build failed at the end\n']);
    expect(fed).toBeGreaterThan(10e6);
    expect(text.length).toBeLessThanOrEqual(BUDGET + 10 * 4000);
    expect(text).toContain('step 0: error retrying');
    expect(text).toContain('step 399999: error retrying');
    const r = checked(extractFailures(text, { maxChars: 2000 }), 2000);
    expect(r.text).toContain('FATAL: the build failed at the end');
  });

  test('a line without end is cut as it streams: the excerpt stays bounded', () => {
    const { text } = excerptOf([() => Array.from({ length: 300 }, () => 'x'.repeat(CHUNK)), '\nAssertionError: at the very end\n']);
    expect(text.length).toBeLessThan(10_000);
    expect(text).toContain('AssertionError: at the very end');
  });

  test('the real 1 MB node:test log read from a file: streamed in chunks, the same failure as from the whole string', async () => {
    const file = path.join(tmp, 'node-big.log');
    writeFileSync(file, logs.nodeBig.output);
    const r = await extractFailuresFromFile(file, { root: dirs.big });
    expect(r.excerpted).toBe(true);
    // The event loop had a turn after every 64 KiB read (an operation count, not a time).
    expect(r.chunks).toBeGreaterThanOrEqual(Math.floor(Buffer.byteLength(logs.nodeBig.output) / CHUNK));
    expect(same(checked(r))).toEqual(same(extractFailures(logs.nodeBig.output, { root: dirs.big })));
    expect(r.text).toContain('total should be three');

    // A small log is read whole, as before.
    const small = path.join(tmp, 'pytest.log');
    writeFileSync(small, logs.pytest.output);
    const s = await extractFailuresFromFile(small);
    expect(s.excerpted).toBe(false);
    expect(same(s)).toEqual(same(extractFailures(logs.pytest.output)));
  });
});
