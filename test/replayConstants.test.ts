/**
 * Determinism across deploys, for constants: a deploy that changes the price table or a default
 * (limits, retry, cooldown, model profiles, sandbox) while runs are in flight must not change
 * what those runs decide on replay. Since `settings-from-history` the worker resolves every
 * default once, at start, in the `resolveProviders` activity: the values are in the history.
 *
 * Three runs whose decisions hang on such constants are recorded live, twice: by the current
 * code, and by the same code with `patched('settings-from-history')` forced false (a run started
 * before the patch: it reads the constants from the workflow code):
 *   - price: a model priced by the table only; `maxCostUsd` leaves room for a second attempt at
 *     today's prices, not at ×100;
 *   - attempts: every answer fails, no `limits` given: `maxAttempts` is the default (3);
 *   - retry: two 429s, then an answer, `strategy.retry` left to its defaults (4 tries before
 *     moving on to the next provider).
 * Then, under a "later deploy" bundle with every price ×100 and those defaults changed:
 *   (a) the current runs — and every committed fixture in test/fixtures/replay — replay cleanly;
 *   (b) the pre-patch runs diverge (DeterminismViolationError), while they replay cleanly on the
 *       code they ran on: the guard is not vacuous, and the changed constants are really in effect.
 */
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { DEFAULT_PRICES } from '../src/domain/pricing';
import type { CodingTaskResult } from '../src/domain/schema';
import { historyShape, loadReplayFixture, readReplayManifest } from './support/histories';
import { answer, BAD, GOOD } from './support/replayScenarios';
import { workflowBundle } from './support/temporal';
import { replaceExactly, variantWorkflowBundle, type ModuleEdit } from './support/variantBundle';
import { closeTestConnections, startRig, type Rig } from './support/weaver';

/** Every price of the table ×100. */
function pricesTimes100(source: string): string {
  const start = source.indexOf('export const DEFAULT_PRICES');
  const end = source.indexOf('};', start);
  const table = source.slice(start, end);
  const scaled = table.replace(/(PerMTok: )([\d.]+)/g, (_m, key: string, n: string) => `${key}${Number(n) * 100}`);
  if (start < 0 || (table.match(/PerMTok: /g)?.length ?? 0) < 10) throw new Error('DEFAULT_PRICES not found in pricing.ts');
  return source.slice(0, start) + scaled + source.slice(end);
}

/** A later deploy: other prices, other defaults. */
const LATER_DEPLOY: ModuleEdit[] = [
  { module: 'src/domain/pricing.ts', edit: pricesTimes100 },
  {
    module: 'src/domain/retry.ts',
    edit: (s) => replaceExactly(s, 'maxTries: 4, initialIntervalMs: 1000, maxIntervalMs: 60_000, maxWaitSec: DEFAULT_MAX_WAIT_SEC', 'maxTries: 2, initialIntervalMs: 250, maxIntervalMs: 5_000, maxWaitSec: 60'),
  },
  { module: 'src/domain/cooldown.ts', edit: (s) => replaceExactly(s, '{ failures: 3, seconds: 300 }', '{ failures: 2, seconds: 30 }') },
  {
    module: 'src/domain/schema.ts',
    edit: (s) =>
      [
        ['maxAttempts: z.number().int().positive().max(50).default(3)', 'maxAttempts: z.number().int().positive().max(50).default(2)'],
        ['testTimeoutSec: z.number().positive().default(600)', 'testTimeoutSec: z.number().positive().default(300)'],
        ['maxDepth: z.number().int().nonnegative().default(2)', 'maxDepth: z.number().int().nonnegative().default(1)'],
        ['childConcurrency: z.number().int().positive().default(2)', 'childConcurrency: z.number().int().positive().default(1)'],
        ['maxTries: z.number().int().positive().max(20).default(4)', 'maxTries: z.number().int().positive().max(20).default(2)'],
        ['memoryMb: z.number().int().min(64).default(2048)', 'memoryMb: z.number().int().min(64).default(1024)'],
      ].reduce((src, [from, to]) => replaceExactly(src, from, to), s),
  },
  { module: 'src/domain/models.ts', edit: (s) => replaceExactly(s, 'DEFAULT_OUTPUT_TOKENS = 4_096', 'DEFAULT_OUTPUT_TOKENS = 1_024') },
];

