// What the model sees and how its answer is applied, end to end: a real worker on the test dev
// server, real git repositories, the real openai SDK over HTTP to the scripted model server,
// real test processes (node, python/pytest, cmake).
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { countTokens } from '../src/activities/tokens';
import { lastUserText, type RecordedRequest } from '../scripts/demo/scriptedModelServer';
import { editText, readRequest, searchReplace, wholeFile } from './support/answers';
import { addFiles, makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

/** A slugify that passes the example repository's tests. */
const good = `// Turns a title into a URL slug.\nfunction slugify(text) {\n  return String(text).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\n\nmodule.exports = { slugify };\n`;
const user = (r: RecordedRequest) => lastUserText(r);
const system = (r: RecordedRequest) => String(r.messages.find((m) => m.role === 'system')?.content ?? '');
const repoDir = (name: string) => path.join(rig.tmp, name);
const show = (repo: string, ref: string) => simpleGit(repo).show([ref]);

/** A Python package of `n` modules that call each other, and one module that defines the target. */
function pythonRepo(n: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const dir = `pkg/area${i % 17}`;
    const next = (i + 1) % n;
    files[`${dir}/mod_${i}.py`] =
      `"""Helpers, part ${i}."""\nfrom pkg.area${next % 17}.mod_${next} import helper_${next}_a\n\n\n` +
      `def helper_${i}_a(value):\n    """Scale a value (${i})."""\n    return value * ${i + 1}\n\n\n` +
      `def helper_${i}_b(values):\n    """Sum scaled values."""\n    return sum(helper_${next}_a(v) for v in values)\n\n\n` +
      `class Record${i}:\n    def __init__(self, amount):\n        self.amount = amount\n\n    def total(self):\n        return helper_${i}_b([self.amount])\n`;
  }
  files['pkg/billing/invoice_tools.py'] =
    `"""Invoice arithmetic."""\n\n\ndef round_cents(x):\n    return round(x, 2)\n\n\n` +
    `def compute_invoice_total(items, tax_rate):\n    """Return the sum of the item prices plus tax at tax_rate (0.2 = 20%), rounded to cents."""\n    raise NotImplementedError\n`;
  files['pkg/__init__.py'] = '';
  return files;
}

test('a 500-file repository without relatedFiles: the prompt holds the file that defines the function the task names, within the context window', async () => {
  const files = pythonRepo(520);
  for (const f of Object.keys(files)) if (f.startsWith('pkg/area') && !files[`${path.dirname(f)}/__init__.py`]) files[`${path.dirname(f)}/__init__.py`] = '';
  files['pkg/billing/__init__.py'] = '';
  const repo = await makeRepo(repoDir('invoices'), files);
  expect(Object.keys(files).length).toBeGreaterThanOrEqual(500);
  const fix = searchReplace('pkg/billing/invoice_tools.py', '    raise NotImplementedError\n', '    return round_cents(sum(items) * (1 + tax_rate))\n', 'implement it');
  rig.model.script('ctx-map', [{ content: fix }]);
  const provider = rig.provider('ctx-map', { contextWindow: 8192, maxTokens: 1024 });
  const result = await rig.run({
    ...rig.task(repo, [provider]),
    task: { title: 'Implement compute_invoice_total', description: 'compute_invoice_total raises NotImplementedError; implement it as its docstring says.' },
    testCommand: ['python3', '-c', 'from pkg.billing.invoice_tools import compute_invoice_total as f; assert f([10, 5], 0.2) == 18.0'],
  });
  expect(result.status).toBe('succeeded');
  const [req] = rig.model.requestsFor('ctx-map');
  // The definition itself (signature and docstring), not just the path.
  expect(user(req)).toContain('def compute_invoice_total(items, tax_rate):');
  expect(user(req)).toContain('Return the sum of the item prices plus tax');
  // It fits: prompt tokens + the answer's room ≤ the configured window.
  expect(countTokens(system(req)) + countTokens(user(req)) + 1024).toBeLessThanOrEqual(8192);
  expect(req.body.max_tokens).toBe(1024);
  expect(result.attempts[0].promptTokens).toBeLessThanOrEqual(8192 - 1024);
});

