// The playbook's checks after a change applied: each step whose `when` holds runs as an
// activity on the workspace's worker, in order; the first failure that asks for a retry (or
// fails the task) ends the run of steps, and its outcome goes to the Decider. Steps that
// `warn` or `ignore` let the others run. Nothing run at all is `no_checks`, never a pass.
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import type { ApplyAndCheckRequest, ApplyAndCheckResult, ApplyChangeRequest, Shown, SyntaxProblem, WorkspaceHandle } from '../activities/types';
import { howItEnded, type Outcome, type StepRef } from '../domain/decider';
import { checkStepApplies, checkSteps, commandText, type ResolvedPlaybook } from '../domain/playbook';
import type { ArtifactRef, AttemptRecord, StepOutcome } from '../domain/schema';
import { commandClockSec } from './activityProxies';
import { patched } from './patches';
import { FOLD_ROUND_TRIPS, type TaskRun } from './task';

/**
 * Applies `change` on `ws` and checks it (the syntax gate, then the workspace's playbook; the
 * test command alone for runs from before playbooks), recorded on `record`: the outcome for
 * the Decider, or for the ranking of parallel-all's candidates (candidates.ts). `onApplied`:
 * told once the change is applied (a workspace lost after that was rebuilt with progress).
 * `commit`: made by the same activity if every check passes (commit.ts commitWithChecks).
 */
export async function applyAndCheck(t: TaskRun, ws: WorkspaceHandle, change: ArtifactRef, shown: Shown, record: AttemptRecord, onApplied?: () => void, commit?: ApplyAndCheckRequest['commit']): Promise<Outcome> {
  t.enter('applying');
  const playbook = t.playbooks ? ws.playbook : undefined;
  const request: ApplyChangeRequest = {
    workspace: ws,
    change,
    shown,
    allowTestChanges: t.input.task.allowTestChanges,
    ...(playbook ? { checks: { playbook } } : {}),
  };
  // Runs since FOLD_ROUND_TRIPS apply and run the checks that pass in one activity; both results
  // are read below as applyChange's and runCheck's were (runs before replay as they ran).
  const fold = playbook && patched(FOLD_ROUND_TRIPS);
  // The checks take the folded activity's time (the apply, milliseconds of it): shown as testing.
  // With the commit asked of it, the activity commits (and pushes or bundles) once every step passed: said too.
  if (fold) t.enter('testing', checkSteps(playbook).map((s) => s.name).join(', '), commit ? (commit.pushRemote ? 'commit and push' : 'commit') : undefined);
  const folded = fold
    ? await applyThenCheck(t, ws, { ...request, ...(commit ? { commit } : {}) }, playbook).catch((err: unknown) => {
        // Lost in a check: the rebuild that follows makes progress, as one after applyChange did;
        // lost before, it was lost applying (what the attempt's notes say).
        const lost = lostWhen(err);
        if (lost === 'after') onApplied?.();
        if (lost === 'before') t.enter('applying');
        throw err;
      })
    : undefined;
  // Every check passed and the commit asked for is made: commitWork takes it (the verdict is commit).
  if (folded?.committed && commit) t.madeCommit = { ws, result: folded.committed, request: commit };
  const applied = folded?.applied ?? (await t.acts(ws).applyChange(request));
  onApplied?.();
  if (applied.diff) record.artifacts.push(applied.diff);
  if (applied.notes?.length) record.notes = applied.notes.slice(0, 20).map((n) => n.slice(0, 300));
  if (!applied.applied) return { kind: 'apply_failed', errors: applied.errors };
  record.filesChanged = applied.files;
  // A workspace prepared by a worker from before playbooks resolved none: nothing to check with.
  if (t.playbooks && !playbook) return { kind: 'no_checks', detail: `the worker that prepared the workspace (${ws.taskQueue}) resolved no playbook`, allowed: !!t.input.allowNoChecks };
  if (playbook) {
    // Parsed before anything runs: a change that breaks the syntax costs no setup and no suite.
    if (applied.syntaxErrors?.length) return { kind: 'invalid_syntax', errors: describeSyntax(applied.syntaxErrors) };
    return runChecks(t, ws, applied.playbook ?? playbook, applied.files, record, folded?.checked);
  }
  t.enter('testing');
  const tests = await t.acts(ws).runTests.executeWithOptions({ summary: `attempt ${t.attempt}: ${commandText(t.input.testCommand ?? 'no test command', 80)}` }, [
    { workspace: ws, command: t.input.testCommand, timeoutSec: t.limits.testTimeoutSec, secretEnvNames: t.secretEnvNames(), sandbox: t.sandboxPolicy },
  ]);
  record.tests = tests;
  if (tests.log) record.artifacts.push(tests.log);
  if (tests.passed) return { kind: 'tests_passed' };
  return { kind: 'tests_failed', exitCode: tests.exitCode, timedOut: tests.timedOut, tail: tests.tail, timeoutSec: t.limits.testTimeoutSec, limit: tests.limit };
}

