// The runs recorded as replay fixtures (scripts/record-replay-fixtures.ts) and what their
// histories must show (test/replayFixtures.test.ts): one real task per path the workflow code
// can take — every strategy, durable provider waits, decomposition with merge, a batch,
// approval both ways, cancellation, a workspace rebuild, a budget refusal, and last the hosts'
// scenarios (replayHostScenarios.ts: a busy workspace worker, a lost host's workspace given up
// on). What a scenario is and its expected shape: replayShapes.ts. Answers are tiny.
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { workspaceDirFor } from '../../src/activities/workspace';
import { resultOf, startTaskBatch } from '../../src/client';
import type { BatchResult, CodingTaskResult, Progress } from '../../src/domain/schema';
import { wholeFile } from './answers';
import { historyShape } from './histories';
import { makeRepo } from './repos';
import { byTitle, fix, multiRepo, parentTask, sub } from './modules';
import { HOST_SCENARIOS } from './replayHostScenarios';
import { CARRY_SCENARIOS } from './replayCarryScenarios';
import { QUOTA_SCENARIOS } from './replayQuotaScenarios';
import { answer, BAD, check, GOOD, usage, type ReplayScenario } from './replayShapes';
import type { Rig } from './weaver';

export { answer, BAD, GOOD, shapeProblems, type ExpectedShape, type ReplayScenario } from './replayShapes';

