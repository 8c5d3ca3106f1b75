// The provider layer's first comparison of answers (consensus compares resulting files on
// the workspace; this digest is what it falls back to, and what shadows carry in events).
import { digestChangeSet } from '../src/activities/llm';
import type { ChangeSet } from '../src/domain/schema';

const edit = { path: 'src/pager.ts', action: 'edit', search: 'export function last(n: number) {\n  return n;\n}\n', replace: 'export function last(n: number) {\n  return n - 1;\n}\n' } as const;
const change: ChangeSet = {
  summary: 'Fix the pager',
  files: [
    edit,
    { path: 'src/pager.test.ts', action: 'write', content: "test('last', () => expect(last(3)).toBe(2));\n" },
    { path: 'src/legacy.ts', action: 'delete' },
  ],
};
const d = digestChangeSet(change);

describe('digestChangeSet', () => {
  it('ignores file order, the summary, a leading ./ and runs of spaces', () => {
    expect(digestChangeSet({ ...change, files: [...change.files].reverse() })).toBe(d);
    expect(digestChangeSet({ ...change, summary: 'a different explanation' })).toBe(d);
    expect(digestChangeSet({ ...change, files: change.files.map((f) => ({ ...f, path: `./${f.path}` })) })).toBe(d);
    const spaced = { ...edit, replace: 'export function last(n:  number) {\n  return n  - 1;\n}\n' };
    expect(digestChangeSet({ ...change, files: [spaced, change.files[1], change.files[2]] })).toBe(d);
  });

  const variants: [string, ChangeSet][] = [
    ['a changed path', { ...change, files: [{ ...edit, path: 'src/pager2.ts' }, change.files[1], change.files[2]] }],
    ['delete turned into write', { ...change, files: [change.files[0], change.files[1], { path: 'src/legacy.ts', action: 'write', content: '' }] }],
    ['a changed replacement', { ...change, files: [{ ...edit, replace: 'export function last(n: number) {\n  return n;\n}\n' }, change.files[1], change.files[2]] }],
    ['a changed search', { ...change, files: [{ ...edit, search: 'return n;\n' }, change.files[1], change.files[2]] }],
    ['a file dropped', { ...change, files: change.files.slice(0, 2) }],
    ['a file added', { ...change, files: [...change.files, { path: 'README.md', action: 'delete' }] }],
  ];

  it.each(variants)('differs for %s', (_name, other) => {
    expect(digestChangeSet(other)).not.toBe(d);
  });
});
