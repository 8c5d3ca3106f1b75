// Issue 14 items 4 and 5 end to end: real dev server, real worker, real git repos, the real
// openai SDK over HTTP to the scripted model server, real setup and test commands (in the
// sandbox when the machine has bubblewrap). Attempts after the first run with what setup built;
// the failed diff and the commit hold the attempt's change only; the pushed commit is the tree
// that was tested, ignored paths included.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { editText, wholeFile } from './support/answers';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;

let rig: Rig;
useRig((r) => (rig = r));

const branchFiles = async (repo: string, branch: string) => (await simpleGit(repo).raw(['ls-tree', '-r', '--name-only', branch])).split('\n').filter(Boolean).sort();
const artifact = (ref: string) => readFile(path.join(rig.artifactDir, 'sha256', ref.slice(7, 9), ref.slice(7)), 'utf8');

test('attempt 2 runs with what setup built (an untracked gen/x, no .gitignore); neither the failed diff nor the commit holds it', async () => {
  const repo = await rig.newRepo();
  rig.model.script('so-setup', [{ content: wholeFile('src/slugify.js', BAD) }, { content: wholeFile('src/slugify.js', GOOD) }]);
  // Each test run needs gen/x as setup wrote it, then clobbers it and leaves debris of its own.
  const testCommand = ['sh', '-c', 'grep -qx built gen/x || { echo "gen/x missing or changed"; exit 9; }; echo clobbered >> gen/x; echo debris > debris.txt; node --test test/'];
  const r = await rig.run(rig.task(repo, [rig.provider('so-setup')], { setupCommand: 'mkdir -p gen && echo built > gen/x', testCommand, push: true }));

  expect(r.status).toBe('succeeded');
  expect(r.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
  // Attempt 1 failed on slugify (exit 1 from node --test), not on gen/x (exit 9).
  expect(r.attempts[0].tests?.exitCode).toBe(1);
  const failedDiff = await artifact(r.attempts[0].artifacts.find((a) => a.kind === 'diff')!.ref);
  expect(failedDiff).toContain('src/slugify.js');
  expect(failedDiff).not.toContain('gen/');
  const second = lastUserText(rig.model.requestsFor('so-setup')[1]);
  expect(second).toContain('The change you made (it was rolled back)');
  expect(second).toContain('+  return String(t).toLowerCase();');
  // The diff shown holds the change only (the feedback above it names the test command, which mentions gen/x).
  const shownDiff = second.slice(second.indexOf('The change you made (it was rolled back)'));
  expect(shownDiff).not.toMatch(/gen\/x|\+built/);
  // The pushed commit: the change only.
  expect((await simpleGit(repo).raw(['diff', '--name-only', 'main', r.branch])).trim()).toBe('src/slugify.js');
  expect(await branchFiles(repo, r.branch)).not.toEqual(expect.arrayContaining(['gen/x']));
  expect(r.warnings?.join('\n')).toMatch(/not committed \(the run wrote or changed them after the change applied\): .*debris\.txt/);
});

test('an ignored generated/helpers.py is pushed (with a warning naming the rule); a .gitignore of "*" planted by attempt 1\'s tests does not hide attempt 2\'s new file; test debris is not committed', async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'ignored-repo'), {
    '.gitignore': 'generated/\n',
    'run.py': 'from generated.helpers import answer\nfrom lib.util import double\nassert answer() == 42, f"answer() is {answer()}"\nassert double(21) == 42\nprint("ok")\n',
  });
  const helpers = (n: number) => ({ path: 'generated/helpers.py', action: 'write' as const, content: `def answer():\n    return ${n}\n` });
  const util = { path: 'lib/util.py', action: 'write' as const, content: 'def double(x):\n    return 2 * x\n' };
  rig.model.script('so-ignored', [{ content: editText('helpers', [helpers(41)]) }, { content: editText('helpers and util', [helpers(42), util]) }]);
  // Every test run plants an ignore-all in lib/ and leaves a file of its own.
  const testCommand = ['sh', '-c', 'mkdir -p lib && printf "*\\n" > lib/.gitignore; echo debris > made-by-tests.txt; /usr/bin/python3 run.py'];
  const r = await rig.run({ ...rig.task(repo, [rig.provider('so-ignored')], { testCommand, push: true }), task: { title: 'Add helpers', description: 'Write generated/helpers.py and lib/util.py so run.py passes.' } });

  expect(r.status).toBe('succeeded');
  expect(r.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
  expect(r.attempts[1].filesChanged?.sort()).toEqual(['generated/helpers.py', 'lib/util.py']);
  // The pushed branch holds exactly what the tests ran with: the ignored file and the new one.
  const files = await branchFiles(repo, r.branch);
  expect(files).toEqual(['.gitignore', 'generated/helpers.py', 'lib/util.py', 'run.py']);
  expect(await simpleGit(repo).show([`${r.branch}:generated/helpers.py`])).toBe('def answer():\n    return 42\n');
  expect(r.warnings).toContain('committed although the repository ignores them (the tests ran with them): generated/helpers.py (.gitignore:1:generated/)');
  // Attempt 1's planted lib/.gitignore was gone before attempt 2 applied: no rule of it is named.
  expect(r.warnings?.join('\n')).not.toContain('lib/.gitignore');
  // The pushed branch passes its own tests in a fresh clone.
  const clone = path.join(rig.tmp, 'ignored-clone');
  await simpleGit().clone(repo, clone, ['--branch', r.branch]);
  const { execFileSync } = await import('node:child_process');
  expect(execFileSync('/usr/bin/python3', ['run.py'], { cwd: clone, encoding: 'utf8' })).toBe('ok\n');
});
