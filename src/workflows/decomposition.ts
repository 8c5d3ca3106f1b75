// Decomposition: each subtask runs as a child codingTask (bounded concurrency, each with its
// share of the remaining budget); the parent merges their branches, tests the whole and commits.
import { CancellationScope, CancelledFailure, executeChild, isCancellation, log } from '@temporalio/workflow';
import { patched } from './patches';
import type { WorkspaceHandle } from '../activities/types';
import { allotment, decompositionRefusal, subtaskFloorUsd } from '../domain/ledger';
import type { AttemptRecord, ChildSummary, CodingTaskInput, CodingTaskResult, TaskSpec } from '../domain/schema';
import { slimChild, slimResult } from '../domain/slim';
import { slugify } from '../domain/slug';
import { mergeUsage } from '../domain/usage';
import { secretFilesNamed } from '../domain/redact';
import type { codingTask } from './codingTask';
import { howItEnded } from '../domain/decider';
import { runChecks } from './checks';
import { DEFAULT_PROMPT_BUDGET } from '../domain/models';
import { childEnd, childTaskTimeout, runBounded, runWindowed } from './children';
import { quotaWindowOf } from './quotaWindow';
import { commitWork } from './commit';
import { isWorkspaceLost, type TaskRun } from './task';

const MAX_INTEGRATION_REBUILDS = 3;

/** Runs each subtask as a child codingTask, then merges their branches and tests the result. */
export async function decompose(t: TaskRun, proposed: TaskSpec[], why: string): Promise<CodingTaskResult> {
  t.enter('decomposing');
  const subtasks = proposed.slice(0, t.limits.maxChildren);
  if (proposed.length > subtasks.length) {
    t.warnings.push(`${proposed.length} subtasks proposed; maxChildren is ${t.limits.maxChildren}, the rest were not run`);
  }
  const bound = t.treeBound();
  if (bound?.source === 'WEAVER_DEFAULT_TREE_COST_USD') {
    // A default bound the task never chose: a fan-out that cannot give every child one call is
    // refused whole, with the figures, rather than run until its later children find nothing left.
    const shadowIds = new Set(t.input.strategy?.shadow ?? []);
    const floor = subtaskFloorUsd(t.providers.filter((p) => !shadowIds.has(p.id)), t.providers.filter((p) => shadowIds.has(p.id)), t.attempts.at(-1)?.promptTokens ?? 0);
    const refused = decompositionRefusal(bound, t.treeSpentUsd(), subtasks.length, floor);
    if (refused) {
      t.lastDecision = { action: 'budget_exceeded', why: refused };
      return t.finish('budget_exceeded', refused, { workspace: t.ws?.dir });
    }
  }
  t.lastDecision = { action: 'decompose', why };
  for (const [i, spec] of subtasks.entries()) {
    t.children.push({ workflowId: `${t.workflowId}/${i + 1}-${slugify(spec.title, 30)}`, title: spec.title, status: 'not_started', reason: 'waiting' });
  }
  const concurrency = t.limits.childConcurrency;
  const held = new Map<number, { cost?: number; tokens?: number }>();
  let running = 0;
  // Runs since QUOTA_WINDOW launch within the quota their providers last reported (src/workflows/quotaWindow.ts).
  const window = quotaWindowOf(t.providers.map((p) => p.id), concurrency, { tokensPerChild: t.attempts.at(-1)?.promptTokens || DEFAULT_PROMPT_BUDGET });

  const runChild = async (i: number) => {
    const child = t.children[i];
    // Cancelled: start nothing new (running children are being cancelled and awaited).
    if (CancellationScope.current().consideredCancelled) return;
    const spentCost = t.treeSpentUsd();
    const spentTokens = t.ledger.spentTokens() + t.childUsage.reduce((s, u) => s + u.tokensIn + u.tokensOut, 0);
    const heldCost = [...held.values()].reduce((s, h) => s + (h.cost ?? 0), 0);
    const heldTokens = [...held.values()].reduce((s, h) => s + (h.tokens ?? 0), 0);
    const lanes = Math.min(concurrency - running, subtasks.length - i);
    // Shares of the tree's bound (its maxCostUsd, or the worker's default): each child's maxCostUsd.
    const cost = allotment(bound?.usd, spentCost, heldCost, lanes);
    const tokensAllot = allotment(t.limits.maxTokens, spentTokens, heldTokens, lanes);
    const tokens = tokensAllot === undefined ? undefined : Math.floor(tokensAllot);
    if (cost === 0 || tokens === 0) {
      child.reason = `not started: the budget is spent (${cost === 0 ? `${bound?.source === 'WEAVER_DEFAULT_TREE_COST_USD' ? 'the default tree bound' : 'maxCostUsd'} ${bound?.usd}` : `maxTokens ${t.limits.maxTokens}`})`;
      return;
    }
    held.set(i, { cost, tokens });
    running += 1;
    child.status = 'running';
    child.reason = 'running';
    try {
      const result = await executeChild<typeof codingTask>('codingTask', {
        workflowId: child.workflowId,
        args: [childInput(t, subtasks[i], cost, tokens)],
        memo: { title: subtasks[i].title, parent: t.workflowId },
        staticSummary: `subtask ${i + 1}/${subtasks.length}: ${subtasks[i].title}`,
        ...childTaskTimeout(),
      });
      settle(t, child, result);
    } catch (err) {
      if (isCancellation(err)) {
        child.status = 'cancelled';
        child.reason = 'cancelled before it finished';
        throw err;
      }
      // A failed child's result (and spend) is in its failure; a terminated one's spend is asked
      // for: either way its spend counts against the budget before the next sibling's share.
      child.status = 'failed';
      const end = await childEnd(err, child.workflowId);
      if ('result' in end) settle(t, child, end.result);
      else {
        child.reason = end.reason;
        if (end.usage) t.childUsage.push(end.usage);
        if (end.note) t.warn(end.note);
      }
    } finally {
      held.delete(i);
      running -= 1;
      t.showDetails();
    }
  };
  await (window ? runWindowed(subtasks.length, window, runChild) : runBounded(subtasks.length, concurrency, runChild));
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('cancelled while children ran');
  return integrate(t, subtasks.length);
}

