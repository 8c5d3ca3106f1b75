// Playbook steps on the worker: the setup steps a workspace runs once when it is prepared, and
// one step (a check) in the sandbox — its network, its limits, its folder — with its outcome.
// The commands themselves run through the activities' runInWorkspace (command slots, sandbox,
// log artifact), handed in.
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { evaluateCondition, parseCondition } from '../domain/conditions';
import type { EgressRefusal } from '../domain/egress';
import { commandText, type PlaybookStep } from '../domain/playbook';
import { redact } from '../domain/redact';
import { SandboxPolicySchema, type ArtifactRef, type Command, type ResourceUsage, type SandboxPolicy, type StepOutcome } from '../domain/schema';
import type { RunCommandResult } from './commands';
import { checkPathSyntax, readConfined } from './confinedPaths';
import { resolvePlaybook } from './playbooks';
import { MAX_GATED_BYTES } from './syntaxGate';
import type { PrepareWorkspaceRequest, WorkspaceHandle } from './types';

/** What one sandboxed command left: its result, log, and what the sandbox saw. */
export interface BoxedRun {
  r: RunCommandResult;
  log: ArtifactRef;
  limit?: string;
  violation?: string;
  resources?: ResourceUsage;
  dropped?: string;
  egressRefused?: EgressRefusal[];
}

export type RunInWorkspace = (
  kind: string,
  phase: 'setup' | 'test',
  command: Command,
  cwd: string,
  timeoutSec: number,
  secretEnvNames?: string[],
  policy?: SandboxPolicy,
  stepName?: string,
) => Promise<BoxedRun>;

/** What a setup step's outcome keeps of its output in the workspace handle. */
const SETUP_TAIL_CHARS = 500;
/** The setup command's time limit (installs can be slow; tests have their own, `limits.testTimeoutSec`). */
export const SETUP_TIMEOUT_SEC = 600;

