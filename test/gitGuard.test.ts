// What a command may not change in a workspace's .git (src/activities/gitGuard.ts), checked
// directly on a real repository: every change found and put back byte for byte.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync, existsSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { restoreGit, snapshotGit } from '../src/activities/gitGuard';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { makeRepo } from './support/repos';

let base: string;
let repo: string;
beforeEach(async () => {
  base = sandboxableTempDir('weaver-gitguard-');
  repo = await makeRepo(path.join(base, 'repo'), { 'a.txt': 'a\n' });
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

test('an untouched .git has nothing to undo', async () => {
  expect(await restoreGit(repo, await snapshotGit(repo))).toEqual([]);
});

test('a changed config, a planted hook, a re-pointed symlink and a removed ref are reported and put back as they were', async () => {
  const git = path.join(repo, '.git');
  symlinkSync('/dev/null', path.join(git, 'hooks', 'post-checkout'));
  const config = readFileSync(path.join(git, 'config'));
  const ref = path.join(git, 'refs', 'heads', 'main');
  const head = readFileSync(ref);
  const before = await snapshotGit(repo);
  writeFileSync(path.join(git, 'config'), `${config}[core]\n\tfsmonitor = touch /tmp/pwned\n`);
  writeFileSync(path.join(git, 'hooks', 'pre-commit'), '#!/bin/sh\ntouch /tmp/pwned\n', { mode: 0o755 });
  unlinkSync(path.join(git, 'hooks', 'post-checkout'));
  writeFileSync(path.join(git, 'hooks', 'post-checkout'), 'not a link\n');
  unlinkSync(ref);
  expect(await restoreGit(repo, before)).toEqual(['.git/config', '.git/hooks/post-checkout', '.git/hooks/pre-commit', '.git/refs/heads/main']);
  expect(readFileSync(path.join(git, 'config'))).toEqual(config);
  expect(readFileSync(ref)).toEqual(head);
  expect(existsSync(path.join(git, 'hooks', 'pre-commit'))).toBe(false);
  expect(await restoreGit(repo, await snapshotGit(repo))).toEqual([]);
});

test('a FIFO in .git (not a regular file: read asynchronously) is read too: what its writer wrote is its content', async () => {
  const fifo = path.join(repo, '.git', 'info', 'pipe');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', `printf 'from the writer' > '${fifo}'`]);
  const written = new Promise((r) => writer.once('exit', r));
  const snap = await snapshotGit(repo);
  await written;
  expect(lstatSync(fifo).isFIFO()).toBe(true);
  expect(snap.get('info/pipe')?.toString()).toBe('from the writer');
  expect(snap.get('info/exclude')?.length).toBeGreaterThan(0);
});
