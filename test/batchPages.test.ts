// The pure parts of a paged batch (src/domain/batch.ts): results arriving out of order leave in
// pages in input order, and the pages join back only when they line up.
import { jsonLinesWindow, joinPages, PageBuffer, toJsonLines, type ResultPage } from '../src/domain/batch';
import type { CodingTaskResult } from '../src/domain/schema';
import { emptyUsage } from '../src/domain/usage';

const row = (i: number): CodingTaskResult => ({ workflowId: `b/${i + 1}`, status: 'succeeded', reason: '', branch: `x${i}`, attempts: [], usage: emptyUsage(), artifacts: [] });
const page = (from: number, count: number): ResultPage => ({ from, count, ref: { ref: `sha256:${String(from).padStart(64, '0')}`, bytes: 0, kind: 'batch-results' } });

test('a page leaves only when its rows are all in, in input order; drain takes the contiguous rest', () => {
  const b = new PageBuffer(10, 3);
  for (const i of [12, 11, 14]) b.add(i, row(i));
  expect(b.take()).toBeUndefined();
  b.add(10, row(10));
  expect(b.take()).toEqual({ from: 10, rows: [row(10), row(11), row(12)] });
  expect(b.take()).toBeUndefined();
  // 13 is missing: a drain stops before the gap.
  expect(b.take(true)).toBeUndefined();
  b.add(13, row(13));
  expect(b.take(true)).toEqual({ from: 13, rows: [row(13), row(14)] });
});

test('pages join back in input order whatever order they are listed in; a gap or a short page is refused', async () => {
  const rows = Array.from({ length: 5 }, (_, i) => row(i));
  const read = async (p: ResultPage) => rows.slice(p.from, p.from + p.count);
  expect(await joinPages([page(3, 2), page(0, 3)], read)).toEqual(rows);
  await expect(joinPages([page(0, 2), page(3, 2)], read)).rejects.toThrow(/do not line up/);
  await expect(joinPages([page(0, 3), page(3, 2)], async (p) => (await read(p)).slice(1))).rejects.toThrow(/holds 2 rows, not 3/);
});

test('a window of a JSON Lines list, and its length', () => {
  const text = toJsonLines([{ a: 1 }, { a: 2 }, { a: 3 }]);
  expect(jsonLinesWindow(text, 1, 5)).toEqual({ items: [{ a: 2 }, { a: 3 }], total: 3 });
  expect(jsonLinesWindow(text, 3, 2)).toEqual({ items: [], total: 3 });
});
