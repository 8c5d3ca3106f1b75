// codingTask end to end: real dev server, real worker, real git repos, the real openai SDK
// over HTTP to the scripted model server, real test processes.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { simpleGit } from 'simple-git';
import { workspaceDirFor } from '../src/activities/workspace';
import { resultOf } from '../src/client';
import { demoModelStep } from '../scripts/demo/example';
import type { Progress } from '../src/domain/schema';
import { WeaverPhase, WeaverStatus } from '../src/domain/searchAttributes';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { historySizeBytes } from './support/temporal';
import { useRig, type Rig } from './support/weaver';
import { editText, wholeFile } from './support/answers';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;
const answer = (content: string, file = 'src/slugify.js') => ({ content: wholeFile(file, content, 'edit slugify') });

let rig: Rig;
useRig((r) => (rig = r));

/** Polls the progress query until the run reaches `phase` (30 s at most), then asserts it. */
async function waitForPhase(h: WorkflowHandle, phase: Progress['phase']): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await h.query<Progress>('progress')).phase !== phase && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect((await h.query<Progress>('progress')).phase).toBe(phase);
}

test('succeeds on the first attempt: commit on the task branch, pushed to the repo, usage counted', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-first', [{ ...answer(GOOD), usage: { prompt_tokens: 1000, completion_tokens: 500 } }]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-first')], { push: true }));

  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].tests?.passed).toBe(true);
  expect(result.usage).toMatchObject({ calls: 1, tokensIn: 1000, tokensOut: 500, costUsd: 0.002 });
  expect(result.usage.byProvider['m-first']).toMatchObject({ calls: 1, tokensIn: 1000 });
  // The branch with that commit exists in the original repository.
  const head = (await simpleGit(repo).revparse([result.branch])).trim();
  expect(head).toBe(result.commit);
  expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);
  // Searchable in the Web UI / `temporal workflow list --query 'WeaverStatus="succeeded"'`.
  const description = await rig.client.workflow.getHandle(result.workflowId).describe();
  const { typedSearchAttributes } = description;
  // The Web UI's summary line and details of the run.
  expect(await description.staticSummary()).toBe('Weaver: Implement slugify');
  expect(await description.staticDetails()).toContain('**providers** m-first (m-first)');
  expect(typedSearchAttributes.get(WeaverStatus)).toBe('succeeded');
  expect(typedSearchAttributes.get(WeaverPhase)).toBe('done');
  // Artifacts are referenced, and they exist in the store.
  const kinds = result.artifacts.map((a) => a.kind).concat(result.attempts[0].artifacts.map((a) => a.kind));
  expect(kinds).toEqual(expect.arrayContaining(['prompt', 'response', 'change-set', 'diff', 'test-log', 'report']));
  const hex = result.artifacts.find((a) => a.kind === 'report')!.ref.slice('sha256:'.length);
  const report = await readFile(path.join(rig.artifactDir, 'sha256', hex.slice(0, 2), hex), 'utf8');
  expect(report).toContain('- status: **succeeded** — tests passed on attempt 1 of 3');
  expect(report).toMatch(/\| m-first \| 1 \| - \| 1000\/500 \|/);
});

test('retries with the failure as feedback and succeeds on attempt 2', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-retry', [answer(BAD), answer(GOOD)]);
  const handle = await rig.start(rig.task(repo, [rig.provider('m-retry')]));
  const result = await handle.result();

  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
  expect(result.attempts[0].decision.action).toBe('retry');
  const [first, second] = rig.model.requestsFor('m-retry');
  expect(lastUserText(first)).not.toContain('previous attempt');
  // The second prompt carries the first attempt's test failure.
  expect(lastUserText(second)).toContain('previous attempt (attempt 1) failed');
  expect(lastUserText(second)).toMatch(/Hello World|hello-world|AssertionError|deja-vu/);
  // The rolled-back attempt left nothing behind: the commit holds only the good version.
  const progress = await handle.query('progress');
  expect(progress).toMatchObject({ phase: 'done', attempt: 2, status: 'succeeded' });
});