/** The current code as it was before `settings-from-history`: constants read from the workflow code. */
const BEFORE_THE_PATCH: ModuleEdit[] = [
  { module: 'src/workflows/task.ts', edit: (s) => replaceExactly(s, "patched('settings-from-history')", 'false') },
  // Code that old had no patch epoch either: every other change recorded on its own.
  { module: 'src/workflows/patches.ts', edit: (s) => replaceExactly(s, 'epoch.covers.has(id) && sdkPatched(epoch.marker)', 'false') },
];

const big = { prompt_tokens: 1000, completion_tokens: 100_000 };

interface Case {
  name: string;
  run(rig: Rig, id: string): Promise<CodingTaskResult>;
  /** The run took the path whose decisions hang on the constants. */
  check(r: CodingTaskResult, rig: Rig): void;
}

const CASES: Case[] = [
  {
    name: 'price',
    // Each call reserves and spends ≈ 100k output tokens: $0.06 at the table's gpt-4o-mini price,
    // $6 at ×100 — where a $8 budget has no room for a second call.
    run: async (rig, id) => {
      rig.model.script('gpt-4o-mini-replay', [{ ...answer(BAD), usage: big }, { ...answer(GOOD), usage: big }]);
      const provider = rig.provider('gpt-4o-mini-replay', { id: 'table-priced', pricing: undefined, maxTokens: 100_000 });
      return rig.run(rig.task(await rig.newRepo(), [provider], { limits: { maxCostUsd: 8, maxAttempts: 3, testTimeoutSec: 60 } }), id);
    },
    check: (r, rig) => {
      expect(r.status).toBe('succeeded');
      expect(r.attempts.map((a) => a.decision.action)).toEqual(['retry', 'commit']);
      expect(rig.model.count('gpt-4o-mini-replay')).toBe(2);
      const price = DEFAULT_PRICES['gpt-4o-mini'];
      expect(r.usage.costUsd).toBeCloseTo((2 * (1000 * price.inputPerMTok + 100_000 * price.outputPerMTok)) / 1e6, 9);
    },
  },
  {
    name: 'attempts',
    run: async (rig, id) => {
      rig.model.setDefault('attempts-default', answer(BAD));
      // No `limits` at all: given any, the client's schema fills in every default (zod 4 applies
      // defaults inside .partial()), and the input carries maxAttempts itself.
      const { limits: _none, ...input } = rig.task(await rig.newRepo(), [rig.provider('attempts-default')], { decomposition: 'never' });
      return rig.run(input, id);
    },
    check: (r) => {
      expect(r.status).toBe('failed');
      expect(r.attempts.map((a) => a.outcome)).toEqual(['tests_failed', 'tests_failed', 'tests_failed']);
    },
  },
  {
    name: 'retry',
    run: async (rig, id) => {
      const limited = { status: 429, headers: { 'retry-after': '1' } };
      rig.model.script('retry-first', [limited, limited, answer(GOOD)]);
      rig.model.script('retry-second', [answer(GOOD)]);
      return rig.run(rig.task(await rig.newRepo(), [rig.provider('retry-first'), rig.provider('retry-second')], { strategy: { mode: 'sequential' } }), id);
    },
    check: (r, rig) => {
      expect(r.status).toBe('succeeded');
      expect(r.attempts[0].provider).toBe('retry-first');
      expect([rig.model.count('retry-first'), rig.model.count('retry-second')]).toEqual([3, 0]);
    },
  },
];

let laterDeploy: { code: string };
let beforeThePatch: { code: string };
let current: Rig;
let old: Rig;
const recorded: { current: HistoryAndWorkflowId[]; old: HistoryAndWorkflowId[] } = { current: [], old: [] };

