// Issue 14 items 4 and 5 at the activity layer (MockActivityEnvironment: real Context, no server),
// against real git and real setup/test commands: a rollback returns to the workspace as setup
// left it (and to nothing else), and the commit is exactly the tree that was tested — checked once
// made, a difference being a clear CommitMismatch.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { simpleGit } from 'simple-git';
import { createActivities } from '../src/activities';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { headCommit, looseCommitTree, readHead } from '../src/activities/gitFiles';
import { readSetupState } from '../src/activities/setupState';
import { readTestedChange, restoreTestedPaths, verifyCommit } from '../src/activities/testedTree';
import type { ActivityDeps, ApplyChangeResult, CommitRequest, CommitResult, WorkspaceHandle } from '../src/activities/types';
import type { ChangeSet } from '../src/domain/schema';
import { makeRepo } from './support/repos';

let base: string;
let deps: ActivityDeps;

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-tested-'));
  deps = { artifactDir: path.join(base, 'artifacts'), workspaceRoot: path.join(base, 'workspaces'), workspaceQueue: 'q', env: process.env, heartbeatMs: 50, repoRoots: [base] };
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

const env = () => new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
const SETUP = 'mkdir -p gen venv/lib venv/include && echo built > gen/x && echo pkg > venv/lib/pkg.py';

/** A clone of a repo ignoring `generated/` and `venv/`, prepared with SETUP, and the activities. */
async function workspace(id: string) {
  const repo = await makeRepo(path.join(base, `origin-${id}`), { '.gitignore': 'generated/\nvenv/\n', 'src/a.py': 'A = 1\n' });
  const acts = createActivities(deps);
  const ws = (await env().run(acts.prepareWorkspace, { workflowId: id, repo, baseBranch: 'main', branch: `weaver/${id}`, setupCommand: SETUP })) as WorkspaceHandle;
  const store = new LocalArtifactStore(deps.artifactDir);
  const apply = async (files: ChangeSet['files']): Promise<ApplyChangeResult> =>
    env().run(acts.applyChange, { workspace: ws, change: await store.putJson('change-set', { summary: 's', files }), shown: Object.fromEntries(files.map((f) => [f.path, 'whole' as const])) });
  const commit = (req: Omit<CommitRequest, 'workspace' | 'message'>): Promise<CommitResult> => env().run(acts.commitAndPush, { workspace: ws, message: 'm', ...req });
  const file = (rel: string) => path.join(ws.dir, rel);
  return { repo, acts, ws, store, apply, commit, file };
}

test('rollback: setup outputs come back as setup left them; what an attempt and its commands made goes, a planted .gitignore included', async () => {
  const { acts, ws, store, apply, file } = await workspace('wf-rollback');
  const applied = await apply([{ path: 'src/a.py', action: 'write', content: 'A = 2\n' }, { path: 'src/new.py', action: 'write', content: 'N = 1\n' }]);
  expect(applied.applied).toBe(true);
  // The failed diff is the attempt's, not setup's.
  const diff = await store.read(applied.diff!);
  expect(diff).toContain('src/new.py');
  expect(diff).not.toMatch(/gen\/x|venv/);
  // What "the tests" did: rewrote and deleted setup outputs, left debris, planted an ignore-all.
  writeFileSync(file('gen/x'), 'clobbered\n');
  rmSync(file('venv/lib/pkg.py'));
  rmSync(file('venv/include'), { recursive: true });
  mkdirSync(file('src/cache'), { recursive: true });
  writeFileSync(file('src/cache/debris'), 'x');
  writeFileSync(file('src/.gitignore'), '*\n');
  mkdirSync(file('nested/.git'), { recursive: true });

  await env().run(acts.rollbackWorkspace, ws);
  expect(readFileSync(file('gen/x'), 'utf8')).toBe('built\n');
  expect(readFileSync(file('venv/lib/pkg.py'), 'utf8')).toBe('pkg\n');
  expect(existsSync(file('venv/include'))).toBe(true);
  expect(readFileSync(file('src/a.py'), 'utf8')).toBe('A = 1\n');
  for (const gone of ['src/new.py', 'src/cache', 'src/.gitignore', 'nested']) expect([gone, existsSync(file(gone))]).toEqual([gone, false]);
  // Nothing staged, no tested change left over.
  expect((await simpleGit(ws.dir).raw(['diff', '--cached', '--name-only'])).trim()).toBe('');
  expect(await readTestedChange(ws)).toBeUndefined();
});

