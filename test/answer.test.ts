import { digestChangeSet, parseAnswer } from '../src/activities/llm';
import type { ChangeSet } from '../src/domain/schema';

const change: ChangeSet = {
  summary: 'Fix the pager',
  files: [
    { path: 'src/pager.ts', action: 'modify', content: 'export function last(n: number) {\n  return n - 1;\n}\n' },
    { path: 'src/pager.test.ts', action: 'create', content: "test('last', () => expect(last(3)).toBe(2));\n" },
    { path: 'src/legacy.ts', action: 'delete' },
  ],
};

function expectError(content: string): string {
  const r = parseAnswer(content);
  expect(r.ok).toBe(false);
  return r.ok ? '' : r.error;
}

describe('parseAnswer', () => {
  it('accepts bare JSON, with surrounding whitespace', () => {
    const r = parseAnswer(`\n  ${JSON.stringify(change)}  \n`);
    expect(r).toEqual({ ok: true, value: change });
  });

  it('accepts pretty-printed JSON inside a ```json fence, with prose around it', () => {
    const content = `Here is the change:\n\n\`\`\`json\n${JSON.stringify(change, null, 2)}\n\`\`\`\n\nLet me know!`;
    expect(parseAnswer(content)).toEqual({ ok: true, value: change });
  });

  it('accepts a bare ``` fence', () => {
    expect(parseAnswer(`\`\`\`\n${JSON.stringify(change)}\n\`\`\``)).toEqual({ ok: true, value: change });
  });

  it('accepts a subtask proposal', () => {
    const proposal = { summary: 'split', subtasks: [{ title: 'one', description: 'first part' }] };
    const r = parseAnswer(JSON.stringify(proposal));
    expect(r.ok).toBe(true);
    expect(r.ok && 'subtasks' in r.value ? r.value.subtasks[0].title : undefined).toBe('one');
  });

  it.each([
    ['prose', 'I think you should edit src/pager.ts.'],
    ['truncated JSON', JSON.stringify(change).slice(0, 40)],
    ['a broken fence body', '```json\n{ "summary": "s", files: [] }\n```'],
    ['empty output', ''],
  ])('rejects %s as not valid JSON', (_name, content) => {
    expect(expectError(content)).toMatch(/JSON/);
  });

  it.each([
    ['an empty files array', { summary: 's', files: [] }, 'files'],
    ['an empty path', { summary: 's', files: [{ path: '', action: 'delete' }] }, 'files.0.path'],
    ['a second bad file', { summary: 's', files: [{ path: 'a', action: 'delete' }, { path: '', action: 'delete' }] }, 'files.1.path'],
    ['an empty summary', { summary: '', files: [{ path: 'a', action: 'delete' }] }, 'summary'],
    ['a subtask without a title', { subtasks: [{ title: '', description: 'd' }] }, 'subtasks.0.title'],
  ])('rejects %s, naming the path', (_name, answer, path) => {
    const error = expectError(JSON.stringify(answer));
    expect(error).not.toMatch(/not valid JSON/);
    expect(error.startsWith(`${path}: `) || error.includes(`; ${path}: `)).toBe(true);
  });

  it('rejects valid JSON that is not an answer at all', () => {
    for (const v of [[], 42, 'text', null, {}]) {
      const error = expectError(JSON.stringify(v));
      expect(error).not.toMatch(/not valid JSON/);
      expect(error.length).toBeGreaterThan(0);
    }
  });
});

describe('digestChangeSet', () => {
  const d = digestChangeSet(change);

  it('is a short stable hex digest', () => {
    expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(digestChangeSet(structuredClone(change))).toBe(d);
  });

  it('ignores whitespace-only differences in content', () => {
    const ws: ChangeSet = {
      ...change,
      files: change.files.map((f) =>
        'content' in f ? { ...f, content: `  ${f.content.replace(/\n/g, '\r\n\n').replace(/ /g, '\t ')}\n\n` } : f,
      ),
    };
    expect(ws.files[0]).not.toEqual(change.files[0]);
    expect(digestChangeSet(ws)).toBe(d);
  });

  it('ignores file order, the summary and a leading ./', () => {
    expect(digestChangeSet({ ...change, files: [...change.files].reverse() })).toBe(d);
    expect(digestChangeSet({ ...change, summary: 'a different explanation' })).toBe(d);
    expect(digestChangeSet({ ...change, files: change.files.map((f) => ({ ...f, path: `./${f.path}` })) })).toBe(d);
  });

  const variants: [string, ChangeSet][] = [
    ['a changed path', { ...change, files: [{ ...change.files[0], path: 'src/pager2.ts' }, change.files[1], change.files[2]] }],
    ['a changed action', { ...change, files: [{ ...change.files[0], action: 'create' } as ChangeSet['files'][number], change.files[1], change.files[2]] }],
    ['delete turned into modify', { ...change, files: [change.files[0], change.files[1], { path: 'src/legacy.ts', action: 'modify', content: '' }] }],
    [
      'changed content',
      { ...change, files: [{ path: 'src/pager.ts', action: 'modify', content: 'export function last(n: number) {\n  return n;\n}\n' }, change.files[1], change.files[2]] },
    ],
    [
      'whitespace removed inside a token boundary',
      { ...change, files: [{ path: 'src/pager.ts', action: 'modify', content: 'exportfunction last(n: number) {\n  return n - 1;\n}\n' }, change.files[1], change.files[2]] },
    ],
    ['a file dropped', { ...change, files: change.files.slice(0, 2) }],
    ['a file added', { ...change, files: [...change.files, { path: 'README.md', action: 'delete' }] }],
  ];

  it.each(variants)('differs for %s', (_name, other) => {
    expect(digestChangeSet(other)).not.toBe(d);
  });
});

describe('parseAnswer names the exact field of a violation', () => {
  it('a create without content', () => {
    const r = parseAnswer('{"summary":"s","files":[{"path":"a","action":"create"}]}');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/files\.0/);
  });

  it('accepts an upper-case JSON fence', () => {
    const r = parseAnswer('```JSON\n{"summary":"s","files":[{"path":"a","action":"delete"}]}\n```');
    expect(r.ok).toBe(true);
  });
});
