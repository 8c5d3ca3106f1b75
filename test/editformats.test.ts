import fc from 'fast-check';
import { EDIT_FORMATS, editFormat, editblock, markerLength, parseBlocks, pathFromLine, whole } from '../src/domain/editformats';
import type { ChangeSet, FileChange, FilesRequest, ModelAnswer } from '../src/domain/schema';
import { unsafeRegex } from '../src/activities/grep';
import { readRequest } from './support/answers';

const parse = (text: string) => editblock.parse(text);

function ok(text: string): ModelAnswer {
  const r = parse(text);
  if (!r.ok) throw new Error(`expected a parse, got: ${r.error}`);
  return r.value;
}

function err(text: string): string {
  const r = parse(text);
  if (r.ok) throw new Error(`expected an error, got ${JSON.stringify(r.value)}`);
  return r.error;
}

describe('registry', () => {
  it('defaults to editblock and knows every format', () => {
    expect(editFormat().name).toBe('editblock');
    expect(editFormat(undefined)).toBe(editblock);
    expect(editFormat('whole')).toBe(whole);
    for (const name of EDIT_FORMATS) expect(editFormat(name).name).toBe(name);
  });

  it('instructions document every block kind with a worked example the parser accepts', () => {
    for (const f of [editblock, whole]) {
      for (const marker of ['<<<<<<< FILE', '>>>>>>> FILE', '<<<<<<< DELETE', '<<<<<<< READ']) expect(f.instructions).toContain(marker);
      const example = f.instructions.slice(f.instructions.indexOf('# Example'));
      const answer = example.split('\n').slice(4).join('\n');
      const r = f.parse(answer);
      expect(r.ok).toBe(true);
      expect(f.reminder.split('\n')).toHaveLength(1);
    }
    expect(editblock.instructions).toContain('<<<<<<< SEARCH');
    expect(editblock.instructions).toMatch(/EXACTLY/);
    expect(editblock.instructions).toMatch(/only in part/);
    expect(whole.instructions).toMatch(/COMPLETE/);
  });

  it('the editblock example parses to the documented change', () => {
    const example = editblock.instructions.slice(editblock.instructions.indexOf('# Example'));
    const v = ok(example.split('\n').slice(4).join('\n')) as ChangeSet;
    expect(v.summary).toBe('Use "Hello" in greet() and add a farewell() helper in a new module.');
    expect(v.files).toEqual([
      { path: 'src/greeting.py', action: 'edit', search: 'def greet(name):\n    return f"Hi, {name}!"\n', replace: 'def greet(name):\n    return f"Hello, {name}!"\n' },
      { path: 'src/farewell.py', action: 'write', content: 'def farewell(name):\n    return f"Goodbye, {name}!"\n' },
    ]);
  });

  it('whole accepts SEARCH/REPLACE blocks too', () => {
    const text = 'Fix.\n\na.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n';
    expect(whole.parse(text)).toEqual(editblock.parse(text));
    expect(whole.parse(text).ok).toBe(true);
  });
});

