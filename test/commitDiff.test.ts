// What an approver is shown of a commit (src/activities/commitDiff.ts), on real git: the
// diffstat against the base commit and the whole diff in the artifact store; and which step logs
// an attempt record offers (src/domain/stepLogs.ts), with steps and from before them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { describeCommit, parseNumstat } from '../src/activities/commitDiff';
import type { WorkspaceHandle } from '../src/activities/types';
import type { AttemptRecord } from '../src/domain/schema';
import { stepLogs } from '../src/domain/stepLogs';
import { addFiles, makeRepo } from './support/repos';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'weaver-commitdiff-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('describeCommit: per-file +/− and totals against the base commit (over every commit since), binary files marked, the diff stored', async () => {
  const dir = await makeRepo(path.join(tmp, 'repo'), { 'a.txt': 'one\ntwo\nthree\n', 'gone.txt': 'x\ny\n', 'logo.bin': Buffer.from([0, 1, 2, 3]) });
  const git = simpleGit(dir);
  const base = (await git.revparse(['HEAD'])).trim();
  await addFiles(dir, { 'a.txt': 'one\n2\nthree\nfour\n', 'logo.bin': Buffer.from([0, 9, 9, 9, 9]) }, 'first');
  await git.raw(['rm', '-q', 'gone.txt']);
  // A tab in a name: -z keeps it verbatim in the numstat, the patch quotes it as git does.
  await addFiles(dir, { 'new dir/b.txt': 'b\n', 'tab\there.txt': 't\n' }, 'second');
  const head = (await git.revparse(['HEAD'])).trim();
  const ws: WorkspaceHandle = { id: 'w', dir, taskQueue: 'q', branch: 'main', baseCommit: base };
  const store = new LocalArtifactStore(path.join(tmp, 'artifacts'));

  const d = await describeCommit(store, ws, head);
  expect(d.diffstat).toEqual({
    files: [
      { path: 'a.txt', added: 2, removed: 1 },
      { path: 'gone.txt', added: 0, removed: 2 },
      { path: 'logo.bin', added: 0, removed: 0, binary: true },
      { path: 'new dir/b.txt', added: 1, removed: 0 },
      { path: 'tab\there.txt', added: 1, removed: 0 },
    ],
    filesChanged: 5,
    added: 4,
    removed: 3,
  });
  expect(d.diff?.kind).toBe('diff');
  // The stored diff is git's own, base to head (a binary file named, not spelled out).
  const text = await store.read(d.diff!);
  expect(text).toBe(await git.raw(['diff', '--no-renames', base, head]));
  expect(text).toContain('Binary files a/logo.bin and b/logo.bin differ');
  expect(text).toContain('+++ b/new dir/b.txt');
  expect(text).toContain('+++ "b/tab\\there.txt"');

  // A commit that changes nothing against its base: no diff to store.
  const empty = await describeCommit(store, { ...ws, baseCommit: head }, head);
  expect(empty).toEqual({ diffstat: { files: [], filesChanged: 0, added: 0, removed: 0 } });
});

test('parseNumstat: the file list is bounded, the totals and the count are not', () => {
  const out = Array.from({ length: 5 }, (_, i) => `${i + 1}\t1\tf${i}.txt\0`).join('');
  expect(parseNumstat(out, 2)).toEqual({
    files: [
      { path: 'f0.txt', added: 1, removed: 1 },
      { path: 'f1.txt', added: 2, removed: 1 },
    ],
    filesChanged: 5,
    added: 15,
    removed: 5,
    moreFiles: 3,
  });
});

test('stepLogs: playbook steps as recorded; before steps, the test run as step "test"; nothing run, nothing', () => {
  const log = { ref: `sha256:${'a'.repeat(64)}`, bytes: 10, kind: 'test-log' };
  const withSteps: Pick<AttemptRecord, 'steps' | 'tests'> = {
    steps: [
      { name: 'lint', kind: 'lint', status: 'skipped', skippedBecause: 'changed(**/*.ts)' },
      { name: 'unit', kind: 'test', status: 'failed', log, exitCode: 1 },
    ],
  };
  expect(stepLogs(withSteps)).toEqual([
    { name: 'lint', kind: 'lint', status: 'skipped', skippedBecause: 'changed(**/*.ts)' },
    { name: 'unit', kind: 'test', status: 'failed', log },
  ]);
  expect(stepLogs({ tests: { passed: true, exitCode: 0, timedOut: false, durationMs: 5, tail: '', log } })).toEqual([{ name: 'test', kind: 'test', status: 'passed', log }]);
  expect(stepLogs({})).toEqual([]);
});