test('the scripted demo model needs exactly two attempts', async () => {
  const repo = await rig.newRepo();
  rig.model.setDefault('m-demo', demoModelStep);
  const result = await rig.run(rig.task(repo, [rig.provider('m-demo')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(2);
});

test('attempts exhausted → failed with the reason', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-bad', [answer(BAD), answer(BAD)]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-bad')], { limits: { maxAttempts: 2 }, decomposition: 'never' }));
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/tests failed \(exit 1\); 2 attempt\(s\) exhausted/);
  expect(result.attempts.map((a) => a.decision.action)).toEqual(['retry', 'fail']);
  expect(result.commit).toBeUndefined();
  expect(rig.model.count('m-bad')).toBe(2);
});

test('a schema-violating answer is an outcome: retried with the validation error as feedback', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-schema', [{ content: { summary: 'oops', files: [{ path: 'x.js', action: 'rename' }] } }, { content: 'no edit blocks at all' }, answer(GOOD)]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-schema')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['schema_violation', 'schema_violation', 'tests_passed']);
  expect(lastUserText(rig.model.requestsFor('m-schema')[1])).toContain('could not be read');
  expect(result.usage.calls).toBe(3);
});

test('429 with Retry-After: waits, retries the call, and does not consume an attempt', async () => {
  const repo = await rig.newRepo();
  // Retry-After: 30 s, scaled by the test worker's retryDelayScale 0.01 → 300 ms durable timer.
  rig.model.script('m-429', [{ status: 429, headers: { 'retry-after': '30' } }, answer(GOOD)]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-429')]));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  const [limited, ok] = rig.model.requestsFor('m-429');
  expect(limited.status).toBe(429);
  expect(ok.receivedAt - limited.receivedAt).toBeGreaterThanOrEqual(300);
  expect(result.usage.byProvider['m-429'].failures).toEqual({ rate_limit: 1 });
  expect(result.attempts[0].calls.map((c) => c.errorFamily ?? c.outcome)).toEqual(['rate_limit', 'ok']);
});

test('401 fails fast with a clear non-retryable error and no retries', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-401', [{ status: 401 }]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-401')]));
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/auth.*401/);
  expect(rig.model.count('m-401')).toBe(1);
  expect(result.attempts).toHaveLength(1);
  // The key never shows up in what the workflow recorded.
  expect(JSON.stringify(result)).not.toContain('sk-test-secret-key');
});

test('path traversal in an answer is rejected and nothing is written outside the workspace', async () => {
  const repo = await rig.newRepo();
  const outside = path.join(rig.tmp, 'escaped.txt');
  rig.model.script('m-escape', [
    { content: editText('escape', [{ path: 'src/slugify.js', action: 'write', content: GOOD }, { path: '../../escaped.txt', action: 'write', content: 'pwned' }]) },
    answer(GOOD),
  ]);
  const result = await rig.run(rig.task(repo, [rig.provider('m-escape')]));
  expect(result.attempts[0].outcome).toBe('apply_failed');
  expect(result.attempts[0].detail).toMatch(/\.\.\/\.\.\/escaped\.txt/);
  expect(existsSync(outside)).toBe(false);
  expect((await readdir(rig.tmp)).filter((f) => f.includes('escaped'))).toEqual([]);
  expect(lastUserText(rig.model.requestsFor('m-escape')[1])).toContain('could not be applied');
  expect(result.status).toBe('succeeded');
});

test('a hanging test command is timed out and its process group killed', async () => {
  const repo = await rig.newRepo();
  const marker = `weaver-hang-${Date.now()}`;
  rig.model.script('m-hang', [answer(GOOD)]);
  const result = await rig.run(
    rig.task(repo, [rig.provider('m-hang')], {
      // A grandchild in the background and a child in the foreground, both hanging.
      testCommand: `node -e 'setInterval(() => {}, 1000)' ${marker} & node -e 'setInterval(() => {}, 1000)' ${marker}; wait`,
      limits: { maxAttempts: 1, testTimeoutSec: 2 },
    }),
  );
  expect(result.status).toBe('failed');
  expect(result.attempts[0].tests).toMatchObject({ timedOut: true, passed: false });
  expect(result.reason).toMatch(/timed out/);
  const { execSync } = await import('node:child_process');
  const alive = execSync(`ps -eo args | grep '${marker}' | grep -v grep || true`).toString().trim();
  expect(alive).toBe('');
});

