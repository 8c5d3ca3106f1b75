// The playbook's checks after a change applied: each step whose `when` holds runs as an
// activity on the workspace's worker, in order; the first failure that asks for a retry (or
// fails the task) ends the run of steps, and its outcome goes to the Decider. Steps that
// `warn` or `ignore` let the others run. Nothing run at all is `no_checks`, never a pass.
import type { WorkspaceHandle } from '../activities/types';
import type { Outcome, StepRef } from '../domain/decider';
import { commandText, outcomesByName, stepApplies, type ResolvedPlaybook } from '../domain/playbook';
import type { AttemptRecord, StepOutcome } from '../domain/schema';
import { commandClockSec } from './activityProxies';
import type { TaskRun } from './task';

/** Runs the checks of `playbook` for a change that wrote `changed`; each step is recorded on `record`. */
export async function runChecks(t: TaskRun, ws: WorkspaceHandle, playbook: ResolvedPlaybook, changed: string[], record: AttemptRecord): Promise<Outcome> {
  const steps: StepOutcome[] = (record.steps = []);
  const setup = ws.setupSteps ?? [];
  for (const step of playbook.steps.filter((s) => s.kind !== 'setup')) {
    const ctx = { changed, attempt: t.attempt, stack: playbook.stack ?? '', labels: t.input.task.labels ?? [], steps: outcomesByName([...setup, ...steps]) };
    const applies = stepApplies(step, ctx);
    if (!applies.run) {
      steps.push({ name: step.name, kind: step.kind, status: 'skipped', skippedBecause: applies.why });
      continue;
    }
    t.enter('testing', step.name);
    const timeoutSec = step.timeoutSec ?? t.limits.testTimeoutSec;
    // A step may take longer than the task's testTimeoutSec: the proxy's safety net grows with it.
    const longer = timeoutSec > t.limits.testTimeoutSec ? { startToCloseTimeout: commandClockSec(timeoutSec) * 1000 } : {};
    const out = await t.acts(ws).runCheck.executeWithOptions({ summary: `attempt ${t.attempt}: ${step.name} — ${commandText(step.run)}`, ...longer }, [
      { workspace: ws, step, timeoutSec, secretEnvNames: t.secretEnvNames(), sandbox: t.sandboxPolicy },
    ]);
    steps.push(out);
    if (out.log) record.artifacts.push(out.log);
    if (step.kind === 'test') record.tests = testOutcomeOf(out);
    if (out.status === 'passed') continue;
    if (step.onFailure === 'ignore') continue;
    if (step.onFailure === 'warn') {
      t.warn(`the ${step.name} step failed on attempt ${t.attempt} (onFailure: warn): ${out.limit ?? (out.timedOut ? 'timed out' : `exit ${out.exitCode}`)}`);
      continue;
    }
    const ref: StepRef = {
      name: step.name,
      kind: step.kind,
      command: commandText(step.run),
      feedback: step.feedback,
      ...(step.onFailure === 'fail' ? { final: true } : {}),
      ...(out.limit ? { limit: out.limit } : {}),
    };
    const failed = { exitCode: out.exitCode ?? null, timedOut: !!out.timedOut, tail: out.tail ?? '', timeoutSec, step: ref };
    return step.kind === 'test' ? { kind: 'tests_failed', ...failed } : { kind: 'check_failed', ...failed };
  }
  const ran = steps.filter((s) => s.status !== 'skipped').map((s) => s.name);
  if (!ran.length) {
    const detail = playbook.steps.some((s) => s.kind !== 'setup')
      ? `every check was skipped by its condition (${steps.map((s) => `${s.name}: ${s.skippedBecause}`).join('; ')})`
      : playbook.description;
    return { kind: 'no_checks', detail, allowed: !!t.input.allowNoChecks };
  }
  return steps.some((s) => s.kind === 'test' && s.status === 'passed') ? { kind: 'tests_passed', steps: ran } : { kind: 'checks_passed', steps: ran };
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