/** The change applied, then its checks while they pass (src/activities/applyAndCheck.ts), in one activity. */
function applyThenCheck(t: TaskRun, ws: WorkspaceHandle, request: ApplyChangeRequest & Pick<ApplyAndCheckRequest, 'commit'>, playbook: ResolvedPlaybook): Promise<ApplyAndCheckResult> {
  const { testTimeoutSec } = t.limits;
  // The proxy's safety net grows with the longest step, as runCheck's does with each.
  const longest = Math.max(testTimeoutSec, ...checkSteps(playbook).map((s) => s.timeoutSec ?? 0));
  const longer = longest > testTimeoutSec ? { startToCloseTimeout: commandClockSec(longest) * 1000 } : {};
  const run = { attempt: t.attempt, labels: t.input.task.labels ?? [], testTimeoutSec, secretEnvNames: t.secretEnvNames(), sandbox: t.sandboxPolicy };
  return t.acts(ws).applyChangeAndCheck.executeWithOptions({ summary: `attempt ${t.attempt}: apply the change, then its checks${request.commit ? ' (and the commit, if all pass)' : ''}`, ...longer }, [{ ...request, checks: { playbook }, run }]);
}

/**
 * Whether the folded activity's workspace was lost `after` the change was applied — it says so
 * itself (a workspace gone in a check), or a worker had taken it (its heartbeats stopped; it
 * applies within milliseconds of starting, its checks take the rest) — or `before` (untaken in
 * its queue, or gone when it started). Undefined: not a loss.
 */
function lostWhen(err: unknown): 'before' | 'after' | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const c = err.cause;
  if (c instanceof TimeoutFailure) return c.timeoutType === 'HEARTBEAT' ? 'after' : c.timeoutType === 'SCHEDULE_TO_START' ? 'before' : undefined;
  if (!(c instanceof ApplicationFailure) || c.type !== 'WorkspaceLost') return undefined;
  const said = c.details?.[0] as { applied?: boolean; started?: boolean } | undefined;
  return said?.applied || said?.started ? 'after' : 'before';
}

/** The syntax gate's findings as the model and the record read them. */
function describeSyntax(problems: SyntaxProblem[]): string[] {
  return problems.map((p) => `${p.path}:${p.line}:${p.column}: ${p.kind === 'MISSING' ? 'missing token' : 'syntax error'}\n${p.excerpt}`);
}

/**
 * Runs the checks of `playbook` for a change that wrote `changed`; each step is recorded on
 * `record`. `ran`: the steps the activity that applied the change ran already, in order (read
 * here as runCheck's results; the steps after them run as runCheck).
 */
