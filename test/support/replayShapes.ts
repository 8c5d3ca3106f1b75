// What a replay scenario is and what its recorded history must show (test/support/replayScenarios.ts,
// test/support/replayHostScenarios.ts), and the tiny answers the scenarios are scripted with.
import { wholeFile } from './answers';
import type { HistoryShape } from './histories';
import type { Rig } from './weaver';

export const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
export const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;
export const usage = { prompt_tokens: 100, completion_tokens: 100 };
export const answer = (content: string, delayMs = 0) => ({ content: wholeFile('src/slugify.js', content, 's'), usage, delayMs });

/** What a scenario's top history must show (counts are minimums unless said otherwise). */
export interface ExpectedShape {
  closed: HistoryShape['closed'];
  workflowType?: string;
  activities?: Record<string, number>;
  /** Local activities by type (at least this many). */
  localActivities?: Record<string, number>;
  /** Exactly this many upserts of Weaver's search attributes. */
  upserts?: number;
  activitiesCancelled?: number;
  /** Timers whose summary matches. */
  timers?: { count: number; summary: RegExp };
  /** Exactly this many children. */
  children?: number;
  signals?: string[];
  updates?: string[];
  cancelRequested?: boolean;
  /** Patch markers the run must have recorded (the versioned command sequences it pins). */
  patches?: string[];
}

export interface ReplayScenario {
  name: string;
  about: string;
  expect: ExpectedShape;
  /**
   * Runs the scenario under workflow id `id` and returns the ids of the workflows to keep (the
   * top one first, then its children). Throws unless the run took the path it is meant to.
   */
  run(rig: Rig, id: string): Promise<string[]>;
}

export function check(ok: boolean, what: string, got: unknown): void {
  if (!ok) throw new Error(`the run did not take its path: ${what} (got ${JSON.stringify(got)})`);
}

/** What in `shape` falls short of `expected` (empty: it is the run the scenario describes). */
export function shapeProblems(shape: HistoryShape, expected: ExpectedShape): string[] {
  const problems: string[] = [];
  const want = (ok: boolean, what: string, got: unknown) => void (ok || problems.push(`${what} (got ${JSON.stringify(got)})`));
  want(shape.closed === expected.closed, `closed ${expected.closed}`, shape.closed);
  want(shape.workflowType === (expected.workflowType ?? 'codingTask'), `type ${expected.workflowType ?? 'codingTask'}`, shape.workflowType);
  for (const [type, n] of Object.entries(expected.activities ?? {})) want((shape.activities[type] ?? 0) >= n, `at least ${n} ${type}`, shape.activities[type] ?? 0);
  for (const [type, n] of Object.entries(expected.localActivities ?? {})) want((shape.localActivities[type] ?? 0) >= n, `at least ${n} local ${type}`, shape.localActivities[type] ?? 0);
  if (expected.upserts !== undefined) want(shape.upserts.length === expected.upserts, `${expected.upserts} search-attribute upserts`, shape.upserts);
  if (expected.activitiesCancelled) want(shape.activitiesCancelled >= expected.activitiesCancelled, `at least ${expected.activitiesCancelled} activity cancelled`, shape.activitiesCancelled);
  if (expected.timers) {
    const matching = shape.timers.filter((s) => expected.timers!.summary.test(s)).length;
    want(matching >= expected.timers.count, `at least ${expected.timers.count} timers ${expected.timers.summary}`, shape.timers);
  }
  want(shape.children.length === (expected.children ?? 0), `${expected.children ?? 0} children`, shape.children);
  want(JSON.stringify(shape.signals) === JSON.stringify(expected.signals ?? []), `signals ${JSON.stringify(expected.signals ?? [])}`, shape.signals);
  want(JSON.stringify(shape.updates) === JSON.stringify(expected.updates ?? []), `updates ${JSON.stringify(expected.updates ?? [])}`, shape.updates);
  want(shape.cancelRequested === !!expected.cancelRequested, `cancel requested: ${!!expected.cancelRequested}`, shape.cancelRequested);
  for (const p of expected.patches ?? []) want(shape.patches.includes(p), `patch ${p} recorded`, shape.patches);
  return problems;
}
