// The public entry points driven as real processes: the official `temporal` CLI starting a
// codingTask from a JSON file, and the project's own `weaver` CLI (bin/weaver.mjs → tsx →
// src/cli.ts). The worker is the rig's (in this jest process); only the clients are children.
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { simpleGit } from 'simple-git';
import { demoModelStep } from '../scripts/demo/example';
import type { StaticStep } from '../scripts/demo/scriptedModelServer';
import { workspaceDirFor } from '../src/activities/workspace';
import { approvePush, getProgress, resultOf } from '../src/client';
import type { ArtifactRef, BatchResult, CodingTaskInput, CodingTaskResult, Progress } from '../src/domain/schema';
import { closeTestConnections, temporalCliPath, testAddress } from './support/temporal';
import { startRig, type Rig } from './support/weaver';
import { explain, run, WEAVER_BIN } from './support/processes';
import { wholeFile } from './support/answers';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const answer = (content: string) => ({ content: wholeFile('src/slugify.js', content, 'edit slugify') });

let rig: Rig;
let seq = 0;

beforeAll(async () => {
  rig = await startRig();
});
afterAll(async () => {
  await rig?.close();
  await closeTestConnections();
});

async function writeTask(name: string, input: unknown): Promise<string> {
  const file = path.join(rig.tmp, `${name}.json`);
  await writeFile(file, JSON.stringify(input, null, 2));
  return file;
}

const uniqueId = (label: string) => `cli-${label}-${rig.taskQueue}-${++seq}`;

/** Polls the progress query until the run reaches `phase` (60 s at most); returns that progress. */
async function waitForPhase(h: WorkflowHandle, phase: Progress['phase']): Promise<Progress> {
  const deadline = Date.now() + 60_000;
  let p = await h.query<Progress>('progress');
  while (p.phase !== phase && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    p = await h.query<Progress>('progress');
  }
  expect(p.phase).toBe(phase);
  return p;
}

/** An artifact's text, straight from the rig's store. */
const readArtifact = (a: ArtifactRef) => readFile(path.join(rig.artifactDir, 'sha256', a.ref.slice(7, 9), a.ref.slice(7)), 'utf8');

