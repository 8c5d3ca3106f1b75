// Prompt budgets (issue 19, item 1), end to end: a real worker on the test dev server, a real
// git repository of 560+ files, the real openai SDK over HTTP to the scripted model server. The
// budget is asserted on what the server received; cached prompt tokens on what the run booked.
import path from 'node:path';
import { countTokens } from '../src/activities/tokens';
import { DEFAULT_PROMPT_BUDGET } from '../src/domain/models';
import { messageText, type RecordedRequest } from '../scripts/demo/scriptedModelServer';
import { searchReplace } from './support/answers';
import { eventsOf } from './support/calls';
import { largeCodebase, NEEDLE } from './support/codebase';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

let repo: string;
beforeAll(async () => {
  const files = largeCodebase();
  expect(Object.keys(files).length).toBeGreaterThanOrEqual(200);
  repo = await makeRepo(path.join(rig.tmp, 'shop'), files);
});

/** Every message the server received, counted with Weaver's tokenizer. */
const sentTokens = (req: RecordedRequest) => req.messages.reduce((n, m) => n + countTokens(messageText(m)), 0);
const fix = () => ({ content: searchReplace(NEEDLE.path, NEEDLE.stubBody, NEEDLE.fixedBody, 'implement it') });
/** The one-function task: implement the stub, checked by running it. */
const oneFunction = (model: string, settings: Parameters<Rig['provider']>[1], extra: Parameters<Rig['task']>[2] = {}) =>
  rig.run({
    ...rig.task(repo, [rig.provider(model, settings)], extra),
    task: { title: `Implement ${NEEDLE.name}`, description: NEEDLE.description },
    testCommand: NEEDLE.check,
  });

test('a one-function task on a 560-file repository with a 1M-token window: the request stays within the task\'s promptBudgetTokens (3000), and within the 16k default without one', async () => {
  // A gpt-4.1-sized window: before budgets the prompt grew with it.
  const window = { contextWindow: 1_000_000, maxTokens: 4096 };
  rig.model.script('pb-task', [fix()]);
  const capped = await oneFunction('pb-task', window, { promptBudgetTokens: 3000 });
  expect(capped.status).toBe('succeeded');
  const [small] = rig.model.requestsFor('pb-task');
  expect(messageText(small.messages[1])).toContain(`def ${NEEDLE.name}(`);
  expect(sentTokens(small)).toBeLessThanOrEqual(3000);

  rig.model.script('pb-default', [fix()]);
  const plain = await oneFunction('pb-default', window);
  expect(plain.status).toBe('succeeded');
  const [big] = rig.model.requestsFor('pb-default');
  expect(sentTokens(big)).toBeLessThanOrEqual(DEFAULT_PROMPT_BUDGET);
  // The budget is what bounds it: without one the same task sends more than 3000 tokens.
  expect(sentTokens(big)).toBeGreaterThan(3000);
});

test("a registry entry's promptBudgetTokens caps the prompt; cached prompt tokens reported by the provider are booked at the cached-input price", async () => {
  const pricing = { inputPerMTok: 2, outputPerMTok: 8, cachedInputPerMTok: 0.5 };
  const usage = { prompt_tokens: 3000, completion_tokens: 100, prompt_tokens_details: { cached_tokens: 2048 } };
  rig.model.script('pb-entry', [{ ...fix(), usage }]);
  const result = await oneFunction('pb-entry', { contextWindow: 128_000, maxTokens: 2048, promptBudgetTokens: 2500, pricing });
  expect(result.status).toBe('succeeded');
  const [req] = rig.model.requestsFor('pb-entry');
  expect(sentTokens(req)).toBeLessThanOrEqual(2500);
  // 952 uncached at $2, 2048 cached at $0.5, 100 out at $8 (per million): $0.003736, not $0.0068.
  const expected = (952 * 2 + 2048 * 0.5 + 100 * 8) / 1e6;
  expect(result.usage.costUsd).toBeCloseTo(expected, 9);
  expect(result.usage.byProvider['pb-entry']).toMatchObject({ tokensIn: 3000, tokensCached: 2048 });
  expect(result.usage.byProvider['pb-entry'].costUsd).toBeCloseTo(expected, 9);
  expect(result.usage.tokensCached).toBe(2048);
  const [event] = (await eventsOf(result, rig.artifactDir)).filter((e) => e.provider === 'pb-entry');
  expect(event).toMatchObject({ tokensIn: 3000, tokensCached: 2048, tokensOut: 100 });
});