test('an ignored path of the change is committed, with the rule that ignores it; debris is not', async () => {
  const { ws, apply, commit, file } = await workspace('wf-ignored');
  await apply([{ path: 'generated/helpers.py', action: 'write', content: 'def answer():\n    return 42\n' }]);
  writeFileSync(file('debris.txt'), 'made by a test\n');
  const r = await commit({ paths: ['generated/helpers.py'] });
  const tree = (await simpleGit(ws.dir).raw(['ls-tree', '-r', '--name-only', r.commit])).trim().split('\n');
  expect(tree.sort()).toEqual(['.gitignore', 'generated/helpers.py', 'src/a.py']);
  expect(r.ignored).toEqual(['generated/helpers.py (.gitignore:1:generated/)']);
  // Setup outputs are not reported as the run's; the test's debris is.
  expect(r.leftBehind).toEqual(['debris.txt']);
});

test('the commit is the tested tree even when a command changed the index afterwards (no sandbox)', async () => {
  const { ws, apply, commit, file } = await workspace('wf-index');
  await apply([{ path: 'src/a.py', action: 'write', content: 'A = 2\n' }, { path: 'src/b.py', action: 'write', content: 'B = 1\n' }]);
  // A test run without a sandbox ran git: unstaged the change's new file, staged its own, rewrote a.py.
  const git = simpleGit(ws.dir);
  await git.raw(['rm', '-q', '--cached', 'src/b.py']);
  writeFileSync(file('src/a.py'), 'A = 3\n');
  writeFileSync(file('own.txt'), 'own\n');
  await git.raw(['add', 'src/a.py', 'own.txt']);
  const r = await commit({ paths: ['src/a.py', 'src/b.py'] });
  expect(await git.show([`${r.commit}:src/a.py`])).toBe('A = 2\n');
  expect(await git.show([`${r.commit}:src/b.py`])).toBe('B = 1\n');
  expect((await git.raw(['diff-tree', '-r', '--name-only', `${r.commit}^`, r.commit])).trim().split('\n')).toEqual(['src/a.py', 'src/b.py']);
});

test('after a command: the paths of the change it rewrote or removed are put back as tested; a path the change deleted is left as the command made it', async () => {
  const { ws, apply, file } = await workspace('wf-restore');
  await apply([{ path: 'src/a.py', action: 'delete' }, { path: 'src/b.py', action: 'write', content: 'B = 1\n' }, { path: 'src/c.py', action: 'write', content: 'C = 1\n' }]);
  // What a command did: made the deleted a.py again, rewrote b.py, removed c.py.
  writeFileSync(file('src/a.py'), 'A = 9\n');
  writeFileSync(file('src/b.py'), 'B = 9\n');
  rmSync(file('src/c.py'));
  expect((await restoreTestedPaths(ws)).sort()).toEqual(['src/b.py', 'src/c.py']);
  expect(readFileSync(file('src/b.py'), 'utf8')).toBe('B = 1\n');
  expect(readFileSync(file('src/c.py'), 'utf8')).toBe('C = 1\n');
  expect(readFileSync(file('src/a.py'), 'utf8')).toBe('A = 9\n');
  // Nothing altered since: nothing to put back.
  expect(await restoreTestedPaths(ws)).toEqual([]);
});

