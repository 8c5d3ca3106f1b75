// A change applied and its checks run in one activity (issue 18: fewer round trips), at the
// activity layer (MockActivityEnvironment: real Context, no server) against real git and real
// commands: the results are applyChange's and runCheck's, it stops where the workflow decides,
// and running it again — a retry, or the workflow queueing it again after its worker went
// silent — never applies the change twice nor loses it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { stateDirOf } from '../src/activities/setupState';
import { recordAppliedChange } from '../src/activities/testedTree';
import type { ActivityDeps, ApplyAndCheckRequest, ApplyAndCheckResult, ApplyChangeResult, WorkspaceHandle } from '../src/activities/types';
import type { ChangeSet, StepOutcome } from '../src/domain/schema';
import { makeRepo } from './support/repos';

let base: string;
let deps: ActivityDeps;

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-fold-'));
  deps = { artifactDir: path.join(base, 'artifacts'), workspaceRoot: path.join(base, 'workspaces'), workspaceQueue: 'q', env: process.env, heartbeatMs: 50, repoRoots: [base] };
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** The clock the workflow gives it (a day and more); `startToCloseTimeoutMs` smaller to see what a short one does. */
const env = (startToCloseTimeoutMs = 24 * 3600_000, runId = 'run-1') =>
  new MockActivityEnvironment({ startToCloseTimeoutMs, workflowExecution: { workflowId: 'wf', runId } }, { logger: new DefaultLogger('ERROR') });

// lint passes unless the file says `var`; test passes only on the change applied exactly once; docs never applies here.
const PLAYBOOK = "steps:\n  - name: lint\n    run: node lint.js\n  - name: test\n    run: node test.js\n  - name: docs\n    when: changed('docs/**')\n    run: \"true\"\n";
const FILES = {
  'src/a.js': 'module.exports = 1;\n',
  'lint.js': "process.exit(/\\bvar\\b/.test(require('fs').readFileSync('src/a.js', 'utf8')) ? 1 : 0);\n",
  'test.js': "process.exit(require('./src/a.js') === 2 ? 0 : 1);\n",
};
/** Applied twice, this edit fails (its SEARCH is gone): a second application is never silent. */
const ONCE: ChangeSet['files'] = [{ path: 'src/a.js', action: 'edit', search: 'module.exports = 1;\n', replace: 'module.exports = 1 + 1;\n' }];

async function workspace(id: string, playbook = PLAYBOOK) {
  const repo = await makeRepo(path.join(base, `origin-${id}`), FILES);
  const acts = createActivities(deps);
  const ws = (await env().run(acts.prepareWorkspace, { workflowId: id, repo, baseBranch: 'main', branch: `weaver/${id}`, checks: { playbook } })) as WorkspaceHandle;
  const store = new LocalArtifactStore(deps.artifactDir);
  const request = async (files: ChangeSet['files']): Promise<ApplyAndCheckRequest> => ({
    workspace: ws,
    change: await store.putJson('change-set', { summary: 's', files }),
    shown: { 'src/a.js': 'whole' },
    checks: { playbook: ws.playbook! },
    run: { attempt: 1, labels: [], testTimeoutSec: 60 },
  });
  const source = () => readFileSync(path.join(ws.dir, 'src/a.js'), 'utf8');
  /** One run of the folded activity; `clockMs`: the start-to-close it is given; `runId`: the workflow run it works for. */
  const fold = (req: ApplyAndCheckRequest, clockMs?: number, runId?: string) => env(clockMs, runId).run(acts.applyChangeAndCheck, req) as Promise<ApplyAndCheckResult>;
  return { acts, ws, request, source, fold };
}