/** About 200 KB of JavaScript with one buggy function in the middle. */
function bigFile(): { text: string; buggy: string; fixed: string } {
  const parts: string[] = ["'use strict';\n"];
  for (let i = 0; i < 2900; i++) {
    if (i === 1450) parts.push('function applyDiscount(price, pct) {\n  return price - pct;\n}\n');
    parts.push(`function f${i}(x) {\n  return x + ${i}; // padding ${'.'.repeat(20)}\n}\n`);
  }
  parts.push('module.exports = { applyDiscount, f0 };\n');
  const text = parts.join('');
  return { text, buggy: '  return price - pct;\n', fixed: '  return price * (1 - pct / 100);\n' };
}

test('a one-line fix in a 200 KB file: a whole-file rewrite of the partly shown file is refused, the SEARCH/REPLACE fix applies and leaves every other byte as it was', async () => {
  const big = bigFile();
  expect(big.text.length).toBeGreaterThan(200_000);
  const repo = await makeRepo(repoDir('bigfile'), { 'src/big.js': big.text });
  const rewritten = big.text.replace(big.buggy, big.fixed);
  rig.model.script('ctx-big', [
    { content: wholeFile('src/big.js', rewritten, 'rewrite it whole') },
    { content: searchReplace('src/big.js', `function applyDiscount(price, pct) {\n${big.buggy}`, `function applyDiscount(price, pct) {\n${big.fixed}`, 'fix the formula') },
  ]);
  const result = await rig.run({
    ...rig.task(repo, [rig.provider('ctx-big', { contextWindow: 16_000, maxTokens: 2000 })]),
    task: { title: 'Fix applyDiscount', description: 'applyDiscount(200, 10) must be 180: pct is a percentage.', relatedFiles: ['src/big.js'] },
    testCommand: ['node', '-e', "process.exit(require('./src/big.js').applyDiscount(200, 10) === 180 ? 0 : 1)"],
    push: true,
  });
  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['apply_failed', 'tests_passed']);
  const [first, second] = rig.model.requestsFor('ctx-big');
  expect(user(first)).toMatch(/### src\/big\.js \(partial: \d+ lines; shown: [^)]*\)/);
  expect(user(first)).toContain(big.buggy);
  expect(user(second)).toMatch(/shown only part of src\/big\.js/);
  const committed = await show(repo, `${result.branch}:src/big.js`);
  expect(committed).toBe(rewritten);
  expect(committed.length - big.text.length).toBe(big.fixed.length - big.buggy.length);
});