describe('parse: the grammar', () => {
  it('reads summary, SEARCH/REPLACE, FILE, DELETE blocks in answer order', () => {
    const text = [
      'Rename the helper and drop the old module.',
      '',
      'src/a.py',
      '<<<<<<< SEARCH',
      'def old():',
      '    pass',
      '=======',
      'def new():',
      '    pass',
      '>>>>>>> REPLACE',
      '',
      'src/b.py',
      '<<<<<<< FILE',
      'print(1)',
      '>>>>>>> FILE',
      '',
      'src/old.py',
      '<<<<<<< DELETE',
      '>>>>>>> DELETE',
      '',
      'That is all.',
    ].join('\n');
    expect(ok(text)).toEqual({
      summary: 'Rename the helper and drop the old module.',
      files: [
        { path: 'src/a.py', action: 'edit', search: 'def old():\n    pass\n', replace: 'def new():\n    pass\n' },
        { path: 'src/b.py', action: 'write', content: 'print(1)\n' },
        { path: 'src/old.py', action: 'delete' },
      ],
    });
  });

  it('tolerates fences around blocks, decorated path lines, CR and spaces on marker lines, 5-character markers', () => {
    const text = [
      'Summary here.',
      '```',
      '',
      '### **File: `src/x y.py`**',
      '```python',
      '<<<<< SEARCH  \r',
      'a',
      '=====\r',
      'b',
      '>>>>> REPLACE \r',
      '```',
      '',
      'src/x y.py is changed twice:',
      '`src/x y.py`',
      '```python',
      '<<<<<<< SEARCH',
      'c',
      '=======',
      'd',
      '>>>>>>> REPLACE',
      '```',
      '**lib/util.ts**',
      '<<<<<<< SEARCH',
      'e',
      '=======',
      '>>>>>>> REPLACE',
    ].join('\n');
    expect(ok(text)).toEqual({
      summary: 'Summary here.',
      files: [
        { path: 'src/x y.py', action: 'edit', search: 'a\n', replace: 'b\n' },
        { path: 'src/x y.py', action: 'edit', search: 'c\n', replace: 'd\n' },
        { path: 'lib/util.ts', action: 'edit', search: 'e\n', replace: '' },
      ],
    });
  });

  it('reads an Aider-style answer: fenced blocks, prose between them, an empty SEARCH for a new file', () => {
    const text = [
      "To fix this, I'll update `calc.py`:",
      '',
      'calc.py',
      '```python',
      '<<<<<<< SEARCH',
      'def add(a, b):',
      '    return a - b',
      '=======',
      'def add(a, b):',
      '    return a + b',
      '>>>>>>> REPLACE',
      '```',
      '',
      'And add a helper:',
      '',
      'helpers.py',
      '```python',
      '<<<<<<< SEARCH',
      '=======',
      'def double(x):',
      '    return 2 * x',
      '>>>>>>> REPLACE',
      '```',
      '',
      'Run the tests with `pytest`.',
    ].join('\n');
    expect(ok(text)).toEqual({
      summary: "To fix this, I'll update `calc.py`:",
      files: [
        { path: 'calc.py', action: 'edit', search: 'def add(a, b):\n    return a - b\n', replace: 'def add(a, b):\n    return a + b\n' },
        { path: 'helpers.py', action: 'edit', search: '', replace: 'def double(x):\n    return 2 * x\n' },
      ],
    });
  });

  it('takes content verbatim: fences, backticks, shorter and longer markers, ======= lines of other lengths', () => {
    const content = ['```python', '````', '<<<<<<< SEARCH', '>>>>>>> REPLACE', '=======', '>>>>>>>> FILE', 'Title', '=====', '`x`', ''].join('\n');
    const text = `New docs.\n\ndocs/README.md\n<<<<<<<<< FILE\n${content}>>>>>>>>> FILE\n`;
    expect(ok(text)).toEqual({ summary: 'New docs.', files: [{ path: 'docs/README.md', action: 'write', content }] });
  });

  it('FILE NOEOL: content without a final newline; an empty FILE block is an empty file', () => {
    expect((ok('x\n\na.txt\n<<<<<<< FILE\nno newline\n>>>>>>> FILE NOEOL\n') as ChangeSet).files[0]).toEqual({ path: 'a.txt', action: 'write', content: 'no newline' });
    expect((ok('x\n\na.txt\n<<<<<<< FILE\n>>>>>>> FILE\n') as ChangeSet).files[0]).toEqual({ path: 'a.txt', action: 'write', content: '' });
    expect((ok('x\n\na.txt\n<<<<<<< FILE\n\n>>>>>>> FILE\n') as ChangeSet).files[0]).toEqual({ path: 'a.txt', action: 'write', content: '\n' });
  });

  it('an empty SEARCH is kept (the applier creates a new file with it)', () => {
    expect((ok('new.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n') as ChangeSet).files[0]).toEqual({ path: 'new.py', action: 'edit', search: '', replace: 'x = 1\n' });
  });

  it('generates a summary when there is no prose', () => {
    const v = ok('a.py\n<<<<<<< DELETE\n>>>>>>> DELETE\nb.py\n<<<<<<< FILE\nx\n>>>>>>> FILE\n') as ChangeSet;
    expect(v.summary).toBe('Edit a.py, b.py');
  });

  it('cuts a long summary to 2000 characters', () => {
    const v = ok(`${'word '.repeat(1000)}\n\na.py\n<<<<<<< DELETE\n>>>>>>> DELETE\n`) as ChangeSet;
    expect(v.summary.length).toBeLessThanOrEqual(2000);
    expect(v.summary.endsWith('…')).toBe(true);
  });

  it('READ alone → a files request; READ beside edits is ignored', () => {
    expect(ok('I need the config first.\n\n<<<<<<< READ\n- src/config.py\n`docs/a b.md`\n\nsrc/config.py\n>>>>>>> READ\n')).toEqual({
      summary: 'I need the config first.',
      needFiles: ['src/config.py', 'docs/a b.md'],
    });
    expect(ok('<<<<<<< READ\nx.py\n>>>>>>> READ\n')).toEqual({ needFiles: ['x.py'] });
    const mixed = ok('Do it.\n\n<<<<<<< READ\nx.py\n>>>>>>> READ\n\na.py\n<<<<<<< DELETE\n>>>>>>> DELETE\n');
    expect(mixed).toEqual({ summary: 'Do it.', files: [{ path: 'a.py', action: 'delete' }] });
  });

  it('READ lines may ask for a line range, a definition or a search (canonical forms in needFiles)', () => {
    const read = (...lines: string[]) => (ok(`<<<<<<< READ\n${lines.join('\n')}\n>>>>>>> READ\n`) as FilesRequest).needFiles;
    expect(read('src/a.py:120-220', 'src/a.py:L5-L9', 'src/a.py:7', 'src/b.py:3 - 4', 'src/b.py:10..12', 'src/b.py:1–2')).toEqual([
      'src/a.py:120-220',
      'src/a.py:5-9',
      'src/a.py:7-7',
      'src/b.py:3-4',
      'src/b.py:10-12',
      'src/b.py:1-2',
    ]);
    expect(read('src/a.py#Foo', '- `src/a.py#Foo.bar`', 'src/lib.rs#Parser::parse', 'docs/c#.md')).toEqual(['src/a.py#Foo', 'src/a.py#Foo.bar', 'src/lib.rs#Parser.parse', 'docs/c#.md']);
    expect(read('grep: def parse in src/**/*.py', '`grep: foo\\(x\\)`', 'GREP:   /a b/  ', "grep: 'x y' in *.ts", 'grep: a in b c')).toEqual([
      'grep: def parse in src/**/*.py',
      'grep: foo\\(x\\)',
      'grep: a b',
      'grep: x y in *.ts',
      'grep: a in b c',
    ]);
    // Round trip through the rendered READ block.
    const asked = ['src/a.py:1-2', 'src/a.py#A.b', 'grep: x+ in lib/*.js', 'docs/a b.md'];
    expect((ok(readRequest(asked)) as FilesRequest).needFiles).toEqual(asked);
  });

  it('malformed READ lines are refused with how to write them', () => {
    expect(err('<<<<<<< READ\nsrc/a.py:0-5\n>>>>>>> READ\n')).toMatch(/^the READ block at line 1: `src\/a.py:0-5`: a line range is `path:FIRST-LAST` with 1 ≤ FIRST ≤ LAST/);
    expect(err('<<<<<<< READ\nsrc/a.py:30-10\n>>>>>>> READ\n')).toMatch(/a line range is `path:FIRST-LAST`/);
    expect(err('<<<<<<< READ\nsrc/a.py:1-99999\n>>>>>>> READ\n')).toMatch(/at most 2000 lines per range/);
    expect(err('<<<<<<< READ\nsrc/a.py#\n>>>>>>> READ\n')).toMatch(/no symbol after `#`/);
    expect(err('<<<<<<< READ\ngrep:\n>>>>>>> READ\n')).toMatch(/no pattern: write `grep: <regex>`/);
    expect(err('<<<<<<< READ\ngrep:    in src\n>>>>>>> READ\n')).toMatch(/no pattern/);
    expect(err(`<<<<<<< READ\ngrep: ${'a'.repeat(201)}\n>>>>>>> READ\n`)).toMatch(/pattern longer than 200 characters/);
    // A good line beside a bad one: still refused, so the model fixes it.
    expect(err('<<<<<<< READ\nsrc/a.py\nsrc/a.py:9-1\n>>>>>>> READ\n')).toMatch(/^the READ block at line 1: `src\/a.py:9-1`/);
  });

  it('grep patterns that could backtrack badly, or are not regexes, are searched for literally', () => {
    for (const p of ['(a+)+$', '(a|aa)*b', '(x*y){2,}', '(\\w+\\s?)*$', '(a)\\1', '(?=a)b', '[', 'a.*b.*c.*d.*e']) expect(unsafeRegex(p)).toBeDefined();
    for (const p of ['def parse', 'GREP-MARKER-\\d+', 'foo(bar|baz)', '(\\w+)\\s*=', '[(+*]+x', 'a.*b', 'x{2,3}']) expect(unsafeRegex(p)).toBeUndefined();
  });

  it('no blocks: a JSON subtask proposal, bare or fenced, with prose around it', () => {
    const proposal = { summary: 'split', subtasks: [{ title: 'A', description: 'do A' }, { title: 'B', description: 'do B' }] };
    expect(ok(JSON.stringify(proposal))).toEqual(proposal);
    expect(ok(`Too big; here is a plan:\n\`\`\`json\n${JSON.stringify(proposal, null, 2)}\n\`\`\`\nThanks.`)).toEqual(proposal);
    expect(ok(`Plan: ${JSON.stringify(proposal)} — that's it.`)).toEqual(proposal);
    expect(ok('{"needFiles": ["a.py"]}')).toEqual({ needFiles: ['a.py'] });
    expect(err('{"subtasks": []}')).toMatch(/^subtask proposal: subtasks:/);
  });
});

