import { applyEdit, closestLines, containsLines, normaliseForComparison, numberLines, type EditOutcome } from '../src/domain/matching';
import { isTestPath } from '../src/domain/testPaths';
import { growthRatio, MAX_LINEAR_GROWTH } from './support/growth';

function applied(r: EditOutcome): Extract<EditOutcome, { ok: true }> {
  if (!r.ok) throw new Error(`expected a match, got ${JSON.stringify(r)}`);
  return r;
}

describe('applyEdit: levels', () => {
  it('exact: replaces the one matching place and nothing else', () => {
    const file = 'a\nb\nc\nd\n';
    const r = applied(applyEdit(file, 'b\nc\n', 'B\nC\n'));
    expect(r).toEqual({ ok: true, content: 'a\nB\nC\nd\n', level: 'exact', startLine: 2, endLine: 3 });
  });

  it('trailing whitespace: matches despite drift and keeps the file\'s untouched lines byte-identical', () => {
    const file = 'def f():   \n    x = 1  \n    return x\t\nprint(f())\n';
    const r = applied(applyEdit(file, 'def f():\n    x = 1\n    return x\n', 'def f():\n    x = 2\n    return x\n'));
    expect(r.level).toBe('trailing-whitespace');
    // The context lines keep their trailing whitespace; only the changed line is new.
    expect(r.content).toBe('def f():   \n    x = 2\n    return x\t\nprint(f())\n');
  });

  it('indentation shift: a method searched without its class indentation is found and the replacement re-indented', () => {
    const file = [
      'class Greeter:',
      '    def greet(self, name):',
      '        if not name:',
      '            return "Hi"',
      '        return f"Hi, {name}"',
      '',
      'def greet(name):',
      '    return name',
      '',
    ].join('\n');
    const search = 'def greet(self, name):\n    if not name:\n        return "Hi"\n';
    const replace = 'def greet(self, name):\n    if not name:\n        return "Hello"\n    name = name.strip()\n';
    const r = applied(applyEdit(file, search, replace));
    expect(r.level).toBe('indentation');
    expect(r.startLine).toBe(2);
    expect(r.content).toBe(
      [
        'class Greeter:',
        '    def greet(self, name):',
        '        if not name:',
        '            return "Hello"',
        '        name = name.strip()',
        '        return f"Hi, {name}"',
        '',
        'def greet(name):',
        '    return name',
        '',
      ].join('\n'),
    );
  });

  it('indentation shift the other way: a search indented more than the file', () => {
    const file = 'if a:\n  b()\nc()\n';
    const r = applied(applyEdit(file, '    if a:\n      b()\n', '    if a:\n      b(1)\n'));
    expect(r.level).toBe('indentation');
    expect(r.content).toBe('if a:\n  b(1)\nc()\n');
  });

  it('a non-uniform indentation difference is not a match', () => {
    const file = 'if a:\n    b()\n';
    const r = applyEdit(file, 'if a:\n  b()\n  c()\n', 'x\n');
    expect(r.ok).toBe(false);
  });

  it('CRLF file, LF search: matched, the result keeps CRLF everywhere', () => {
    const file = 'one\r\ntwo\r\nthree\r\n';
    const r = applied(applyEdit(file, 'two\nthree\n', 'two\n2.5\nthree\n'));
    expect(r.level).toBe('normalised');
    expect(r.content).toBe('one\r\ntwo\r\n2.5\r\nthree\r\n');
  });

  it('curly quotes, dashes and NBSP in the search match the file\'s ASCII; new lines are written as given', () => {
    const file = "msg = 'don't stop' - x\nother = 1\n";
    const search = 'msg = \u2018don\u2019t stop\u2019 \u2014 x\n';
    const r = applied(applyEdit(file, search, "msg = 'do not stop' - x\n"));
    expect(r.level).toBe('normalised');
    expect(r.content).toBe("msg = 'do not stop' - x\nother = 1\n");
    const nbsp = applied(applyEdit('a = 1\n', 'a\u00a0=\u00a01\n', 'a = 2\n'));
    expect(nbsp.content).toBe('a = 2\n');
  });

  it('normalised level keeps the original bytes of context lines (curly quotes in the file stay curly)', () => {
    const file = 'title = \u201cHello\u201d\ncount = 1\n';
    const r = applied(applyEdit(file, 'title = "Hello"\ncount = 1\n', 'title = "Hello"\ncount = 2\n'));
    expect(r.level).toBe('normalised');
    expect(r.content).toBe('title = \u201cHello\u201d\ncount = 2\n');
  });

  it('an exact match writes a deliberate quote change (byte preservation follows the matched level)', () => {
    const file = 'title = \u201cHello\u201d\n';
    const r = applied(applyEdit(file, 'title = \u201cHello\u201d\n', 'title = "Hello"\n'));
    expect(r.level).toBe('exact');
    expect(r.content).toBe('title = "Hello"\n');
  });

  it('a tolerant match writes a blank replacement line blank, never the file\'s whitespace-only line', () => {
    // Matched ignoring trailing whitespace (line 1); the file's line 2 holds four spaces.
    const file = 'def f():  \n    \n    return 1\n';
    const r = applied(applyEdit(file, 'def f():\n\n    return 1\n', 'def f():\n\n    return 2\n'));
    expect(r.level).toBe('trailing-whitespace');
    expect(r.content).toBe('def f():  \n\n    return 2\n');
  });

  it('…and a whitespace-only replacement line as given, never the file\'s blank line', () => {
    const file = 'a  \n\nb\n';
    const r = applied(applyEdit(file, 'a\n\nb\n', 'a\n  \nB\n'));
    expect(r.level).toBe('trailing-whitespace');
    expect(r.content).toBe('a  \n  \nB\n');
  });

  it('a tolerant match writes a line the model changed in whitespace only as the model wrote it (not "changes nothing")', () => {
    // Line 1 matches only ignoring its trailing spaces; the model strips the spaces of line 2 on purpose.
    const file = 'x = 1 \ny = 2   \n';
    const r = applied(applyEdit(file, 'x = 1\ny = 2   \n', 'x = 1\ny = 2\n'));
    expect(r.level).toBe('trailing-whitespace');
    expect(r.content).toBe('x = 1 \ny = 2\n');
    expect(r.content).not.toBe(file);
  });

  it('an indentation-shifted match re-indents new lines but writes blank lines blank', () => {
    const file = 'class A:\n    def m(self):\n        a()\n        \n        b()\n';
    const r = applied(applyEdit(file, 'def m(self):\n    a()\n\n    b()\n', 'def m(self):\n    a()\n\n    c()\n'));
    expect(r.level).toBe('indentation');
    expect(r.content).toBe('class A:\n    def m(self):\n        a()\n\n        c()\n');
  });

  it('keeps a missing final newline missing when the match covers the last line', () => {
    expect(applied(applyEdit('a\nb', 'b\n', 'c\n')).content).toBe('a\nc');
    expect(applied(applyEdit('a\nb', 'b\n', '')).content).toBe('a');
    expect(applied(applyEdit('a\nb', 'a\n', 'z\n')).content).toBe('z\nb');
    expect(applied(applyEdit('a\nb\n', 'b', 'c')).content).toBe('a\nc\n');
  });

  it('keeps a UTF-8 BOM and matches the first line after it', () => {
    const r = applied(applyEdit('\ufeffimport x\nrest\n', 'import x\n', 'import y\n'));
    expect(r.content).toBe('\ufeffimport y\nrest\n');
  });

  it('an empty search is not an edit', () => {
    expect(applyEdit('a\n', '', 'b\n')).toEqual({ ok: false, reason: 'empty-search' });
  });
});