test('tolerant matching end to end: drifted blocks apply; ambiguous, non-matching blocks (one whose REPLACE is already in the file too) come back as feedback', async () => {
  const repo = await makeRepo(repoDir('tolerant'), {
    'app/greet.py': 'def greet(name):\n    if name:\n        return "Hello, " + name\n    return "Hello"\n\n\ndef shout(name):\n    if name:\n        return "Hello, " + name\n    return "HELLO"\n',
    'app/quote.js': "const label = 'It’s fine — really';\nmodule.exports = { label, level: 1 };\n",
    'app/win.txt': 'line one\r\nline two\r\n',
  });
  const ambiguous = searchReplace('app/greet.py', '    if name:\n        return "Hello, " + name\n', '    if name:\n        return "Hi, " + name\n');
  const missing = searchReplace('app/greet.py', 'def greet(person):\n    if person:\n', 'def greet(person):\n    if person is not None:\n');
  const already = searchReplace('app/win.txt', 'line zero\n', 'line one\n');
  const drifted = editText('drift', [
    // trailing spaces the file does not have, and the whole block indented by four more spaces
    { path: 'app/greet.py', action: 'edit', search: '    def shout(name):   \n        if name:\n            return "Hello, " + name\n', replace: '    def shout(name):\n        if name:\n            return "HELLO, " + name.upper()\n' },
    // straight quotes and a plain dash for the file's curly quote and em dash
    { path: 'app/quote.js', action: 'edit', search: "module.exports = { label, level: 1 };\n", replace: "module.exports = { label, level: 2 };\n" },
    // (its replacement is written as the model wrote it: double quotes, or the straight apostrophe
    // would end the string — which the syntax gate would refuse as invalid_syntax)
    { path: 'app/quote.js', action: 'edit', search: "const label = 'It's fine - really';\n", replace: "const label = \"It's fine - really!\";\n" },
    // LF lines for a CRLF file
    { path: 'app/win.txt', action: 'edit', search: 'line two\n', replace: 'line 2\n' },
  ]);
  rig.model.script('ctx-tol', [{ content: ambiguous }, { content: missing }, { content: already }, { content: drifted }]);
  const result = await rig.run({
    ...rig.task(repo, [rig.provider('ctx-tol')]),
    task: { title: 'Tidy greetings', description: 'Make shout() shout.', relatedFiles: ['app/greet.py', 'app/quote.js', 'app/win.txt'] },
    testCommand: ['python3', '-c', 'import sys; sys.path.insert(0, "app"); import greet; assert greet.shout("x") == "HELLO, X"'],
    limits: { maxAttempts: 4 },
    push: true,
  });
  expect(result.attempts.map((a) => a.outcome)).toEqual(['apply_failed', 'apply_failed', 'apply_failed', 'tests_passed']);
  const prompts = rig.model.requestsFor('ctx-tol').map(user);
  expect(prompts[1]).toMatch(/ambiguous|matches 2 places|more than one/i);
  expect(prompts[2]).toMatch(/did not match/i);
  expect(prompts[2]).toMatch(/1 \| def greet\(name\):/);
  expect(prompts[3]).toContain('block 1 (app/win.txt): SEARCH did not match. Its REPLACE lines are already in app/win.txt (lines 1-1)');
  expect(await show(repo, `${result.branch}:app/greet.py`)).toBe(
    'def greet(name):\n    if name:\n        return "Hello, " + name\n    return "Hello"\n\n\ndef shout(name):\n    if name:\n        return "HELLO, " + name.upper()\n    return "HELLO"\n',
  );
  const quote = await show(repo, `${result.branch}:app/quote.js`);
  expect(quote).toContain('level: 2');
  expect(quote).toContain('really!');
  expect(await show(repo, `${result.branch}:app/win.txt`)).toBe('line one\r\nline 2\r\n');
});

test('a model that asks for files gets them in the next request, without consuming an attempt', async () => {
  const repo = await rig.newRepo();
  // Big enough that files without definitions are not shown unasked.
  const filler: Record<string, string> = {};
  for (let i = 0; i < 45; i++) filler[`lib/part${i}.js`] = `function part${i}() {\n  return ${i};\n}\nmodule.exports = { part${i} };\n`;
  await addFiles(repo, { ...filler, 'docs/NOTES.md': 'Slugs must be ASCII: NOTES-MARKER-5521\n' });
  rig.model.script('ctx-read', [
    { content: readRequest(['docs/NOTES.md'], 'I need to see the notes first.') },
    { content: wholeFile('src/slugify.js', good, 'implement slugify') },
  ]);
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-read')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].fileRequests).toEqual([['docs/NOTES.md']]);
  expect(result.attempts[0].calls.map((c) => c.outcome)).toEqual(['needs_files', 'ok']);
  const [first, second] = rig.model.requestsFor('ctx-read');
  expect(user(first)).not.toContain('NOTES-MARKER-5521');
  expect(user(second)).toContain('### docs/NOTES.md\n```md\nSlugs must be ASCII: NOTES-MARKER-5521');
});

