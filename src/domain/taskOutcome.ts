// How a task's end reads in Temporal (issue 9 item 8). A task that did not deliver — `failed`,
// `budget_exceeded`, `rejected` — FAILS its workflow, so the Web UI's list, `temporal workflow
// list --query 'ExecutionStatus="Failed"'` and alerting see it at a glance; the whole
// CodingTaskResult rides along as the failure's details, so nothing of the result is lost.
// `succeeded`, `partial` (it delivered merged work on its branch) and `cancelled` (a person asked)
// complete. Pure: used by the workflow (to fail, and to read a failed child) and by the client.
import { ApplicationFailure } from '@temporalio/common';
import type { CodingTaskResult, Decision, TaskStatus, Usage, WeaverStatusValue } from './schema';

/** WeaverStatus of a task refused before anything ran (schema.ts WeaverStatusValue). */
export const REFUSED: WeaverStatusValue = 'invalid';

/** The ApplicationFailure `type` of each status that fails its workflow. */
export const FAILURE_TYPES: Partial<Record<TaskStatus, string>> = {
  failed: 'TaskFailed',
  budget_exceeded: 'BudgetExceeded',
  rejected: 'PushRejected',
};

/** The failure a task with this result ends with; undefined: it completes. */
export function taskFailure(result: CodingTaskResult): ApplicationFailure | undefined {
  const type = FAILURE_TYPES[result.status];
  if (!type) return undefined;
  // Non-retryable: a rerun would spend again to reach the same decision.
  return ApplicationFailure.create({ type, message: result.reason, nonRetryable: true, details: [result] });
}

/**
 * The CodingTaskResult carried by a failure — a WorkflowFailedError (client), a
 * ChildWorkflowFailure (parent workflow) or the ApplicationFailure itself: the cause chain is
 * walked to the task's own failure. Undefined when the task ended without a result (refused
 * input, terminated, timed out).
 */
export function resultFromFailure(err: unknown): CodingTaskResult | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (!(e instanceof ApplicationFailure) || !e.type || !Object.values(FAILURE_TYPES).includes(e.type)) continue;
    const r = e.details?.[0];
    if (isResult(r)) return r;
  }
  return undefined;
}

function isResult(x: unknown): x is CodingTaskResult {
  const r = x as Partial<CodingTaskResult> | null;
  return typeof r === 'object' && r !== null && typeof r.status === 'string' && typeof r.workflowId === 'string' && typeof r.usage === 'object';
}

/** What the Web UI's details panel shows of a run (setCurrentDetails): one markdown line. */
export interface DetailsState {
  phase: string;
  attempt: number;
  maxAttempts: number;
  usage: Usage;
  lastDecision?: Decision;
  children?: { status: string }[];
  /** Set once the task has finished. */
  status?: TaskStatus;
  reason?: string;
  /** The playbook step running (testing). */
  step?: string;
  /** What follows the steps in the same activity, if they pass (the commit made with the checks). */
  then?: string;
}

const MAX_DETAILS_CHARS = 300;

export function detailsLine(s: DetailsState): string {
  const u = s.usage;
  const spend = `$${u.costUsd.toFixed(4)}${u.estimatedCostUsd ? ` (+$${u.estimatedCostUsd.toFixed(4)} estimated)` : ''} · ${u.calls} call(s)`;
  const kids = s.children?.length
    ? ` · children ${s.children.filter((c) => !['not_started', 'running'].includes(c.status)).length}/${s.children.length} done`
    : '';
  const tail = s.status
    ? ` — ${oneLine(s.reason ?? '')}`
    : s.lastDecision
      ? ` · last decision: ${s.lastDecision.action} (${oneLine(s.lastDecision.why)})`
      : '';
  const running = s.step ? ` (${s.step} step${s.then ? `, then ${s.then} once every step passed` : ''})` : '';
  const line = `**${s.status ?? s.phase}**${s.status ? '' : running} · attempt ${s.attempt}/${s.maxAttempts} · ${spend}${kids}${tail}`;
  return line.length > MAX_DETAILS_CHARS ? `${line.slice(0, MAX_DETAILS_CHARS - 1)}…` : line;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
