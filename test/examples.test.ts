// The example files users copy from must stay valid against the schema the client enforces.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseBatchInput, parseTaskInput } from '../src/domain/schema';

const dir = path.join(__dirname, '..', 'examples');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

test('there are examples', () => {
  expect(files).toEqual(expect.arrayContaining(['task.json', 'batch.json', 'consensus-task.json']));
});

test.each(files)('examples/%s is a valid input', (file) => {
  const raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { tasks?: unknown };
  if (raw.tasks) expect(parseBatchInput(raw).tasks!.length).toBeGreaterThan(0);
  else expect(parseTaskInput(raw).providers.length).toBeGreaterThan(0);
});