test('applied and checked in one activity: the results applyChange and runCheck give; run again after a check died, the change is neither applied twice nor lost', async () => {
  const { acts, ws, request, source, fold } = await workspace('wf-fold');
  const req = await request(ONCE);
  const first = await fold(req);
  expect(first.applied).toMatchObject({ applied: true, files: ['src/a.js'], errors: [] });
  expect(first.checked.map((s) => [s.name, s.status])).toEqual([
    ['lint', 'passed'],
    ['test', 'passed'],
  ]);
  expect(source()).toBe('module.exports = 1 + 1;\n');

  // The same as the two activities give, on the same workspace from the setup state.
  await env().run(acts.rollbackWorkspace, ws);
  const { checks, run: _run, ...applyReq } = req;
  const applied = (await env().run(acts.applyChange, { ...applyReq, checks })) as ApplyChangeResult;
  expect(applied).toEqual(first.applied);
  const lint = (await env().run(acts.runCheck, { workspace: ws, step: ws.playbook!.steps[0], timeoutSec: 60 })) as StepOutcome;
  expect({ ...lint, durationMs: 0, log: undefined, resources: undefined }).toEqual({ ...first.checked[0], durationMs: 0, log: undefined, resources: undefined });
  await env().run(acts.rollbackWorkspace, ws);

  // A try that died in a check (after rewriting the change's file): the next one checks the change as it was applied.
  const again = await fold(req);
  writeFileSync(path.join(ws.dir, 'src/a.js'), 'module.exports = 9;\n');
  const retried = await fold(req);
  expect(source()).toBe('module.exports = 1 + 1;\n');
  expect(retried.applied).toEqual(again.applied);
  expect(retried.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
});

test('heartbeats: none from a try done within one period (its steps noted, not sent); a longer one sends the step it runs', async () => {
  const beatsOf = async (heartbeatMs: number, id: string) => {
    deps.heartbeatMs = heartbeatMs;
    const { acts, request } = await workspace(id);
    const e = env();
    const beats: unknown[] = [];
    e.on('heartbeat', (d: unknown) => beats.push(d));
    const r = (await e.run(acts.applyChangeAndCheck, await request(ONCE))) as ApplyAndCheckResult;
    expect(r.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
    return beats;
  };
  // Each beat is a write at the server: two steps run and noted in a period send nothing.
  expect(await beatsOf(60_000, 'wf-beats-none')).toEqual([]);
  // Every 5 ms, two node processes' time: the notes reach the server with the beats.
  expect((await beatsOf(5, 'wf-beats-some')).filter((d) => typeof d === 'string' && /^running the (lint|test) step$/.test(d)).length).toBeGreaterThan(0);
});

test('a try that died while writing the change: the next starts from the state after setup, so the change is applied once', async () => {
  const { ws, request, source, fold } = await workspace('wf-fold-mid');
  const req = await request(ONCE);
  // What the dead try left: the change being applied, its file half-way (here: already written).
  await recordAppliedChange(ws, req.change.ref);
  writeFileSync(path.join(ws.dir, 'src/a.js'), 'module.exports = 1 + 1;\n');
  const r = await fold(req);
  expect(r.applied.applied).toBe(true);
  expect(source()).toBe('module.exports = 1 + 1;\n');
  expect(r.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
});

test('a try killed while recording the applied change (the record cut short): the next rolls back and applies once', async () => {
  const { ws, request, source, fold } = await workspace('wf-fold-cut');
  const req = await request(ONCE);
  await fold(req);
  expect(source()).toBe('module.exports = 1 + 1;\n');
  // The change written, its record half-way: unreadable, so not taken for "nothing applied".
  writeFileSync(path.join(stateDirOf(ws)!, 'applied.json'), `{"change":"${req.change.ref}","result":{"appl`);
  const r = await fold(req);
  expect(r.applied.applied).toBe(true);
  expect(source()).toBe('module.exports = 1 + 1;\n');
  expect(r.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
});

test('it stops where the workflow decides: a change that does not apply, one that breaks the syntax, a step that fails, a step longer than its clock has left', async () => {
  const { acts, ws, request, source, fold } = await workspace('wf-fold-stops');
  const notApplied = await fold(await request([{ path: 'src/a.js', action: 'edit', search: 'no such text', replace: 'x' }]));
  expect(notApplied.applied.applied).toBe(false);
  expect(notApplied.applied.errors.length).toBeGreaterThan(0);
  expect(notApplied.checked).toEqual([]);
  await env().run(acts.rollbackWorkspace, ws);

  const broken = await fold(await request([{ path: 'src/a.js', action: 'write', content: 'module.exports = function add(a, b) {\n  return (a + b;\n};\n' }]));
  expect(broken.applied.syntaxErrors?.length).toBeGreaterThan(0);
  expect(broken.checked).toEqual([]);
  await env().run(acts.rollbackWorkspace, ws);

  // lint fails: test is not run (the workflow decides what a failure means).
  const lintFails = await fold(await request([{ path: 'src/a.js', action: 'write', content: 'var a = 2;\nmodule.exports = a;\n' }]));
  expect(lintFails.checked.map((s) => [s.name, s.status])).toEqual([['lint', 'failed']]);
  await env().run(acts.rollbackWorkspace, ws);

  // A rollback forgot the kept result: the same change is applied afresh, once.
  const short = await fold(await request(ONCE), 60_000);
  expect(short.applied.applied).toBe(true);
  expect(source()).toBe('module.exports = 1 + 1;\n');
  // A minute's clock cannot hold a step of 60 s the way runCheck's would: the steps are the workflow's.
  expect(short.checked).toEqual([]);
});

test.each([
  ['its repository', 'rm -rf .git'],
  ['its whole folder', 'rm -rf "$(dirname "$PWD")"'],
])('a workspace lost in a check (%s gone) says the change was applied: the rebuild after it makes progress', async (_what, wipe) => {
  // The check takes the workspace with it, as a wiped disk would.
  const { request, fold } = await workspace(`wf-fold-lost-${_what.length}`, `steps:\n  - name: test\n    run: ${JSON.stringify(['sh', '-c', wipe])}\n`);
  const lost = await fold(await request(ONCE)).catch((err: unknown) => err);
  expect(lost).toBeInstanceOf(ApplicationFailure);
  expect(lost).toMatchObject({ type: 'WorkspaceLost', nonRetryable: true, details: [{ applied: true }] });
});

describe('the commit made with the checks (runs since COMMIT_WITH_CHECKS)', () => {
  const commitOf = (id: string) => ({ message: `t\n\nWeaver-Workflow: ${id}`, workflowId: id, pushRemote: 'origin', bundle: true, release: 'pushed' as const });
  const git = (dir: string, ...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' }).trim();

  test('every check passed: committed with the change as checked, pushed and the clone removed; a retry after that answers from the record, nothing committed twice', async () => {
    const { ws, request, fold } = await workspace('wf-fold-commit');
    const origin = path.join(base, 'origin-wf-fold-commit');
    const req = { ...(await request(ONCE)), commit: commitOf('wf-fold-commit') };
    const r = await fold(req);
    expect(r.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
    expect(r.committed).toMatchObject({ pushed: true, released: true });
    // What the checks saw is what was pushed: the change's file, nothing else, on the task's branch.
    expect(git(origin, 'rev-parse', `weaver/wf-fold-commit`)).toBe(r.committed!.commit);
    expect(git(origin, 'show', `${r.committed!.commit}:src/a.js`)).toBe('module.exports = 1 + 1;');
    expect(git(origin, 'diff', '--name-only', ws.baseCommit, r.committed!.commit)).toBe('src/a.js');
    expect(existsSync(ws.dir)).toBe(false);
    // The worker died before Temporal heard of it: the retry finds no clone and answers with the whole result.
    const retry = await fold(req);
    expect(retry).toEqual(r);
    expect(git(origin, 'rev-list', '--count', `${ws.baseCommit}..weaver/wf-fold-commit`)).toBe('1');
  });

  test('a try that died after its commit, before it was reported (the clone kept): the next commits on the recorded verdict and makes nothing twice', async () => {
    const { ws, request, fold } = await workspace('wf-fold-recommit');
    const req = { ...(await request(ONCE)), commit: { message: 't\n\nWeaver-Workflow: wf-fold-recommit', workflowId: 'wf-fold-recommit' } };
    const first = await fold(req);
    expect(first.committed).toMatchObject({ pushed: false });
    const again = await fold(req);
    expect(again.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
    expect(again.committed?.commit).toBe(first.committed!.commit);
    expect(git(ws.dir, 'rev-list', '--count', `${ws.baseCommit}..HEAD`)).toBe('1');
  });

  test('a try that passed every check and died before its commit was reported: the next commits on that verdict, never checks again under the commit (a flaky check failing now)', async () => {
    const { ws, request, fold } = await workspace('wf-fold-flaky');
    const req = { ...(await request(ONCE)), commit: { message: 't\n\nWeaver-Workflow: wf-fold-flaky', workflowId: 'wf-fold-flaky' } };
    const first = await fold(req);
    expect(first.committed?.commit).toBeTruthy();
    // The test would fail if it ran again now.
    writeFileSync(path.join(ws.dir, 'test.js'), 'process.exit(1);\n');
    const again = await fold(req);
    expect(again.checked.map((s) => s.status)).toEqual(['passed', 'passed']);
    expect(again.checked.map((s) => s.log?.ref)).toEqual(first.checked.map((s) => s.log?.ref));
    expect(again.committed?.commit).toBe(first.committed!.commit);
    expect(git(ws.dir, 'rev-list', '--count', `${ws.baseCommit}..HEAD`)).toBe('1');
  });

  test("another run with the same workflow id never takes a removed workspace's record for its own result", async () => {
    const { ws, request, fold } = await workspace('wf-fold-reused');
    const req = { ...(await request(ONCE)), commit: commitOf('wf-fold-reused') };
    const first = await fold(req, undefined, 'run-1');
    expect(first.committed).toMatchObject({ pushed: true, released: true });
    // Run 2 of the same id (its workspace lost before its fold): lost, not run 1's pass.
    const other = await fold(req, undefined, 'run-2').catch((err: unknown) => err);
    expect(other).toBeInstanceOf(ApplicationFailure);
    expect(other).toMatchObject({ type: 'WorkspaceLost' });
    // Its own try (run 1 again) still answers from the record.
    expect(await fold(req, undefined, 'run-1')).toEqual(first);
    // And commitAndPush under run 2 does not either: it finds no checkout to commit.
    const acts = createActivities(deps);
    const viaCommit = await env(undefined, 'run-2').run(acts.commitAndPush, { ...commitOf('wf-fold-reused'), workspace: ws, paths: ['src/a.js'] }).catch((err: unknown) => err);
    expect(viaCommit).toBeInstanceOf(ApplicationFailure);
  });

  test('a check that fails, or steps left for the workflow: no commit (the verdict is the workflow’s), the branch where it was', async () => {
    const { acts, ws, request, fold } = await workspace('wf-fold-nocommit');
    const origin = path.join(base, 'origin-wf-fold-nocommit');
    const commit = commitOf('wf-fold-nocommit');
    const lintFails = await fold({ ...(await request([{ path: 'src/a.js', action: 'write', content: 'var a = 2;\nmodule.exports = a;\n' }])), commit });
    expect(lintFails.checked.map((s) => [s.name, s.status])).toEqual([['lint', 'failed']]);
    expect(lintFails.committed).toBeUndefined();
    await env().run(acts.rollbackWorkspace, ws);
    // A minute's clock: no step run here, so none passed here either.
    const short = await fold({ ...(await request(ONCE)), commit }, 60_000);
    expect(short.checked).toEqual([]);
    expect(short.committed).toBeUndefined();
    expect(git(ws.dir, 'rev-parse', 'HEAD')).toBe(ws.baseCommit);
    expect(() => git(origin, 'rev-parse', '--verify', '-q', 'weaver/wf-fold-nocommit')).toThrow();
  });
});

test('a workspace no command touched records its setup state from the checkout itself (no snapshot tree, no git process); a rollback still returns exactly there', async () => {
  const { acts, ws, source } = await workspace('wf-untouched');
  const state = JSON.parse(readFileSync(path.join(stateDirOf(ws)!, 'setup.json'), 'utf8')) as { head: string; tree: string; emptyDirs: string[] };
  expect(state).toEqual({ head: ws.baseCommit, tree: ws.baseCommit, emptyDirs: [] });
  // What an attempt leaves: a tracked file changed, new files, a planted ignore-all, an empty directory.
  writeFileSync(path.join(ws.dir, 'src/a.js'), 'module.exports = 7;\n');
  writeFileSync(path.join(ws.dir, 'new.txt'), 'debris\n');
  writeFileSync(path.join(ws.dir, '.gitignore'), '*\n');
  mkdirSync(path.join(ws.dir, 'made/empty'), { recursive: true });
  await env().run(acts.rollbackWorkspace, ws);
  expect(source()).toBe('module.exports = 1;\n');
  for (const gone of ['new.txt', '.gitignore', 'made']) expect(existsSync(path.join(ws.dir, gone))).toBe(false);
  expect(execFileSync('git', ['status', '--porcelain', '--ignored'], { cwd: ws.dir, encoding: 'utf8' })).toBe('');
});