/** A child's result, completed or read from its failure: its summary and its spend. */
function settle(t: TaskRun, child: ChildSummary, result: CodingTaskResult): void {
  Object.assign(child, { status: result.status, reason: result.reason, branch: result.branch, commit: result.commit, result: slimResult(result) });
  t.childUsage.push(result.usage);
}

function childInput(t: TaskRun, task: TaskSpec, maxCostUsd: number | undefined, maxTokens: number | undefined): CodingTaskInput {
  return {
    repo: t.input.repo,
    baseBranch: t.input.baseBranch,
    task,
    testCommand: task.testCommand ?? t.input.testCommand,
    setupCommand: t.input.setupCommand,
    // A subtask's own testCommand narrows the checks; otherwise it runs its parent's playbook.
    ...(t.input.playbook !== undefined && !task.testCommand ? { playbook: t.input.playbook } : {}),
    ...(t.input.allowNoChecks ? { allowNoChecks: true } : {}),
    providers: t.input.providers,
    ...(t.input.promptBudgetTokens !== undefined ? { promptBudgetTokens: t.input.promptBudgetTokens } : {}),
    strategy: t.input.strategy,
    // Children run under their parent's sandbox policy, never a looser one.
    sandbox: t.sandboxPolicy,
    limits: { ...t.limits, maxCostUsd, maxTokens },
    decomposition: t.input.decomposition === 'always' ? 'auto' : t.input.decomposition,
    // Under requireApproval nothing reaches the remote before a person says so, children included.
    push: t.input.requireApproval ? false : t.input.push,
    depth: t.depth + 1,
    // Always a list for a child (even empty): the secret files a person named at the root,
    // forwarded unchanged to grandchildren, never recomputed from a model-written subtask.
    inherited: { cooldowns: { ...t.cooldowns }, namedSecretFiles: rootNamedSecretFiles(t) },
  };
}

/** Merges the successful children in subtask order, tests the whole, commits and pushes. */
async function integrate(t: TaskRun, total: number): Promise<CodingTaskResult> {
  let ws = t.ws!;
  const recorded = t.attempts.length;
  for (let rebuilds = 0; ; rebuilds++) {
    try {
      return await mergeTestCommit(t, ws, total);
    } catch (err) {
      // The children's branches are durable (pushed or bundled): a lost workspace is rebuilt
      // from the same base and the merges redone. Runs started before failed here instead.
      if (!isWorkspaceLost(err) || rebuilds >= MAX_INTEGRATION_REBUILDS || !patched('rebuild-at-integration')) throw err;
      log.warn('workspace lost during integration; rebuilding and merging again', { rebuilds: rebuilds + 1, phase: t.phase });
      t.attempts.length = recorded;
      ws = await t.prepare({});
    }
  }
}

