// Cost routing and escalation end to end (issue 19 item 2): real dev server and worker, the real
// openai SDK over HTTP to the scripted model server, where providers of different prices are
// registered; the order of the requests the server received is the order Weaver called them in.
import { resultOf, startTaskBatch } from '../src/client';
import type { BatchResult, CodingTaskResult, Progress, ProviderSpec } from '../src/domain/schema';
import { eventsOf } from './support/calls';
import { answer, BAD, GOOD } from './support/replayShapes';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const oneTry = { maxTries: 1, initialIntervalMs: 10, maxIntervalMs: 50 };
/** USD per million tokens, in and out. */
const price = (inputPerMTok: number, outputPerMTok: number) => ({ pricing: { inputPerMTok, outputPerMTok } });

/** The models of the requests the server received, in arrival order, of these models only. */
const requestOrder = (models: string[]) => rig.model.requests.map((r) => r.model).filter((m) => models.includes(m));

async function runWithProgress(input: ReturnType<Rig['task']>): Promise<{ result: CodingTaskResult; progress: Progress }> {
  const handle = await rig.start(input);
  const result = await resultOf(handle);
  return { result, progress: await handle.query<Progress>('progress') };
}

test("mode 'cost': the cheapest provider for this prompt is called first, the next by price on its failure, the unpriced last (and said so)", async () => {
  const strong = rig.provider('cr-strong', price(5, 20));
  const free = rig.provider('cr-free', { pricing: undefined });
  const mid = rig.provider('cr-mid', price(1, 2));
  const cheap = rig.provider('cr-cheap', price(0.1, 0.2));
  rig.model.script('cr-cheap', [{ status: 500 }]);
  rig.model.script('cr-mid', [answer(GOOD)]);
  const providers: ProviderSpec[] = [strong, free, mid, cheap];
  const { result, progress } = await runWithProgress(rig.task(await rig.newRepo(), providers, { strategy: { mode: 'cost', retry: oneTry }, decomposition: 'never' }));

  expect(result.status).toBe('succeeded');
  // At the server: the cheapest first, then the next cheapest; the dearer ones were never called.
  expect(requestOrder(['cr-strong', 'cr-free', 'cr-mid', 'cr-cheap'])).toEqual(['cr-cheap', 'cr-mid']);
  const [attempt] = result.attempts;
  const routing = attempt.routing!;
  expect(routing.mode).toBe('cost');
  expect(routing.order.map((o) => o.provider)).toEqual(['cr-cheap', 'cr-mid', 'cr-strong', 'cr-free']);
  // Each estimate is this prompt's tokens at the input price plus the default 1000 output tokens at the output price.
  expect(routing.promptTokens).toBe(attempt.promptTokens);
  expect(routing.order[0].estCostUsd).toBeCloseTo((routing.promptTokens * 0.1 + 1000 * 0.2) / 1e6, 9);
  expect(routing.order[2].estCostUsd).toBeCloseTo((routing.promptTokens * 5 + 1000 * 20) / 1e6, 9);
  expect(routing.order[3].estCostUsd).toBeUndefined();
  expect(result.warnings?.join('\n')).toMatch(/no price is known for provider cr-free \(model cr-free\); it is tried after the priced providers/);
  expect(routing.tried).toEqual([
    { provider: 'cr-cheap', model: 'cr-cheap', reason: 'cheapest' },
    { provider: 'cr-mid', model: 'cr-mid', reason: expect.stringMatching(/^fallback after error server from cr-cheap: /) },
  ]);
  expect(attempt.selection).toMatchObject({ strategy: 'cost', chosen: 'cr-mid' });
  // `progress` shows the provider called last and why.
  expect(progress.route).toEqual({ attempt: 1, provider: 'cr-mid', model: 'cr-mid', reason: routing.tried[1].reason });
  const events = await eventsOf(result, rig.artifactDir);
  expect(events.map((e) => `${e.provider}:${e.strategy}:${e.errorFamily ?? e.outcome}`)).toEqual(['cr-cheap:cost:server', 'cr-mid:cost:ok']);
});