test('post-commit check: a commit that leaves out, adds or alters a path of the tested change is a CommitMismatch naming it', async () => {
  const { ws, apply, file } = await workspace('wf-verify');
  await apply([
    { path: 'generated/helpers.py', action: 'write', content: 'X = 1\n' },
    { path: 'src/a.py', action: 'write', content: 'A = 2\n' },
  ]);
  const tested = (await readTestedChange(ws))!;
  expect(tested.paths.sort()).toEqual(['generated/helpers.py', 'src/a.py']);
  const git = simpleGit(ws.dir);
  const commitOf = async (stage: () => Promise<unknown>) => {
    await git.raw(['read-tree', '--reset', 'HEAD']);
    await stage();
    const tree = (await git.raw(['write-tree'])).trim();
    return (await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit-tree', tree, '-p', tested.head, '-m', 'crafted'])).trim();
  };
  const mismatch = (commit: string) => verifyCommit(ws.dir, commit, tested).then(() => 'verified', (e: unknown) => e);

  // What `git add -A` made of it: the ignored file is not in the commit.
  const leftOut = await commitOf(() => git.raw(['add', '-A']));
  const err = await mismatch(leftOut);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ type: 'CommitMismatch', nonRetryable: true });
  expect((err as Error).message).toMatch(/does not hold the tested change: generated\/helpers\.py left out/);

  writeFileSync(file('extra.txt'), 'e\n');
  const extra = await commitOf(() => git.raw(['update-index', '--add', 'generated/helpers.py', 'src/a.py', 'extra.txt']));
  expect(((await mismatch(extra)) as Error).message).toMatch(/extra\.txt committed but not in the change set/);

  writeFileSync(file('src/a.py'), 'A = 3\n');
  const altered = await commitOf(() => git.raw(['update-index', '--add', 'generated/helpers.py', 'src/a.py']));
  expect(((await mismatch(altered)) as Error).message).toMatch(/src\/a\.py not as tested/);

  // The tested tree itself passes.
  const exact = (await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit-tree', tested.tree, '-p', tested.head, '-m', 'ok'])).trim();
  expect(await mismatch(exact)).toBe('verified');
});

test('committing a change set other than the one applied and tested fails clearly, and nothing is committed', async () => {
  const { ws, apply, commit } = await workspace('wf-otherset');
  await apply([{ path: 'src/a.py', action: 'write', content: 'A = 2\n' }]);
  const err = await commit({ paths: ['src/a.py', 'src/b.py'] }).then(() => undefined, (e: unknown) => e);
  expect(err).toMatchObject({ type: 'CommitMismatch' });
  expect((err as Error).message).toMatch(/not the one applied and tested/);
  expect((await simpleGit(ws.dir).revparse(['HEAD'])).trim()).toBe(ws.baseCommit);
});

test('a workspace rebuilt on another worker (prepare and setup again) rolls back to its own state after setup', async () => {
  const { repo } = await workspace('wf-rebuild');
  // Another worker: its own workspace root; the same task, so the same branch and base.
  const other = createActivities({ ...deps, workspaceRoot: path.join(base, 'other-worker'), workspaceQueue: 'q2' });
  const ws = (await env().run(other.prepareWorkspace, { workflowId: 'wf-rebuild', repo, baseBranch: 'main', branch: 'weaver/wf-rebuild', setupCommand: SETUP })) as WorkspaceHandle;
  expect(ws.taskQueue).toBe('q2');
  const file = (rel: string) => path.join(ws.dir, rel);
  writeFileSync(file('gen/x'), 'clobbered\n');
  writeFileSync(file('venv/debris.pyc'), 'x');
  await env().run(other.rollbackWorkspace, ws);
  expect(readFileSync(file('gen/x'), 'utf8')).toBe('built\n');
  expect(existsSync(file('venv/debris.pyc'))).toBe(false);
  expect(readFileSync(file('venv/lib/pkg.py'), 'utf8')).toBe('pkg\n');
});

test('what git cannot snapshot (a nested repository without a commit) is spared by the rollback; nested empty directories come back', async () => {
  const repo = await makeRepo(path.join(base, 'origin-nested'), { 'src/a.py': 'A = 1\n' });
  const acts = createActivities(deps);
  const setupCommand = 'git init -q tool && echo t > tool/f && mkdir -p out/empty/deeper';
  const ws = (await env().run(acts.prepareWorkspace, { workflowId: 'wf-nested', repo, baseBranch: 'main', branch: 'weaver/wf-nested', setupCommand })) as WorkspaceHandle;
  const file = (rel: string) => path.join(ws.dir, rel);
  // Recorded: the nested repository spared whole, the empty directories by their deepest.
  expect(await readSetupState(ws)).toMatchObject({ spared: ['tool/'], emptyDirs: ['out/empty/deeper'] });
  writeFileSync(file('debris.txt'), 'x');
  rmSync(file('out'), { recursive: true });
  await env().run(acts.rollbackWorkspace, ws);
  expect(readFileSync(file('tool/f'), 'utf8')).toBe('t\n');
  expect(existsSync(file('out/empty/deeper'))).toBe(true);
  expect(existsSync(file('debris.txt'))).toBe(false);
});

