// Spend with no holes (issue 15 item 4), through real tasks: real dev server and worker, the real
// openai SDK over HTTP to the scripted model server (a connection dropped after the request, a
// stream cut mid-answer), real git and tests. Every paid or possibly paid call is in the ledger.
import net from 'node:net';
import { countTokens } from '../src/activities/tokens';
import { roundUsd } from '../src/domain/pricing';
import type { AnswerStep } from '../scripts/demo/scriptedModelServer';
import type { CodingTaskInput } from '../src/domain/schema';
import { wholeFile } from './support/answers';
import { multiRepo, parentTask, sub, byTitle, fix } from './support/modules';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const BAD = `function slugify(t) {\n  return String(t).toLowerCase();\n}\nmodule.exports = { slugify };\n`;
const answer = (content: string, usage = { prompt_tokens: 100, completion_tokens: 100 }): AnswerStep => ({ content: wholeFile('src/slugify.js', content, 's'), usage });
const fastRetry = { initialIntervalMs: 10, maxIntervalMs: 20 };
/** The worker's default bound for this file's tasks that may decompose and set no maxCostUsd. */
const TREE_USD = 0.03;

let rig: Rig;
useRig((r) => (rig = r), { deps: { defaultTreeCostUsd: TREE_USD } });

/** A loopback port nothing listens on: a connection there is refused before any request is sent. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The text pieces a scripted stream sends (the server's split: `count` near-equal pieces). */
function pieces(content: string, count: number): string[] {
  const chars = Array.from(content);
  return Array.from({ length: count }, (_, i) => chars.slice(Math.floor((i * chars.length) / count), Math.floor(((i + 1) * chars.length) / count)).join(''));
}

test('a connection dropped after the request was sent is booked as estimated spend; one refused before sending costs nothing', async () => {
  const port = await closedPort();
  // Registered like any provider, but its endpoint refuses connections.
  rig.providers.providers['sh-refused'] = { baseURL: `http://127.0.0.1:${port}/v1`, apiKeyEnv: 'TEST_API_KEY', pricing: { inputPerMTok: 1, outputPerMTok: 2 }, models: ['sh-refused'] };
  rig.model.script('sh-drop', [{ drop: true }, answer(GOOD)]);
  const task = rig.task(await rig.newRepo(), [{ id: 'sh-refused', model: 'sh-refused', maxTokens: 1000 }, rig.provider('sh-drop', { maxTokens: 1000 })], {
    strategy: { retry: { maxTries: 1, ...fastRetry } },
    decomposition: 'never',
  });
  const result = await rig.run(task);

  expect(result.status).toBe('succeeded');
  // The request reached the server, which read it and closed the connection unanswered.
  expect(rig.model.requestsFor('sh-drop').map((r) => [r.kind, r.aborted])).toEqual([
    ['drop', true],
    ['answer', false],
  ]);
  const calls = result.attempts[0].calls;
  const dropped = calls.filter((c) => c.provider === 'sh-drop');
  expect(dropped.map((c) => [c.outcome, c.errorFamily])).toEqual([
    ['lost', 'network'],
    ['ok', undefined],
  ]);
  // Booked like a timed-out call: its reservation (prompt + maxTokens), estimated, never as known cost.
  const expected = roundUsd((result.attempts[0].promptTokens! * 1 + 1000 * 2) / 1e6);
  expect(dropped[0]).toMatchObject({ costUsd: 0, estimatedCostUsd: expected });
  expect(expected).toBeGreaterThan(0.002);
  // Refused connections never sent anything: errors at $0, nothing estimated.
  const refused = calls.filter((c) => c.provider === 'sh-refused');
  expect(refused.length).toBeGreaterThanOrEqual(1);
  for (const c of refused) expect(c).toMatchObject({ outcome: 'error', errorFamily: 'network', costUsd: 0 });
  expect(refused.every((c) => c.estimatedCostUsd === undefined)).toBe(true);
  expect(result.usage.estimatedCostUsd).toBe(expected);
  expect(result.usage.byProvider['sh-drop'].estimatedCostUsd).toBe(expected);
  expect(result.usage.byProvider['sh-refused'].estimatedCostUsd).toBeUndefined();
});

