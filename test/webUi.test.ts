// Read right in the Web UI (issue 9 item 8): a task that did not deliver is a Failed workflow
// carrying its whole result; WeaverStatus is set on every path, refusals included; the details
// panel (current details) says where a run is; the approval wait is a labelled timer. Real dev
// server and worker; what is asserted is what the Web UI reads (describe, the metadata query,
// history events).
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { formatProgress } from '../src/cliFormat';
import { getResult, resultOf } from '../src/client';
import { detailsLine } from '../src/domain/taskOutcome';
import type { Progress } from '../src/domain/schema';
import { WeaverStatus } from '../src/domain/searchAttributes';
import { wholeFile } from './support/answers';
import { workflowBundle } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;
/** 1000 in / 500 out tokens at the rig's $1 / $2 per MTok: $0.002 a call. */
const answer = (content: string, delayMs = 0) => ({ content: wholeFile('src/slugify.js', content, 'edit slugify'), usage: { prompt_tokens: 1000, completion_tokens: 500 }, delayMs });

let rig: Rig;
useRig((r) => (rig = r));

/** What the Web UI shows in a run's details panel (the SDK's built-in metadata query). */
async function currentDetails(h: Pick<WorkflowHandle, 'query'>): Promise<string> {
  return ((await h.query('__temporal_workflow_metadata')) as { currentDetails?: string }).currentDetails ?? '';
}

async function describe(workflowId: string) {
  const d = await rig.client.workflow.getHandle(workflowId).describe();
  return { status: d.status.name, weaverStatus: d.typedSearchAttributes.get(WeaverStatus) };
}

