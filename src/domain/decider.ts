// The Decider: a pure function from the task's state and the latest outcome to what the
// workflow does next. No Temporal, no I/O — unit-tested directly (design rule 1).
import type { Decision } from './schema';

export interface TaskState {
  attempt: number;
  maxAttempts: number;
  depth: number;
  maxDepth: number;
  decomposition: 'auto' | 'never' | 'always';
  /** Whether this task already asked for a split after failing (ADaPT is tried once). */
}

/** Which playbook step an outcome is about, and how much of its output goes back to the model. */
export interface StepRef {
  name: string;
  kind: string;
  command: string;
  feedback?: 'failures' | 'tail' | 'none' | number;
  /** The step's onFailure is `fail`: no retry, the task fails. */
  final?: boolean;
  /** A limit it hit (e.g. `killed: memory limit 256 MiB`). */
  limit?: string;
  /** The step's own program is missing on the worker (e.g. `ruff`): no retry can fix that. */
  unavailable?: string;
}

export type Outcome =
  | { kind: 'tests_passed'; steps?: string[] }
  | { kind: 'checks_passed'; steps: string[] }
  | { kind: 'tests_failed'; exitCode: number | null; timedOut: boolean; tail: string; timeoutSec?: number; step?: StepRef; limit?: string }
  | { kind: 'check_failed'; exitCode: number | null; timedOut: boolean; tail: string; timeoutSec?: number; step: StepRef; limit?: string }
  | { kind: 'no_checks'; detail: string; allowed: boolean }
  | { kind: 'invalid_syntax'; errors: string[] }
  | { kind: 'apply_failed'; errors: string[] }
  | { kind: 'schema_violation'; error: string }
  | { kind: 'truncated'; detail: string }
  | { kind: 'files_request_limit'; rounds: number; files: string[] }
  | { kind: 'no_consensus'; detail: string }
  | { kind: 'subtasks_proposed'; count: number }
  | { kind: 'provider_failed'; family: string; message: string }
  | { kind: 'budget_exhausted'; detail: string };

export interface Verdict extends Decision {
  /** For `retry`: what the next prompt tells the model about this failure. */
  feedback?: string;
  /** For `decompose` after failures: the subtasks must first be asked for (ADaPT). */
  plan?: boolean;
}

/** The end of the test output, for the summary lines; the failing tests themselves are
 *  extracted from the whole log by the prompt builder. */
const FEEDBACK_TAIL_CHARS = 1500;

