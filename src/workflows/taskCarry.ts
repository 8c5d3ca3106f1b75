// A codingTask's attempt loop across continue-as-new (runs since CONTINUE_ATTEMPTS): past a
// history threshold, between two attempts (the workspace rolled back, no call in flight, nothing
// reserved), the run hands the next one everything it decides by — the ledger (usage and every
// call event), the attempts, the workspace, the feedback for the next prompt — so no answer is
// lost or counted twice and `progress` reads the same on both sides of the boundary.
import { makeContinueAsNewFunc, workflowInfo } from '@temporalio/workflow';
import { patched } from './patches';
import type { WorkspaceHandle } from '../activities/types';
import type { CooldownState } from '../domain/cooldown';
import { WORKFLOW_TASK_TIMEOUT } from '../domain/liveness';
import type { Losses } from '../domain/rebuilds';
import type { ArtifactRef, AttemptRecord, CallEvent, CodingTaskInput, Decision, Usage } from '../domain/schema';
import type { TaskSettings } from '../domain/settings';
import type { RefusedApproval } from './approval';
import type { codingTask } from './codingTask';
import type { TaskRun } from './task';

/** Marks runs whose attempt loop continues as new past a history threshold. */
export const CONTINUE_ATTEMPTS = 'attempts-continue-as-new';
/** Events per run before the loop continues as new, when the task's limits do not say. */
export const DEFAULT_HISTORY_EVENTS = 10_000;
/** Bytes per run before the loop continues as new (Temporal's hard limit is 50 MB). */
const MAX_HISTORY_BYTES = 20 * 1024 * 1024;

/** What the next prompt learns from the last attempt: the Decider's words and its artifacts. */
export interface Reflection {
  feedback?: string;
  failure?: { testLog?: ArtifactRef; diff?: ArtifactRef };
}

/** The attempt loop's own state between two attempts. */
export interface LoopState {
  reflection: Reflection;
  rebuilds: number;
  losses: Losses;
  applied: boolean;
}

/** Everything a run hands the next one. */
export interface TaskCarry {
  /** Runs before the next one. */
  runs: number;
  settings: TaskSettings;
  keyEnvNames: string[];
  attempt: number;
  /** Without their calls: those are the ledger's events, given back to each attempt on resume. */
  attempts: AttemptRecord[];
  ledger: { usage: Usage; events: CallEvent[] };
  cooldowns: CooldownState;
  warnings: string[];
  guidance: string[];
  artifacts: ArtifactRef[];
  refusedApprovals: RefusedApproval[];
  lastDecision?: Decision;
  ws: WorkspaceHandle;
  loop: LoopState;
}

/** Whether this run's history has grown enough to continue as new (never for runs before CONTINUE_ATTEMPTS). */
export function historyFull(t: TaskRun): boolean {
  // Only runs whose settings came from the worker can be resumed from them.
  if (!t.settings || t.children.length || t.committed) return false;
  const info = workflowInfo();
  const over = info.continueAsNewSuggested || info.historyLength >= (t.limits.historyEvents ?? DEFAULT_HISTORY_EVENTS) || (info.historySize ?? 0) >= MAX_HISTORY_BYTES;
  return over && patched(CONTINUE_ATTEMPTS);
}

/** Continues as new with the run's state: the input as given, and the carry. Never returns. */
export async function continueTask(t: TaskRun, rawInput: CodingTaskInput, runs: number, loop: LoopState): Promise<never> {
  const carry: TaskCarry = {
    runs: runs + 1,
    settings: t.settings!,
    keyEnvNames: t.keyEnvNames,
    attempt: t.attempt,
    attempts: t.attempts.map((a) => ({ ...a, calls: [] })),
    ledger: { usage: t.ledger.usage, events: t.ledger.events },
    cooldowns: t.cooldowns,
    warnings: t.warnings,
    guidance: t.guidance,
    artifacts: t.artifacts,
    refusedApprovals: t.gate.refused,
    ...(t.lastDecision ? { lastDecision: t.lastDecision } : {}),
    ws: t.ws!,
    loop,
  };
  const next = makeContinueAsNewFunc<typeof codingTask>({ workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT, memo: workflowInfo().memo });
  return next(rawInput, carry);
}

/** The state a run before this one left, restored before the loop goes on. */
export function resume(t: TaskRun, c: TaskCarry): void {
  t.adopt(c.settings);
  t.keyEnvNames = c.keyEnvNames;
  t.ledger.restore(c.ledger);
  t.attempt = c.attempt;
  t.attempts.push(...c.attempts.map((a) => ({ ...a, calls: c.ledger.events.filter((e) => e.attempt === a.attempt) })));
  Object.assign(t.cooldowns, c.cooldowns);
  t.warnings.push(...c.warnings);
  t.guidance.push(...c.guidance);
  t.artifacts.push(...c.artifacts);
  t.gate.refused.push(...c.refusedApprovals);
  t.lastDecision = c.lastDecision;
  t.ws = c.ws;
}