/** The failure a raw handle's result() rejects with. */
async function failureOf(workflowId: string): Promise<WorkflowFailedError> {
  const err = await rig.client.workflow.getHandle(workflowId).result().then(
    () => new Error('completed'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return err as WorkflowFailedError;
}

test('a failed task fails its workflow (TaskFailed, the reason, the whole result as details); the SDK still returns the result', async () => {
  const repo = await rig.newRepo();
  rig.model.script('ui-failed', [answer(BAD)]);
  const handle = await rig.start(rig.task(repo, [rig.provider('ui-failed')], { limits: { maxAttempts: 1 }, decomposition: 'never' }));
  const result = await resultOf(handle);

  expect(result).toMatchObject({ status: 'failed', usage: { calls: 1, costUsd: 0.002 } });
  expect(result.reason).toMatch(/tests failed \(exit 1\); 1 attempt\(s\) exhausted/);
  expect(await describe(handle.workflowId)).toEqual({ status: 'FAILED', weaverStatus: 'failed' });

  // What any Temporal client sees: a non-retryable ApplicationFailure carrying the result.
  const cause = (await failureOf(handle.workflowId)).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  const failure = cause as ApplicationFailure;
  expect(failure).toMatchObject({ type: 'TaskFailed', message: result.reason, nonRetryable: true });
  expect(failure.details).toEqual([result]);

  // The SDK's ways to the result all give it, like a completed task's.
  expect(await handle.result()).toEqual(result);
  expect(await getResult(handle.workflowId, { client: rig.client })).toEqual(result);
  expect(await resultOf(rig.client.workflow.getHandle(handle.workflowId))).toEqual(result);

  // The details panel: the end, the spend and why.
  expect(await currentDetails(handle)).toMatch(/^\*\*failed\*\* · attempt 1\/1 · \$0\.0020 · 1 call\(s\) — tests failed \(exit 1\)/);
  // The failing end replays deterministically.
  await Worker.runReplayHistory({ workflowBundle: workflowBundle() }, await handle.fetchHistory(), handle.workflowId);
});

test('a succeeded task completes; while it runs, the details panel follows the phase, attempt, spend and last decision', async () => {
  const repo = await rig.newRepo();
  // The second answer is slow: time to read the panel while attempt 2 waits on the model.
  rig.model.script('ui-ok', [answer(BAD), answer(GOOD, 3000)]);
  const handle = await rig.start(rig.task(repo, [rig.provider('ui-ok')]));
  await rig.model.waitFor((m) => m.count('ui-ok') === 2, 30_000);
  const deadline = Date.now() + 10_000;
  let during = '';
  while (!/attempt 2/.test(during) && Date.now() < deadline) during = await currentDetails(handle);
  expect(during).toMatch(/^\*\*generating\*\* · attempt 2\/3 · \$0\.0020 · 1 call\(s\) · last decision: retry \(.+\)$/);

  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  expect(await describe(handle.workflowId)).toEqual({ status: 'COMPLETED', weaverStatus: 'succeeded' });
  expect(await currentDetails(handle)).toMatch(/^\*\*succeeded\*\* · attempt 2\/3 · \$0\.0040 · 2 call\(s\) — /);
});

test('checks run by the activity that also commits: the panel and progress say the commit (and push) follows them', async () => {
  const repo = await rig.newRepo();
  // An implementation whose load takes 2 s: time to read the panel while its test step runs.
  rig.model.script('ui-fold', [answer(`const t0 = Date.now();\nwhile (Date.now() - t0 < 2000) {}\n${GOOD}`)]);
  const handle = await rig.start(rig.task(repo, [rig.provider('ui-fold')], { push: true }));
  const deadline = Date.now() + 30_000;
  let during = '';
  while (!/^\*\*testing\*\*/.test(during) && Date.now() < deadline) {
    during = await currentDetails(handle);
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(during).toMatch(/^\*\*testing\*\* \(test step, then commit and push once every step passed\) · attempt 1\/3 · /);
  expect(await handle.query<Progress>('progress')).toMatchObject({ phase: 'testing', step: 'test', then: 'commit and push' });
  expect((await handle.result()).status).toBe('succeeded');
  // Done: no step, nothing to follow.
  expect(await handle.query<Progress>('progress')).not.toHaveProperty('then');
});

test('the panel and the CLI show what follows the steps only while they run', () => {
  const usage = { calls: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, byProvider: {} } as unknown as Progress['usage'];
  const base = { phase: 'testing', attempt: 1, maxAttempts: 3, usage };
  expect(detailsLine({ ...base, step: 'lint, test', then: 'commit' })).toMatch(/^\*\*testing\*\* \(lint, test step, then commit once every step passed\) · /);
  expect(detailsLine({ ...base, step: 'lint, test' })).toMatch(/^\*\*testing\*\* \(lint, test step\) · /);
  expect(detailsLine({ ...base, status: 'succeeded', reason: 'ok', step: 'test', then: 'commit' })).toMatch(/^\*\*succeeded\*\* · attempt/);
  const progress = { workflowId: 'w', phase: 'testing', attempt: 1, maxAttempts: 3, usage, branch: 'b' } satisfies Progress;
  expect(formatProgress({ ...progress, step: 'lint, test', then: 'commit and push' })).toMatch(/^\[testing: lint, test; then commit and push\] attempt 1\/3/);
  expect(formatProgress({ ...progress, step: 'test' })).toMatch(/^\[testing: test\] attempt/);
});

test('input refused at the workflow: Failed (InvalidTaskInput) and WeaverStatus "invalid", nothing called', async () => {
  const workflowId = `ui-invalid-${Date.now()}`;
  await rig.client.workflow.start('codingTask', {
    taskQueue: rig.taskQueue,
    workflowId,
    args: [{ repo: 'x', task: { title: 't', description: 'd' }, providers: [] }],
  });
  expect((await failureOf(workflowId)).cause).toMatchObject({ type: 'InvalidTaskInput' });
  expect(await describe(workflowId)).toEqual({ status: 'FAILED', weaverStatus: 'invalid' });
});

test('a provider the worker does not allow: Failed (ProviderNotAllowed) and WeaverStatus "invalid"', async () => {
  const before = rig.model.count();
  const handle = await rig.start(rig.task(await rig.newRepo(), [{ id: 'ui-unknown-provider', model: 'x' }]));
  // No result to return: the SDK rethrows the failure.
  await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
  expect((await failureOf(handle.workflowId)).cause).toMatchObject({ type: 'ProviderNotAllowed' });
  expect(await describe(handle.workflowId)).toEqual({ status: 'FAILED', weaverStatus: 'invalid' });
  expect(rig.model.count()).toBe(before);
});

test('the approval wait is a labelled timer; a push nobody approved fails the workflow as PushRejected', async () => {
  const repo = await rig.newRepo();
  rig.model.script('ui-approval', [answer(GOOD)]);
  const handle = await rig.start(rig.task(repo, [rig.provider('ui-approval')], { push: true, requireApproval: true, approvalTimeoutSec: 1 }));
  const result = await resultOf(handle);
  expect(result.status).toBe('rejected');
  expect((await failureOf(handle.workflowId)).cause).toMatchObject({ type: 'PushRejected', message: result.reason });
  expect(await describe(handle.workflowId)).toEqual({ status: 'FAILED', weaverStatus: 'rejected' });

  const events = (await handle.fetchHistory()).events ?? [];
  const timers = events.filter((e) => e.timerStartedEventAttributes);
  const summaries = timers.map((e) => (e.userMetadata?.summary ? defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary) : undefined));
  expect(summaries).toContain('waiting for approval to push (approvePush), up to 1 s');
  const progress = await handle.query<Progress>('progress');
  expect(progress.status).toBe('rejected');
});
