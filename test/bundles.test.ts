// Thin bundles (issue 15 item 6): an unpushed commit is kept in the artifact store as a git
// bundle of the task's own commits only (`^base`), however long the repository's history.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { wholeFile } from './support/answers';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;

let rig: Rig;
useRig((r) => (rig = r));

/** `n` more commits on main, made with git fast-import (seconds, not minutes). */
function addHistory(repo: string, n: number): void {
  const parent = execFileSync('git', ['-C', repo, 'rev-parse', 'main'], { encoding: 'utf8' }).trim();
  let stream = '';
  for (let i = 1; i <= n; i++) {
    const body = `line ${i}\n`;
    stream += `commit refs/heads/main\ncommitter t <t@t> ${1_700_000_000 + i} +0000\ndata 8\nhistory\n${i === 1 ? `from ${parent}\n` : ''}M 644 inline history/${i % 50}.txt\ndata ${Buffer.byteLength(body)}\n${body}\n`;
  }
  execFileSync('git', ['-C', repo, 'fast-import', '--quiet'], { input: stream });
  execFileSync('git', ['-C', repo, 'reset', '-q', '--hard', 'main']);
}

test('a bundle of a 5,000-commit repository holds only the task\'s commit', async () => {
  const repo = await rig.newRepo();
  addHistory(repo, 5000);
  expect(Number(execFileSync('git', ['-C', repo, 'rev-list', '--count', 'main'], { encoding: 'utf8' }))).toBeGreaterThan(5000);
  rig.model.script('m-thin', [{ content: wholeFile('src/slugify.js', GOOD, 'slugify') }]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-thin')], { push: false }));
  expect(result.status).toBe('succeeded');
  const bundle = result.bundle!;
  expect(bundle).toBeDefined();
  const file = path.join(rig.artifactDir, 'sha256', bundle.ref.slice(7, 9), bundle.ref.slice(7));
  // It needs the base (the tip of main) and carries the task's branch: one commit on top of it.
  const verify = execFileSync('git', ['-C', repo, 'bundle', 'verify', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const base = (await simpleGit(repo).revparse(['main'])).trim();
  expect(verify).toContain(base);
  const heads = execFileSync('git', ['-C', repo, 'bundle', 'list-heads', file], { encoding: 'utf8' });
  expect(heads).toContain(`${result.commit} refs/heads/${result.branch}`);
  const fetched = path.join(rig.tmp, 'from-bundle');
  execFileSync('git', ['clone', '-q', '--no-local', repo, fetched]);
  execFileSync('git', ['-C', fetched, 'fetch', '-q', file, `refs/heads/${result.branch}:refs/heads/restored`]);
  expect(execFileSync('git', ['-C', fetched, 'rev-list', '--count', `main..restored`], { encoding: 'utf8' }).trim()).toBe('1');
  // Its size is the task's, not the history's: a full bundle of main is hundreds of times larger.
  const full = path.join(rig.tmp, 'full.bundle');
  execFileSync('git', ['-C', repo, 'bundle', 'create', full, 'main'], { stdio: 'ignore' });
  expect(bundle.bytes).toBeLessThan(statSync(full).size / 50);
}, 120_000);