describe('temporal CLI (official binary)', () => {
  const temporal = (...args: string[]) => run(temporalCliPath(), [...args, '--address', testAddress(), '--namespace', 'default']);

  test('workflow start --input-file runs a codingTask; result and show print the run as JSON', async () => {
    const repo = await rig.newRepo();
    rig.model.script('cli-temporal', [answer(GOOD)]);
    const input: CodingTaskInput = rig.task(repo, [rig.provider('cli-temporal')], { push: true });
    const file = await writeTask('temporal-task', input);
    const workflowId = uniqueId('temporal');

    const started = await temporal('workflow', 'start', '--type', 'codingTask', '--task-queue', rig.taskQueue, '--workflow-id', workflowId, '--input-file', file);
    expect({ code: started.code, why: explain(started) }).toMatchObject({ code: 0 });
    expect(started.stdout).toContain(workflowId);

    // `workflow result --output json` (CLI 1.5): { workflowId, runId, namespace, status, closeEvent, result }
    // with `result` the decoded JSON payload.
    const res = await temporal('workflow', 'result', '--workflow-id', workflowId, '--output', 'json');
    expect({ code: res.code, why: explain(res) }).toMatchObject({ code: 0 });
    const parsed = JSON.parse(res.stdout) as { workflowId: string; status: string; result: CodingTaskResult };
    expect(parsed).toMatchObject({ workflowId, status: 'COMPLETED' });
    const result = parsed.result;
    expect(result).toMatchObject({ workflowId, status: 'succeeded', pushed: true, branch: `weaver/${workflowId}` });
    expect(result.attempts).toHaveLength(1);
    // push: true → the task branch with that commit exists in the original repository.
    expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
    expect(await simpleGit(repo).show([`${result.branch}:src/slugify.js`])).toBe(GOOD);

    // `workflow show --output json`: { events: [{ eventId, eventType: 'EVENT_TYPE_…', <type>EventAttributes }] }
    const shown = await temporal('workflow', 'show', '--workflow-id', workflowId, '--output', 'json');
    expect({ code: shown.code, why: explain(shown) }).toMatchObject({ code: 0 });
    const { events } = JSON.parse(shown.stdout) as {
      events: { eventType: string; activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[];
    };
    expect(events[0].eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_STARTED');
    expect(events[events.length - 1].eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
    const scheduled = events
      .filter((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED')
      .map((e) => e.activityTaskScheduledEventAttributes!.activityType.name);
    // Bookkeeping (the providers against the worker's registry, the events and the report stored)
    // runs as local activities: only the work. The first prompt is built with the workspace, and
    // the change applied, checked (the playbook's test step: the task's testCommand), committed,
    // pushed and its clone removed in one activity (nothing comes between a pass and the commit).
    expect([...new Set(scheduled)]).toEqual(['prepareWorkspace', 'generateChange', 'applyChangeAndCheck']);
  });
});

describe('weaver CLI (bin/weaver.mjs)', () => {
  const env = (extra: NodeJS.ProcessEnv = {}) => ({
    ...process.env,
    TEMPORAL_ADDRESS: testAddress(),
    TEMPORAL_NAMESPACE: 'default',
    WEAVER_TASK_QUEUE: rig.taskQueue,
    WEAVER_UI_URL: 'http://ui.weaver.test:8233',
    // The store the rig's worker writes to: the CLI reads diffs and logs from it.
    WEAVER_ARTIFACT_DIR: rig.artifactDir,
    ...extra,
  });
  const weaver = (...args: string[]) => run(process.execPath, [WEAVER_BIN, ...args], env());
  const uiLink = (id: string) => `http://ui.weaver.test:8233/namespaces/default/workflows/${encodeURIComponent(id)}`;

  test('run --json: follows the run to the end and prints the result as JSON (bad answer, then good)', async () => {
    const repo = await rig.newRepo();
    rig.model.setDefault('cli-json', demoModelStep);
    const file = await writeTask('json-task', rig.task(repo, [rig.provider('cli-json')], { push: true }));
    const id = uniqueId('json');

    const r = await weaver('run', file, '--json', '--id', id);
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 0 });
    const result = JSON.parse(r.stdout) as CodingTaskResult;
    expect(result).toMatchObject({ workflowId: id, status: 'succeeded', pushed: true });
    expect(result.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_passed']);
    expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
    expect(rig.model.count('cli-json')).toBe(2);
  });

  test('run (human output): progress lines, the result and the Web UI link; then status on the finished run', async () => {
    const repo = await rig.newRepo();
    // Slow enough that the CLI's 500 ms progress poll sees both the generating and testing phases.
    rig.model.setDefault('cli-human', (req): StaticStep => ({ ...demoModelStep(req), delayMs: 1000 }));
    const file = await writeTask(
      'human-task',
      rig.task(repo, [rig.provider('cli-human')], { push: true, testCommand: 'sleep 1; node --test test/' }),
    );
    const id = uniqueId('human');

    const r = await weaver('run', file, '--id', id);
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 0 });
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`started ${id}`);
    expect(r.stdout).toContain(uiLink(id));
    expect(r.stdout).toMatch(/^ {2}\[generating\] attempt 1\/3/m);
    // The test step runs in the activity that commits and pushes what passes: said.
    expect(r.stdout).toMatch(/^ {2}\[testing: test; then commit and push\] attempt 1\/3/m);
    expect(r.stdout).toMatch(/^ {2}\[testing: test; then commit and push\] attempt 2\/3, .* last decision: retry/m);
    expect(lines).toContain('status: succeeded');
    expect(lines).toContain('attempts: 2');
    expect(r.stdout).toMatch(new RegExp(`^branch: weaver/${id} @ [0-9a-f]{12} \\(pushed\\)$`, 'm'));
    // Progress lines come before the result.
    expect(r.stdout.indexOf('[testing:')).toBeGreaterThan(-1);
    expect(r.stdout.indexOf('[testing:')).toBeLessThan(r.stdout.indexOf('status: succeeded'));

    const s = await weaver('status', id);
    expect({ code: s.code, why: explain(s) }).toMatchObject({ code: 0 });
    expect(s.stdout).toContain(`${id}: COMPLETED`);
    expect(s.stdout).toMatch(/\[done\] attempt 2\/3, 2 call\(s\)/);
    expect(s.stdout).toContain(uiLink(id));
  });

  test('run a task that fails: exit 1 with its result (the workflow is Failed); result and status show it', async () => {
    const repo = await rig.newRepo();
    rig.model.script('cli-fail', [answer('module.exports = { slugify: (t) => t };\n')]);
    const file = await writeTask('fail-task', rig.task(repo, [rig.provider('cli-fail')], { limits: { maxAttempts: 1 }, decomposition: 'never' }));
    const id = uniqueId('fail');

    const r = await weaver('run', file, '--json', '--id', id);
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 1 });
    const result = JSON.parse(r.stdout) as CodingTaskResult;
    expect(result).toMatchObject({ workflowId: id, status: 'failed', reason: expect.stringMatching(/tests failed \(exit 1\); 1 attempt\(s\) exhausted/) });
    expect(result.attempts.map((a) => a.outcome)).toEqual(['tests_failed']);
    expect((await rig.client.workflow.getHandle(id).describe()).status.name).toBe('FAILED');

    const res = await weaver('result', id);
    expect({ code: res.code, why: explain(res) }).toMatchObject({ code: 1 });
    expect(res.stdout.split('\n')).toContain('status: failed');
    expect(res.stdout).toContain(`reason: ${result.reason}`);
    const s = await weaver('status', id);
    expect(s.stdout).toContain(`${id}: FAILED`);
  });

  test('run with an invalid task: exit 2, every bad field named, nothing started', async () => {
    const repo = await rig.newRepo();
    const bad = { ...rig.task(repo, [rig.provider('cli-never')]), providers: [], task: { description: 'no title here' } };
    const file = await writeTask('bad-task', bad);
    const id = uniqueId('bad');
    const before = rig.model.count();

    const r = await weaver('run', file, '--id', id);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 2 });
    expect(r.stderr).toContain('task.title');
    // One line: every refused field, `; `-separated.
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^task refused: .*providers: /)]);
    expect(r.stdout).not.toContain('started');
    // Nothing reached the model, and no workflow with that id exists.
    expect(rig.model.count()).toBe(before);
    await expect(rig.client.workflow.getHandle(id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
  });

  test('a task file that is not JSON: exit 2, the file and the JSON error named, no stack trace', async () => {
    const file = path.join(rig.tmp, 'not-json.json');
    await writeFile(file, '{ "repo": "x", oops }\n');
    const r = await weaver('run', file);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 2 });
    expect(r.stderr).toContain(`task file ${file} is not valid JSON:`);
    expect(r.stderr).toMatch(/JSON at position \d+|Unexpected token|Expected/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stdout).toBe('');
  });

  test('batch runs a taskBatch to the end; status and result show per-task status and the aggregate', async () => {
    const repo = await rig.newRepo();
    rig.model.script('cli-batch-ok', [answer(GOOD)]);
    const id = uniqueId('batch');
    const file = await writeTask('batch', {
      tasks: [
        rig.task(repo, [rig.provider('cli-batch-ok')]),
        // Cannot be cloned: this task fails, the batch goes on.
        rig.task(path.join(rig.tmp, 'no-such-repo'), [rig.provider('cli-batch-never')]),
      ],
      concurrency: 2,
    });
    const b = await weaver('batch', file, '--json', '--id', id);
    // Exit 1: not every task succeeded.
    expect({ code: b.code, why: explain(b) }).toMatchObject({ code: 1 });
    const batch = JSON.parse(b.stdout) as BatchResult;
    expect(batch.aggregate).toMatchObject({ total: 2, successCount: 1, failureCount: 1 });
    const [ok, failed] = batch.results;

    const s = await weaver('status', id);
    expect({ code: s.code, why: explain(s) }).toMatchObject({ code: 0 });
    expect(s.stdout).toContain(`${id}: COMPLETED (taskBatch)`);
    expect(s.stdout).toContain('2/2 finished, 0 running, 1 succeeded');
    expect(s.stdout).toContain('batch: 1/2 succeeded, 1 failed');
    expect(s.stdout).toContain(uiLink(id));

    const r = await weaver('result', id);
    // Exit 1: not every task succeeded.
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 1 });
    expect(r.stdout).toContain('batch: 1/2 succeeded, 1 failed');
    const lines = r.stdout.split('\n');
    expect(lines.find((l) => l.startsWith(`  ${ok.workflowId}: succeeded — `))).toBeDefined();
    expect(lines.find((l) => l.startsWith(`  ${failed.workflowId}: failed (`))).toMatch(/no-such-repo/);
    expect(r.stdout).toMatch(/^usage: 1 call\(s\), \d+ in \/ \d+ out tokens, \$\d+\.\d{6}$/m);
    expect(r.stderr).toBe('');

    const j = await weaver('result', id, '--json');
    expect({ code: j.code, why: explain(j) }).toMatchObject({ code: 1 });
    expect(JSON.parse(j.stdout)).toEqual(JSON.parse(JSON.stringify(batch)));
  });

  test('approval by commit: status shows the commit and its diffstat, diff and logs print what it holds; another commit is refused, the named one is pushed', async () => {
    const repo = await rig.newRepo();
    rig.model.script('cli-approve', [answer(GOOD)]);
    const id = uniqueId('approve');
    const handle = await rig.start(rig.task(repo, [rig.provider('cli-approve')], { push: true, requireApproval: true }), id);
    const p = await waitForPhase(handle, 'awaiting_approval');

    // What awaits approval, checked against the workspace's git: its HEAD, diffed from the base.
    const home = workspaceDirFor(rig.workspaceRoot, id);
    const [checkout] = (await readdir(home)).filter((d) => existsSync(path.join(home, d, '.git')));
    const ws = simpleGit(path.join(home, checkout));
    const head = (await ws.revparse(['HEAD'])).trim();
    const base = (await simpleGit(repo).revparse(['main'])).trim();
    const [added, removed] = (await ws.raw(['diff', '--numstat', base, head])).trim().split('\t').map(Number);
    expect(p.commit).toBe(head);
    expect(p.diffstat).toEqual({ files: [{ path: 'src/slugify.js', added, removed }], filesChanged: 1, added, removed });
    expect(p.diff).toMatchObject({ kind: 'diff', ref: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    const diffText = await ws.raw(['diff', '--no-renames', base, head]);
    expect(await readArtifact(p.diff!)).toBe(diffText);
    // The remote has no such branch yet.
    expect((await simpleGit(repo).branchLocal()).all).not.toContain(p.branch);

    const status = await weaver('status', id);
    expect({ code: status.code, why: explain(status) }).toMatchObject({ code: 0 });
    expect(status.stdout).toContain(`[awaiting_approval] attempt 1/3`);
    expect(status.stdout).toContain(`commit ${head} awaits approval`);
    expect(status.stdout).toMatch(new RegExp(`^ +src/slugify\\.js \\| \\+${added} -${removed}$`, 'm'));
    expect(status.stdout).toContain(`weaver approve ${id} --commit ${head.slice(0, 12)}`);
    const json = await weaver('status', id, '--json');
    expect(JSON.parse(json.stdout).progress).toMatchObject({ phase: 'awaiting_approval', commit: head, diffstat: p.diffstat, diff: p.diff });

    // `weaver diff`: the diff of the commit under approval, as git writes it.
    const diff = await weaver('diff', id);
    expect({ code: diff.code, why: explain(diff) }).toMatchObject({ code: 0 });
    expect(diff.stdout).toBe(diffText);
    expect(diff.stdout).toContain('+++ b/src/slugify.js');
    const stat = await weaver('diff', id, '--stat');
    expect(stat.stdout.split('\n')).toEqual([`commit ${head}`, ` src/slugify.js | +${added} -${removed}`, ` 1 file(s) changed, +${added} -${removed}`, '']);
    // Without the workers' store: a clear error naming the setting, no stack trace.
    const away = path.join(rig.tmp, 'no-store-here');
    const lost = await run(process.execPath, [WEAVER_BIN, 'diff', id], env({ WEAVER_ARTIFACT_DIR: away }));
    expect({ code: lost.code, stdout: lost.stdout }).toEqual({ code: 1, stdout: '' });
    expect(lost.stderr).toContain(`the artifact store is not reachable from here: ${away} does not exist; set WEAVER_ARTIFACT_DIR`);
    expect(lost.stderr).not.toMatch(/^\s+at /m);
    const unknown = await weaver('diff', `${id}-nope`);
    expect({ code: unknown.code, stderr: unknown.stderr.trim() }).toEqual({ code: 1, stderr: `no such workflow: ${id}-nope` });

    // `weaver logs`: the last attempt's steps (this run: its test command, as step `test`).
    const testLog = p.logs?.[0].steps[0].log;
    expect(p.logs).toEqual([{ attempt: 1, steps: [{ name: 'test', kind: 'test', status: 'passed', log: testLog }] }]);
    const logText = await readArtifact(testLog!);
    expect(logText).toMatch(/# pass 3/);
    const logs = await weaver('logs', id);
    expect({ code: logs.code, why: explain(logs) }).toMatchObject({ code: 0 });
    expect(logs.stdout).toBe(`=== attempt 1, step test (test): passed ===\n${logText.replace(/\n$/, '')}\n`);
    const one = await weaver('logs', id, '--attempt', '1', '--step', 'test');
    expect(one.stdout).toBe(`${logText.replace(/\n$/, '')}\n`);
    const noStep = await weaver('logs', id, '--step', 'lint');
    expect({ code: noStep.code, stderr: noStep.stderr.trim() }).toEqual({ code: 1, stderr: `${id}: attempt 1 has no step "lint" (steps: test)` });
    const noAttempt = await weaver('logs', id, '--attempt', '2');
    expect({ code: noAttempt.code, stderr: noAttempt.stderr.trim() }).toEqual({ code: 1, stderr: `${id}: no attempt 2 (finished: 1)` });

    // Decisions naming another commit are refused with the reason — the CLI's, the SDK's (both
    // the update) and a signal's (recorded) — and the task still waits.
    const other = base.slice(0, 7);
    const wrong = await weaver('approve', id, '--commit', other);
    expect({ code: wrong.code, stdout: wrong.stdout }).toEqual({ code: 2, stdout: '' });
    expect(wrong.stderr).toContain(`${id}: the decision names commit ${other}, but the commit awaiting approval is ${head}`);
    const malformed = await weaver('approve', id, '--commit', 'HEAD~1');
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('commit must be the SHA of the commit awaiting approval (7 to 40 hex digits)');
    const sdk = await approvePush(id, { approved: false, by: 'sdk', commit: base }, { client: rig.client }).catch((e: unknown) => e);
    expect(sdk).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((sdk as WorkflowUpdateFailedError).cause?.message)).toBe(`the decision names commit ${base}, but the commit awaiting approval is ${head}`);
    await handle.signal('approvePush', { approved: true, by: 'mallory', commit: base });
    expect((await getProgress(id, { client: rig.client })).phase).toBe('awaiting_approval');

    // The commit looked at, named (abbreviated): approved, and that very commit is pushed.
    const ok = await weaver('approve', id, '--commit', head.slice(0, 10), 'looks right');
    expect({ code: ok.code, why: explain(ok) }).toMatchObject({ code: 0 });
    expect(ok.stdout.trim()).toBe(`${id}: approved: pushing now`);
    const result = await resultOf(handle);
    expect(result).toMatchObject({ status: 'succeeded', pushed: true, commit: head, diffstat: p.diffstat, diff: p.diff });
    expect(result.approval).toMatchObject({ approved: true, comment: 'looks right', via: 'update', commit: head });
    expect(result.refusedApprovals).toEqual([
      { at: expect.any(String), via: 'signal', by: 'mallory', reason: `the decision names commit ${base}, but the commit awaiting approval is ${head}` },
    ]);
    expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(head);

    // Finished: `weaver diff` reads the final commit's diff from the result.
    const after = await weaver('diff', id);
    expect({ code: after.code, why: explain(after) }).toMatchObject({ code: 0 });
    expect(after.stdout).toBe(diffText);
  }, 300_000);

  test('run --detach --json prints the workflow id and returns while the run goes on', async () => {
    const repo = await rig.newRepo();
    // The model answers after 2 s: the run is certainly still going when the CLI returns.
    rig.model.setDefault('cli-detach', { ...answer(GOOD), delayMs: 2000 });
    const file = await writeTask('detach-task', rig.task(repo, [rig.provider('cli-detach')]));
    const id = uniqueId('detach');

    const r = await weaver('run', file, '--detach', '--json', '--id', id);
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 0 });
    expect(JSON.parse(r.stdout)).toEqual({ workflowId: id });
    const handle = rig.client.workflow.getHandle<() => Promise<CodingTaskResult>>(id);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    // …and it finishes on its own (so the rig's worker shuts down cleanly).
    expect((await handle.result()).status).toBe('succeeded');
  });
});