async function mergeTestCommit(t: TaskRun, ws: WorkspaceHandle, total: number): Promise<CodingTaskResult> {
  t.enter('integrating');
  const ok = t.children.filter((c) => c.status === 'succeeded' && c.result);
  const sources = ok.map((c) => ({
    workflowId: c.workflowId,
    title: c.title,
    source: c.result!.pushed ? t.pushRemote()! : (c.result!.bundle?.ref ?? c.result!.workspace!),
    branch: c.branch!,
  }));
  const merges = sources.length ? await t.acts(ws).mergeBranches({ workspace: ws, sources }) : [];
  for (const m of merges) {
    const c = t.children.find((x) => x.workflowId === m.workflowId)!;
    c.merged = m.merged;
    if (m.conflict) c.conflict = m.conflict;
  }
  const merged = merges.filter((m) => m.merged).length;
  const successCount = ok.length;
  const aggregate = {
    total,
    successCount,
    failureCount: total - successCount,
    successRate: total ? successCount / total : 0,
    usage: mergeUsage(...t.childUsage),
  };
  const problems = t.children
    .filter((c) => c.status !== 'succeeded' || c.conflict)
    .map((c) => `${c.workflowId}: ${c.conflict ?? `${c.status}: ${c.reason}`}`);
  const head = `${successCount}/${total} subtasks succeeded, ${merged} merged`;
  if (!merged) {
    return t.finish('failed', `${head}${problems.length ? `; ${problems.join('; ')}` : ''}`, {
      children: t.children.map(slimChild),
      aggregate,
      workspace: ws.dir,
    });
  }
  const { passed, note, record } = await integrationChecks(t, ws, merged);
  t.attempts.push(record);
  // The merged work is committed (and pushed) even when incomplete: nothing is lost.
  // The merges are commits already: nothing else of the tree goes in.
  const { commit, pushed, bundle, rejected, workspace } = await commitWork(t, ws, `Integrates ${merged} subtask(s): ${ok.map((c) => c.title).join('; ')}`, []);
  const complete = merged === total && passed;
  const reason = [head, note, ...problems, ...(rejected ? [rejected] : [])].join('; ');
  return t.finish(rejected ? 'rejected' : complete ? 'succeeded' : 'partial', reason, {
    commit,
    pushed,
    workspace,
    bundle,
    children: t.children.map(slimChild),
    aggregate,
  });
}

/**
 * The merged tree's checks: the playbook's (the children's changed files for `changed(...)`),
 * or, for runs started before playbooks, the test command.
 */
async function integrationChecks(t: TaskRun, ws: WorkspaceHandle, merged: number): Promise<{ passed: boolean; note: string; record: AttemptRecord }> {
  const record: AttemptRecord = {
    attempt: t.attempt + 1,
    calls: [],
    outcome: 'pending',
    detail: 'integration of the merged subtasks',
    decision: { action: 'commit', why: `integrated ${merged} subtask branch(es)` },
    artifacts: [],
  };
  if (t.playbooks) {
    const changed = [...new Set(t.children.flatMap((c) => c.result?.attempts?.at(-1)?.filesChanged ?? []))];
    const outcome = ws.playbook
      ? await runChecks(t, ws, ws.playbook, changed, record)
      : ({ kind: 'no_checks', detail: 'the workspace resolved no playbook', allowed: !!t.input.allowNoChecks } as const);
    record.outcome = outcome.kind;
    const passed = outcome.kind === 'tests_passed' || outcome.kind === 'checks_passed' || (outcome.kind === 'no_checks' && outcome.allowed);
    const note =
      outcome.kind === 'no_checks'
        ? `integration: nothing was checked (${outcome.detail})`
        : passed
          ? 'integrated checks passed'
          : `integrated checks failed (${outcome.kind === 'tests_failed' || outcome.kind === 'check_failed' ? `${outcome.step?.name ?? 'test'}: ${howItEnded({ ...outcome, limit: outcome.step?.limit })}` : outcome.kind})`;
    return { passed, note, record };
  }
  t.enter('testing');
  const tests = await t.acts(ws).runTests({
    workspace: ws,
    command: t.input.testCommand,
    timeoutSec: t.limits.testTimeoutSec,
    secretEnvNames: t.secretEnvNames(),
    sandbox: t.sandboxPolicy,
  });
  Object.assign(record, { outcome: tests.passed ? 'tests_passed' : 'tests_failed', tests, artifacts: tests.log ? [tests.log] : [] });
  const note = tests.passed ? 'integrated tests passed' : `integrated tests failed (${howItEnded({ timedOut: tests.timedOut, exitCode: tests.exitCode })})`;
  return { passed: tests.passed, note, record };
}

/** Secret files the person who started the root task named (its task, guidance and explicit subtasks). */
function rootNamedSecretFiles(t: TaskRun): string[] {
  const inherited = t.input.inherited?.namedSecretFiles;
  if (inherited) return inherited;
  const named = [t.input.task, ...(t.input.subtasks ?? [])].flatMap((task) => secretFilesNamed(task, t.guidance));
  return [...new Set(named)];
}