describe('applyEdit: refusals', () => {
  it('an ambiguous search is refused with the candidates\' line numbers, never guessed', () => {
    const file = 'x = 1\nfoo()\ny = 2\nfoo()\nz = 3\nfoo()\n';
    const r = applyEdit(file, 'foo()\n', 'bar()\n');
    expect(r).toEqual({ ok: false, reason: 'ambiguous', level: 'exact', candidates: [2, 4, 6] });
  });

  it('ambiguity is judged per level: two places equal up to indentation are ambiguous', () => {
    const file = 'def a():\n    return 1\n\nclass B:\n    def a():\n        return 1\n';
    const r = applyEdit(file, '  def a():\n      return 1\n', 'x\n');
    expect(r).toMatchObject({ ok: false, reason: 'ambiguous', level: 'indentation', candidates: [1, 5] });
  });

  it('an exact unique match wins over looser candidates elsewhere', () => {
    const file = 'foo()  \nfoo()\n';
    expect(applied(applyEdit(file, 'foo()\n', 'bar()\n')).content).toBe('foo()  \nbar()\n');
  });

  it('no match: the closest lines of the file, numbered', () => {
    const file = Array.from({ length: 200 }, (_, i) => `line ${i + 1} value`).join('\n') + '\n';
    const withFn = file.replace('line 120 value\n', 'def compute_total(items):\n');
    const r = applyEdit(withFn, 'def compute_totals(items, tax):\n    return sum(items)\n', 'x\n');
    expect(r.ok).toBe(false);
    if (r.ok || r.reason !== 'no-match') throw new Error('expected no-match');
    expect(r.replaceFound).toBeUndefined();
    expect(r.closest?.startLine).toBe(120);
    expect(r.closest?.numbered).toContain('  120 | def compute_total(items):');
    expect(r.closest?.numbered.split('\n')).toHaveLength(2);
  });

  it('a search that does not match is a miss even when the replacement is in the file: where it is comes back as a hint', () => {
    const file = 'def f():\n    return 2\n';
    const r = applyEdit(file, 'def f():\n    return 1\n', 'def f():  \n    return 2\n');
    expect(r).toMatchObject({ ok: false, reason: 'no-match', replaceFound: { startLine: 1, endLine: 2 } });
    // An empty replacement (a deletion) is never reported as found.
    expect(applyEdit(file, 'gone()\n', '')).not.toHaveProperty('replaceFound');
    // Nor is one that only keeps lines of the search (here: a `}` found anywhere), or bare punctuation.
    const js = 'function a() {\n  b();\n}\n';
    expect(applyEdit(js, '  c();\n}\n', '}\n')).toMatchObject({ ok: false, reason: 'no-match' });
    expect(applyEdit(js, '  c();\n}\n', '}\n')).not.toHaveProperty('replaceFound');
    expect(applyEdit(js, '  c();\n', '}\n')).not.toHaveProperty('replaceFound');
  });

  it('the reviewed case: a block meant for g() whose replacement f() already has is a miss, not a pass', () => {
    const file = 'def f(x, y):\n    return compute(x, y)\n\n\ndef g(x, y):\n    return compute(y, x)\n';
    // The SEARCH is g() as the model misremembered it; the REPLACE is what f() already says.
    const r = applyEdit(file, 'def g(x, y):\n    return compute(x, -y)\n', '    return compute(x, y)\n');
    expect(r).toMatchObject({ ok: false, reason: 'no-match', replaceFound: { startLine: 2, endLine: 2 } });
    if (r.ok || r.reason !== 'no-match') throw new Error('expected no-match');
    expect(r.closest?.startLine).toBe(5);
  });

  it('closestLines returns nothing for an empty file', () => {
    expect(closestLines('', 'x\n')).toBeUndefined();
    expect(containsLines('a\n  b\n', 'b\n')).toBe(true);
    expect(containsLines('a\n', '\n')).toBe(false);
  });

  it('numberLines pads to at least five columns', () => {
    expect(numberLines(['a', 'b'], 9)).toBe('    9 | a\n   10 | b');
    expect(numberLines(['x'], 123456)).toBe('  123456 | x');
  });
});