test("a file of the change holding a key of the worker is kept out of the commit, the rest is committed, and the commit named is the branch's head", async () => {
  const key = 'sk-worker-key-0123456789abcdef';
  deps = { ...deps, env: { ...process.env, WEAVER_TEST_API_KEY: key } };
  const { ws, apply, commit } = await workspace('wf-secret');
  await apply([
    { path: 'src/a.py', action: 'write', content: 'A = 2\n' },
    { path: 'src/leak.py', action: 'write', content: `KEY = "${key}"\n` },
  ]);
  const r = await commit({ paths: ['src/a.py', 'src/leak.py'] });
  expect(r.refusedSecrets).toEqual(['src/leak.py']);
  const git = simpleGit(ws.dir);
  // The id taken from the commit's own output is the branch's head, in full.
  expect((await git.revparse(['HEAD'])).trim()).toBe(r.commit);
  expect((await git.raw(['diff-tree', '-r', '--name-only', `${r.commit}^`, r.commit])).trim().split('\n')).toEqual(['src/a.py']);
  expect(await git.show([`${r.commit}:src/a.py`])).toBe('A = 2\n');
});

describe("answers read from .git's files instead of a git process", () => {
  const git = (dir: string, ...args: string[]) => simpleGit(dir).raw(args).then((s) => s.trim());

  test('HEAD and its branch as rev-parse says them; a packed or detached ref answered by git all the same', async () => {
    const dir = await makeRepo(path.join(base, 'r'), { 'a.txt': 'a\n' });
    const branch = await git(dir, 'rev-parse', '--abbrev-ref', 'HEAD');
    expect(await readHead(dir)).toEqual({ commit: await git(dir, 'rev-parse', 'HEAD'), branch });
    // Packed: not the files' to answer; headCommit asks git.
    await git(dir, 'pack-refs', '--all');
    expect(existsSync(path.join(dir, '.git', 'refs', 'heads', branch))).toBe(false);
    expect(await readHead(dir)).toBeUndefined();
    expect(await headCommit(dir)).toBe(await git(dir, 'rev-parse', 'HEAD'));
    // Detached: the commit, no branch.
    await git(dir, 'checkout', '-q', '--detach');
    expect(await readHead(dir)).toEqual({ commit: await git(dir, 'rev-parse', 'HEAD') });
  });

  test("a new commit's tree from its loose object, checked by its hash: a packed or forged one is git's to answer", async () => {
    const dir = await makeRepo(path.join(base, 'r'), { 'a.txt': 'a\n' });
    const commit = await git(dir, 'rev-parse', 'HEAD');
    expect(await looseCommitTree(dir, commit)).toBe(await git(dir, 'rev-parse', `${commit}^{tree}`));
    // Another object's bytes at the commit's path: the hash says it is not the commit.
    const blob = await git(dir, 'rev-parse', 'HEAD:a.txt');
    const at = (id: string) => path.join(dir, '.git', 'objects', id.slice(0, 2), id.slice(2));
    const forgedDir = await makeRepo(path.join(base, 'f'), { 'a.txt': 'a\n' });
    const forgedCommit = await git(forgedDir, 'rev-parse', 'HEAD');
    rmSync(at(forgedCommit).replace(dir, forgedDir), { force: true });
    writeFileSync(at(forgedCommit).replace(dir, forgedDir), readFileSync(at(blob)), { mode: 0o444 });
    expect(await looseCommitTree(forgedDir, forgedCommit)).toBeUndefined();
    // Packed (gc): undefined, and verifyCommit still decides through git.
    await git(dir, 'gc', '-q', '--prune=now');
    expect(existsSync(at(commit))).toBe(false);
    expect(await looseCommitTree(dir, commit)).toBeUndefined();
  });
});