test('a cut stream is booked at the tokens it received (estimated) and is called at most retry.maxTries times, not waited out', async () => {
  const content = wholeFile('src/slugify.js', GOOD, 's');
  const cut = (extra: Partial<AnswerStep>): AnswerStep => ({ content, chunks: 8, ...extra });
  // A quiet end after 3 pieces, a reset after 4, a quiet end after 1 — and an answer that must never be asked for.
  rig.model.script('sh-cut', [cut({ endStreamAfter: 4 }), cut({ dropStreamAfter: 5 }), cut({ endStreamAfter: 2 }), answer(GOOD)]);
  const result = await rig.run(
    rig.task(await rig.newRepo(), [rig.provider('sh-cut', { stream: true })], {
      // maxWaitSec stays at its default (an hour): the bound must come from maxTries.
      strategy: { retry: { maxTries: 3, ...fastRetry } },
      limits: { maxAttempts: 1, testTimeoutSec: 60 },
      decomposition: 'never',
    }),
  );

  expect(rig.model.count('sh-cut')).toBe(3);
  expect(rig.model.remaining('sh-cut')).toBe(1);
  expect(rig.model.requestsFor('sh-cut').every((r) => r.body.stream === true)).toBe(true);
  expect(result.status).toBe('failed');
  const calls = result.attempts[0].calls;
  expect(calls.map((c) => [c.outcome, c.errorFamily])).toEqual([
    ['cut', 'network'],
    ['cut', 'network'],
    ['cut', 'network'],
  ]);
  // The text that arrived before each cut, counted by the same tokenizer the worker uses.
  const p = pieces(content, 8);
  const received = [p.slice(0, 3), p.slice(0, 4), p.slice(0, 1)].map((x) => countTokens(x.join('')));
  expect(calls.map((c) => c.tokensOut)).toEqual(received);
  for (const c of calls) {
    expect(c.tokensIn).toBeGreaterThan(0);
    // Estimated: the tokens received, priced ($1 / $2 per MTok), never claimed as known cost.
    expect(c).toMatchObject({ costUsd: 0, estimatedCostUsd: roundUsd((c.tokensIn * 1 + c.tokensOut * 2) / 1e6) });
  }
  const estimated = roundUsd(calls.reduce((s, c) => s + c.estimatedCostUsd!, 0));
  expect(result.usage).toMatchObject({ costUsd: 0, estimatedCostUsd: estimated, tokensOut: received.reduce((a, b) => a + b, 0), calls: 3 });
  expect(result.usage.byProvider['sh-cut'].failures).toEqual({ network: 3 });
});

test("a shadow provider's spend is counted against the budget: a budget only the shadow's spend passes stops the task before its next call", async () => {
  // The shadow over-bills (50,000 output tokens: $0.1001); the primary's answer fails the tests.
  rig.model.script('sh-primary', [answer(BAD), answer(GOOD)]);
  rig.model.script('sh-shadow', [answer(GOOD, { prompt_tokens: 100, completion_tokens: 50_000 }), answer(GOOD)]);
  const result = await rig.run(
    rig.task(await rig.newRepo(), [rig.provider('sh-primary', { maxTokens: 1000 }), rig.provider('sh-shadow', { maxTokens: 1000 })], {
      strategy: { mode: 'sequential', shadow: ['sh-shadow'], retry: { maxTries: 2, ...fastRetry } },
      limits: { maxAttempts: 2, testTimeoutSec: 60, maxCostUsd: 0.05 },
      decomposition: 'never',
    }),
  );

  expect(result.status).toBe('budget_exceeded');
  // The primary's own spend is far below the budget; the shadow's is what passed it.
  expect(result.usage.costUsd).toBe(0.0003);
  expect(result.usage.shadow).toMatchObject({ calls: 1, costUsd: 0.1001 });
  expect(result.reason).toMatch(/maxCostUsd \$0\.05 would be exceeded: spent \$0\.100400/);
  // Refused before the second attempt's calls: each provider was called once.
  expect(rig.model.count('sh-primary')).toBe(1);
  expect(rig.model.count('sh-shadow')).toBe(1);
});