describe('parse: errors are actionable and name the block', () => {
  it('no blocks at all', () => {
    expect(err('Sure! I changed the function to return 2.')).toMatch(/^no edit blocks found: write each change as .*<<<<<<< SEARCH/);
    expect(err('```python\ndef f():\n    return 2\n```')).toMatch(/^no edit blocks found/);
  });

  it('old JSON change sets are refused with the format to use', () => {
    expect(err('{"summary": "x", "files": [{"path": "a", "action": "create", "content": ""}]}')).toMatch(/not written as JSON: .*SEARCH/);
  });

  it('a missing divider', () => {
    expect(err('x\n\na.py\n<<<<<<< DELETE\n>>>>>>> DELETE\n\nsrc/a.py\n<<<<<<< SEARCH\nfoo\n>>>>>>> REPLACE\n')).toBe(
      "block 2 (src/a.py): missing the `=======` divider between the lines to find and their replacement (a line of exactly 7 '=', as many as the '<' of the opening marker)",
    );
  });

  it('an unterminated block, with a hint about a mismatched closing marker', () => {
    expect(err('a.py\n<<<<<<< FILE\nx\n')).toBe('block 1 (a.py): unterminated, expected `>>>>>>> FILE`');
    expect(err('a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>> REPLACE\n')).toMatch(
      /^block 1 \(a\.py\): unterminated, expected `>>>>>>> REPLACE` \(line 6 has `>>>>>> REPLACE`: the closing marker must have the same number/,
    );
    expect(err('a.py\n<<<<<<< FILE\nx\n>>>>>>> REPLACE\n')).toMatch(/a FILE block closes with `>>>>>>> FILE`/);
    expect(err('a.py\n<<<<<<< SEARCH\nx\n')).toMatch(/and its ======= divider/);
  });

  it('no path', () => {
    expect(err('<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n')).toMatch(/^block 1: there is no path line before it: put the file's path alone on the line just before `<<<<<<< SEARCH`/);
    expect(err('Here is my fix for the bug in the parser\n<<<<<<< FILE\na\n>>>>>>> FILE\n')).toMatch(/^block 1: the line before it \("Here is my fix/);
    // The path line is the line right before the marker (or its fence), not one further up.
    expect(err('a.py\n\n<<<<<<< FILE\na\n>>>>>>> FILE\n')).toMatch(/^block 1: the line before it is blank, not its path line/);
    expect(err('a.py\n\n```\n<<<<<<< FILE\na\n>>>>>>> FILE\n```\n')).toMatch(/^block 1: the line before it is blank/);
  });

  it('two dividers', () => {
    expect(err('a.rst\n<<<<<<< SEARCH\nTitle\n=======\nNew\n=======\n>>>>>>> REPLACE\n')).toMatch(
      /^block 1 \(a\.rst\): more than one `=======` divider line: .* longer markers \(`<<<<<<<< SEARCH`, `========`, `>>>>>>>> REPLACE`\)/,
    );
  });

  it('stray closing markers and unknown kinds', () => {
    expect(err('a.py\nfoo\n=======\nbar\n>>>>>>> REPLACE\n')).toMatch(/^line 5: `>>>>>>> REPLACE` without an opening `<<<<<<< SEARCH`/);
    expect(err('a.py\n<<<<<<< EDIT\nx\n')).toMatch(/^line 2: unknown block `<<<<<<< EDIT`: blocks are SEARCH/);
  });

  it('an empty READ block', () => {
    expect(err('<<<<<<< READ\n\n>>>>>>> READ\n')).toMatch(/^the READ block at line 1: lists no files/);
  });

  it('never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
        const r = parse(s);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });
});

describe('paths', () => {
  it.each([
    ['src/a.py', 'src/a.py'],
    ['`src/a.py`', 'src/a.py'],
    ['**src/a.py**', 'src/a.py'],
    ['### src/a.py', 'src/a.py'],
    ['File: src/a.py', 'src/a.py'],
    ['Path: `src/a b.py`', 'src/a b.py'],
    ['"docs/My File.md"', 'docs/My File.md'],
    ['``a`b.md``', 'a`b.md'],
    ['- src/a.py', 'src/a.py'],
    ['Makefile', 'Makefile'],
    ['.gitignore', '.gitignore'],
    ['18.x', '18.x'],
    ['README.md\r', 'README.md'],
  ])('%j → %j', (line, path) => {
    expect(pathFromLine(line)).toBe(path);
  });

  it.each([
    'Then:',
    'Here is the change',
    'Change a.py and b.py',
    '...',
    'src/a.py:',
    'Path: `src/a b.py`:',
    'Update `src/a.py`:',
    'Now edit lib/b.ts',
    'Add the helper (needs Node 18.x):',
    'See README.md for details.',
    'And in the test file:',
    'src/a b.py',
    '``',
    '`  `',
  ])('%j is not a path line', (line) => {
    expect(pathFromLine(line)).toBeUndefined();
  });

  it('markerLength: 7, or one more than the longest run starting a line', () => {
    expect(markerLength([])).toBe(7);
    expect(markerLength(['=======', 'a <<<<<<<<<<<<'])).toBe(8);
    expect(markerLength(['>>>>>>>>>>>> x'])).toBe(13);
  });
});

// ---- A block's path comes only from its own path line, never from prose (issue 14) ----

/** An answer with a real fix (block 1) and a block after `lines` (block 2). */
function afterLines(lines: string[], kind: 'FILE' | 'SEARCH' = 'FILE', fenced = false): string {
  const body = kind === 'FILE' ? ['<<<<<<< FILE', 'helper = 1', '>>>>>>> FILE'] : ['<<<<<<< SEARCH', 'a = 1', '=======', 'a = 2', '>>>>>>> REPLACE'];
  const block = fenced ? ['```python', ...body, '```'] : body;
  return ['Fix g.', '', 'src/calc.py', '<<<<<<< SEARCH', 'x = 1', '=======', 'x = 2', '>>>>>>> REPLACE', '', ...lines, ...block, ''].join('\n');
}

describe('path lines: prose is never a path', () => {
  it.each([
    ['Add the helper (needs Node 18.x):'],
    ['See README.md for details.'],
    ['And in the test file:'],
  ])('%j before a block: an error naming block 2 without a path, in every format, fenced or not', (prose) => {
    for (const f of [editblock, whole]) {
      for (const fenced of [false, true]) {
        for (const kind of ['FILE', 'SEARCH'] as const) {
          const r = f.parse(afterLines([prose], kind, fenced));
          expect(r).toEqual({ ok: false, error: expect.stringMatching(/^block 2: the line before it \(/) });
          if (!r.ok) {
            expect(r.error).toContain(JSON.stringify(prose));
            expect(r.error.split('\n')).toHaveLength(1);
          }
        }
      }
    }
  });

  it('a block after another block of the same file, without its own path line, is an error (the path is not carried over)', () => {
    const text = ['src/calc.py', '<<<<<<< SEARCH', 'x = 1', '=======', 'x = 2', '>>>>>>> REPLACE', '<<<<<<< SEARCH', 'y = 1', '=======', 'y = 2', '>>>>>>> REPLACE', ''].join('\n');
    expect(err(text)).toBe(
      "block 2: there is no path line before it: put the file's path alone on the line just before `<<<<<<< SEARCH` (only the path, in backticks if it has spaces; not a sentence, no trailing ':'; every block needs its own, even for the same file as the block before)",
    );
    expect(err(text.replace('>>>>>>> REPLACE\n<<<', '>>>>>>> REPLACE\n```\n<<<'))).toMatch(/^block 2: there is no path line before it/);
    expect(err(afterLines([], 'SEARCH'))).toMatch(/^block 2: the line before it is blank, not its path line/);
  });

  it('a path line with prose above it is the path; the prose stays prose', () => {
    const v = ok(afterLines(['See README.md for details (needs Node 18.x):', 'src/helper.py'])) as ChangeSet;
    expect(v.files.map((f) => f.path)).toEqual(['src/calc.py', 'src/helper.py']);
    const fenced = ok(afterLines(['And in the test file:', 'tests/test_calc.py'], 'SEARCH', true)) as ChangeSet;
    expect(fenced.files.map((f) => f.path)).toEqual(['src/calc.py', 'tests/test_calc.py']);
  });

  it('the instructions of every format describe the path line as the parser reads it', () => {
    for (const f of [editblock, whole]) {
      expect(f.instructions).toMatch(/line right before/);
      expect(f.instructions).toMatch(/only the path/);
      expect(f.instructions).toMatch(/in backticks if the path has spaces/);
      expect(f.instructions).toMatch(/no trailing ":"/);
    }
    expect(editblock.instructions).toMatch(/Every block needs its own path line, even a block for the same file/);
  });

  // Prose: at least two words, the first a plain word (a sentence, not markup), with the tokens
  // that fooled the old heuristics: versions, file names, paths, colons, parentheses, backticks.
  const plain = fc.constantFrom('Add', 'See', 'And', 'Then', 'Update', 'the', 'helper', 'needs', 'Node', 'in', 'test', 'file', 'for', 'details', 'Now', 'edit', 'with', 'also', 'Python', 'Here');
  const lure = fc.oneof(
    fc.constantFrom('18.x', 'v2.3.1', '3.11', 'README.md', 'package.json', 'src/a.py', 'Makefile', '.env', 'lib/util.ts', 'e.g.', 'CHANGELOG'),
    fc.stringMatching(/^[a-z]{1,6}\.(py|ts|md|x|json)$/),
  );
  const decorated = fc
    .tuple(lure, fc.constantFrom('', '(', '`', '**'), fc.constantFrom('', ')', ':', '.', ',', '`', '**', '):'))
    .map(([w, pre, post]) => pre + w + post);
  const prose = fc
    .tuple(
      fc.constantFrom('', '- ', '### ', '1. ', '> '),
      plain,
      fc.array(fc.oneof(plain, decorated, decorated), { minLength: 1, maxLength: 7 }),
      fc.constantFrom('', ':', '.', '!', ' (see below):', '...'),
    )
    .map(([lead, first, rest, end]) => `${lead}${[first, ...rest].join(' ')}${end}`);

  it('property: a prose line right before a block never becomes its path, in any format', () => {
    fc.assert(
      fc.property(prose, fc.constantFrom('FILE' as const, 'SEARCH' as const), fc.boolean(), (line, kind, fenced) => {
        expect(pathFromLine(line)).toBeUndefined();
        for (const f of [editblock, whole]) {
          const r = f.parse(afterLines(['Some context first.', line], kind, fenced));
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.error).toMatch(/^block 2: the line before it \(/);
        }
      }),
      { numRuns: 500 },
    );
  });

  // A real path line: repository-relative, maybe with the names prose also uses, maybe decorated.
  const pathSegment = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
  const realPath = fc.oneof(
    fc.tuple(fc.array(pathSegment, { maxLength: 3 }), pathSegment, fc.constantFrom('.py', '.ts', '.md', '.x', '.json', '.test.js')).map(([dirs, name, ext]) => [...dirs, name + ext].join('/')),
    fc.constantFrom('18.x', 'README.md', 'Makefile', '.env', 'docs/v2.3.1/notes.md'),
  );
  const spaced = fc.tuple(pathSegment, pathSegment).map(([a, b]) => `docs/${a} ${b}.md`);
  const asLine = fc.constantFrom(
    (p: string) => p,
    (p: string) => `\`${p}\``,
    (p: string) => `**${p}**`,
    (p: string) => `### ${p}`,
    (p: string) => `File: ${p}`,
    (p: string) => `  ${p}  `,
  );

  it('property: a real path line always becomes the block\'s path, whatever prose stands above it', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.tuple(realPath, asLine), fc.tuple(spaced, fc.constant((x: string) => `\`${x}\``))),
        prose,
        fc.constantFrom('FILE' as const, 'SEARCH' as const),
        fc.boolean(),
        ([p, asPathLine], above, kind, fenced) => {
          for (const f of [editblock, whole]) {
            const r = f.parse(afterLines([above, asPathLine(p)], kind, fenced));
            expect(r.ok).toBe(true);
            if (r.ok) expect((r.value as ChangeSet).files.map((x) => x.path)).toEqual(['src/calc.py', p]);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---- Round trip: render → parse gives back exactly the same answer, whatever the content ----

const nastyLine = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/\n/g, '')) },
  { weight: 2, arbitrary: fc.constantFrom('```', '````', '```python', '``` ts', '~~~', '`', '```json', '') },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('<', '=', '>'), fc.integer({ min: 1, max: 12 }), fc.constantFrom('', ' SEARCH', ' REPLACE', ' FILE', ' FILE NOEOL', ' DELETE', ' READ', ' x', '\r', '  '))
      .map(([c, n, kind]) => c.repeat(n) + (c === '=' && kind !== '\r' && kind !== '  ' ? '' : kind)),
  },
  { weight: 1, arbitrary: fc.constantFrom('=======', '<<<<<<< SEARCH', '>>>>>>> REPLACE', '>>>>>>> FILE', 'x\r', '\r', '  indented\t', '\u201ccurly\u201d \u2014', '#!/bin/sh') },
);

const content = fc
  .tuple(fc.array(nastyLine, { maxLength: 12 }), fc.boolean(), fc.boolean())
  .map(([lines, finalNewline, crlf]) => {
    const body = lines.join(crlf ? '\r\n' : '\n');
    if (lines.length === 0) return '';
    return finalNewline ? body + (crlf ? '\r\n' : '\n') : body;
  });

/** Whole lines: empty, or ending with a newline (what a SEARCH/REPLACE block carries). */
const wholeLines = fc.array(nastyLine, { maxLength: 8 }).map((lines) => (lines.length ? `${lines.join('\n')}\n` : ''));

const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
const path = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(segment, { minLength: 0, maxLength: 3 }), segment, fc.constantFrom('.py', '.ts', '.md', '.rs', '', '.test.js')).map(([dirs, name, ext]) => [...dirs, name + ext].join('/')) },
  { weight: 1, arbitrary: fc.constantFrom('Makefile', 'docs/My File.md', '#notes.md', 'a:', 'File: x.py', '**b.py**', '- c.py', 'x', '.env', 'a/b c/d e.txt') },
);