/** Polls the progress query until the run reaches `phase` (30 s at most). */
async function waitForPhase(h: WorkflowHandle, phase: Progress['phase']): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const now = (await h.query<Progress>('progress')).phase;
    if (now === phase) return;
    if (Date.now() > deadline) throw new Error(`${h.workflowId} never reached ${phase} (at ${now})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Three answers under `playbook` (lint and test steps): one that breaks the syntax, one that fails lint, one that passes. */
async function syntaxLintPass(rig: Rig, id: string, model: string, playbook: string): Promise<CodingTaskResult> {
  const repo = await makeRepo(path.join(rig.tmp, `${model}-${id}`), {
    'src/add.js': 'module.exports = function add(a, b) {\n  throw new Error("todo");\n};\n',
    'lint.js': "if (/\\bvar\\b/.test(require('fs').readFileSync('src/add.js', 'utf8'))) { console.error('no-var'); process.exit(1); }\n",
    'test/add.test.js': "require('node:test')('add', () => require('node:assert').strictEqual(require('../src/add.js')(2, 3), 5));\n",
  });
  const file = (body: string) => ({ content: wholeFile('src/add.js', `module.exports = function add(a, b) {\n${body}\n};\n`, 's'), usage });
  rig.model.script(model, [file('  return (a + b;'), file('  var s = a + b;\n  return s;'), file('  return a + b;')]);
  const { testCommand: _t, ...task } = rig.task(repo, [rig.provider(model)], { playbook, push: true, decomposition: 'never' });
  const r = await rig.run({ ...task, task: { title: 'Implement add', description: 'Write add in src/add.js.', relatedFiles: ['src/add.js'] } }, id);
  const outcomes = r.attempts.map((a) => a.outcome).join();
  check(r.status === 'succeeded' && outcomes === 'invalid_syntax,check_failed,tests_passed', 'syntax, lint, then pass', outcomes);
  return r;
}

const decisions = (r: CodingTaskResult) => r.attempts.map((a) => a.decision.action);

/** Two explicit subtasks as children; the parent merges their branches (two scenarios: before and since `child-task-timeout`). */
const decompositionMerge: ReplayScenario['run'] = async (rig, id) => {
  const repo = await multiRepo(rig, ['a', 'b']);
  rig.model.setDefault('rs-dec', byTitle({ 'fix a': fix('a'), 'fix b': fix('b') }));
  const r = await rig.run(parentTask(rig, repo, 'rs-dec', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')] }), id);
  check(r.status === 'succeeded' && r.children?.length === 2 && r.children.every((c) => c.merged), 'two children merged', r.children?.map((c) => [c.status, c.merged]));
  return [id, ...r.children!.map((c) => c.workflowId)];
};

export const REPLAY_SCENARIOS: ReplayScenario[] = [
  {
    name: 'sequential-retry',
    about: 'sequential: a bad answer (tests fail), retried with feedback, a good one committed and pushed',
    expect: { closed: 'COMPLETED', activities: { generateChange: 2, rollbackWorkspace: 1, commitAndPush: 1 } },
    run: async (rig, id) => {
      rig.model.script('rs-seq', [answer(BAD), answer(GOOD)]);
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-seq')], { push: true }), id);
      check(r.status === 'succeeded' && decisions(r).join() === 'retry,commit', 'retry then commit', decisions(r));
      return [id];
    },
  },
  {
    name: 'sequential-fallback',
    about: 'sequential: the first provider fails with 500s until its tries run out, the second answers',
    expect: { closed: 'COMPLETED', activities: { generateChange: 3 }, timers: { count: 1, summary: /backoff/ } },
    run: async (rig, id) => {
      rig.model.script('rs-fb-down', [{ status: 500 }, { status: 500 }]);
      rig.model.script('rs-fb-up', [answer(GOOD)]);
      const providers = [rig.provider('rs-fb-down'), rig.provider('rs-fb-up')];
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'sequential', retry: { maxTries: 2, initialIntervalMs: 10, maxIntervalMs: 50 } } }), id);
      check(r.status === 'succeeded' && r.attempts[0].provider === 'rs-fb-up', 'answered by the second provider', r.attempts[0]?.provider);
      return [id];
    },
  },
  {
    name: 'parallel-any',
    about: 'parallel-any: the fastest valid answer wins, the slower call is cancelled',
    expect: { closed: 'COMPLETED', activities: { generateChange: 2 }, activitiesCancelled: 1 },
    run: async (rig, id) => {
      rig.model.script('rs-any-fast', [answer(GOOD, 50)]);
      rig.model.script('rs-any-slow', [answer(GOOD, 5000)]);
      const providers = [rig.provider('rs-any-slow'), rig.provider('rs-any-fast')];
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'parallel-any' } }), id);
      check(r.status === 'succeeded' && r.attempts[0].selection?.chosen === 'rs-any-fast', 'the fast one chosen', r.attempts[0]?.selection);
      check(rig.model.requestsFor('rs-any-slow')[0]?.aborted === true, 'the slow call aborted', rig.model.requestsFor('rs-any-slow').length);
      return [id];
    },
  },
  {
    name: 'parallel-all',
    about: 'parallel-all: three answers collected (one unparsable, one failing), the first valid in provider order used',
    expect: { closed: 'COMPLETED', activities: { generateChange: 3 } },
    run: async (rig, id) => {
      rig.model.script('rs-all-a', [{ content: 'not an edit', usage, delayMs: 10 }]);
      rig.model.script('rs-all-b', [answer(GOOD, 200)]);
      rig.model.script('rs-all-c', [answer(BAD, 20)]);
      const providers = ['rs-all-a', 'rs-all-b', 'rs-all-c'].map((m) => rig.provider(m));
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'parallel-all' } }), id);
      check(r.status === 'succeeded' && r.attempts[0].selection?.chosen === 'rs-all-b', 'rs-all-b chosen', r.attempts[0]?.selection);
      return [id];
    },
  },
  {
    name: 'parallel-all-checks',
    about: 'parallel-all picking by the checks: three answers, the first two fail the tests, each checked in a workspace of its own; the third is used',
    // The task's workspace and one per answer; each answer's checks, then the winner's again.
    expect: { closed: 'COMPLETED', activities: { generateChange: 3, prepareWorkspace: 4, releaseWorkspace: 3, runCheck: 4 } },
    run: async (rig, id) => {
      rig.model.script('rs-pc-a', [answer(BAD, 10)]);
      rig.model.script('rs-pc-b', [answer(`${BAD}\n`, 20)]);
      rig.model.script('rs-pc-c', [answer(GOOD, 30)]);
      const providers = ['rs-pc-a', 'rs-pc-b', 'rs-pc-c'].map((m) => rig.provider(m));
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'parallel-all' } }), id);
      const outcomes = r.attempts[0]?.candidates?.map((c) => c.outcome).join(',');
      check(r.status === 'succeeded' && r.attempts[0].provider === 'rs-pc-c' && outcomes === 'tests_failed,tests_failed,tests_passed', 'rs-pc-c chosen by its checks', r.attempts[0]?.candidates);
      return [id];
    },
  },
  {
    name: 'consensus',
    about: 'consensus: three voters, two agree (up to whitespace): their change wins with vote share 2/3',
    expect: { closed: 'COMPLETED', activities: { generateChange: 3 } },
    run: async (rig, id) => {
      rig.model.script('rs-c-a', [answer(GOOD, 20)]);
      rig.model.script('rs-c-b', [answer(BAD, 60)]);
      rig.model.script('rs-c-c', [answer(`${GOOD}\n\n`, 120)]);
      const providers = ['rs-c-a', 'rs-c-b', 'rs-c-c'].map((m) => rig.provider(m));
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'consensus' } }), id);
      const sel = r.attempts[0]?.selection;
      check(r.status === 'succeeded' && sel?.chosen === 'rs-c-a' && sel.voteShare === 2 / 3, 'rs-c-a with 2/3', sel);
      return [id];
    },
  },
  {
    name: 'cost-escalation',
    about: "mode 'cost' with escalate after 1: the cheaper provider (given second) answers first and fails the tests, the dearer one is called next",
    expect: { closed: 'COMPLETED', activities: { generateChange: 2 }, patches: ['cost-routing'] },
    run: async (rig, id) => {
      rig.model.script('rs-cost-cheap', [answer(BAD)]);
      rig.model.script('rs-cost-strong', [answer(GOOD)]);
      const providers = [rig.provider('rs-cost-strong', { pricing: { inputPerMTok: 5, outputPerMTok: 20 } }), rig.provider('rs-cost-cheap', { pricing: { inputPerMTok: 0.1, outputPerMTok: 0.2 } })];
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'cost', escalate: { after: 1 } }, decomposition: 'never' }), id);
      check(r.status === 'succeeded' && r.attempts.map((a) => a.provider).join() === 'rs-cost-cheap,rs-cost-strong', 'cheap first, then escalated', r.attempts.map((a) => a.provider));
      return [id];
    },
  },
  {
    name: 'shadow',
    about: 'sequential with a shadow provider: its answer recorded beside the primary, spend apart',
    expect: { closed: 'COMPLETED', activities: { generateChange: 2 } },
    run: async (rig, id) => {
      rig.model.script('rs-sh-primary', [answer(GOOD)]);
      rig.model.script('rs-sh-shadow', [answer(BAD)]);
      const providers = [rig.provider('rs-sh-primary'), rig.provider('rs-sh-shadow')];
      const r = await rig.run(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'sequential', shadow: ['rs-sh-shadow'] } }), id);
      check(r.status === 'succeeded' && r.usage.shadow?.calls === 1, 'one shadow call', r.usage.shadow);
      return [id];
    },
  },
  {
    name: 'rate-limit-wait',
    about: 'a 429 storm (5 × Retry-After, past the default 4 tries) waited out on durable timers, then an answer; no attempt consumed',
    expect: { closed: 'COMPLETED', activities: { generateChange: 6 }, timers: { count: 5, summary: /rate_limit \(Retry-After\)/ } },
    run: async (rig, id) => {
      rig.model.script('rs-storm', [...Array.from({ length: 5 }, () => ({ status: 429, headers: { 'retry-after': '1' } })), answer(GOOD)]);
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-storm')]), id);
      check(r.status === 'succeeded' && r.attempts.length === 1 && rig.model.count('rs-storm') === 6, 'one attempt, six requests', [r.status, r.attempts.length]);
      return [id];
    },
  },
  {
    name: 'decomposition-merge',
    about: 'two explicit subtasks as child workflows; the parent merges their branches and runs the whole suite',
    expect: { closed: 'COMPLETED', children: 2, activities: { mergeBranches: 1, runTests: 1, commitAndPush: 1 } },
    run: decompositionMerge,
  },
  {
    name: 'task-batch',
    about: 'taskBatch: two independent tasks as children, one succeeds and one fails (fail-independent)',
    expect: { closed: 'COMPLETED', workflowType: 'taskBatch', children: 2 },
    run: async (rig, id) => {
      const repo = await multiRepo(rig, ['a', 'b']);
      rig.model.setDefault('rs-batch', byTitle({ 'fix a': fix('a'), 'fix b': fix('b', 'nope') }));
      const tasks = ['a', 'b'].map((n) => ({
        ...parentTask(rig, repo, 'rs-batch', {}),
        task: sub(`fix ${n}`, n),
        testCommand: ['node', '--test', `test/${n}.test.js`],
        limits: { maxAttempts: 1, testTimeoutSec: 60 },
        decomposition: 'never' as const,
      }));
      const h = await startTaskBatch({ tasks, concurrency: 2 }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: id });
      const batch = (await h.result()) as BatchResult;
      check(batch.results.map((r) => r.status).join() === 'succeeded,failed', 'succeeded,failed', batch.results.map((r) => r.status));
      return [id, ...batch.results.map((r) => r.workflowId)];
    },
  },
  {
    name: 'approval-update-approved',
    about: 'requireApproval: committed, waits for a person, approved by the approvePush update, pushed',
    expect: { closed: 'COMPLETED', updates: ['approvePush'], activities: { commitAndPush: 1 } },
    run: async (rig, id) => {
      rig.model.script('rs-approve', [answer(GOOD)]);
      const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider('rs-approve')], { push: true, requireApproval: true }), id);
      await waitForPhase(h, 'awaiting_approval');
      await h.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana' }] });
      const r = await resultOf(h);
      check(r.status === 'succeeded' && r.pushed === true && r.approval?.via === 'update', 'approved by update and pushed', [r.status, r.approval]);
      return [id];
    },
  },
  {
    name: 'approval-signal-rejected',
    about: 'requireApproval: committed, then rejected by the approvePush signal: nothing pushed, the commit kept',
    expect: { closed: 'FAILED', signals: ['approvePush'] },
    run: async (rig, id) => {
      rig.model.script('rs-reject', [answer(GOOD)]);
      const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider('rs-reject')], { push: true, requireApproval: true }), id);
      await waitForPhase(h, 'awaiting_approval');
      await h.signal('approvePush', { approved: false, by: 'bo', comment: 'not yet' });
      const r = await resultOf(h);
      check(r.status === 'rejected' && r.pushed === false && r.approval?.via === 'signal', 'rejected by signal', [r.status, r.approval]);
      return [id];
    },
  },
  {
    name: 'cancellation',
    about: 'cancelled while the provider call is in flight: the call aborted and booked as estimated, the workspace released',
    expect: { closed: 'COMPLETED', cancelRequested: true, activitiesCancelled: 1, activities: { releaseWorkspace: 1 } },
    run: async (rig, id) => {
      rig.model.script('rs-cancel', [{ hang: true }]);
      const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider('rs-cancel')]), id);
      await rig.model.waitFor((m) => m.inFlightFor('rs-cancel') === 1, 30_000);
      await h.cancel();
      const r = await resultOf(h);
      check(r.status === 'cancelled' && r.usage.estimatedCostUsd > 0, 'cancelled with estimated spend', [r.status, r.usage.estimatedCostUsd]);
      return [id];
    },
  },
  {
    name: 'cancel-while-preparing',
    about:
      'since prepare-waits-for-cancel (weaver-epoch-2): cancelled while the workspace is set up (a setup step sleeping); the preparation is waited for, ends cancelled and removes its clone; the task ends cancelled',
    expect: { closed: 'COMPLETED', cancelRequested: true, activitiesCancelled: 1, patches: ['prepare-waits-for-cancel'] },
    run: async (rig, id) => {
      const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider('rs-cancel-prep')], { setupCommand: ['sleep', '30'] }), id);
      const home = workspaceDirFor(rig.workspaceRoot, id);
      const deadline = Date.now() + 60_000;
      while (!existsSync(path.join(home, '.weaver-state')) && !(existsSync(home) && readdirSync(home).some((d) => existsSync(path.join(home, d, '.git', 'HEAD'))))) {
        if (Date.now() > deadline) throw new Error('the clone never appeared');
        await new Promise((r) => setTimeout(r, 100));
      }
      await h.cancel();
      const r = await resultOf(h);
      check(r.status === 'cancelled' && /preparing/.test(r.reason ?? ''), 'cancelled while preparing', [r.status, r.reason]);
      check(!existsSync(home), 'the clone removed by the time the task ended', home);
      return [id];
    },
  },
  {
    name: 'workspace-rebuild',
    about: 'the workspace disappears while attempt 2 is generated: rebuilt from the same base, the paid answer applied again',
    expect: { closed: 'COMPLETED', activities: { prepareWorkspace: 2, generateChange: 2 } },
    run: async (rig, id) => {
      let calls = 0;
      rig.model.setDefault('rs-rebuild', async () => {
        calls += 1;
        if (calls === 2) await rm(workspaceDirFor(rig.workspaceRoot, id), { recursive: true, force: true });
        return calls === 1 ? answer(BAD) : answer(GOOD);
      });
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-rebuild')], { push: true }), id);
      const notes = r.attempts[1]?.notes?.join('\n') ?? '';
      check(r.status === 'succeeded' && calls === 2 && /applied again on a rebuilt workspace/.test(notes), 'rebuilt, the answer re-applied', [r.status, calls, notes]);
      return [id];
    },
  },
  {
    name: 'budget-refusal',
    about: 'limits.maxCostUsd fits one call but not two: the second is refused, budget_exceeded',
    expect: { closed: 'FAILED', activities: { generateChange: 1 } },
    run: async (rig, id) => {
      const big = { prompt_tokens: 1000, completion_tokens: 60_000 };
      rig.model.script('rs-budget', [{ ...answer(BAD), usage: big }, { ...answer(GOOD), usage: big }]);
      const provider = rig.provider('rs-budget', { pricing: { inputPerMTok: 10, outputPerMTok: 10 }, maxTokens: 60_000 });
      const r = await rig.run(rig.task(await rig.newRepo(), [provider], { limits: { maxCostUsd: 1, maxAttempts: 3, testTimeoutSec: 60 } }), id);
      check(r.status === 'budget_exceeded' && rig.model.count('rs-budget') === 1, 'budget_exceeded after one call', [r.status, r.reason]);
      return [id];
    },
  },
  {
    name: 'playbook',
    about: "the task's playbook: an answer that breaks the syntax (invalid_syntax, no step runs), one that fails the lint step, one that passes lint and test; a docs step skipped by its when",
    expect: { closed: 'COMPLETED', activities: { generateChange: 3, runCheck: 3, rollbackWorkspace: 2, commitAndPush: 1 } },
    run: async (rig, id) => {
      await syntaxLintPass(rig, id, 'rs-playbook', 'steps:\n  - name: lint\n    run: node lint.js\n  - name: test\n    run: node --test test/\n  - name: docs\n    when: changed(\'docs/**\')\n    run: "true"\n');
      return [id];
    },
  },
  {
    name: 'no-checks',
    about: 'a repository with nothing to check and no testCommand: the task fails no_checks once its workspace is prepared, before any model is called',
    expect: { closed: 'FAILED', activities: { prepareWorkspace: 1 } },
    run: async (rig, id) => {
      const repo = await makeRepo(path.join(rig.tmp, `notes-${id}`), { 'notes.md': '# Notes\n' });
      rig.model.script('rs-nochecks', [{ content: wholeFile('notes.md', '# Notes\n\n- one\n', 's'), usage }]);
      const { testCommand: _t, ...task } = rig.task(repo, [rig.provider('rs-nochecks')]);
      const r = await rig.run({ ...task, task: { title: 'Add a note', description: 'Add a note.', relatedFiles: ['notes.md'] } }, id);
      check(r.status === 'failed' && r.reason.startsWith('no_checks') && rig.model.count('rs-nochecks') === 0, 'failed with no_checks, no call', [r.status, r.reason]);
      return [id];
    },
  },
  {
    name: 'decomposition-child-timeout',
    about: 'decomposition-merge since child-task-timeout: the children started with the parent\'s workflow-task timeout',
    expect: { closed: 'COMPLETED', children: 2, activities: { mergeBranches: 1, runCheck: 1, commitAndPush: 1 }, patches: ['child-task-timeout', 'quick-queue-check'] },
    run: decompositionMerge,
  },
  ...CARRY_SCENARIOS,
  ...QUOTA_SCENARIOS,
  ...HOST_SCENARIOS,
  {
    name: 'lean-round-trips',
    about: 'one attempt, pushed, since lean-round-trips: providers resolved and artifacts stored as local activities, the clone removed by commitAndPush, one search-attribute upsert per status change (running set by the client at start)',
    expect: { closed: 'COMPLETED', patches: ['lean-round-trips'], activities: { commitAndPush: 1 }, localActivities: { resolveProviders: 1, storeArtifact: 2 }, upserts: 1 },
    run: async (rig, id) => {
      rig.model.script('rs-lean', [answer(GOOD)]);
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-lean')], { push: true }), id);
      check(r.status === 'succeeded' && r.pushed === true && r.workspace === undefined, 'pushed and released', [r.status, r.pushed, r.workspace]);
      return [id];
    },
  },
  {
    name: 'fold-round-trips',
    about:
      "since fold-round-trips: the first prompt built by prepareWorkspace; each change applied and checked in one activity — one that breaks the syntax (no step runs), one that fails lint (the activity stops there), one that passes lint, fails a warn step (the activity stops, the workflow warns) and passes test as runCheck",
    expect: { closed: 'COMPLETED', patches: ['fold-round-trips'], activities: { prepareWorkspace: 1, buildPrompt: 2, generateChange: 3, applyChangeAndCheck: 3, runCheck: 1, rollbackWorkspace: 2, commitAndPush: 1 } },
    run: async (rig, id) => {
      const playbook =
        'steps:\n  - name: lint\n    run: node lint.js\n  - name: style\n    run: node -e "process.exit(3)"\n    onFailure: warn\n  - name: test\n    run: node --test test/\n  - name: docs\n    when: changed(\'docs/**\')\n    run: "true"\n';
      const r = await syntaxLintPass(rig, id, 'rs-fold', playbook);
      const steps = r.attempts[2]?.steps?.map((s) => `${s.name}:${s.status}`).join();
      check(steps === 'lint:passed,style:failed,test:passed,docs:skipped', 'every step of the last attempt recorded as before', steps);
      return [id];
    },
  },
  {
    name: 'commit-with-checks',
    about:
      'since commit-with-checks (weaver-epoch-2): a change that fails its test is not committed (rolled back, retried); the next passes every check and is committed, pushed and its clone removed by the activity that checked it — no commitAndPush',
    expect: { closed: 'COMPLETED', patches: ['commit-with-checks'], activities: { prepareWorkspace: 1, generateChange: 2, applyChangeAndCheck: 2, rollbackWorkspace: 1 } },
    run: async (rig, id) => {
      rig.model.script('rs-cwc', [answer(BAD), answer(GOOD)]);
      const r = await rig.run(rig.task(await rig.newRepo(), [rig.provider('rs-cwc')], { push: true }), id);
      check(r.status === 'succeeded' && r.pushed === true && r.attempts.length === 2 && r.workspace === undefined, 'the second answer pushed, the clone removed', [r.status, r.pushed, r.attempts.length, r.workspace]);
      const { activities } = historyShape(await rig.client.workflow.getHandle(id).fetchHistory());
      check(!activities.commitAndPush, 'committed by the checks\' activity, not by commitAndPush', activities);
      return [id];
    },
  },
];
