// Playbooks: the ordered checks a task runs around the model's change (design rule 9). From the
// task (`playbook`), the repository (`.weaver/playbook.yaml`), the shorthands
// (`setupCommand`/`testCommand`) or the defaults detected from the stack. Pure: the workflow
// evaluates `when` and decides with these; the worker reads the YAML (./playbookText.ts).
import { z } from 'zod';
import { lazySchema } from './lazySchema';
import { ConditionError, evaluateCondition, parseCondition, type ConditionContext } from './conditions';
import type { StepKind, StepOutcome } from './schema';

export const CommandSchema = lazySchema(() => z.union([z.string().min(1), z.array(z.string()).min(1)]));

export const STEP_KINDS = ['setup', 'format', 'lint', 'typecheck', 'test', 'build', 'custom'] as const satisfies readonly StepKind[];
export const ON_FAILURE = ['retry-with-feedback', 'fail', 'warn', 'ignore'] as const;
export type OnFailure = (typeof ON_FAILURE)[number];

/** Where a repository keeps its own playbook. */
export const REPO_PLAYBOOK_PATH = '.weaver/playbook.yaml';

const StepLimitsSchema = lazySchema(() => z
  .object({
    memoryMb: z.number().int().min(64).optional(),
    cpuSec: z.number().int().min(1).optional(),
  })
  .strict());

export const PlaybookStepSchema = lazySchema(() => z
  .object({
    /** Unique in the playbook; `steps.<name>` in later conditions. A kind's name makes it that kind. */
    name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,39}$/, 'must start with a letter: letters, digits, "-" or "_", at most 40'),
    kind: z.enum(STEP_KINDS).optional(),
    run: CommandSchema,
    timeoutSec: z.number().positive().max(86_400).optional(),
    /** A condition (src/domain/conditions.ts); the step is skipped when it is false. */
    when: z.string().min(1).optional(),
    onFailure: z.enum(ON_FAILURE).optional(),
    /** What of a failure goes back to the model: the failing tests, the end of the output, N characters of it, or nothing. */
    feedback: z.union([z.enum(['failures', 'tail', 'none']), z.number().int().min(100).max(20_000)]).optional(),
    /** Network for a setup step (on by default; `false` turns it off). Checks run the model's code: they get network only under `sandbox.network: all`. */
    network: z.boolean().optional(),
    /** Where the step runs, relative to the repository root. */
    cwd: z.string().min(1).optional(),
    /** Tighter (or, up to the worker's caps, looser) limits than the task's for this step. */
    limits: StepLimitsSchema.optional(),
  })
  .strict());
export type PlaybookStepInput = z.input<typeof PlaybookStepSchema>;

/** A step with its defaults filled in. */
export interface PlaybookStep {
  name: string;
  kind: StepKind;
  run: string | string[];
  timeoutSec?: number;
  when?: string;
  onFailure: OnFailure;
  feedback: 'failures' | 'tail' | 'none' | number;
  network: boolean;
  cwd?: string;
  limits?: { memoryMb?: number; cpuSec?: number };
}

export const PlaybookSchema = lazySchema(() => z
  .object({ steps: z.array(PlaybookStepSchema).min(1, 'a playbook needs at least one step').max(30) })
  .strict()
  .superRefine((p, ctx) => {
    const seen: string[] = [];
    let checksStarted = false;
    for (const [i, s] of p.steps.entries()) {
      const at = (field?: string) => (field ? ['steps', i, field] : ['steps', i]);
      if (seen.includes(s.name)) ctx.addIssue({ code: 'custom', path: at('name'), message: `"${s.name}" is used by an earlier step: names must be unique` });
      const kind = kindOf(s);
      // Setup runs once when the workspace is prepared, before any change: it cannot follow a check.
      if (kind === 'setup' && checksStarted) ctx.addIssue({ code: 'custom', path: at('kind'), message: 'setup steps come first (they run once, before the change)' });
      if (kind !== 'setup') checksStarted = true;
      if (kind !== 'setup' && s.network) ctx.addIssue({ code: 'custom', path: at('network'), message: "is for setup steps only: a check runs the model's code, which gets network only under sandbox.network \"all\"" });
      if (s.cwd && !isRelativeInside(s.cwd)) ctx.addIssue({ code: 'custom', path: at('cwd'), message: 'must be a relative path inside the repository' });
      if (s.when) {
        try {
          parseCondition(s.when, kind === 'setup' ? [] : seen);
        } catch (err) {
          if (!(err instanceof ConditionError)) throw err;
          ctx.addIssue({ code: 'custom', path: at('when'), message: err.message });
        }
      }
      seen.push(s.name);
    }
  }));
