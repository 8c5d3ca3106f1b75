import fc from 'fast-check';
import { EDIT_FORMATS, editFormat, editblock, markerLength, parseBlocks, pathFromLine, whole } from '../src/domain/editformats';
import type { ChangeSet, FileChange, FilesRequest, ModelAnswer } from '../src/domain/schema';

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
      '### **File: `src/x y.py`**:',
      '```python',
      '<<<<< SEARCH  \r',
      'a',
      '=====\r',
      'b',
      '>>>>> REPLACE \r',
      '```',
      '',
      '```python',
      '<<<<<<< SEARCH',
      'c',
      '=======',
      'd',
      '>>>>>>> REPLACE',
      '```',
      'Then update `lib/util.ts`:',
      '<<<<<<< SEARCH',
      'e',
      '=======',
      '>>>>>>> REPLACE',
    ].join('\n');
    expect(ok(text)).toEqual({
      summary: 'Summary here.',
      files: [
        { path: 'src/x y.py', action: 'edit', search: 'a\n', replace: 'b\n' },
        // No path line after the previous block: the previous path.
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
    expect(err('<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n')).toMatch(/^block 1: no file path before it: put the file's path alone on the line just before/);
    expect(err('Here is my fix for the bug in the parser\n<<<<<<< FILE\na\n>>>>>>> FILE\n')).toMatch(/^block 1: the line before it \("Here is my fix/);
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
    ['Path: `src/a b.py`:', 'src/a b.py'],
    ['src/a.py:', 'src/a.py'],
    ['- src/a.py', 'src/a.py'],
    ['Makefile', 'Makefile'],
    ['.gitignore', '.gitignore'],
    ['Update `src/a.py`:', 'src/a.py'],
    ['Now edit lib/b.ts', 'lib/b.ts'],
  ])('%j → %j', (line, path) => {
    expect(pathFromLine(line)).toBe(path);
  });

  it.each(['Then:', 'Here is the change', 'Change a.py and b.py', '...'])('%j is not a path', (line) => {
    expect(pathFromLine(line)).toBeUndefined();
  });

  it('markerLength: 7, or one more than the longest run starting a line', () => {
    expect(markerLength([])).toBe(7);
    expect(markerLength(['=======', 'a <<<<<<<<<<<<'])).toBe(8);
    expect(markerLength(['>>>>>>>>>>>> x'])).toBe(13);
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