const word = fc.oneof(fc.stringMatching(/^[A-Za-z0-9,.()'"-]{1,10}$/), fc.constantFrom('héllo', '日本語', 'naïve', '—', 'ü'));
const summary = fc
  .array(fc.array(word, { minLength: 1, maxLength: 8 }).map((ws) => ws.join(' ')), { minLength: 1, maxLength: 3 })
  .map((ls) => ls.join('\n'));

const fileChange: fc.Arbitrary<FileChange> = fc.oneof(
  fc.record({ path, action: fc.constant('edit' as const), search: wholeLines, replace: wholeLines }),
  fc.record({ path, action: fc.constant('write' as const), content }),
  fc.record({ path, action: fc.constant('delete' as const) }),
);

const changeSet: fc.Arbitrary<ChangeSet> = fc.record({ summary, files: fc.array(fileChange, { minLength: 1, maxLength: 5 }) });
const filesRequest: fc.Arbitrary<FilesRequest> = fc.oneof(
  fc.record({ needFiles: fc.array(path, { minLength: 1, maxLength: 4 }) }),
  fc.record({ summary, needFiles: fc.array(path, { minLength: 1, maxLength: 4 }) }),
);

describe('round trip (property)', () => {
  it('render → parse gives back exactly the same change set, for any content', () => {
    fc.assert(
      fc.property(changeSet, (cs) => {
        for (const f of [editblock, whole]) {
          const text = f.render(cs);
          expect(f.parse(text)).toEqual({ ok: true, value: cs });
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('render → parse gives back the same files request (duplicates aside)', () => {
    fc.assert(
      fc.property(filesRequest, (req) => {
        const unique = { ...req, needFiles: [...new Set(req.needFiles)] };
        expect(editblock.parse(editblock.render(req))).toEqual({ ok: true, value: unique });
      }),
      { numRuns: 500 },
    );
  });

  it('a subtask proposal round-trips as JSON', () => {
    const p = { summary: 'split', subtasks: [{ title: 'A', description: 'a ```fence``` and <<<<<<< SEARCH inside', acceptanceCriteria: ['x'] }] };
    expect(editblock.parse(editblock.render(p))).toEqual({ ok: true, value: p });
  });

  it('the renderer writes markers longer than any run in the content', () => {
    const text = editblock.render({ summary: 's', files: [{ path: 'a.md', action: 'write', content: '<<<<<<<<<< x\n' }] });
    expect(text).toBe('s\n\na.md\n<<<<<<<<<<< FILE\n<<<<<<<<<< x\n>>>>>>>>>>> FILE\n');
    const blocks = parseBlocks(text).blocks;
    expect(blocks).toHaveLength(1);
  });
});
