/**
 * The patch epoch (src/workflows/patches.ts): one marker answers every change it covers. Its set
 * is frozen — a history with the epoch marker was made by code with exactly these changes — and
 * every patch id the workflow code checks is either covered or a later change of its own.
 * (That runs of current code record only the epoch: test/roundTrips.test.ts; that older
 * histories still replay: test/replayFixtures.test.ts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EPOCH_COVERS, EPOCHS, PATCH_EPOCH } from '../src/workflows/patches';

const WORKFLOWS = path.join(__dirname, '../src/workflows');
const DOMAIN = path.join(__dirname, '../src/domain');

/** Exported or module-level string constants of src/workflows and src/domain: name → value. */
function stringConstants(): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of [WORKFLOWS, DOMAIN]) {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/const ([A-Z_]+) = '([a-z0-9-]+)';/g)) out.set(m[1], m[2]);
    }
  }
  return out;
}

/** Every id the workflow code passes to patched(), literal or through a constant. */
function checkedIds(): Set<string> {
  const constants = stringConstants();
  const ids = new Set<string>();
  for (const f of readdirSync(WORKFLOWS).filter((n) => n.endsWith('.ts') && n !== 'patches.ts')) {
    for (const m of readFileSync(path.join(WORKFLOWS, f), 'utf8').matchAll(/\bpatched\(([^)]*)\)/g)) {
      const arg = m[1].trim();
      const literal = /^'([a-z0-9-]+)'$/.exec(arg)?.[1];
      const id = literal ?? constants.get(arg);
      if (!id) throw new Error(`${f}: patched(${arg}) — its id is not a string constant this test can read`);
      ids.add(id);
    }
  }
  return ids;
}

test('the epoch covers exactly the changes it was cut with (frozen: a new change gets its own patch or a new epoch)', () => {
  const first = EPOCHS.find((e) => e.marker === 'weaver-epoch-1')!;
  expect([...first.covers].sort()).toMatchSnapshot();
});

test('each epoch covers the one before it and the changes made since, newest first; a run records the newest', () => {
  expect(EPOCHS.map((e) => e.marker)).toEqual(['weaver-epoch-2', 'weaver-epoch-1']);
  expect(PATCH_EPOCH).toBe('weaver-epoch-2');
  expect(EPOCH_COVERS).toBe(EPOCHS[0].covers);
  const since = (newer: ReadonlySet<string>, older: ReadonlySet<string>) => [...newer].filter((id) => !older.has(id)).sort();
  for (let i = 0; i + 1 < EPOCHS.length; i += 1) expect([...EPOCHS[i + 1].covers].every((id) => EPOCHS[i].covers.has(id))).toBe(true);
  // Frozen: what each later epoch added.
  expect(since(EPOCHS[0].covers, EPOCHS[1].covers)).toEqual(['commit-with-checks', 'prepare-waits-for-cancel']);
});

test('every patch id the workflow code checks is known: covered by the epoch or one of the changes after it', () => {
  const AFTER_THE_EPOCH: string[] = [];
  const unknown = [...checkedIds()].filter((id) => !EPOCH_COVERS.has(id) && !AFTER_THE_EPOCH.includes(id));
  expect(unknown).toEqual([]);
  // The scan is not vacuous: it finds the checks the epoch covers.
  expect(checkedIds().size).toBeGreaterThanOrEqual(30);
  for (const id of checkedIds()) expect(EPOCH_COVERS.has(id) || AFTER_THE_EPOCH.includes(id)).toBe(true);
});
