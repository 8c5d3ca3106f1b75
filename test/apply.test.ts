import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyChangeSet, checkPathSyntax, lazyElision, previewChangeSet, validateChangePath } from '../src/activities/apply';
import { editblock } from '../src/domain/editformats';
import type { ChangeSet, FileChange } from '../src/domain/schema';

let base: string;
let ws: string;
let outside: string;

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-apply-'));
  ws = path.join(base, 'ws');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(ws, '.git', 'hooks'), { recursive: true });
  writeFileSync(path.join(ws, '.git', 'config'), '[core]\n');
  mkdirSync(path.join(ws, 'src'));
  writeFileSync(path.join(ws, 'src', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(path.join(ws, 'README.md'), '# hi\n');
  mkdirSync(outside);
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const cs = (...files: FileChange[]): ChangeSet => ({ summary: 'test change', files });
const read = (rel: string) => readFileSync(path.join(ws, rel), 'utf8');
const write = (p: string, content: string): FileChange => ({ path: p, action: 'write', content });
const edit = (p: string, search: string, replace: string): FileChange => ({ path: p, action: 'edit', search, replace });
/** The per-block errors, without the closing "Nothing was written…" line. */
const blockErrors = (errors: string[]) => errors.filter((e) => !e.startsWith('Nothing was written'));

/** Every file under `dir` (relative), for "nothing was written" checks. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[path.relative(dir, p)] = '<symlink>';
      else if (st.isDirectory()) {
        out[`${path.relative(dir, p)}/`] = '<dir>';
        walk(p);
      } else out[path.relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe('applyChangeSet: happy path', () => {
  it('writes, edits and deletes files, creating parent directories, in answer order', async () => {
    const r = await applyChangeSet(
      ws,
      cs(
        write('src/new/deep/b.ts', 'export const b = 2;\n'),
        edit('src/a.ts', 'export const a = 1;\n', 'export const a = 42;\n'),
        { path: 'README.md', action: 'delete' },
      ),
    );
    expect(r).toEqual({ applied: true, files: ['src/new/deep/b.ts', 'src/a.ts', 'README.md'], errors: [], notes: [] });
    expect(read('src/new/deep/b.ts')).toBe('export const b = 2;\n');
    expect(read('src/a.ts')).toBe('export const a = 42;\n');
    expect(existsSync(path.join(ws, 'README.md'))).toBe(false);
  });

  it('applies several edits of one file one after the other', async () => {
    writeFileSync(path.join(ws, 'src', 'm.py'), 'def f():\n    return 1\n\ndef g():\n    return 2\n');
    const r = await applyChangeSet(
      ws,
      cs(edit('src/m.py', '    return 1\n', '    return 10\n'), edit('src/m.py', 'def g():\n    return 2\n', 'def g():\n    return f() + 2\n'), edit('src/m.py', 'return 10\n', 'return 11\n')),
    );
    expect(r.errors).toEqual([]);
    expect(r.files).toEqual(['src/m.py']);
    expect(read('src/m.py')).toBe('def f():\n    return 11\n\ndef g():\n    return f() + 2\n');
  });

  it('allows a whole rewrite of a small file shown whole, and normalises ./ and // in paths', async () => {
    const r = await applyChangeSet(ws, cs(write('./src//a.ts', 'replaced\n')), { shown: { 'src/a.ts': 'whole' } });
    expect(r.applied).toBe(true);
    expect(r.files).toEqual(['src/a.ts']);
    expect(read('src/a.ts')).toBe('replaced\n');
  });

  it('keeps the mode of an edited file (e.g. an executable script)', async () => {
    writeFileSync(path.join(ws, 'run.sh'), '#!/bin/sh\n');
    chmodSync(path.join(ws, 'run.sh'), 0o755);
    const r = await applyChangeSet(ws, cs(edit('run.sh', '#!/bin/sh\n', '#!/bin/sh\necho hi\n')));
    expect(r.applied).toBe(true);
    expect(read('run.sh')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(path.join(ws, 'run.sh')).mode & 0o777).toBe(0o755);
  });

  it('accepts a symlinked directory that stays inside the workspace', async () => {
    symlinkSync(path.join(ws, 'src'), path.join(ws, 'srclink'));
    const r = await applyChangeSet(ws, cs(write('srclink/c.ts', 'c\n')));
    expect(r.errors).toEqual([]);
    expect(read('src/c.ts')).toBe('c\n');
  });

  it('does not write through a hard link shared with a file outside', async () => {
    writeFileSync(path.join(outside, 'shared.txt'), 'outside content\n');
    linkSync(path.join(outside, 'shared.txt'), path.join(ws, 'shared.txt'));
    const r = await applyChangeSet(ws, cs(edit('shared.txt', 'outside content\n', 'new\n')));
    expect(r.applied).toBe(true);
    expect(read('shared.txt')).toBe('new\n');
    expect(readFileSync(path.join(outside, 'shared.txt'), 'utf8')).toBe('outside content\n');
  });

  it('an empty SEARCH creates a new file (and only a new one)', async () => {
    const r = await applyChangeSet(ws, cs(edit('src/new.py', '', 'x = 1\n')));
    expect(r.applied).toBe(true);
    expect(read('src/new.py')).toBe('x = 1\n');
    const again = await applyChangeSet(ws, cs(edit('src/a.ts', '', 'other\n')));
    expect(again.applied).toBe(false);
    expect(again.errors[0]).toBe(
      'block 1 (src/a.ts): the SEARCH part is empty, but src/a.ts already exists: use a FILE block only for a new file; to change src/a.ts, give the exact lines to replace in SEARCH',
    );
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
  });
});

describe('applyChangeSet: plain-text answers end to end', () => {
  it('an answer whose new file content holds fences and edit-block markers applies byte-exactly', async () => {
    const content = [
      '# Usage',
      '',
      '```python',
      '<<<<<<< SEARCH',
      'old',
      '=======',
      'new',
      '>>>>>>> REPLACE',
      '```',
      '',
      '````markdown',
      '```rust compile_fail',
      'let x: i32 = "no";',
      '```',
      '````',
      '>>>>>>> FILE',
      'Heading',
      '=======',
      '',
    ].join('\n');
    const answer = editblock.render(cs(write('docs/USAGE.md', content), edit('README.md', '# hi\n', '# hi\n\nSee docs/USAGE.md.\n')));
    const parsed = editblock.parse(answer);
    if (!parsed.ok) throw new Error(parsed.error);
    const r = await applyChangeSet(ws, parsed.value as ChangeSet);
    expect(r.errors).toEqual([]);
    expect(readFileSync(path.join(ws, 'docs', 'USAGE.md'))).toEqual(Buffer.from(content, 'utf8'));
    expect(read('README.md')).toBe('# hi\n\nSee docs/USAGE.md.\n');
  });

  /** What the generate-then-apply path does with a model's text: parse it, and apply only what parsed. */
  async function applyAnswer(text: string): Promise<{ parseError?: string; applied?: Awaited<ReturnType<typeof applyChangeSet>> }> {
    const parsed = editblock.parse(text);
    if (!parsed.ok) return { parseError: parsed.error };
    return { applied: await applyChangeSet(ws, parsed.value as ChangeSet) };
  }

  const realFix = ['src/a.ts', '<<<<<<< SEARCH', 'export const a = 1;', '=======', 'export const a = 2;', '>>>>>>> REPLACE'];

  it.each([
    ['Add the helper (needs Node 18.x):', '18.x'],
    ['See README.md for details.', 'README.md'],
    ['And in the test file:', undefined],
  ])('prose %j before a FILE block is no path: nothing is written, and the error names block 2 without a path', async (prose, lure) => {
    const before = snapshot(base);
    const text = ['Fix a.', '', ...realFix, '', prose, '<<<<<<< FILE', 'helper = 1', '>>>>>>> FILE', ''].join('\n');
    const r = await applyAnswer(text);
    expect(r.applied).toBeUndefined();
    expect(r.parseError).toBe(
      `block 2: the line before it (${JSON.stringify(prose)}) is not a path line: put the file's path alone on the line just before \`<<<<<<< FILE\` (only the path, in backticks if it has spaces; not a sentence, no trailing ':'; every block needs its own, even for the same file as the block before)`,
    );
    expect(snapshot(base)).toEqual(before);
    if (lure) expect(existsSync(path.join(ws, lure))).toBe(lure === 'README.md');
    expect(read('README.md')).toBe('# hi\n');
  });

  it('a block after prose is not given the previous block\'s path', async () => {
    const before = snapshot(base);
    const text = ['Fix a.', '', ...realFix, '', 'And in the test file:', '', '<<<<<<< SEARCH', 'export const a = 2;', '=======', 'export const a = 3;', '>>>>>>> REPLACE', ''].join('\n');
    const r = await applyAnswer(text);
    expect(r.parseError).toMatch(/^block 2: the line before it is blank, not its path line: put the file's path alone/);
    expect(snapshot(base)).toEqual(before);
  });

  it('a one-line fix in a 200 KB file leaves every other byte identical', async () => {
    const lines: string[] = [];
    for (let i = 0; lines.length < 6500; i++) {
      lines.push(`export function f${i}(a: number, b: number): number {`, `  // step ${i} of the generated module, with a long comment to fill the file up to size`, `  return a * ${i} + b;`, '}', '');
    }
    const original = `${lines.join('\n')}\n`;
    expect(original.length).toBeGreaterThan(200_000);
    writeFileSync(path.join(ws, 'src', 'big.ts'), original);
    const r = await applyChangeSet(ws, cs(edit('src/big.ts', 'export function f321(a: number, b: number): number {\n  // step 321 of the generated module, with a long comment to fill the file up to size\n  return a * 321 + b;\n', 'export function f321(a: number, b: number): number {\n  // step 321 of the generated module, with a long comment to fill the file up to size\n  return a * 321 - b;\n')));
    expect(r.errors).toEqual([]);
    const after = readFileSync(path.join(ws, 'src', 'big.ts'));
    const before = Buffer.from(original);
    expect(after.length).toBe(before.length);
    const diff = [...after.keys()].filter((k) => after[k] !== before[k]);
    expect(diff).toEqual([original.indexOf('a * 321 + b') + 'a * 321 '.length]);
  });
});

describe('applyChangeSet: tolerant matching', () => {
  it('applies trailing-space drift, an indentation shift, a CRLF file and curly quotes, noting the level', async () => {
    writeFileSync(path.join(ws, 'src', 'ws.py'), 'def f():   \n    return 1  \n');
    writeFileSync(path.join(ws, 'src', 'cls.py'), 'class A:\n    def m(self):\n        return 1\n');
    writeFileSync(path.join(ws, 'src', 'win.txt'), 'alpha\r\nbeta\r\ngamma\r\n');
    writeFileSync(path.join(ws, 'src', 'q.js'), "const msg = 'it's done';\n");
    const r = await applyChangeSet(
      ws,
      cs(
        edit('src/ws.py', 'def f():\n    return 1\n', 'def f():\n    return 2\n'),
        edit('src/cls.py', 'def m(self):\n    return 1\n', 'def m(self):\n    return 2\n'),
        edit('src/win.txt', 'beta\n', 'BETA\nbeta2\n'),
        edit('src/q.js', 'const msg = \u2018it\u2019s done\u2019;\n', "const msg = 'it is done';\n"),
      ),
    );
    expect(r.errors).toEqual([]);
    expect(read('src/ws.py')).toBe('def f():   \n    return 2\n');
    expect(read('src/cls.py')).toBe('class A:\n    def m(self):\n        return 2\n');
    expect(read('src/win.txt')).toBe('alpha\r\nBETA\r\nbeta2\r\ngamma\r\n');
    expect(read('src/q.js')).toBe("const msg = 'it is done';\n");
    expect(r.notes).toEqual([
      'block 1 (src/ws.py): matched ignoring trailing whitespace at lines 1-2',
      'block 2 (src/cls.py): matched with a uniform indentation shift at lines 2-3',
      'block 3 (src/win.txt): matched after normalising line endings, quotes, dashes and spaces at lines 2-2',
      'block 4 (src/q.js): matched after normalising line endings, quotes, dashes and spaces at lines 1-1',
    ]);
  });

  it('refuses an ambiguous block with the candidate lines', async () => {
    writeFileSync(path.join(ws, 'src', 'dup.py'), 'x = 0\nreset()\ny = 1\nreset()\n');
    const r = await applyChangeSet(ws, cs(edit('src/dup.py', 'reset()\n', 'reset(True)\n')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toBe('block 1 (src/dup.py): SEARCH matches 2 places in src/dup.py, starting at lines 2, 4: add surrounding lines to make it unique');
    expect(read('src/dup.py')).toBe('x = 0\nreset()\ny = 1\nreset()\n');
  });

  it('refuses a block that does not match, showing the closest lines with their numbers', async () => {
    writeFileSync(path.join(ws, 'src', 'calc.py'), 'import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\ndef other():\n    pass\n');
    const r = await applyChangeSet(ws, cs(edit('src/calc.py', 'def area(radius):\n    return 3.14 * radius ** 2\n', 'x\n')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toBe(
      'block 1 (src/calc.py): SEARCH did not match. Closest lines in src/calc.py (4-5):\n    4 | def area(r):\n    5 |     return math.pi * r * r\n' +
        'SEARCH must copy the existing lines exactly (whitespace, comments and all), without line numbers.',
    );
  });

  it('a block whose SEARCH does not match fails even when its REPLACE text is in the file, with Aider\'s hint', async () => {
    // The reviewed case: the block is meant for g(); f() already has its replacement line.
    const before = 'def f(x, y):\n    return compute(x, y)\n\n\ndef g(x, y):\n    return compute(y, x)  # TODO fix the order\n';
    writeFileSync(path.join(ws, 'src', 'calc.py'), before);
    const r = await applyChangeSet(
      ws,
      cs(edit('src/a.ts', 'export const a = 1;\n', 'export const a = 2;\n'), edit('src/calc.py', '    return compute(y, x)  # TODO: fix the order\n', '    return compute(x, y)\n')),
    );
    expect(r.applied).toBe(false);
    expect(r.files).toEqual([]);
    expect(r.notes).toEqual([]);
    expect(r.errors).toEqual([
      'block 2 (src/calc.py): SEARCH did not match. Its REPLACE lines are already in src/calc.py (lines 2-2): are you sure you need this block? If the change it makes is still needed elsewhere, give the lines of that place in SEARCH. ' +
        'Closest lines in src/calc.py (6-6):\n    6 |     return compute(y, x)  # TODO fix the order\n' +
        'SEARCH must copy the existing lines exactly (whitespace, comments and all), without line numbers.',
      'Nothing was written (all or nothing): block 1 would have applied. Fix the failed blocks and send all the blocks again.',
    ]);
    expect(read('src/calc.py')).toBe(before);
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
  });

  it('an unmatched block whose REPLACE is in the file is a failure on its own too: nothing is "already applied"', async () => {
    writeFileSync(path.join(ws, 'src', 'done.py'), 'LIMIT = 10\n');
    const r = await applyChangeSet(ws, cs(edit('src/done.py', 'LIMIT = 5\n', 'LIMIT = 10\n')));
    expect(r.applied).toBe(false);
    expect(blockErrors(r.errors)).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^block 1 \(src\/done\.py\): SEARCH did not match\. Its REPLACE lines are already in src\/done\.py \(lines 1-1\): are you sure you need this block\?/);
    expect(r.errors.join('\n')).not.toMatch(/already applied/);
  });

  it('skips a block that changes nothing (SEARCH and REPLACE identical) with a note, while the others apply', async () => {
    writeFileSync(path.join(ws, 'src', 'done.py'), 'LIMIT = 10\n');
    const r = await applyChangeSet(ws, cs(edit('src/done.py', 'LIMIT = 10\n', 'LIMIT = 10\n'), edit('src/a.ts', 'export const a = 1;\n', 'export const a = 2;\n')));
    expect(r.applied).toBe(true);
    expect(r.errors).toEqual([]);
    expect(r.files).toEqual(['src/a.ts']);
    expect(r.notes).toEqual(['block 1 (src/done.py): changes nothing (its SEARCH and REPLACE are identical); skipped']);
    expect(read('src/a.ts')).toBe('export const a = 2;\n');
  });

  it('a change set whose every block changes nothing is not applied, and says so', async () => {
    const r = await applyChangeSet(ws, cs(edit('src/a.ts', 'export const a = 1;\n', 'export const a = 1;\n')));
    expect(r.applied).toBe(false);
    expect(r.errors).toEqual([
      'no block changes anything (block 1: the files already have exactly this content), so nothing would change; look for what else makes the tests fail',
    ]);
  });

  it('a failed apply never counts a skipped block as applied: each failed block is named, the skipped one is said to change nothing', async () => {
    writeFileSync(path.join(ws, 'src', 'x.py'), 'a = 1\nb = 2\n');
    const r = await applyChangeSet(
      ws,
      cs(
        edit('src/x.py', 'a = 1\n', 'a = 1\n'),
        edit('src/x.py', 'c = 3\n', 'b = 2\n'),
        edit('src/a.ts', 'export const a = 1;\n', 'export const a = 2;\n'),
        edit('src/x.py', 'nothing like it at all\n', 'zzz\n'),
      ),
    );
    expect(r.applied).toBe(false);
    const failed = blockErrors(r.errors);
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatch(/^block 2 \(src\/x\.py\): SEARCH did not match\. Its REPLACE lines are already in src\/x\.py \(lines 2-2\)/);
    expect(failed[1]).toMatch(/^block 4 \(src\/x\.py\): SEARCH did not match/);
    expect(r.errors[r.errors.length - 1]).toBe(
      'Nothing was written (all or nothing): block 3 would have applied; block 1 changes nothing. Fix the failed blocks and send all the blocks again.',
    );
    expect(read('src/x.py')).toBe('a = 1\nb = 2\n');
  });

  it('a tolerant match writes the replacement\'s blank and whitespace-only lines as given', async () => {
    // Trailing spaces on line 1 make this a tolerant match; line 2 is four spaces, line 4 is empty.
    writeFileSync(path.join(ws, 'src', 'w.py'), 'def f():  \n    \n    x = 1\n\n    return x\n');
    const r = await applyChangeSet(ws, cs(edit('src/w.py', 'def f():\n\n    x = 1\n\n    return x\n', 'def f():\n\n    x = 2\n    \n    return x\n')));
    expect(r.errors).toEqual([]);
    expect(r.notes).toEqual(['block 1 (src/w.py): matched ignoring trailing whitespace at lines 1-5']);
    expect(read('src/w.py')).toBe('def f():  \n\n    x = 2\n    \n    return x\n');
  });
});

describe('applyChangeSet: all or nothing', () => {
  it('one bad block: nothing written, and the feedback names the blocks that would have applied', async () => {
    const before = snapshot(base);
    const r = await applyChangeSet(
      ws,
      cs(
        edit('src/a.ts', 'export const a = 1;\n', 'export const a = 2;\n'),
        edit('README.md', 'no such line\n', 'x\n'),
        write('src/c.ts', 'c\n'),
      ),
    );
    expect(r.applied).toBe(false);
    expect(r.files).toEqual([]);
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toMatch(/^block 2 \(README\.md\): SEARCH did not match/);
    expect(r.errors[1]).toBe('Nothing was written (all or nothing): blocks 1 and 3 would have applied. Fix the failed blocks and send all the blocks again.');
    expect(snapshot(base)).toEqual(before);
  });

  it('a later block sees the earlier blocks of its file; its closest lines say so', async () => {
    const r = await applyChangeSet(ws, cs(edit('src/a.ts', 'export const a = 1;\n', 'export const a = 2;\n'), edit('src/a.ts', 'export const a = 1;\n', 'x\n')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^block 2 \(src\/a\.ts\): SEARCH did not match. Closest lines in src\/a\.ts \(as it is after block 1\) \(1-1\):\n {4}1 \| export const a = 2;/);
  });
});

describe('applyChangeSet: whole rewrites and test files', () => {
  it('refuses a whole rewrite of a file shown only in part, or not shown, or too large', async () => {
    const big = 'x'.repeat(25_000);
    writeFileSync(path.join(ws, 'src', 'big.ts'), big);
    const partial = await applyChangeSet(ws, cs(write('src/a.ts', 'half\n')), { shown: { 'src/a.ts': 'partial' } });
    expect(partial.errors[0]).toBe('block 1 (src/a.ts): you were shown only part of src/a.ts: a whole-file rewrite would lose the rest; use SEARCH/REPLACE blocks');
    const unseen = await applyChangeSet(ws, cs(write('src/a.ts', 'half\n')));
    expect(unseen.errors[0]).toMatch(/^block 1 \(src\/a\.ts\): src\/a\.ts already exists and you were not shown it: .*use SEARCH\/REPLACE blocks, or ask for it with READ$/);
    const tooBig = await applyChangeSet(ws, cs(write('src/big.ts', 'y\n')), { shown: { 'src/big.ts': 'whole' } });
    expect(tooBig.errors[0]).toBe('block 1 (src/big.ts): src/big.ts is 25000 bytes, too large for a whole-file rewrite (at most 20000); use SEARCH/REPLACE blocks');
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
    expect(read('src/big.ts')).toBe(big);
  });

  it('a FILE block must be the only block of its file', async () => {
    const r = await applyChangeSet(ws, cs(write('x.txt', '1\n'), write('./x.txt', '2\n')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toBe('block 2 (./x.txt): block 1 already changes x.txt: a FILE block must be the only block of its file (put every change of it in that one block)');
    expect(existsSync(path.join(ws, 'x.txt'))).toBe(false);
    // Edits after a FILE block apply to its content.
    const ok = await applyChangeSet(ws, cs(write('y.txt', 'a\nb\n'), edit('y.txt', 'b\n', 'c\n')));
    expect(ok.applied).toBe(true);
    expect(read('y.txt')).toBe('a\nc\n');
  });

  it('refuses changes to test files unless the task allows them', async () => {
    mkdirSync(path.join(ws, 'tests'));
    writeFileSync(path.join(ws, 'tests', 'test_a.py'), 'assert f() == 1\n');
    const changes = cs(edit('tests/test_a.py', 'assert f() == 1\n', 'assert True\n'), write('src/a_test.go', 'package a\n'), { path: 'tests/test_a.py', action: 'delete' });
    const r = await applyChangeSet(ws, changes);
    expect(r.applied).toBe(false);
    expect(blockErrors(r.errors)).toEqual([
      'block 1 (tests/test_a.py): tests/test_a.py is a test file and this task does not allow test changes (task.allowTestChanges); change the code under test',
      'block 2 (src/a_test.go): src/a_test.go is a test file and this task does not allow test changes (task.allowTestChanges); change the code under test',
      'block 3 (tests/test_a.py): tests/test_a.py is a test file and this task does not allow test changes (task.allowTestChanges); change the code under test',
    ]);
    expect(read('tests/test_a.py')).toBe('assert f() == 1\n');
    const allowed = await applyChangeSet(ws, cs(edit('tests/test_a.py', 'assert f() == 1\n', 'assert f() == 2\n')), { allowTestChanges: true });
    expect(allowed.applied).toBe(true);
    expect(read('tests/test_a.py')).toBe('assert f() == 2\n');
  });

  it('refuses to edit a binary file, or a file deleted by an earlier block', async () => {
    writeFileSync(path.join(ws, 'img.bin'), Buffer.from([0x89, 0x50, 0x00, 0x0a]));
    const bin = await applyChangeSet(ws, cs(edit('img.bin', 'P\n', 'Q\n')));
    expect(bin.errors[0]).toBe('block 1 (img.bin): img.bin is a binary file: it cannot be edited with SEARCH/REPLACE');
    const gone = await applyChangeSet(ws, cs({ path: 'src/a.ts', action: 'delete' }, edit('src/a.ts', 'export const a = 1;\n', 'x\n')));
    expect(gone.errors[0]).toBe('block 2 (src/a.ts): cannot edit src/a.ts: it no longer exists (block 1 deletes it)');
    // A binary file can still be deleted.
    const del = await applyChangeSet(ws, cs({ path: 'img.bin', action: 'delete' }));
    expect(del.applied).toBe(true);
    expect(existsSync(path.join(ws, 'img.bin'))).toBe(false);
  });
});

describe('previewChangeSet', () => {
  it('returns the resulting files without writing anything', async () => {
    const before = snapshot(base);
    const p = await previewChangeSet(
      ws,
      cs(edit('src/a.ts', 'export const a = 1;\n', 'export const a = 3;\n'), write('n/new.ts', 'n\n'), { path: 'README.md', action: 'delete' }),
    );
    expect(p).toEqual({
      ok: true,
      files: [
        { path: 'src/a.ts', content: 'export const a = 3;\n' },
        { path: 'n/new.ts', content: 'n\n' },
        { path: 'README.md', content: null },
      ],
      errors: [],
    });
    expect(snapshot(base)).toEqual(before);
  });

  it('reports the same errors as apply', async () => {
    const change = cs(edit('src/a.ts', 'nope\n', 'x\n'));
    const p = await previewChangeSet(ws, change);
    const r = await applyChangeSet(ws, change);
    expect(p.ok).toBe(false);
    expect(p.files).toEqual([]);
    expect(p.errors).toEqual(r.errors);
  });
});

describe('applyChangeSet: confinement', () => {
  const rejected: [string, RegExp][] = [
    ['../escape.txt', /\.\./],
    ['/etc/passwd', /absolute/],
    ['/tmp/weaver-abs.txt', /absolute/],
    ['C:\\Windows\\evil.txt', /absolute/],
    ['c:/evil.txt', /absolute/],
    ['\\\\server\\share\\x', /absolute/],
    ['a/../../x', /\.\./],
    ['a/../b.txt', /\.\./],
    ['src\\..\\..\\x', /\.\./],
    ['.git/config', /\.git/],
    ['.GIT/hooks/x', /\.git/],
    ['.git', /\.git/],
    ['sub/.Git/config', /\.git/],
    ['.git./config', /\.git/],
    ['', /^change set: files\.1\.path: /], // caught by the ChangeSet schema
    ['.', /does not name a file/],
    ['./', /directory/],
    ['src/', /directory/],
    ['a\0b', /NUL/],
    ['a\nb', /control/],
    ['src', /is a directory/],
  ];

  it.each(rejected)('rejects %j and writes nothing', async (bad, reason) => {
    const before = snapshot(base);
    for (const change of [write(bad, 'evil\n'), edit(bad, 'x\n', 'evil\n'), edit(bad, '', 'evil\n'), { path: bad, action: 'delete' } as FileChange]) {
      const r = await applyChangeSet(ws, cs(write('good.txt', 'good\n'), change));
      expect(r.applied).toBe(false);
      expect(r.files).toEqual([]);
      expect(blockErrors(r.errors)).toHaveLength(1);
      expect(r.errors[0]).toMatch(reason);
      if (bad !== '') {
        expect(r.errors[0].startsWith('block 2 (')).toBe(true);
        expect(r.errors[1]).toBe('Nothing was written (all or nothing): block 1 would have applied. Fix the failed blocks and send all the blocks again.');
      }
      expect(snapshot(base)).toEqual(before);
      expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
    }
  });

  it('names the block and path in each error line and reports every bad path', async () => {
    const r = await applyChangeSet(ws, cs(write('../escape.txt', 'x'), write('.git/hooks/pre-commit', 'x'), write('fine.txt', 'x')));
    expect(r.applied).toBe(false);
    expect(blockErrors(r.errors)).toHaveLength(2);
    expect(r.errors[0].startsWith('block 1 (../escape.txt): ')).toBe(true);
    expect(r.errors[1].startsWith('block 2 (.git/hooks/pre-commit): ')).toBe(true);
    expect(existsSync(path.join(ws, 'fine.txt'))).toBe(false);
    expect(existsSync(path.join(ws, '.git', 'hooks', 'pre-commit'))).toBe(false);
    expect(existsSync(path.join(base, 'escape.txt'))).toBe(false);
  });

  it('rejects writing through a symlink to a directory outside, writing nothing anywhere', async () => {
    symlinkSync(outside, path.join(ws, 'out'));
    const before = snapshot(base);
    const r = await applyChangeSet(
      ws,
      cs(write('good.txt', 'good\n'), edit('src/a.ts', 'export const a = 1;\n', 'changed\n'), write('out/evil.txt', 'evil\n'), write('out/nested/evil.txt', 'evil\n')),
    );
    expect(r.applied).toBe(false);
    expect(blockErrors(r.errors)).toHaveLength(2);
    expect(r.errors[0]).toMatch(/^block 3 \(out\/evil\.txt\): .*outside the workspace/);
    expect(r.errors[1]).toMatch(/^block 4 \(out\/nested\/evil\.txt\): .*outside the workspace/);
    expect(r.errors[2]).toMatch(/blocks 1 and 2 would have applied/);
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
    expect(snapshot(base)).toEqual(before);
  });

  it('rejects a symlink into .git', async () => {
    symlinkSync(path.join(ws, '.git'), path.join(ws, 'g'));
    const r = await applyChangeSet(ws, cs(write('g/hooks/post-checkout', 'evil')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^block 1 \(g\/hooks\/post-checkout\): .*\.git/);
    expect(existsSync(path.join(ws, '.git', 'hooks', 'post-checkout'))).toBe(false);
  });

  it('rejects writing to a path that is itself a symlink (even pointing inside)', async () => {
    symlinkSync(path.join(outside, 'target.txt'), path.join(ws, 'link.txt'));
    symlinkSync(path.join(ws, 'README.md'), path.join(ws, 'inner-link.md'));
    for (const p of ['link.txt', 'inner-link.md']) {
      for (const fc of [write(p, 'x'), edit(p, '# hi\n', 'x\n'), edit(p, '', 'x\n'), { path: p, action: 'delete' } as FileChange]) {
        const r = await applyChangeSet(ws, cs(fc), { shown: { [p]: 'whole' } });
        expect(r.applied).toBe(false);
        expect(r.errors[0]).toMatch(/symbolic link/);
      }
    }
    expect(existsSync(path.join(outside, 'target.txt'))).toBe(false);
    expect(read('README.md')).toBe('# hi\n');
    expect(lstatSync(path.join(ws, 'link.txt')).isSymbolicLink()).toBe(true);
    expect(lstatSync(path.join(ws, 'inner-link.md')).isSymbolicLink()).toBe(true);
  });

  it('rejects a dangling symlink as a parent directory', async () => {
    symlinkSync(path.join(outside, 'missing-dir'), path.join(ws, 'dangling'));
    const r = await applyChangeSet(ws, cs(write('dangling/x.txt', 'x')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^block 1 \(dangling\/x\.txt\): /);
    expect(existsSync(path.join(outside, 'missing-dir'))).toBe(false);
  });

  it('works when the workspace path itself goes through a symlink', async () => {
    const alias = path.join(base, 'alias');
    symlinkSync(ws, alias);
    const r = await applyChangeSet(alias, cs(write('via-alias.txt', 'ok\n'), edit('src/a.ts', 'export const a = 1;\n', 'export const a = 5;\n')));
    expect(r.applied).toBe(true);
    expect(read('via-alias.txt')).toBe('ok\n');
    expect(read('src/a.ts')).toBe('export const a = 5;\n');
  });
});

describe('applyChangeSet: missing files and conflicts', () => {
  it('an edit of a missing file is an error and nothing is written', async () => {
    const r = await applyChangeSet(ws, cs(write('good.txt', 'good\n'), edit('src/missing.ts', 'a\n', 'b\n')));
    expect(r.applied).toBe(false);
    expect(r.errors).toEqual([
      'block 2 (src/missing.ts): cannot edit src/missing.ts: file does not exist; to create it, use a FILE block with its whole content',
      'Nothing was written (all or nothing): block 1 would have applied. Fix the failed blocks and send all the blocks again.',
    ]);
    expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
    expect(existsSync(path.join(ws, 'src', 'missing.ts'))).toBe(false);
  });

  it('delete of a missing file is an error', async () => {
    const r = await applyChangeSet(ws, cs({ path: 'nope.txt', action: 'delete' }));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toBe('block 1 (nope.txt): cannot delete nope.txt: file does not exist');
  });

  it('rejects a path whose parent is a file', async () => {
    const r = await applyChangeSet(ws, cs(write('README.md/x.txt', 'x')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^block 1 \(README\.md\/x\.txt\): README\.md is a file/);
    expect(read('README.md')).toBe('# hi\n');
  });

  it('rejects a file that is also a directory of another', async () => {
    const r = await applyChangeSet(ws, cs(write('d', '1'), write('d/e.txt', '2')));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^d\/e\.txt: conflicts with d/);
    expect(existsSync(path.join(ws, 'd'))).toBe(false);
  });

  it('rejects a malformed change set', async () => {
    const r = await applyChangeSet(ws, { summary: 'x', files: [{ path: 'a.txt', action: 'rename' }] } as unknown as ChangeSet);
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^change set: files\.0/);
    const old = await applyChangeSet(ws, { summary: 'x', files: [{ path: 'a.txt', action: 'create', content: 'x' }] } as unknown as ChangeSet);
    expect(old.applied).toBe(false);
    expect(existsSync(path.join(ws, 'a.txt'))).toBe(false);
  });

  it('rolls back what it wrote if a write fails midway', async () => {
    // A name longer than NAME_MAX under a directory that does not exist yet passes validation
    // (the lookup stops at the missing directory with ENOENT) and fails at open() with
    // ENAMETOOLONG — a real write failure even as root, after two writes and a mkdir.
    const tooLong = `${'x'.repeat(300)}.txt`;
    const r = await applyChangeSet(
      ws,
      cs(edit('src/a.ts', 'export const a = 1;\n', 'changed\n'), write('newdir/created.txt', 'new\n'), { path: 'README.md', action: 'delete' }, write(`newdir2/${tooLong}`, 'x')),
    );
    expect(r.applied).toBe(false);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain('newdir2/');
    expect(r.errors[0]).toMatch(/nothing was written \(all or nothing\)$/);
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
    expect(read('README.md')).toBe('# hi\n');
    expect(existsSync(path.join(ws, 'newdir'))).toBe(false);
    expect(existsSync(path.join(ws, 'newdir2'))).toBe(false);
  });
});

describe('validateChangePath / checkPathSyntax', () => {
  it('returns the canonical relative and absolute path for a good path', async () => {
    const r = await validateChangePath(ws, 'src/./a.ts');
    expect(r).toEqual({ ok: true, rel: 'src/a.ts', abs: path.join(ws, 'src', 'a.ts'), exists: true });
    const n = await validateChangePath(ws, 'src/new.ts');
    expect(n).toMatchObject({ ok: true, rel: 'src/new.ts', exists: false });
  });

  it('rejects without touching the disk', () => {
    expect(checkPathSyntax('../x')).toMatchObject({ ok: false });
    expect(checkPathSyntax('.gitignore')).toEqual({ ok: true, rel: '.gitignore' });
    expect(checkPathSyntax('.github/workflows/ci.yml')).toEqual({ ok: true, rel: '.github/workflows/ci.yml' });
    expect(checkPathSyntax(42)).toMatchObject({ ok: false });
    expect(checkPathSyntax('')).toEqual({ ok: false, reason: 'path is empty' });
    expect(checkPathSyntax('a/b/../c')).toMatchObject({ ok: false, reason: expect.stringMatching(/\.\./) });
  });

  it('throws when the workspace itself does not exist', async () => {
    await expect(validateChangePath(path.join(base, 'nope'), 'a.txt')).rejects.toThrow(/ENOENT/);
    await expect(applyChangeSet(path.join(base, 'nope'), cs(write('a.txt', '')))).rejects.toThrow();
    await expect(previewChangeSet(path.join(base, 'nope'), cs(write('a.txt', '')))).rejects.toThrow();
  });
});

describe('lazy whole-file rewrites', () => {
  test.each([
    '    # ... rest of the file unchanged',
    '  // ... existing code ...',
    '/* remaining methods unchanged */',
    '# rest of code',
    '// … other functions …',
  ])('a rewrite that elides code is refused: %s', (line) => {
    expect(lazyElision('a = 1\nb = 2\n', `a = 3\n${line}\n`)).toBe(line.trim());
  });

  test('a line that was already in the file, or ordinary code and comments, is no elision', () => {
    expect(lazyElision('# rest of the file unchanged\nx = 1\n', '# rest of the file unchanged\nx = 2\n')).toBeUndefined();
    expect(lazyElision('x = 1\n', '# compute the rest of the total\nrest = total - paid\nx = 2\n')).toBeUndefined();
    expect(lazyElision('x = 1\n', 'const existing = load();\n// keep existing code paths working\n')).toBeUndefined();
  });
});
