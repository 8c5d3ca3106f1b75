// Slim copies of results for embedding in a parent's or a batch's result: a full child
// result is already in the child's own history and artifacts, and nesting it whole would
// grow the parent's result past Temporal's payload limit on big trees and batches.
import type { AttemptRecord, ChildSummary, CodingTaskResult } from './schema';

function slimAttempt(a: AttemptRecord): AttemptRecord {
  return {
    attempt: a.attempt,
    provider: a.provider,
    outcome: a.outcome,
    detail: a.detail,
    summary: a.summary?.slice(0, 200),
    decision: a.decision,
    calls: [],
    artifacts: [],
  };
}

export function slimResult(r: CodingTaskResult): CodingTaskResult {
  return {
    workflowId: r.workflowId,
    status: r.status,
    reason: r.reason.slice(0, 2000),
    branch: r.branch,
    commit: r.commit,
    pushed: r.pushed,
    workspace: r.workspace,
    bundle: r.bundle,
    warnings: r.warnings,
    attempts: r.attempts.map(slimAttempt),
    usage: r.usage,
    aggregate: r.aggregate,
    children: r.children?.map((c) => ({ ...c, result: undefined })),
    // Report, events and full-result references: where the whole story is.
    artifacts: r.artifacts.filter((a) => a.kind === 'report' || a.kind === 'events' || a.kind === 'result'),
  };
}

export function slimChild(c: ChildSummary): ChildSummary {
  return c.result ? { ...c, result: slimResult(c.result) } : c;
}

/**
 * A batch's results as returned: whole (slim) while they fit in `maxBytes` of JSON, else one
 * short line per task — Temporal refuses payloads over ~2 MB, and each task's whole result is
 * its own `result` artifact, listed in its line.
 */
export function resultRows(results: CodingTaskResult[], maxBytes: number): CodingTaskResult[] {
  if (JSON.stringify(results).length <= maxBytes) return results;
  return results.map((r) => ({
    workflowId: r.workflowId,
    status: r.status,
    reason: r.reason.slice(0, 200),
    branch: r.branch,
    commit: r.commit,
    pushed: r.pushed,
    attempts: [],
    usage: { tokensIn: r.usage.tokensIn, tokensOut: r.usage.tokensOut, costUsd: r.usage.costUsd, calls: r.usage.calls, estimatedCostUsd: r.usage.estimatedCostUsd, byProvider: {} },
    artifacts: r.artifacts.filter((a) => a.kind === 'result' || a.kind === 'report'),
  }));
}