beforeAll(async () => {
  const started = Date.now();
  laterDeploy = await variantWorkflowBundle(LATER_DEPLOY);
  beforeThePatch = await variantWorkflowBundle(BEFORE_THE_PATCH);
  process.stderr.write(`[replayConstants] two variant bundles in ${Date.now() - started} ms\n`);
  current = await startRig();
  old = await startRig({ workflowBundle: beforeThePatch });
}, 180_000);

afterAll(async () => {
  await current?.close();
  await old?.close();
  await closeTestConnections();
});

async function replay(bundle: { code: string }, histories: HistoryAndWorkflowId[]): Promise<{ workflowId: string; error?: unknown }[]> {
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) results.push(r);
  return results.map((r) => ({ workflowId: r.workflowId, error: r.error }));
}

const describeErrors = (rs: { workflowId: string; error?: unknown }[]) =>
  rs.map((r) => ({ workflowId: r.workflowId, error: r.error ? `${(r.error as Error).name}: ${(r.error as Error).message}` : undefined }));

test('runs whose decisions hang on the prices and defaults, recorded by the current code and by the code before the patch', async () => {
  const stamp = Date.now().toString(36);
  const runs = await Promise.all(
    CASES.flatMap((c) =>
      (['current', 'old'] as const).map(async (kind) => {
        const rig = kind === 'current' ? current : old;
        const id = `replay-constants-${c.name}-${kind}-${stamp}`;
        const result = await c.run(rig, id);
        return { c, kind, rig, id, result };
      }),
    ),
  );
  for (const { c, kind, rig, id, result } of runs) {
    c.check(result, rig);
    const history = await rig.client.workflow.getHandle(id).fetchHistory();
    const patches = historyShape(history).patches;
    if (kind === 'current') {
      // The values decided by are the worker's, in the result and in the history.
      expect(patches).toContain('settings-from-history');
      expect(result.settings).toBeDefined();
    } else {
      expect(patches).not.toContain('settings-from-history');
      expect(result.settings).toBeUndefined();
    }
    recorded[kind].push({ workflowId: id, history });
  }
  const settings = Object.fromEntries(runs.filter((r) => r.kind === 'current').map((r) => [r.c.name, r.result.settings!]));
  expect(settings.price.providers[0].pricing).toEqual(DEFAULT_PRICES['gpt-4o-mini']);
  expect(settings.attempts.limits.maxAttempts).toBe(3);
  expect(settings.retry.retry.maxTries).toBe(4);
  expect(settings.retry.cooldown.failures).toBe(3);
});

test('(a) under a later deploy with every price ×100 and other defaults, runs that kept their settings replay as they ran — and so does every committed fixture', async () => {
  expect(recorded.current).toHaveLength(CASES.length);
  const manifest = await readReplayManifest();
  const fixtures = await Promise.all(manifest.scenarios.flatMap((s) => s.histories.map((f) => loadReplayFixture(f))));
  const all = [...recorded.current, ...fixtures];
  expect(describeErrors(await replay(laterDeploy, all))).toEqual(all.map((h) => ({ workflowId: h.workflowId, error: undefined })));
});

test('(b) the same runs recorded before the patch replay on the code they ran on, and diverge under the later deploy', async () => {
  expect(recorded.old).toHaveLength(CASES.length);
  // Today's code replays them as they ran: the patch keeps old runs on the constants in code.
  expect(describeErrors(await replay(workflowBundle(), recorded.old))).toEqual(recorded.old.map((h) => ({ workflowId: h.workflowId, error: undefined })));
  // A deploy that changes those constants would change their decisions: non-determinism.
  const later = await replay(laterDeploy, recorded.old);
  expect(later.map((r) => ({ workflowId: r.workflowId, violation: r.error instanceof DeterminismViolationError }))).toEqual(
    recorded.old.map((h) => ({ workflowId: h.workflowId, violation: true })),
  );
});