test('READ by range, symbol and search: served in the next request, without consuming an attempt', async () => {
  const repo = await rig.newRepo();
  const filler: Record<string, string> = {};
  for (let i = 0; i < 45; i++) filler[`lib/part${i}.js`] = `function part${i}() {\n  return ${i};\n}\nmodule.exports = { part${i} };\n`;
  const big = Array.from({ length: 400 }, (_, i) => `row-${i + 1}-end`).join('\n') + '\n';
  const shapes =
    `"""Shapes."""\n\n\nclass Square:\n    def __init__(self, s):\n        self.s = s\n\n    def area(self):\n        return self.s * self.s  # SQUARE-AREA-BODY\n\n\n` +
    `class Circle:\n    def __init__(self, r):\n        self.r = r\n\n    # The disc's area.\n    def area(self):\n        return 3.14159 * self.r * self.r  # CIRCLE-AREA-BODY\n\n    def perimeter(self):\n        return 2 * 3.14159 * self.r  # CIRCLE-PERIMETER-BODY\n`;
  await addFiles(repo, {
    ...filler,
    'data/big.txt': big,
    'geo/shapes.py': shapes,
    'docs/a.md': 'Intro\nsee GREP-MARKER-77 here\n',
    'docs/b.txt': 'GREP-MARKER-88 (not in the glob)\n',
    '.env': 'GREP-MARKER-99=hunter2\n',
  });
  const asked = ['data/big.txt:120-130', 'geo/shapes.py#Circle.area', 'geo/shapes.py#Hexagon', 'grep: GREP-MARKER-\\d+ in docs/*.md', 'grep: GREP-MARKER-99'];
  rig.model.script('ctx-read-parts', [{ content: readRequest(asked, 'Let me look around.') }, { content: wholeFile('src/slugify.js', good, 'implement slugify') }]);
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-read-parts')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].fileRequests).toEqual([asked]);
  expect(result.attempts[0].calls.map((c) => c.outcome)).toEqual(['needs_files', 'ok']);
  const [first, second] = rig.model.requestsFor('ctx-read-parts');
  expect(user(first)).not.toContain('row-120-end');
  expect(user(first)).not.toContain('docs/a.md:2:');
  const text = user(second);
  // The range: those lines, numbered, and no others.
  expect(text).toContain('### data/big.txt (partial, as asked: lines 120-130: 400 lines; shown: 120-130;');
  expect(text).toContain(`@@ lines 120-130 @@\n${Array.from({ length: 11 }, (_, i) => `row-${120 + i}-end`).join('\n')}\n`);
  expect(text).not.toContain('row-119-end');
  expect(text).not.toContain('row-131-end');
  // The symbol: Circle's area (with its comment), not Square's.
  expect(text).toMatch(/### geo\/shapes\.py \(partial, as asked: Circle\.area at lines 17-18/);
  expect(text).toContain("    # The disc's area.\n    def area(self):\n        return 3.14159 * self.r * self.r  # CIRCLE-AREA-BODY\n");
  expect(text).toMatch(/### geo\/shapes\.py#Hexagon \(symbol not found in geo\/shapes\.py \(definitions there: [^)]*Circle/);
  // The search: matches with paths and line numbers, in the glob only; a secret file is not searched.
  expect(text).toContain('docs/a.md:2: see GREP-MARKER-77 here');
  expect(text).not.toContain('GREP-MARKER-88');
  expect(text).not.toContain('hunter2');
  expect(text).toMatch(/### grep: GREP-MARKER-99 \(0 matches/);
});

test('an answer cut off at the output limit is a truncated outcome, retried with feedback', async () => {
  const repo = await rig.newRepo();
  const whole = wholeFile('src/slugify.js', good, 'implement slugify');
  rig.model.script('ctx-trunc', [{ content: whole.slice(0, whole.length - 40), finishReason: 'length' }, { content: whole }]);
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-trunc')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['truncated', 'tests_passed']);
  expect(result.attempts[0].calls[0].outcome).toBe('truncated');
  const [, second] = rig.model.requestsFor('ctx-trunc');
  expect(user(second)).toMatch(/cut off/);
  expect(user(second)).toMatch(/smaller, targeted SEARCH\/REPLACE edits/);
});

test('a reasoning model gets max_completion_tokens, not max_tokens; a streamed answer is booked once', async () => {
  const repo = await rig.newRepo();
  rig.model.script('o4-mini', [{ content: wholeFile('src/slugify.js', good), usage: { prompt_tokens: 1200, completion_tokens: 300 } }]);
  const result = await rig.run(rig.task(repo, [rig.provider('o4-mini', { id: 'reasoner', stream: true })]));
  expect(result.reason).toMatch(/tests passed/);
  const [req] = rig.model.requestsFor('o4-mini');
  expect(req.body.max_completion_tokens).toBe(16_384);
  expect(req.body).not.toHaveProperty('max_tokens');
  expect(req.body.stream).toBe(true);
  expect(req.body.stream_options).toEqual({ include_usage: true });
  expect(result.usage).toMatchObject({ calls: 1, tokensIn: 1200, tokensOut: 300 });
});

test('new file content with fences and edit-block markers applies byte-exactly', async () => {
  const repo = await rig.newRepo();
  const doc = [
    '# The edit format',
    '',
    '```python',
    'path/to/file.py',
    '<<<<<<< SEARCH',
    'old',
    '=======',
    'new',
    '>>>>>>> REPLACE',
    '```',
    '',
    '````',
    '>>>>>>> FILE',
    '<<<<<<< READ',
    '````',
    'no newline at the end',
  ].join('\n');
  rig.model.script('ctx-fence', [
    {
      content: editText('document the format and implement slugify', [
        { path: 'docs/FORMAT.md', action: 'write', content: doc },
        { path: 'src/slugify.js', action: 'write', content: good },
      ]),
    },
  ]);
  // A provider that writes whole files gets that format's instructions.
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-fence', { editFormat: 'whole' })], { push: true }));
  expect(result.status).toBe('succeeded');
  const [req] = rig.model.requestsFor('ctx-fence');
  expect(system(req)).toContain('its COMPLETE new content in a FILE block');
  expect(system(req)).not.toContain('Rules for SEARCH/REPLACE blocks');
  expect(await show(repo, `${result.branch}:docs/FORMAT.md`)).toBe(doc);
});

test('a CMake project whose target takes its name from its folder builds and passes in its workspace', async () => {
  const repo = await makeRepo(repoDir('leap-year'), {
    'CMakeLists.txt': [
      'cmake_minimum_required(VERSION 3.14)',
      'get_filename_component(exercise ${CMAKE_CURRENT_SOURCE_DIR} NAME)',
      'string(REPLACE "-" "_" file ${exercise})',
      'project(${exercise} CXX)',
      'add_executable(${exercise} ${file}.cpp ${file}_test.cpp)',
      '',
    ].join('\n'),
    'leap_year.h': '#pragma once\nbool is_leap_year(int year);\n',
    'leap_year.cpp': '#include "leap_year.h"\n\nbool is_leap_year(int year) {\n    return year % 4 == 0;\n}\n',
    'leap_year_test.cpp':
      '#include "leap_year.h"\n#include <cstdio>\nint main() {\n    if (!is_leap_year(2000) || is_leap_year(1900) || !is_leap_year(2024) || is_leap_year(2023)) { std::puts("FAIL: is_leap_year(1900) must be false"); return 1; }\n    std::puts("ok");\n    return 0;\n}\n',
  });
  rig.model.script('ctx-cmake', [
    { content: searchReplace('leap_year.cpp', '    return year % 4 == 0;\n', '    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;\n', 'centuries') },
  ]);
  const result = await rig.run({
    ...rig.task(repo, [rig.provider('ctx-cmake')]),
    task: { title: 'Fix is_leap_year', description: 'Centuries are leap years only when divisible by 400.', relatedFiles: ['leap_year.cpp'] },
    // The target (and the binary) is named after the checkout folder: it must be "leap-year".
    testCommand: 'cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build >/dev/null && ./build/leap-year',
    limits: { testTimeoutSec: 240 },
    push: true,
  });
  expect(result.status).toBe('succeeded');
  expect(result.attempts[0].tests?.tail).toContain('ok');
  // The commit holds the change, not the build tree the tests left behind.
  const tree = await simpleGit(repo).raw(['ls-tree', '-r', '--name-only', result.branch]);
  expect(tree.split('\n').filter(Boolean).sort()).toEqual(['CMakeLists.txt', 'leap_year.cpp', 'leap_year.h', 'leap_year_test.cpp']);
  expect(result.warnings?.join('\n')).toMatch(/not committed \(the run wrote or changed them after the change applied\): build\//);
});

test('retry feedback carries the failing assertion of a pytest run', async () => {
  const repo = await makeRepo(repoDir('calc'), {
    'calc.py': 'def add(a, b):\n    return a - b\n',
    'tests/test_calc.py': 'from calc import add\n\n\ndef test_add_small():\n    assert add(2, 3) == 5\n',
    'tests/__init__.py': '',
  });
  rig.model.script('ctx-pytest', [
    { content: searchReplace('calc.py', '    return a - b\n', '    return a * b\n', 'multiply') },
    { content: searchReplace('calc.py', '    return a - b\n', '    return a + b\n', 'add') },
  ]);
  const result = await rig.run({
    ...rig.task(repo, [rig.provider('ctx-pytest')]),
    task: { title: 'Fix add', description: 'add(a, b) must return the sum.', relatedFiles: ['calc.py'] },
    testCommand: ['python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider'],
  });
  expect(result.status).toBe('succeeded');
  const [, second] = rig.model.requestsFor('ctx-pytest');
  expect(user(second)).toMatch(/assert 6 == 5/);
  expect(user(second)).toContain('test_add_small');
  // The failed change itself is shown too.
  expect(user(second)).toMatch(/-\s+return a - b\n\+\s+return a \* b/);
});

test('retry feedback carries the failing assertion of a node:test run whose output is 1 MB', async () => {
  const repo = await rig.newRepo();
  // A noisy suite: a megabyte of passing-test output around the failure.
  const noisy = `const test = require('node:test');\nfor (let i = 0; i < 40; i++) test('noise ' + i, () => { console.log(('chatter ' + i + ' ').repeat(3300)); });\n`;
  const naive = `// Turns a title into a URL slug.\nfunction slugify(text) {\n  return String(text).trim().toLowerCase().replace(/ +/g, '-');\n}\n\nmodule.exports = { slugify };\n`;
  await makeRepo(repo, {
    'package.json': '{"name":"noisy","private":true}\n',
    'src/slugify.js': "function slugify(text) {\n  throw new Error('not implemented');\n}\nmodule.exports = { slugify };\n",
    'test/a-noise.test.js': noisy,
    'test/slugify.test.js': "const test = require('node:test');\nconst assert = require('node:assert');\nconst { slugify } = require('../src/slugify');\ntest('drops accents', () => { assert.strictEqual(slugify('Déjà vu!'), 'deja-vu'); });\n",
    'test/z-noise.test.js': noisy,
  });
  rig.model.script('ctx-node', [{ content: wholeFile('src/slugify.js', naive) }, { content: wholeFile('src/slugify.js', good) }]);
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-node')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts[0].tests!.log!.bytes).toBeGreaterThan(1_000_000);
  const [, second] = rig.model.requestsFor('ctx-node');
  expect(user(second)).toContain('Expected values to be strictly equal');
  expect(user(second)).toContain("+ 'déjà-vu!'\n    - 'deja-vu'");
  expect(user(second)).toContain('drops accents');
  expect(countTokens(user(second))).toBeLessThan(20_000);
});

test('consensus votes on the files the answers produce: a SEARCH/REPLACE and a whole-file answer that agree win; Python differing only in indentation does not', async () => {
  const repo = await makeRepo(repoDir('vote'), {
    'calc.py': 'def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n',
  });
  const fixed = 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n';
  // Same resulting file, written two ways (and with trailing spaces in the whole-file one).
  // The agreeing pair answers after the odd one out: a quorum stops the vote early and would
  // cancel a slower third call before it could be compared.
  rig.model.script('v-edit', [{ content: searchReplace('calc.py', 'def add(a, b):\n    return a - b\n', 'def add(a, b):\n    return a + b\n'), delayMs: 400 }]);
  rig.model.script('v-whole', [{ content: wholeFile('calc.py', fixed.replace('a + b', 'a + b   ')), delayMs: 600 }]);
  // Same tokens, other indentation: another program in Python.
  rig.model.script('v-indent', [{ content: wholeFile('calc.py', fixed.replace('    return a + b', '        return a + b').replace('def add(a, b):\n', 'def add(a, b):\n  if True:\n')) }]);
  const result = await rig.run({
    ...rig.task(repo, ['v-indent', 'v-edit', 'v-whole'].map((m) => rig.provider(m))),
    task: { title: 'Fix add', description: 'add must add.', relatedFiles: ['calc.py'] },
    testCommand: ['python3', '-c', 'import calc; assert calc.add(2, 3) == 5'],
    strategy: { mode: 'consensus', quorum: 2 },
  });
  expect(result.status).toBe('succeeded');
  const sel = result.attempts[0].selection!;
  expect(sel.chosen).toBe('v-edit');
  expect(sel.voteShare).toBeCloseTo(2 / 3, 5);
  expect(sel.alternatives?.map((a) => a.provider)).toEqual(['v-indent']);
  const digests = Object.fromEntries(result.attempts[0].calls.map((c) => [c.provider, c.changeDigest]));
  expect(digests['v-edit']).toBe(digests['v-whole']);
  expect(digests['v-indent']).not.toBe(digests['v-edit']);
});

test('apply feedback stays bounded: thirty failing blocks against a file with a 300 KB line end as an outcome, not a payload error', async () => {
  const repo = await makeRepo(repoDir('longline'), { 'data/blob.js': `module.exports = '${'z'.repeat(300_000)}';\n` });
  const blocks = Array.from({ length: 30 }, (_, i) => ({ path: 'data/blob.js', action: 'edit' as const, search: `module.exports = 'y${i}';\n`, replace: `module.exports = 'w${i}';\n` }));
  rig.model.script('ctx-long', [{ content: editText('many misses', blocks) }]);
  const result = await rig.run({
    ...rig.task(repo, [rig.provider('ctx-long')]),
    task: { title: 'Edit the blob', description: 'Change it.', relatedFiles: ['data/blob.js'] },
    testCommand: ['true'],
    limits: { maxAttempts: 1 },
    decomposition: 'never',
  });
  expect(result.status).toBe('failed');
  expect(result.attempts[0].outcome).toBe('apply_failed');
  expect(result.attempts[0].detail!.length).toBeLessThanOrEqual(1000);
  expect(JSON.stringify(result).length).toBeLessThan(200_000);
});

test('a streamed answer cut off by the connection (no finish_reason) is not applied: the call fails as network (booked as a cut) and is retried', async () => {
  const repo = await rig.newRepo();
  const answer = wholeFile('src/slugify.js', good, 'implement slugify');
  rig.model.script('ctx-cut', [{ content: answer, chunks: 8, endStreamAfter: 4 }, { content: answer }]);
  const result = await rig.run(rig.task(repo, [rig.provider('ctx-cut', { stream: true })], { strategy: { retry: { maxTries: 3, initialIntervalMs: 10, maxIntervalMs: 20 } } }));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].calls.map((c) => [c.outcome, c.errorFamily])).toEqual([
    ['cut', 'network'],
    ['ok', undefined],
  ]);
  expect(rig.model.requestsFor('ctx-cut').every((r) => r.body.stream === true)).toBe(true);
});