test('a shadow call is reserved before anything is called: a budget for the primary call alone refuses the attempt', async () => {
  // No input price: each call reserves exactly its maxTokens (1000 × $2 per MTok = $0.002).
  const priced = { pricing: { inputPerMTok: 0, outputPerMTok: 2 }, maxTokens: 1000 };
  rig.model.setDefault('sh-r-primary', answer(GOOD));
  rig.model.setDefault('sh-r-shadow', answer(GOOD));
  const task = async (shadow: boolean) =>
    rig.task(await rig.newRepo(), [rig.provider('sh-r-primary', priced), ...(shadow ? [rig.provider('sh-r-shadow', priced)] : [])], {
      strategy: { mode: 'sequential', ...(shadow ? { shadow: ['sh-r-shadow'] } : {}) },
      limits: { maxAttempts: 1, testTimeoutSec: 60, maxCostUsd: 0.003 },
      decomposition: 'never',
    });

  const refused = await rig.run(await task(true));
  expect(refused.status).toBe('budget_exceeded');
  // The shadow's $0.002 is held in flight when the primary asks for its own $0.002.
  expect(refused.reason).toMatch(/maxCostUsd \$0\.003 would be exceeded: spent \$0\.000000, in flight \$0\.002000, a call to sh-r-primary reserves \$0\.002000/);
  expect(rig.model.count('sh-r-primary')).toBe(0);
  expect(rig.model.count('sh-r-shadow')).toBe(0);

  // Without the shadow the same budget holds the call: it is the shadow's reservation that refused it.
  const alone = await rig.run(await task(false));
  expect(alone.status).toBe('succeeded');
  expect(rig.model.count('sh-r-primary')).toBe(1);
});

test("a task without maxCostUsd gets the worker's default bound for its tree (in result.settings); a decomposition that would pass it is refused with the figure", async () => {
  const repo = await multiRepo(rig, ['a', 'b', 'c', 'd']);
  rig.model.setDefault('sh-tree', byTitle({ 'fix a': fix('a'), 'fix b': fix('b'), 'fix c': fix('c'), 'fix d': fix('d') }));
  const limits = { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 2 };
  const id = `sh-tree-${Date.now()}`;
  const result = await rig.run(parentTask(rig, repo, 'sh-tree', { subtasks: ['a', 'b', 'c', 'd'].map((n) => sub(`fix ${n}`, n)), limits }), id);

  expect(result.settings?.treeCostUsd).toBe(TREE_USD);
  expect(result.settings?.limits.maxCostUsd).toBeUndefined();
  expect(result.status).toBe('budget_exceeded');
  // Each child needs one call's reservation: 4096 output tokens (the default maxTokens) × $2 per MTok.
  expect(result.reason).toMatch(
    /^decomposition into 4 subtask\(s\) refused: they need at least \$0\.032768 \(4 × \$0\.008192, one call each\), but \$0\.030000 is left of the tree's cost bound \$0\.03 from WEAVER_DEFAULT_TREE_COST_USD/,
  );
  expect(result.children ?? []).toEqual([]);
  expect(rig.model.count('sh-tree')).toBe(0);
});

test('under the default bound a decomposition that fits runs, each child with its share of the bound as its maxCostUsd', async () => {
  const repo = await multiRepo(rig, ['a', 'b']);
  rig.model.setDefault('sh-tree-ok', byTitle({ 'fix a': fix('a'), 'fix b': fix('b') }));
  const id = `sh-tree-ok-${Date.now()}`;
  const result = await rig.run(
    parentTask(rig, repo, 'sh-tree-ok', { subtasks: [sub('fix a', 'a'), sub('fix b', 'b')], limits: { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 2 } }),
    id,
  );

  expect(result.status).toBe('succeeded');
  expect(result.settings?.treeCostUsd).toBe(TREE_USD);
  // Two lanes share the $0.03: each child started with $0.015 as its own budget.
  for (const c of result.children!) {
    const history = await rig.client.workflow.getHandle(c.workflowId).fetchHistory();
    const payload = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
    const input = JSON.parse(Buffer.from(payload.data!).toString('utf8')) as CodingTaskInput;
    expect(input.limits?.maxCostUsd).toBe(0.015);
  }
  expect(result.usage.calls).toBe(2);
});