export type PlaybookInput = z.input<typeof PlaybookSchema>;

/** The task's `playbook`: the steps, or their YAML/JSON text (read by the worker and the client). */
export const PlaybookFieldSchema = lazySchema(() => z.union([z.string().min(1).max(100_000), PlaybookSchema]));

function kindOf(s: { name: string; kind?: StepKind }): StepKind {
  return s.kind ?? ((STEP_KINDS as readonly string[]).includes(s.name) ? (s.name as StepKind) : 'custom');
}

function isRelativeInside(p: string): boolean {
  return !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !/^[A-Za-z]:/.test(p);
}

/** A step with its defaults: its kind from its name, setup with network, test feedback as failures. */
export function normaliseStep(s: PlaybookStepInput): PlaybookStep {
  const kind = kindOf(s);
  return {
    name: s.name,
    kind,
    run: s.run,
    ...(s.timeoutSec ? { timeoutSec: s.timeoutSec } : {}),
    ...(s.when ? { when: s.when } : {}),
    onFailure: s.onFailure ?? 'retry-with-feedback',
    feedback: s.feedback ?? (kind === 'test' ? 'failures' : 'tail'),
    network: s.network ?? kind === 'setup',
    ...(s.cwd ? { cwd: s.cwd.replace(/\/+$/, '') } : {}),
    ...(s.limits ? { limits: s.limits } : {}),
  };
}

/** Where a task's checks came from. */
export type PlaybookSource = 'task' | 'repository' | 'testCommand' | 'detected' | 'none';

/** The playbook a workspace runs, with where it came from, as the worker resolved it. */
export interface ResolvedPlaybook {
  source: PlaybookSource;
  /** One line for people: `detected (python: pytest.ini): test` … */
  description: string;
  /** The detected stack (`node`, `python`, `go`, `rust`, `java`, `cmake`, `make`), for `stack == …`. */
  stack?: string;
  /** Source `none` and no manifest anywhere in the repository: no change could be checked (no_checks before any call). */
  nothingAnywhere?: boolean;
  steps: PlaybookStep[];
}

/** `setupCommand`/`testCommand` as a playbook (the shorthand, as before playbooks). */
export function shorthandSteps(setupCommand?: string | string[], testCommand?: string | string[]): PlaybookStep[] {
  return [
    ...(setupCommand ? [normaliseStep({ name: 'setup', run: setupCommand })] : []),
    ...(testCommand ? [normaliseStep({ name: 'test', run: testCommand })] : []),
  ];
}

/** Whether a step runs now, and if not, why (its condition, as written). */
export function stepApplies(step: PlaybookStep, ctx: ConditionContext): { run: boolean; why?: string } {
  if (!step.when) return { run: true };
  const run = evaluateCondition(parseCondition(step.when, Object.keys(ctx.steps)), ctx);
  return run ? { run } : { run, why: `when: ${step.when}` };
}

/** What the checks after a change decide their steps by, besides the outcomes so far. */
export interface CheckContext {
  changed: string[];
  attempt: number;
  labels: string[];
  /** The workspace's setup steps as they ran: later conditions may name them. */
  setup: StepOutcome[];
}

/**
 * Whether a check step of `playbook` runs after `done` (every earlier check's outcome, skipped
 * ones included), and its outcome when it does not: the workflow's loop and a change applied and
 * checked in one activity decide alike.
 */
export function checkStepApplies(playbook: ResolvedPlaybook, step: PlaybookStep, c: CheckContext, done: StepOutcome[]): { run: true } | { run: false; skipped: StepOutcome } {
  const applies = stepApplies(step, { changed: c.changed, attempt: c.attempt, stack: playbook.stack ?? '', labels: c.labels, steps: outcomesByName([...c.setup, ...done]) });
  return applies.run ? { run: true } : { run: false, skipped: { name: step.name, kind: step.kind, status: 'skipped', skippedBecause: applies.why } };
}

/** The steps run after a change applies (setup ran once, when the workspace was prepared). */
export const checkSteps = (playbook: ResolvedPlaybook): PlaybookStep[] => playbook.steps.filter((s) => s.kind !== 'setup');

/** The steps' outcomes by name, for later conditions. */
export function outcomesByName(steps: StepOutcome[]): ConditionContext['steps'] {
  return Object.fromEntries(steps.map((s) => [s.name, { status: s.status, exitCode: s.exitCode }]));
}

export function commandText(c: string | string[] | undefined, max = 80): string {
  const text = c === undefined ? 'no command' : Array.isArray(c) ? c.join(' ') : c;
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