describe('applyEdit: large files', () => {
  // ~200 KB, 5,000 lines of Python-like code with many similar lines.
  const pythonLines = (count: number): string[] => {
    const out: string[] = [];
    for (let i = 0; out.length < count; i++) {
      out.push(
        `def function_${i}(value, other, third_argument=None):`,
        `    """Docstring of function ${i}: computes a value from its inputs."""`,
        `    result = value * ${i} + other  # compute the result here`,
        '    return result',
        '',
      );
    }
    return out;
  };
  const lines = pythonLines(5000);
  const big = `${lines.join('\n')}\n`;

  it('is about 200 KB', () => {
    expect(big.length).toBeGreaterThan(190_000);
    expect(lines.length).toBe(5000);
  });

  it('a one-line fix leaves every other byte identical', () => {
    const search = '    """Docstring of function 777: computes a value from its inputs."""\n    result = value * 777 + other  # compute the result here\n';
    const replace = '    """Docstring of function 777: computes a value from its inputs."""\n    result = value * 778 + other  # compute the result here\n';
    const r = applied(applyEdit(big, search, replace));
    expect(r.level).toBe('exact');
    const idx = big.indexOf('value * 777 +');
    expect(r.content.length).toBe(big.length);
    expect(r.content.slice(0, idx)).toBe(big.slice(0, idx));
    expect(r.content.slice(idx + 'value * 77'.length + 1)).toBe(big.slice(idx + 'value * 77'.length + 1));
    expect(r.content.slice(idx, idx + 13)).toBe('value * 778 +');
  });

  it('a 40-line search that matches nothing is answered (closest lines included) in time linear in the file', () => {
    const search = Array.from({ length: 40 }, (_, i) => `    totally_${i} = unrelated(${i}, "x")  # nothing like it`).join('\n') + '\n';
    const r = applyEdit(big, search, 'z = 1\n');
    expect(r).toMatchObject({ ok: false, reason: 'no-match' });
    expect(r).not.toHaveProperty('replaceFound');
    // Growth, not a time (the absolute figure is printed): a file 8× longer costs about 8× (a
    // search quadratic in the file would be 64×); the 5,000-line file is scale 1.
    const file = (scale: number) => `${pythonLines(5000 * scale).join('\n')}\n`;
    expect(growthRatio('applyEdit no-match, 40-line search', file, (f) => applyEdit(f, search, 'z = 1\n'))).toBeLessThan(MAX_LINEAR_GROWTH);
  });

  it('finds the closest window in the large file', () => {
    const search = 'def function_432(value, other):\n    """Docstring of function 432 (old)."""\n    result = value * 432 - other\n';
    const r = applyEdit(big, search, 'x\n');
    if (r.ok || r.reason !== 'no-match') throw new Error('expected no-match');
    const at = lines.indexOf('def function_432(value, other, third_argument=None):') + 1;
    expect(at).toBeGreaterThan(2000);
    expect(r.closest?.startLine).toBe(at);
    expect(r.closest?.numbered).toContain(`${at} | def function_432(value, other, third_argument=None):`);
  });
});

