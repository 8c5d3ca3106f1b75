// The change's diff built in-process (issue 18 item 4) is the text git itself gives for the same
// staged change — added, deleted, "renamed" (a delete and an add), binary, without a trailing
// newline, CRLF, executable, emptied, several hunks with their function lines — and where the
// worker cannot vouch for the bytes git would diff (an attributes file), git is asked instead.
// Real git repositories in temp dirs.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyChangeSet } from '../src/activities/apply';
import { changeDiff, CHANGE_DIFF_FLAGS, type WrittenFile } from '../src/activities/changeDiff';
import { gitRun } from '../src/activities/git';
import { readSetupState, recordSetupState } from '../src/activities/setupState';
import { stageChange } from '../src/activities/testedTree';
import type { ChangeSet, FileChange } from '../src/domain/schema';
import { addFiles, makeRepo } from './support/repos';

let base: string;
beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-changediff-'));
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const numbered = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `\tline ${i + from}`).join('\n') + '\n';
const LONG = `package demo\n\nfunc first() {\n${numbered(12)}}\n\nfunc second() {\n${numbered(12, 20)}}\n`;

/** A workspace as the worker makes it (`<root>/<id>/repo`), its setup state recorded. */
async function workspace(id: string, files: Record<string, string | Buffer>) {
  const dir = path.join(base, id, 'repo');
  await makeRepo(dir, files);
  const ws = { dir, id };
  await recordSetupState(ws);
  return ws;
}

/** Applies `change`, stages it as applyChange does, and returns the diff made and git's own for the same paths. */
async function bothDiffs(ws: { dir: string; id: string }, change: FileChange[]) {
  const written: WrittenFile[] = [];
  // Every file shown whole, as the prompt would have: whole rewrites allowed.
  const shown = Object.fromEntries(change.map((c) => [c.path, 'whole' as const]));
  const r = await applyChangeSet(ws.dir, { summary: 'change', files: change } as ChangeSet, { shown }, written);
  expect(r.errors).toEqual([]);
  const staged = await stageChange(ws, r.files, written);
  const setup = (await readSetupState(ws))!;
  const git = await gitRun(ws.dir, ['diff', '--cached', ...CHANGE_DIFF_FLAGS, setup.tree, '--', ...r.files.map((p) => `:(literal)${p}`)]);
  const inProcess = await changeDiff(ws.dir, written, setup.indexFile, path.join(ws.dir, '.git', 'index'));
  return { staged: staged.diff, git, inProcess };
}

test("the in-process diff is git's, byte for byte, for adds, deletes, renames, binaries, missing newlines, CRLF, modes and hunks", async () => {
  const ws = await workspace('w1', {
    'keep.go': LONG,
    'old/name.txt': 'moved content\nsecond line\n',
    'gone.txt': 'to be deleted\n',
    'blob.bin': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3, 0, 10]),
    'crlf.txt': 'one\r\ntwo\r\nthree\r\n',
    'tail.txt': 'no newline at the end',
    'run.sh': '#!/bin/sh\necho old\n',
    'empty-me.txt': 'some text\n',
  });
  chmodSync(path.join(ws.dir, 'run.sh'), 0o755);
  await addFiles(ws.dir, {}, 'the exec bit');
  await recordSetupState(ws);
  const d = await bothDiffs(ws, [
    // Two hunks, each under a function line git finds.
    { path: 'keep.go', action: 'edit', search: '\tline 6\n', replace: '\tline six\n' },
    { path: 'keep.go', action: 'edit', search: '\tline 26\n', replace: '\tline twenty-six\n\tline 26b\n' },
    { path: 'old/name.txt', action: 'delete' },
    { path: 'new/name.txt', action: 'write', content: 'moved content\nsecond line\n' },
    { path: 'gone.txt', action: 'delete' },
    { path: 'blob.bin', action: 'delete' },
    { path: 'added.bin', action: 'write', content: 'bin\u0000ary\n' },
    { path: 'crlf.txt', action: 'edit', search: 'two\r\n', replace: 'TWO\r\n' },
    { path: 'tail.txt', action: 'write', content: 'no newline at the end, still\nnor here' },
    { path: 'run.sh', action: 'edit', search: 'echo old', replace: 'echo new' },
    { path: 'empty-me.txt', action: 'write', content: '' },
    { path: 'brand/new.txt', action: 'write', content: 'fresh\n' },
    { path: 'blank.txt', action: 'write', content: '' },
  ] as FileChange[]);
  expect(d.git).toContain('Binary files a/blob.bin and /dev/null differ');
  expect(d.git).toContain('\\ No newline at end of file');
  expect(d.git).toMatch(/^@@ -\d+,7 \+\d+,7 @@ func first\(\) \{$/m);
  expect(d.git).toMatch(/^@@ -\d+,7 \+\d+,8 @@ func second\(\) \{$/m);
  expect(d.git).toContain('index ');
  expect(d.inProcess).toBe(d.git);
  expect(d.staged).toBe(d.git);
}, 60_000);

test('an attributes file (eol conversion, -diff) sends the diff to git, and the staged diff is still git’s', async () => {
  const ws = await workspace('w2', { '.gitattributes': '*.txt eol=crlf\n*.dat -diff\n', 'a.txt': 'one\r\ntwo\r\n', 'b.dat': 'plain text\n' });
  const d = await bothDiffs(ws, [
    { path: 'a.txt', action: 'write', content: 'one\r\nTWO\r\n' },
    { path: 'b.dat', action: 'write', content: 'other text\n' },
  ] as FileChange[]);
  expect(d.inProcess).toBeUndefined();
  expect(d.git).toContain('Binary files a/b.dat and b/b.dat differ');
  expect(d.staged).toBe(d.git);
}, 60_000);

test('a file that is not as the setup state recorded it (a leftover the rollback did not see) is diffed by git', async () => {
  const ws = await workspace('w3', { 'a.txt': 'recorded\n' });
  // Changed behind the worker's back after setup: the bytes before the change are not the recorded blob.
  writeFileSync(path.join(ws.dir, 'a.txt'), 'drifted\n');
  const d = await bothDiffs(ws, [{ path: 'a.txt', action: 'write', content: 'changed\n' }] as FileChange[]);
  expect(d.inProcess).toBeUndefined();
  expect(d.staged).toBe(d.git);
  expect(d.git).toContain('-recorded');
}, 60_000);