export function feedbackFor(outcome: Outcome): string {
  switch (outcome.kind) {
    case 'tests_failed':
    case 'check_failed': {
      const how = outcome.timedOut
        ? `timed out${outcome.timeoutSec ? ` after ${outcome.timeoutSec}s` : ''} and was killed`
        : outcome.exitCode === null
          ? 'was killed by a signal'
          : `exited with code ${outcome.exitCode}`;
      // Said before the tail: a long crash report would push it out of the cut.
      const hit = outcome.step?.limit ?? outcome.limit;
      const limit = hit ? ` It hit a sandbox limit: ${hit}.` : '';
      const what = outcome.step ? `The ${outcome.step.name} step (\`${outcome.step.command}\`)` : 'The test command';
      const room = outcome.step?.feedback === 'none' ? 0 : typeof outcome.step?.feedback === 'number' ? outcome.step.feedback : FEEDBACK_TAIL_CHARS;
      if (!room) return `${what} ${how}.${limit}`;
      return `${what} ${how}.${limit} End of its output:\n\`\`\`\n${outcome.tail.slice(-room)}\n\`\`\``;
    }
    case 'invalid_syntax':
      return `Your change broke the syntax of the code, so nothing was run (no setup, no checks). Parse errors the change introduced:\n${outcome.errors.map((e) => `\`\`\`\n${e}\n\`\`\``).join('\n')}`;
    case 'apply_failed':
      return `Your change could not be applied, nothing was written:\n${outcome.errors.map((e) => `- ${e}`).join('\n')}`;
    case 'schema_violation':
      return `Your answer could not be read: ${outcome.error}\nAnswer in the format described in the instructions.`;
    case 'truncated':
      return `Your answer was cut off (${outcome.detail}), so none of it was applied. Use smaller, targeted SEARCH/REPLACE edits instead of rewriting whole files, and keep the summary short.`;
    case 'files_request_limit':
      return `You asked to see more files ${outcome.rounds} times already (last: ${outcome.files.slice(0, 10).join(', ')}). Answer with edits now, using what you were shown.`;
    case 'no_consensus':
      return `The models did not agree on a change (${outcome.detail}).`;
    case 'subtasks_proposed':
      return 'Splitting this task is not allowed here: answer with file changes.';
    default:
      return '';
  }
}

/** How a command ended, in a few words: the limit that stopped it, a timeout, or its exit code. */
export function howItEnded(o: { limit?: string; timedOut?: boolean; exitCode?: number | null }): string {
  return o.limit ?? (o.timedOut ? 'timed out' : `exit ${o.exitCode}`);
}

/** Why a task with nothing to check fails (the result's reason starts with `no_checks`). */
export function noChecksReason(detail: string): string {
  return `no_checks: nothing to check the change with — ${detail}; give a testCommand or a playbook, or set allowNoChecks`;
}

export function decide(state: TaskState, outcome: Outcome): Verdict {
  const left = state.maxAttempts - state.attempt;
  const attemptsNote = `attempt ${state.attempt} of ${state.maxAttempts}`;
  switch (outcome.kind) {
    case 'tests_passed':
      return { action: 'commit', why: `${outcome.steps && outcome.steps.length > 1 ? `checks passed (${outcome.steps.join(', ')})` : 'tests passed'} on ${attemptsNote}` };
    case 'checks_passed':
      return { action: 'commit', why: `checks passed (${outcome.steps.join(', ')}) on ${attemptsNote}` };
    case 'no_checks':
      // Nothing checked is never a pass, unless the task said so.
      return outcome.allowed
        ? { action: 'commit', why: `nothing was checked (allowNoChecks): ${outcome.detail}` }
        : { action: 'fail', why: noChecksReason(outcome.detail) };
    case 'budget_exhausted':
      return { action: 'budget_exceeded', why: outcome.detail };
    case 'provider_failed':
      return { action: 'fail', why: `no provider could answer: ${outcome.family}: ${outcome.message}` };
    case 'subtasks_proposed': {
      if (state.decomposition !== 'never' && state.depth < state.maxDepth) {
        return { action: 'decompose', why: `model proposed ${outcome.count} subtasks at depth ${state.depth} (max ${state.maxDepth})` };
      }
      const why =
        state.decomposition === 'never'
          ? 'model proposed subtasks but decomposition is "never"'
          : `model proposed subtasks but depth ${state.depth} reached maxDepth ${state.maxDepth}`;
      return left > 0
        ? { action: 'retry', why: `${why}; retrying (${attemptsNote})`, feedback: feedbackFor(outcome) }
        : { action: 'fail', why: `${why}; no attempts left` };
    }
    default: {
      const what = describe(outcome);
      if ((outcome.kind === 'tests_failed' || outcome.kind === 'check_failed') && outcome.step?.unavailable) {
        const s = outcome.step;
        return { action: 'fail', why: `checks_unavailable: the ${s.name} step cannot run on this worker (\`${s.unavailable}\` not found, \`${s.command}\`); install it on the worker, or give a testCommand or playbook` };
      }
      if ((outcome.kind === 'tests_failed' || outcome.kind === 'check_failed') && outcome.step?.final) {
        return { action: 'fail', why: `${what} on ${attemptsNote}; the step's onFailure is "fail"` };
      }
      if (left > 0) return { action: 'retry', why: `${what} on ${attemptsNote}; retrying with feedback`, feedback: feedbackFor(outcome) };
      if (state.decomposition === 'auto' && state.depth < state.maxDepth) {
        // As in ADaPT: decompose only once doing it whole has failed.
        return {
          action: 'decompose',
          plan: true,
          why: `${what}; ${state.maxAttempts} attempt(s) exhausted at depth ${state.depth} (max ${state.maxDepth}); asking for a split into subtasks`,
          feedback: feedbackFor(outcome),
        };
      }
      return { action: 'fail', why: `${what}; ${state.maxAttempts} attempt(s) exhausted` };
    }
  }
}

function describe(o: Outcome): string {
  switch (o.kind) {
    case 'tests_failed':
    case 'check_failed': {
      const name = o.step && !(o.kind === 'tests_failed' && o.step.name === 'test') ? `${o.step.name} step` : 'tests';
      const hit = o.step?.limit ?? o.limit;
      return `${o.timedOut ? `${name} timed out` : `${name} failed (exit ${o.exitCode})`}${hit ? `: ${hit}` : ''}`;
    }
    case 'invalid_syntax':
      return `the change broke the syntax (${o.errors[0]?.split('\n')[0] ?? 'parse error'}${o.errors.length > 1 ? `, +${o.errors.length - 1} more` : ''})`;
    case 'apply_failed':
      return `change rejected (${o.errors[0] ?? 'unknown'}${o.errors.length > 1 ? `, +${o.errors.length - 1} more` : ''})`;
    case 'schema_violation':
      return `answer could not be read (${o.error.slice(0, 200)})`;
    case 'truncated':
      return 'answer was cut off at the output limit';
    case 'files_request_limit':
      return `model kept asking for files after ${o.rounds} rounds`;
    case 'no_consensus':
      return `no consensus (${o.detail})`;
    default:
      return o.kind;
  }
}

/** The outcome in one line for the attempt's record (`detail`): bounded, for history and the Web UI. */
export function outcomeDetail(o: Outcome): string | undefined {
  switch (o.kind) {
    case 'invalid_syntax':
      return o.errors.map((e) => e.split('\n')[0]).join('; ').slice(0, 1000);
    case 'no_checks':
      return o.detail.slice(0, 1000);
    case 'check_failed':
      return `${o.step.name}: ${howItEnded({ ...o, limit: o.step.limit })}`;
    case 'apply_failed':
      return o.errors.join('; ').slice(0, 1000);
    case 'schema_violation':
      return o.error.slice(0, 1000);
    case 'provider_failed':
      return `${o.family}: ${o.message}`.slice(0, 1000);
    case 'tests_failed':
      return howItEnded({ ...o, limit: o.step?.limit });
    case 'no_consensus':
      return o.detail.slice(0, 1000);
    case 'budget_exhausted':
      return o.detail.slice(0, 1000);
    default:
      return undefined;
  }
}