describe('normaliseForComparison', () => {
  it('ignores CRLF, trailing whitespace, trailing blank lines and inner whitespace runs', () => {
    expect(normaliseForComparison('a.ts', 'const  a =\t1;   \r\nb();\r\n\r\n\n')).toBe(normaliseForComparison('a.ts', 'const a = 1;\nb();'));
  });

  it('drops indentation for brace languages but keeps it for indentation-significant files', () => {
    expect(normaliseForComparison('a.ts', 'if (x) {\n    y();\n}\n')).toBe(normaliseForComparison('a.ts', 'if (x) {\n  y();\n}\n'));
    const py1 = 'def f():\n    if x:\n        y()\n    z()\n';
    const py2 = 'def f():\n    if x:\n        y()\n        z()\n';
    expect(normaliseForComparison('f.py', py1)).not.toBe(normaliseForComparison('f.py', py2));
    expect(normaliseForComparison('f.py', py1)).toBe(normaliseForComparison('f.py', py1.replace(/\n/g, '  \r\n')));
    expect(normaliseForComparison('c.yml', 'a:\n  b: 1\n')).not.toBe(normaliseForComparison('c.yml', 'a:\nb: 1\n'));
    expect(normaliseForComparison('Makefile', 'all:\n\tcc x.c\n')).not.toBe(normaliseForComparison('Makefile', 'all:\ncc x.c\n'));
  });

  it('does not equate different code', () => {
    expect(normaliseForComparison('a.js', 'a = 1\n')).not.toBe(normaliseForComparison('a.js', 'a = 2\n'));
    expect(normaliseForComparison('a.js', 'ab\n')).not.toBe(normaliseForComparison('a.js', 'a b\n'));
  });
});

describe('isTestPath', () => {
  it.each([
    'test/a.test.ts',
    'tests/test_x.py',
    'src/__tests__/x.js',
    'spec/models/user_spec.rb',
    'src/test/java/com/x/FooTest.java',
    'pkg/foo_test.go',
    'test_calc.py',
    'calc_test.py',
    'conftest.py',
    'src/a.test.tsx',
    'src/a.spec.js',
    'lib/a.spec.mjs',
    'src/FooTests.java',
    'crate/tests/integration.rs',
    'exercise/bob_test.cpp',
    'sub\\tests\\x.py',
  ])('%s is a test file', (p) => {
    expect(isTestPath(p)).toBe(true);
  });

  it.each(['src/a.ts', 'src/testing_utils.py', 'src/contest.py', 'src/latest.go', 'lib/attestation.rb', 'src/Contest.java', 'README.md', 'src/protest/x.py'])(
    '%s is not a test file',
    (p) => {
      expect(isTestPath(p)).toBe(false);
    },
  );
});