test('escalate: after 2 attempts whose answers fail the checks, the next stronger provider is called; usage by provider and model matches the server', async () => {
  const strong = rig.provider('esc-strong', price(5, 20));
  const cheap = rig.provider('esc-cheap', price(0.1, 0.2));
  rig.model.script('esc-cheap', [answer(BAD), answer(BAD)]);
  rig.model.script('esc-strong', [answer(GOOD)]);
  const input = rig.task(await rig.newRepo(), [strong, cheap], {
    strategy: { mode: 'cost', escalate: { after: 2 } },
    limits: { maxAttempts: 4 },
    decomposition: 'never',
  });
  const { result, progress } = await runWithProgress(input);

  expect(result.status).toBe('succeeded');
  expect(requestOrder(['esc-strong', 'esc-cheap'])).toEqual(['esc-cheap', 'esc-cheap', 'esc-strong']);
  expect(result.attempts.map((a) => `${a.provider}:${a.outcome}:${a.routing?.tried.map((s) => s.reason).join('|')}`)).toEqual([
    'esc-cheap:tests_failed:cheapest',
    'esc-cheap:tests_failed:cheapest',
    'esc-strong:tests_passed:escalated after 2 failed attempts',
  ]);
  expect(result.attempts[2].routing).toMatchObject({ escalation: { failedAttempts: 2, rung: 1 }, order: [{ provider: 'esc-strong' }, { provider: 'esc-cheap' }] });
  expect(progress.route).toMatchObject({ attempt: 3, provider: 'esc-strong', reason: 'escalated after 2 failed attempts' });
  process.stderr.write(`[costRouting] attempt 3 routing: ${JSON.stringify(result.attempts[2].routing)}\n[costRouting] usage.byProvider: ${JSON.stringify(result.usage.byProvider)}\n`);

  // The aggregate by provider and model, against what the server saw: every answer reports
  // 100 prompt and 100 completion tokens; the price is the registry's.
  const seen = (model: string, inP: number, outP: number, succeeded: number) => {
    const calls = rig.model.count(model);
    return { calls, tokensIn: 100 * calls, tokensOut: 100 * calls, costUsd: expect.closeTo((calls * (100 * inP + 100 * outP)) / 1e6, 9), failures: {}, succeeded, successRate: succeeded / calls };
  };
  expect(result.usage.byProvider['esc-cheap'].byModel).toEqual({ 'esc-cheap': seen('esc-cheap', 0.1, 0.2, 0) });
  expect(result.usage.byProvider['esc-strong'].byModel).toEqual({ 'esc-strong': seen('esc-strong', 5, 20, 1) });
  expect(result.usage.byProvider['esc-cheap']).toMatchObject({ calls: 2, succeeded: 0, successRate: 0 });
  expect(result.usage.byProvider['esc-strong']).toMatchObject({ calls: 1, succeeded: 1, successRate: 1 });
  // One event per request, and the totals are the sum of the parts.
  const events = await eventsOf(result, rig.artifactDir);
  expect(events.length).toBe(rig.model.count('esc-cheap') + rig.model.count('esc-strong'));
  expect(events.reduce((s, e) => s + e.costUsd, 0)).toBeCloseTo(result.usage.costUsd, 9);
});

test("escalate in mode 'sequential': the ladder is the order given, whatever the prices", async () => {
  // Given first though dearer: sequential routes by the task's order, not by price.
  const first = rig.provider('sq-first', price(5, 20));
  const second = rig.provider('sq-second', price(0.1, 0.2));
  rig.model.script('sq-first', [answer(BAD)]);
  rig.model.script('sq-second', [answer(GOOD)]);
  const result = await rig.run(rig.task(await rig.newRepo(), [first, second], { strategy: { escalate: { after: 1 } }, limits: { maxAttempts: 2 }, decomposition: 'never' }));

  expect(result.status).toBe('succeeded');
  expect(requestOrder(['sq-first', 'sq-second'])).toEqual(['sq-first', 'sq-second']);
  expect(result.attempts.map((a) => a.routing?.tried.map((t) => `${t.provider}: ${t.reason}`))).toEqual([['sq-first: first in order'], ['sq-second: escalated after 1 failed attempt']]);
  expect(result.attempts[1].selection?.strategy).toBe('sequential');
});

test('a batch aggregates its tasks by provider and model: calls, tokens, cost and success rate as the server saw them', async () => {
  const strong = rig.provider('bt-strong', price(5, 20));
  const cheap = rig.provider('bt-cheap', price(0.1, 0.2));
  // One task at a time: the first is done by the cheap provider; the second's cheap answer fails
  // the tests and its next attempt escalates.
  rig.model.script('bt-cheap', [answer(GOOD), answer(BAD)]);
  rig.model.script('bt-strong', [answer(GOOD)]);
  const task = async () => rig.task(await rig.newRepo(), [strong, cheap], { strategy: { mode: 'cost', escalate: { after: 1 } }, limits: { maxAttempts: 2 }, decomposition: 'never' });
  const handle = await startTaskBatch({ tasks: [await task(), await task()], concurrency: 1 }, { client: rig.client, taskQueue: rig.taskQueue, workflowId: `cost-batch-${Date.now()}` });
  const batch = (await handle.result()) as BatchResult;

  expect(batch.results.map((r) => `${r.status}:${r.attempts.map((a) => a.provider).join(',')}`)).toEqual(['succeeded:bt-cheap', 'succeeded:bt-cheap,bt-strong']);
  expect(rig.model.count('bt-cheap')).toBe(2);
  expect(rig.model.count('bt-strong')).toBe(1);
  const { byProvider } = batch.aggregate.usage;
  expect(byProvider['bt-cheap'].byModel).toEqual({ 'bt-cheap': { calls: 2, tokensIn: 200, tokensOut: 200, costUsd: expect.closeTo((2 * (100 * 0.1 + 100 * 0.2)) / 1e6, 9), failures: {}, succeeded: 1, successRate: 0.5 } });
  expect(byProvider['bt-strong'].byModel).toEqual({ 'bt-strong': { calls: 1, tokensIn: 100, tokensOut: 100, costUsd: expect.closeTo((100 * 5 + 100 * 20) / 1e6, 9), failures: {}, succeeded: 1, successRate: 1 } });
  expect(byProvider['bt-cheap']).toMatchObject({ calls: 2, succeeded: 1, successRate: 0.5 });
});
