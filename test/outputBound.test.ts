// Bounded output, streamed (issue 15, item 2), through a real task: a test command printing
// 1 GiB ends with a log of at most sandbox.limits.maxOutputMb (its head and its tail kept, a
// marker between), a small history, and the next prompt's feedback built from the kept log by
// streaming; meanwhile another task's LLM call on the same worker, held open by the scripted
// server for all of it, keeps heartbeating and is answered once, never asked again. Real worker,
// real dev server, real sandbox (bubblewrap where the machine has it), the scripted model over
// HTTP. Nothing here measures the clock.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resultOf } from '../src/client';
import { wholeFile } from './support/answers';
import { activitiesOf } from './support/processes';
import { historySizeBytes } from './support/temporal';
import { startRig, type Rig } from './support/weaver';

const MIB = 1024 * 1024;
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
// The first answer is right but marked: the test command floods while the mark is there.
const FLOODING = `${GOOD}// FLOOD\n`;
const FLOOD_COMMAND = [
  'if grep -q FLOOD src/slugify.js; then',
  '  echo "FIRST: the flood begins";',
  `  yes "noise line" | head -c ${1024 * MIB};`,
  '  echo; echo "AssertionError: the flood ended here"; exit 1;',
  'fi; node --test test/',
].join(' ');

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
});
afterAll(async () => {
  await rig?.close();
  const { closeTestConnections } = await import('./support/weaver');
  await closeTestConnections();
});

async function artifact(ref: string): Promise<Buffer> {
  const hex = ref.slice('sha256:'.length);
  return readFile(path.join(rig.artifactDir, 'sha256', hex.slice(0, 2), hex));
}

test('a test printing 1 GiB: head, tail and marker kept within the bound, history small, feedback built; a concurrent LLM call is answered once', async () => {
  const flooder = 'm-flood';
  const waiter = 'm-waiting';
  rig.model.script(flooder, [{ content: wholeFile('src/slugify.js', FLOODING, 'slugify, marked') }, { content: wholeFile('src/slugify.js', GOOD, 'slugify') }]);
  // The other task's call is held open until the flooding task asks again: through its whole
  // 1 GiB test and the extraction of its feedback. A worker whose event loop stalled past the
  // 10 s heartbeat timeout would have this call booked as lost and asked again.
  let floodDone = false;
  let heldThrough = false;
  rig.model.setDefault(waiter, async () => {
    for (let i = 0; i < 2400 && rig.model.count(flooder) < 2 && !floodDone; i++) await new Promise((r) => setTimeout(r, 100));
    heldThrough = rig.model.count(flooder) >= 2;
    return { content: wholeFile('src/slugify.js', GOOD, 'slugify') };
  });

  const other = await rig.start(rig.task(await rig.newRepo(), [rig.provider(waiter)], { limits: { maxAttempts: 2, testTimeoutSec: 120 } }));
  await rig.model.waitFor((s) => s.count(waiter) >= 1, 120_000);
  const flood = await rig.start(
    rig.task(await rig.newRepo(), [rig.provider(flooder)], { testCommand: ['sh', '-c', FLOOD_COMMAND], limits: { maxAttempts: 2, testTimeoutSec: 600 } }),
  );
  const r = await resultOf(flood).finally(() => (floodDone = true));
  const o = await resultOf(other);

  // The flooding task: its first test failed with the log cut in the middle, its second passed.
  expect(r.status).toBe('succeeded');
  const tests = r.attempts[0].tests!;
  expect(tests.passed).toBe(false);
  expect(tests.log!.bytes).toBeLessThanOrEqual(16 * MIB + 1024);
  const log = (await artifact(tests.log!.ref)).toString('utf8');
  expect(log.startsWith('FIRST: the flood begins\nnoise line\n')).toBe(true);
  expect(log).toMatch(/\n… 10\d\d MiB of output dropped \(output limit: the first and the last 8 MiB are kept\) …\n/);
  expect(log.endsWith('\nAssertionError: the flood ended here\n')).toBe(true);
  // Said in the tail (history, the decision's feedback) as well as in the log.
  expect(tests.tail).toMatch(/^weaver: the output passed sandbox\.limits\.maxOutputMb \(16 MiB\): 10\d\d MiB dropped from the middle of the log/);
  expect(tests.tail.length).toBeLessThan(6000);

  // The next prompt got its feedback from the kept log, and stayed prompt-sized.
  const asked = rig.model.requestsFor(flooder);
  expect(asked).toHaveLength(2);
  const retry = JSON.stringify(asked[1].messages);
  expect(retry).toContain('AssertionError: the flood ended here');
  expect(retry.length).toBeLessThan(200_000);

  // History carries references and tails, not the output.
  // About 60 KB as measured; the log alone would have been 1 GiB.
  expect(await historySizeBytes(rig.client, flood.workflowId)).toBeLessThan(256 * 1024);
  // No activity of the flooding task had to be tried twice either.
  for (const a of await activitiesOf(rig.client, flood.workflowId)) expect({ type: a.type, attempt: a.attempt }).toEqual({ type: a.type, attempt: 1 });

  // The other task's call spanned all of it and was answered once: not retried, not asked again.
  expect(heldThrough).toBe(true);
  expect(o.status).toBe('succeeded');
  expect(rig.model.count(waiter)).toBe(1);
  expect(rig.model.abortedCount(waiter)).toBe(0);
  const calls = (await activitiesOf(rig.client, other.workflowId)).filter((a) => a.type === 'generateChange');
  expect(calls).toEqual([expect.objectContaining({ attempt: 1 })]);
}, 900_000);