export function createStepRunner({ runInWorkspace, secrets }: { runInWorkspace: RunInWorkspace; secrets: (names?: string[]) => string[] }) {
  /**
   * The workspace's playbook (the task's, the repository's, the shorthand, or detected) and its
   * setup steps, run once here in order. A failed setup step fails the preparation (as the
   * setup command did) unless the step says `warn` or `ignore`.
   */
  async function setUp(req: PrepareWorkspaceRequest, dir: string): Promise<Pick<WorkspaceHandle, 'playbook' | 'setupSteps'>> {
    const playbook = resolvePlaybook(dir, req.checks!);
    const setupSteps: StepOutcome[] = [];
    for (const step of playbook.steps.filter((s) => s.kind === 'setup')) {
      const ctx = { changed: [], attempt: 0, stack: playbook.stack ?? '', labels: req.checks!.labels ?? [], steps: {} };
      if (step.when && !evaluateCondition(parseCondition(step.when), ctx)) {
        setupSteps.push({ name: step.name, kind: step.kind, status: 'skipped', skippedBecause: `when: ${step.when}` });
        continue;
      }
      const out = await runStep(step, dir, step.timeoutSec ?? SETUP_TIMEOUT_SEC, req.secretEnvNames, req.sandbox);
      // The handle travels with every workspace activity: a short tail (the log has it all).
      setupSteps.push({ ...out, tail: (out.tail ?? '').slice(-SETUP_TAIL_CHARS) });
      if (out.status === 'failed' && (step.onFailure === 'retry-with-feedback' || step.onFailure === 'fail')) {
        const why = out.violation ?? out.limit ?? (out.timedOut ? 'timed out' : `exited with ${out.exitCode}`);
        throw ApplicationFailure.create({
          type: 'SetupFailed',
          nonRetryable: !!out.violation,
          message: `setup step "${step.name}" (${commandText(step.run)}) ${why}${refusedText(out.egressRefused, '; ')} (log ${out.log?.ref}):\n${(out.tail ?? '').slice(-1500)}`,
        });
      }
    }
    return { playbook, setupSteps };
  }

  /** One playbook step in the sandbox: its network, its limits, its folder; the outcome with its log. */
  async function runStep(step: PlaybookStep, dir: string, timeoutSec: number, secretEnvNames?: string[], policy?: SandboxPolicy): Promise<StepOutcome> {
    const base = policy ?? SandboxPolicySchema.parse({});
    const stepPolicy = step.limits ? { ...base, limits: { ...base.limits, ...step.limits } } : base;
    const cwd = step.cwd ? await stepDir(dir, step.cwd) : dir;
    // Only setup (before the change) may ask for network: a check runs the model's code, which
    // gets network only where the task's policy is `all` (the worker's cap still applies).
    const phase = step.kind === 'setup' && step.network ? 'setup' : 'test';
    const { r, log, limit, violation, resources, dropped, egressRefused } = await runInWorkspace(`${step.kind}-log`, phase, step.run, cwd, timeoutSec, secretEnvNames, stepPolicy, step.name);
    if (r.cancelled) throw new CancelledFailure(`${step.name} step cancelled; process group killed`);
    // A step passes on its exit status: a limit the sandbox counted (a process of it killed, forks
    // refused) is reported either way, and only explains a failure.
    const passed = r.exitCode === 0 && !r.timedOut && !violation;
    const hit = limit;
    const notes = [violation && `weaver: ${violation}`, hit && `weaver: ${hit}`, refusedText(egressRefused, 'weaver: '), dropped].filter(Boolean).join('\n');
    return {
      name: step.name,
      kind: step.kind,
      status: passed ? 'passed' : 'failed',
      onFailure: step.onFailure,
      passed,
      exitCode: r.exitCode,
      timedOut: r.timedOut,
      durationMs: r.durationMs,
      tail: redact(notes ? `${notes}\n${r.tail}` : r.tail, secrets(secretEnvNames)),
      log,
      ...(hit ? { limit: hit } : {}),
      ...(violation ? { violation } : {}),
      resources,
      ...(egressRefused ? { egressRefused } : {}),
    };
  }

  return { setUp, runStep };
}

/** The egress proxy's refusals in one line (`prefix` first), for a tail or a failure message; '' when none. */
export function refusedText(refused: EgressRefusal[] | undefined, prefix: string): string {
  if (!refused?.length) return '';
  const items = refused.slice(0, 5).map((x) => `${x.host}:${x.port} (${x.why}${x.times > 1 ? `, ${x.times}×` : ''})`);
  return `${prefix}egress refused ${items.join(', ')}${refused.length > 5 ? `, and ${refused.length - 5} more` : ''}`;
}

/**
 * Each path's text as it is now (absent from the map: not there, or not readable as text — not
 * gated). Read confined to the workspace, like the applier.
 */
export async function contentsOf(dir: string, paths: string[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const p of new Set(paths)) {
    // Keyed as the applier names what it wrote (`./a.ts`, `src\\a.ts` → `a.ts`, `src/a.ts`).
    const syntax = checkPathSyntax(p);
    if (!syntax.ok) continue;
    const r = await readConfined(dir, syntax.rel, MAX_GATED_BYTES);
    if (r.ok) out.set(syntax.rel, r.text);
    else if (r.reason === 'does not exist yet') out.set(syntax.rel, null);
  }
  return out;
}

/** A step's folder: inside the checkout, and there. */
async function stepDir(dir: string, rel: string): Promise<string> {
  const abs = path.resolve(dir, rel);
  const real = await realpath(abs).catch(() => undefined);
  const root = await realpath(dir);
  if (!real || (real !== root && !real.startsWith(root + path.sep))) {
    throw ApplicationFailure.create({ type: 'InvalidPlaybook', nonRetryable: true, message: `step folder ${rel} is not a folder inside the repository` });
  }
  return real;
}