export async function runChecks(t: TaskRun, ws: WorkspaceHandle, playbook: ResolvedPlaybook, changed: string[], record: AttemptRecord, ran: StepOutcome[] = []): Promise<Outcome> {
  const steps: StepOutcome[] = (record.steps = []);
  const ctx = { changed, attempt: t.attempt, labels: t.input.task.labels ?? [], setup: ws.setupSteps ?? [] };
  const pending = [...ran];
  for (const step of checkSteps(playbook)) {
    const applies = checkStepApplies(playbook, step, ctx, steps);
    if (!applies.run) {
      steps.push(applies.skipped);
      continue;
    }
    t.enter('testing', step.name);
    const timeoutSec = step.timeoutSec ?? t.limits.testTimeoutSec;
    // A step may take longer than the task's testTimeoutSec: the proxy's safety net grows with it.
    const longer = timeoutSec > t.limits.testTimeoutSec ? { startToCloseTimeout: commandClockSec(timeoutSec) * 1000 } : {};
    const out =
      pending[0]?.name === step.name
        ? pending.shift()!
        : await t.acts(ws).runCheck.executeWithOptions({ summary: `attempt ${t.attempt}: ${step.name} — ${commandText(step.run)}`, ...longer }, [
            { workspace: ws, step, timeoutSec, secretEnvNames: t.secretEnvNames(), sandbox: t.sandboxPolicy },
          ]);
    if (out.log) record.artifacts.push(out.log);
    if (out.altered?.length) {
      t.warn(`the ${step.name} step rewrote ${out.altered.slice(0, 10).join(', ')}${out.altered.length > 10 ? ', …' : ''} on attempt ${t.attempt}: put back as the change wrote them (steps check, they do not write; what is committed is what the checks saw)`);
    }
    // pytest's "no tests collected": nothing was checked, which is not a failure of the change.
    if (out.status === 'failed' && out.exitCode === 5 && /\bpytest\b/.test(commandText(step.run, 500))) {
      steps.push({ ...out, status: 'skipped', skippedBecause: 'pytest collected no tests (exit 5)' });
      continue;
    }
    steps.push(out);
    if (step.kind === 'test') record.tests = testOutcomeOf(out);
    if (out.status === 'passed') continue;
    const missing = missingTool(step.run, out);
    if (!missing && (step.onFailure === 'ignore' || step.onFailure === 'warn')) {
      t.warn(`the ${step.name} step failed on attempt ${t.attempt} (onFailure: ${step.onFailure}): ${howItEnded(out)}`);
      continue;
    }
    const ref: StepRef = {
      name: step.name,
      kind: step.kind,
      command: commandText(step.run),
      feedback: step.feedback,
      ...(step.onFailure === 'fail' || missing ? { final: true } : {}),
      ...(missing ? { unavailable: missing } : {}),
      ...(out.limit ? { limit: out.limit } : {}),
    };
    const failed = { exitCode: out.exitCode ?? null, timedOut: !!out.timedOut, tail: out.tail ?? '', timeoutSec, step: ref };
    return step.kind === 'test' ? { kind: 'tests_failed', ...failed } : { kind: 'check_failed', ...failed };
  }
  // Only a step that passed checked anything: one that failed under warn/ignore did not.
  const passed = steps.filter((s) => s.status === 'passed').map((s) => s.name);
  if (!passed.length) {
    const detail = !playbook.steps.some((s) => s.kind !== 'setup')
      ? playbook.description
      : `no check passed (${steps.map((s) => `${s.name}: ${s.status === 'skipped' ? `skipped, ${s.skippedBecause}` : `failed, onFailure ${s.onFailure}`}`).join('; ')})`;
    return { kind: 'no_checks', detail, allowed: !!t.input.allowNoChecks };
  }
  return steps.some((s) => s.kind === 'test' && s.status === 'passed') ? { kind: 'tests_passed', steps: passed } : { kind: 'checks_passed', steps: passed };
}

/**
 * The step's own program is missing on the worker (exit 127/126, and the output names it): the
 * model cannot fix that, so the task fails naming the tool instead of retrying. A program the
 * step's script calls later is the script's business (retried as usual).
 */
function missingTool(run: string | string[], out: StepOutcome): string | undefined {
  const words = typeof run === 'string' ? run.trim().split(/\s+/) : run;
  // `python3 -m pytest` without pytest installed.
  const m = words.indexOf('-m');
  const mod = m >= 0 ? words[m + 1] : undefined;
  if (mod && /^[\w.]+$/.test(mod) && out.exitCode === 1 && new RegExp(`No module named '?${mod.replace(/\./g, '\\.')}'?\\s*$`, 'm').test(out.tail ?? '')) return mod;
  // A shell's script is the script's business: only a program the step names itself counts.
  const tool = words[0] === 'sh' || words[0] === 'bash' ? undefined : words[0];
  if (!tool) return undefined;
  const name = tool.split('/').pop()!;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const tail = out.tail ?? '';
  // bubblewrap could not exec it (bwrap exits 1), or the worker could not spawn it (no sandbox).
  if (new RegExp(`^bwrap: execvp \\S*${escaped}: (No such file or directory|Permission denied)|cannot start command: spawn \\S*${escaped} E(NOENT|ACCES)`, 'm').test(tail)) return name;
  if (out.exitCode !== 127 && out.exitCode !== 126) return undefined;
  return new RegExp(`${escaped}: (command )?not found|${escaped}: No such file`).test(tail) ? name : undefined;
}

function testOutcomeOf(s: StepOutcome) {
  return {
    passed: s.status === 'passed',
    exitCode: s.exitCode ?? null,
    timedOut: !!s.timedOut,
    durationMs: s.durationMs ?? 0,
    tail: s.tail ?? '',
    ...(s.log ? { log: s.log } : {}),
    ...(s.limit ? { limit: s.limit } : {}),
    ...(s.violation ? { violation: s.violation } : {}),
    ...(s.resources ? { resources: s.resources } : {}),
  };
}