test('a 10 MB test output: stored whole as an artifact, history stays small', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-big', [answer(GOOD)]);
  const handle = await rig.start(
    rig.task(repo, [rig.provider('m-big')], {
      testCommand: `head -c 10485760 /dev/zero | tr '\\0' 'x'; node --test test/`,
    }),
  );
  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  const log = result.attempts[0].tests!.log!;
  expect(log.bytes).toBeGreaterThan(10 * 1024 * 1024);
  const stored = await readFile(path.join(rig.artifactDir, 'sha256', log.ref.slice(7, 9), log.ref.slice(7)));
  expect(stored.length).toBe(log.bytes);
  expect(result.attempts[0].tests!.tail.length).toBeLessThanOrEqual(4096);
  expect(await historySizeBytes(rig.client, handle.workflowId)).toBeLessThan(100_000);
});

test('invalid input is rejected at the client, naming the field, and nothing starts', async () => {
  const before = rig.model.count();
  await expect(
    rig.start({ repo: '/tmp/x', task: { title: '', description: 'd' }, providers: [] } as never),
  ).rejects.toThrow(/task\.title[\s\S]*providers/);
  expect(rig.model.count()).toBe(before);
});

test('invalid input sent around the client fails the workflow with InvalidTaskInput', async () => {
  const handle = await rig.client.workflow.start('codingTask', {
    taskQueue: rig.taskQueue,
    workflowId: `test-invalid-${Date.now()}`,
    args: [{ repo: 'x', task: { title: 't', description: 'd' }, providers: [{ id: 'p', model: 'm', apiKeyEnv: 'sk-live-not-a-name' }] }],
  });
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const message = String((err as WorkflowFailedError).cause?.message);
  expect(message).toMatch(/providers\.0\.apiKeyEnv: not accepted in a task input: name a provider id from the worker's registry \(WEAVER_PROVIDERS\)/);
  expect(message).not.toContain('sk-live-not-a-name');
});

test('requireApproval: commits, waits for a person, pushes only when approved', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-approve', [answer(GOOD), answer(GOOD)]);
  const approved = await rig.start(rig.task(repo, [rig.provider('m-approve')], { push: true, requireApproval: true }));
  const rejected = await rig.start(rig.task(repo, [rig.provider('m-approve')], { push: true, requireApproval: true }));
  for (const h of [approved, rejected]) await waitForPhase(h, 'awaiting_approval');
  const branches = async () => (await simpleGit(repo).branchLocal()).all;
  const { branch } = await approved.query<Progress>('progress');
  expect(await branches()).not.toContain(branch);

  expect(await approved.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana' }] })).toBe('approved: pushing now');
  expect(await rejected.executeUpdate('approvePush', { args: [{ approved: false, by: 'bo', comment: 'not yet' }] })).toMatch(/^rejected/);
  // A second decision is refused, with the reason.
  await expect(rejected.executeUpdate('approvePush', { args: [{ approved: true }] })).rejects.toThrow(WorkflowUpdateFailedError);
  const ok = await resultOf(approved);
  // `rejected` fails its workflow (PushRejected); the result comes with the failure.
  const no = await resultOf(rejected);
  expect(ok).toMatchObject({ status: 'succeeded', pushed: true });
  expect(await simpleGit(repo).revparse([ok.branch])).toBe(ok.commit);
  expect(ok.approval).toMatchObject({ approved: true, by: 'ana', via: 'update' });
  // A rejected push is its own status, not a success.
  expect(no).toMatchObject({ status: 'rejected', pushed: false, approval: { approved: false, by: 'bo', comment: 'not yet', via: 'update' } });
  expect(no.reason).toContain('push rejected by bo: not yet; nothing was pushed');
  expect(await branches()).not.toContain(no.branch);
});

test('consensus: a workspace lost while the answers are compared is rebuilt in place; the three paid answers are kept', async () => {
  const repo = await rig.newRepo();
  const id = `test-vote-rebuild-${Date.now()}`;
  const { rm } = await import('node:fs/promises');
  let calls = 0;
  let wiped: Promise<void> | undefined;
  const step = async () => {
    calls += 1;
    // The clone is gone (wholly) before any answer arrives, so before any comparison of files.
    wiped ??= rm(workspaceDirFor(rig.workspaceRoot, id), { recursive: true, force: true });
    await wiped;
    return answer(GOOD);
  };
  for (const m of ['v-1', 'v-2', 'v-3']) rig.model.setDefault(m, step);
  const result = await rig.run(rig.task(repo, ['v-1', 'v-2', 'v-3'].map((m) => rig.provider(m)), { strategy: { mode: 'consensus' }, push: true }), id);
  expect(result.status).toBe('succeeded');
  expect(calls).toBe(3);
  expect(result.attempts).toHaveLength(1);
  expect(result.attempts[0].calls).toHaveLength(3);
  // A quorum was reached on the rebuilt clone (a comparison that raced the re-clone can still
  // count as a dissenting vote: the quorum is 2 of 3, the answers are all kept either way).
  expect(result.attempts[0].selection?.voteShare).toBeGreaterThanOrEqual(2 / 3);
  expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
});

test('a workspace lost while its commit awaits approval: the branch is restored from its bundle and pushed, nothing redone', async () => {
  const repo = await rig.newRepo();
  const id = `test-restore-${Date.now()}`;
  rig.model.script('m-restore', [answer(GOOD)]);
  const h = await rig.start(rig.task(repo, [rig.provider('m-restore')], { push: true, requireApproval: true }), id);
  await waitForPhase(h, 'awaiting_approval');
  // The commit is safe off the worker before anyone is asked: bundled into the artifact store.
  const { rm } = await import('node:fs/promises');
  const home = workspaceDirFor(rig.workspaceRoot, id);
  const [checkout] = (await readdir(home)).filter((d) => existsSync(path.join(home, d, '.git')));
  const approvedCommit = (await simpleGit(path.join(home, checkout)).revparse(['HEAD'])).trim();
  await rm(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  expect(await h.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana' }] })).toBe('approved: pushing now');
  const result = await resultOf(h);
  expect(result).toMatchObject({ status: 'succeeded', pushed: true });
  expect(rig.model.count('m-restore')).toBe(1);
  expect(result.attempts).toHaveLength(1);
  // The commit pushed is the very commit made before the approval (restored, not re-made).
  const pushed = (await simpleGit(repo).revparse([result.branch])).trim();
  expect(pushed).toBe(result.commit);
  expect(pushed).toBe(approvedCommit);
  const trailer = await simpleGit(repo).raw(['log', '-1', '--format=%(trailers:key=Weaver-Workflow,valueonly)', result.branch]);
  expect(trailer.trim()).toBe(id);
  expect(await simpleGit(repo).raw(['rev-list', '--count', `main..${result.branch}`])).toBe('1\n');
});

test('a workspace that disappears mid-run is rebuilt and the paid answer applied again, not bought again nor counted', async () => {
  const repo = await rig.newRepo();
  const id = `test-rebuild-${Date.now()}`;
  const { rm } = await import('node:fs/promises');
  let calls = 0;
  rig.model.setDefault('m-rebuild', async () => {
    calls += 1;
    // While attempt 2 is being generated, the worker "loses" the workspace (disk wiped, new machine).
    if (calls === 2) await rm(workspaceDirFor(rig.workspaceRoot, id), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    return calls === 1 ? answer(BAD) : answer(GOOD);
  });
  const result = await rig.run(rig.task(repo, [rig.provider('m-rebuild')], { push: true }), id);
  expect(result.status).toBe('succeeded');
  expect(result.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
  // Attempt 2's answer was paid before its workspace went: it is applied on the rebuilt one.
  expect(rig.model.count('m-rebuild')).toBe(2);
  expect(result.attempts[1].calls).toHaveLength(1);
  expect(result.attempts[1].notes?.join('\n')).toMatch(/worker was lost during applying \(.+\); the same answer was applied again on a rebuilt workspace/);
  expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
});

test('an infrastructure failure past its retries still returns a result: failed, with the reason', async () => {
  rig.model.script('m-noclone', [answer(GOOD)]);
  const result = await rig.run(rig.task(path.join(rig.tmp, 'no-such-repo'), [rig.provider('m-noclone')]));
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/^preparing failed: cannot clone .*no-such-repo/);
  expect(rig.model.count('m-noclone')).toBe(0);
  expect(result.artifacts.map((a) => a.kind)).toContain('report');
});

test('approvePush on a task that does not require approval is refused with the reason', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-noapprove', [{ ...answer(GOOD), delayMs: 2000 }]);
  const handle = await rig.start(rig.task(repo, [rig.provider('m-noapprove')], { push: true }));
  const err = await handle.executeUpdate('approvePush', { args: [{ approved: true }] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/does not require approval/);
  expect((await handle.result()).status).toBe('succeeded');
});

test('a branch that is the (default) base branch is refused before anything is changed', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-mainbranch', [answer(GOOD)]);
  const { baseBranch: _b, ...noBase } = rig.task(repo, [rig.provider('m-mainbranch')], { push: true, branch: 'main' });
  const result = await rig.run(noBase);
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/branch "main" is the base branch/);
  expect(rig.model.count('m-mainbranch')).toBe(0);
});

test('approval by signal works too; cancelling while awaiting approval keeps and reports the commit', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-approve2', [answer(GOOD), answer(GOOD)]);
  const bySignal = await rig.start(rig.task(repo, [rig.provider('m-approve2')], { push: true, requireApproval: true }));
  const cancelled = await rig.start(rig.task(repo, [rig.provider('m-approve2')], { push: true, requireApproval: true }));
  for (const h of [bySignal, cancelled]) await waitForPhase(h, 'awaiting_approval');
  await bySignal.signal('approvePush', { approved: true, by: 'cli-user' });
  await cancelled.cancel();
  expect(await bySignal.result()).toMatchObject({ status: 'succeeded', pushed: true });
  const c = await cancelled.result();
  expect(c.status).toBe('cancelled');
  expect(c.commit).toMatch(/^[0-9a-f]{40}$/);
  // Not pushed, but not lost: the workspace with the commit is kept and named.
  expect(c.pushed).toBe(false);
  expect((await simpleGit(c.workspace!).revparse([c.branch])).trim()).toBe(c.commit);
});

test('the approval signal is a real gate: an early one and a malformed one are refused and recorded, a valid one decides', async () => {
  const repo = await rig.newRepo();
  // Slow enough to signal before the commit exists.
  rig.model.script('m-gate', [{ ...answer(GOOD), delayMs: 1500 }]);
  const h = await rig.start(rig.task(repo, [rig.provider('m-gate')], { push: true, requireApproval: true }));
  await h.signal('approvePush', { approved: true, by: 'too-early' });
  await waitForPhase(h, 'awaiting_approval');
  // Not a boolean: refused, however it reads.
  await h.signal('approvePush', { approved: 'no' as unknown as boolean, by: 'stringly' });
  expect((await h.query<Progress>('progress')).phase).toBe('awaiting_approval');
  await h.signal('approvePush', { approved: false, by: 'carla', comment: 'needs a test' });
  const r = await resultOf(h);
  expect(r).toMatchObject({ status: 'rejected', pushed: false, approval: { approved: false, by: 'carla', via: 'signal' } });
  expect(r.refusedApprovals?.map((x) => [x.by, x.reason])).toEqual([
    ['too-early', expect.stringMatching(/^nothing to approve yet: the task is (starting|preparing|generating|applying|testing|deciding|committing)$/)],
    ['stringly', 'approved must be true or false'],
  ]);
  expect((await simpleGit(repo).branchLocal()).all).not.toContain(r.branch);
});

test('an approval that never comes ends the wait after approvalTimeoutSec: nothing pushed, the commit kept as a bundle', async () => {
  const repo = await rig.newRepo();
  rig.model.script('m-timeout', [answer(GOOD)]);
  const r = await rig.run(rig.task(repo, [rig.provider('m-timeout')], { push: true, requireApproval: true, approvalTimeoutSec: 1 }));
  expect(r.status).toBe('rejected');
  expect(r.reason).toMatch(/no approval within 1s; nothing was pushed, the commit is kept as a git bundle/);
  expect(r.pushed).toBe(false);
  expect(r.bundle?.kind).toBe('git-bundle');
  expect((await simpleGit(repo).branchLocal()).all).not.toContain(r.branch);
  // The bundle holds the commit.
  const hex = r.bundle!.ref.slice('sha256:'.length);
  const heads = await simpleGit(repo).raw(['bundle', 'list-heads', path.join(rig.artifactDir, 'sha256', hex.slice(0, 2), hex)]);
  expect(heads).toContain(r.commit!);
});

test('a test command that plants a git hook and a core.fsmonitor command cannot get Weaver\'s git to run them', async () => {
  const repo = await rig.newRepo();
  const marks = path.join(rig.tmp, `hijack-${Date.now()}`);
  rig.model.script('m-hijack', [answer(GOOD)]);
  // The tests pass, and on the way they arm .git: a pre-commit hook and an fsmonitor command,
  // each of which would leave a marker file if git ever ran it.
  const plant = [
    `printf '#!/bin/sh\\ntouch ${marks}-hook\\n' > .git/hooks/pre-commit`,
    'chmod +x .git/hooks/pre-commit',
    `git config core.fsmonitor 'touch ${marks}-fsmonitor; false'`,
    `git config core.hooksPath .git/hooks`,
  ].join('; ');
  // In the sandbox `.git` is read-only, so the planting fails; the tests still pass.
  const r = await rig.run(rig.task(repo, [rig.provider('m-hijack')], { push: true, testCommand: ['sh', '-c', `${plant}; node --test test/`] }));
  expect(r.reason).toMatch(/tests passed/);
  expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
  expect(existsSync(`${marks}-hook`)).toBe(false);
  expect(existsSync(`${marks}-fsmonitor`)).toBe(false);
});

test('a branch that already exists on the remote and was not made by this task is not overwritten', async () => {
  const repo = await rig.newRepo();
  const git = simpleGit(repo);
  // Someone's own work, on the branch name the task asks for.
  await git.raw(['checkout', '-q', '-b', 'feature/theirs']);
  await git.raw(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-q', '--allow-empty', '-m', 'their work']);
  await git.raw(['checkout', '-q', 'main']);
  const theirs = (await git.revparse(['feature/theirs'])).trim();
  rig.model.script('m-foreign', [answer(GOOD), answer(GOOD)]);
  const r = await rig.run(rig.task(repo, [rig.provider('m-foreign')], { push: true, branch: 'feature/theirs' }));
  expect(r.pushed).toBe(false);
  expect(r.warnings?.join('\n')).toMatch(/branch feature\/theirs already exists on origin and was not made by this task; it was not overwritten/);
  expect((await git.revparse(['feature/theirs'])).trim()).toBe(theirs);
  // Weaver's own branch, pushed by the same task again (a rerun under the same ID), is updated.
  const id = `test-own-branch-${Date.now()}`;
  const first = await rig.run(rig.task(repo, [rig.provider('m-foreign')], { push: true }), id);
  expect(first.pushed).toBe(true);
  rig.model.script('m-foreign', [answer(GOOD)]);
  const again = await rig.run(rig.task(repo, [rig.provider('m-foreign')], { push: true }), id);
  expect(again.pushed).toBe(true);
  expect((await git.revparse([again.branch])).trim()).toBe(again.commit);
});

test('what the tests wrote is never committed, even into a file the change wrote: no key reaches the branch', async () => {
  const repo = await rig.newRepo();
  // The rig's worker holds TEST_API_KEY=sk-test-secret-key-123456789 (a provider key, by name).
  // An answer that writes it is refused before it applies (test/promptSecrets.test.ts); here the
  // answer writes a harmless file and the test run puts the key into it (as a test that read
  // the worker's environ would), and drops a file of its own into the tree.
  rig.model.script('m-secret', [
    {
      content: editText('implement slugify, and a config', [
        { path: 'src/slugify.js', action: 'write', content: GOOD },
        { path: 'config/keys.txt', action: 'write', content: 'token=placeholder\n' },
      ]),
    },
  ]);
  const tests = ['sh', '-c', 'echo token=sk-test-secret-key-123456789 > config/keys.txt && echo debris > tests-wrote-this.txt && node --test test/'];
  const r = await rig.run(rig.task(repo, [rig.provider('m-secret')], { push: true, testCommand: tests }));
  expect(r.status).toBe('succeeded');
  const tree = (await simpleGit(repo).raw(['ls-tree', '-r', '--name-only', r.branch])).split('\n');
  expect(tree).toContain('src/slugify.js');
  expect(tree).not.toContain('tests-wrote-this.txt');
  // The change's file is committed as the change wrote it, before any test ran.
  expect(await simpleGit(repo).show([`${r.branch}:config/keys.txt`])).toBe('token=placeholder\n');
  // The test run's rewrite of the change's own file is undone right after it; its debris is left out.
  expect(r.warnings).toEqual(
    expect.arrayContaining([
      'the test step rewrote config/keys.txt on attempt 1: put back as the change wrote them (steps check, they do not write; what is committed is what the checks saw)',
      'not committed (the run wrote or changed them after the change applied): tests-wrote-this.txt',
    ]),
  );
  expect(await simpleGit(repo).show([`${r.branch}:src/slugify.js`])).toBe(GOOD);
});
