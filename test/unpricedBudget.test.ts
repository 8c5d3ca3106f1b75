// maxCostUsd over a model nobody can price: refused at workflow start (the worker's registry
// is the price list the client cannot see), before any provider is called.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

test('a registry provider without a price and a model not in the table: a task with maxCostUsd fails at start, naming it; none is called', async () => {
  // Registered at the worker without a price (the rig's default is $1 / $2 per MTok).
  const spec = rig.provider('unpriced-model', { pricing: undefined });
  rig.model.setDefault('unpriced-model', { status: 400 });
  const handle = await rig.start(rig.task(await rig.newRepo(), [spec], { limits: { maxCostUsd: 1 } }));
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('UnpricedBudget');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(/limits\.maxCostUsd is \$1 but no price is known for unpriced-model \(model unpriced-model\)/);
  expect(rig.model.count('unpriced-model')).toBe(0);
});

test('the same provider priced by the registry runs under the budget', async () => {
  rig.model.script('priced-model', [{ content: 'no edits here', usage: { prompt_tokens: 10, completion_tokens: 10 } }]);
  const result = await rig.run(rig.task(await rig.newRepo(), [rig.provider('priced-model')], { limits: { maxCostUsd: 1, maxAttempts: 1 }, decomposition: 'never' }));
  // It ran (and failed on its unreadable answer): the budget did not refuse it.
  expect(rig.model.count('priced-model')).toBe(1);
  expect(result.status).toBe('failed');
  expect(result.attempts[0].outcome).toBe('schema_violation');
});
