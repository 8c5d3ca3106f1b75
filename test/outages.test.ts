// Rate limits, outages and slow providers, end to end: real dev server and worker, the real
// openai SDK over HTTP to the scripted model server (429 with Retry-After, 503, slow answers).
// The rig's worker scales Retry-After by 0.01; backoff intervals are scaled in each task.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { responseRecord } from '../src/activities/llm';
import type { CodingTaskResult, Progress } from '../src/domain/schema';
import { activityTimeouts, eventsOf, timerDurationsMs, timerSummaries } from './support/calls';
import { wholeFile } from './support/answers';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const usage = { prompt_tokens: 100, completion_tokens: 100 };
const answer = (delayMs = 0) => ({ content: wholeFile('src/slugify.js', GOOD, 's'), usage, delayMs });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let rig: Rig;
useRig((r) => (rig = r));

/** One event per HTTP request the server saw, none twice; returns the events. */
async function expectOneEventPerRequest(result: CodingTaskResult, models: string[]) {
  const events = await eventsOf(result, rig.artifactDir);
  expect(events).toHaveLength(models.reduce((n, m) => n + rig.model.count(m), 0));
  return events;
}

test('a short 429 storm (6 × Retry-After 1–2 s, then an answer) with default settings: succeeded, no attempt consumed', async () => {
  const retryAfterSec = [1, 2, 1, 2, 1, 2];
  rig.model.script('storm', [...retryAfterSec.map((s) => ({ status: 429, headers: { 'retry-after': String(s) } })), answer()]);
  const handle = await rig.start(rig.task(await rig.newRepo(), [rig.provider('storm')]));
  const result = await handle.result();

  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  expect(rig.model.count('storm')).toBe(7);
  const events = await expectOneEventPerRequest(result, ['storm']);
  expect(events.map((e) => e.errorFamily ?? e.outcome)).toEqual([...retryAfterSec.map(() => 'rate_limit'), 'ok']);
  expect(result.usage.byProvider.storm).toMatchObject({ calls: 7, failures: { rate_limit: 6 } });
  // Each Retry-After was waited out (× the worker's scale 0.01), never less.
  const at = rig.model.requestsFor('storm').map((r) => r.receivedAt);
  retryAfterSec.forEach((s, i) => expect(at[i + 1] - at[i]).toBeGreaterThanOrEqual(s * 1000 * 0.01));
  // Six durable timers, each labelled for the Web UI.
  const timers = await timerSummaries(handle);
  expect(timers).toHaveLength(6);
  for (const t of timers) expect(t).toMatch(/^waiting \d+ms: storm rate_limit \(Retry-After\)$/);
});

test('a provider down (503) for 20 s, scaled ×0.25, then up: waited out on durable timers shown in progress; succeeded on attempt 1', async () => {
  // Scaled as far as the dev server's timer latency (up to ~1 s per wait here) allows while
  // still needing more calls than the default maxTries (4).
  const SCALE = 0.25;
  let upAt: number | undefined;
  rig.model.setDefault('outage', (req) => {
    upAt ??= req.receivedAt + 20_000 * SCALE;
    return req.receivedAt < upAt ? { status: 503 } : answer();
  });
  const handle = await rig.start(
    // The default backoff (1 s doubling to 60 s), scaled like the outage.
    rig.task(await rig.newRepo(), [rig.provider('outage')], { strategy: { retry: { initialIntervalMs: 1000 * SCALE, maxIntervalMs: 60_000 * SCALE } } }),
  );
  // Watch `progress` while the provider is down.
  const seen: NonNullable<Progress['wait']>[] = [];
  const result = await (async () => {
    const done = handle.result();
    let finished = false;
    void done.finally(() => (finished = true));
    while (!finished) {
      const p = await handle.query<Progress>('progress').catch(() => undefined);
      if (p?.wait) seen.push(p.wait);
      await sleep(50);
    }
    return done;
  })();

  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  const reqs = rig.model.requestsFor('outage');
  expect(reqs.at(-1)!.receivedAt).toBeGreaterThanOrEqual(upAt!);
  expect(reqs.slice(0, -1).every((r) => r.status === 503)).toBe(true);
  // More calls than maxTries (the old code failed the task after 4), spread by backoff
  // (250, 500, 1000, 2000, 4000 ms), not hammered.
  expect(reqs.length).toBeGreaterThan(4);
  expect(reqs.length).toBeLessThanOrEqual(7);
  const events = await expectOneEventPerRequest(result, ['outage']);
  expect(events.slice(0, -1).every((e) => e.errorFamily === 'server' && e.costUsd === 0)).toBe(true);

  // The wait was visible in progress: who, why, until when, failing for how long.
  expect(seen.length).toBeGreaterThan(0);
  for (const w of seen) {
    expect(w).toEqual({ provider: 'outage', family: 'server', until: expect.any(String), waitedMs: expect.any(Number) });
    expect(Number.isNaN(Date.parse(w.until))).toBe(false);
  }
  expect(Math.max(...seen.map((w) => w.waitedMs))).toBeGreaterThan(1000);
  expect((await handle.query<Progress>('progress')).wait).toBeUndefined();
  // ...and in the Web UI, as labelled timers.
  const timers = await timerSummaries(handle);
  expect(timers.length).toBe(reqs.length - 1);
  for (const t of timers) expect(t).toMatch(/^waiting [\d.]+m?s: outage server \(backoff after \d+ failures?\)$/);
}, 60_000);

test('an outage longer than strategy.retry.maxWaitSec: the provider counts as failed once the next wait would pass it', async () => {
  rig.model.setDefault('down-for-good', { status: 503 });
  const handle = await rig.start(
    rig.task(await rig.newRepo(), [rig.provider('down-for-good')], { strategy: { retry: { maxTries: 2, initialIntervalMs: 200, maxIntervalMs: 800, maxWaitSec: 3 } } }),
  );
  const result = await handle.result();
  expect(result.status).toBe('failed');
  expect(result.reason).toMatch(/no provider could answer: server: .*gave up after \d+ tries over \d+s: the next one would pass strategy\.retry\.maxWaitSec \(3s\)/);
  expect(result.attempts).toHaveLength(1);
  const reqs = rig.model.requestsFor('down-for-good');
  // Past maxTries (nothing else to fall back on), until the next wait (≤ 800 ms) would pass
  // 3 s from the first failure, on the workflow's own clock: not before (it says it failed for
  // 3000 - 800 ms or more, rounded), and no wait set past it (timers fire no earlier than set,
  // so the waits it set add up to at most 3 s). Neither depends on how late a busy machine
  // fires them or answers; the span the server saw is printed, not asserted.
  expect(reqs.length).toBeGreaterThan(2);
  const span = reqs.at(-1)!.receivedAt - reqs[0].receivedAt;
  const waits = await timerDurationsMs(handle);
  process.stderr.write(`[outages] maxWaitSec 3: ${reqs.length} requests over ${span} ms, waits set ${waits.join(' + ')} ms\n`);
  expect(Number(result.reason!.match(/over (\d+)s/)![1])).toBeGreaterThanOrEqual(Math.round((3000 - 800) / 1000));
  expect(waits).toHaveLength(reqs.length - 1);
  for (const w of waits) expect(w).toBeLessThanOrEqual(800);
  expect(waits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3000);
  await expectOneEventPerRequest(result, ['down-for-good']);
});

test('fallback stays prompt: a long Retry-After moves to the next provider at once instead of waiting', async () => {
  // 120 s × 0.01 = 1.2 s, longer than this task's longest backoff (maxIntervalMs 500).
  rig.model.script('ra-long', [{ status: 429, headers: { 'retry-after': '120' } }]);
  rig.model.script('ra-next', [answer()]);
  const handle = await rig.start(
    rig.task(await rig.newRepo(), [rig.provider('ra-long'), rig.provider('ra-next')], { strategy: { retry: { initialIntervalMs: 100, maxIntervalMs: 500 } } }),
  );
  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  expect(result.attempts[0].provider).toBe('ra-next');
  expect(rig.model.count('ra-long')).toBe(1);
  const [limited] = rig.model.requestsFor('ra-long');
  const [next] = rig.model.requestsFor('ra-next');
  // At once: no timer at all between the 429 and the next provider (the gap is printed, not asserted).
  process.stderr.write(`[outages] Retry-After 1.2 s → next provider asked ${next.receivedAt - limited.receivedAt} ms later\n`);
  expect(await timerSummaries(handle)).toEqual([]);
  await expectOneEventPerRequest(result, ['ra-long', 'ra-next']);
});

test('parallel-any with every provider down for a while: the fan-out waits past maxTries instead of failing', async () => {
  let upAt: number | undefined;
  const flaky = (req: { receivedAt: number }) => {
    upAt ??= req.receivedAt + 1500;
    return req.receivedAt < upAt ? { status: 503 } : answer();
  };
  rig.model.setDefault('pa-1', flaky);
  rig.model.setDefault('pa-2', flaky);
  const result = await rig.run(
    rig.task(await rig.newRepo(), [rig.provider('pa-1'), rig.provider('pa-2')], {
      strategy: { mode: 'parallel-any', retry: { maxTries: 2, initialIntervalMs: 50, maxIntervalMs: 200 } },
    }),
  );
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  // Both were called more than maxTries times: neither gave up while the other had no answer.
  expect(rig.model.count('pa-1')).toBeGreaterThan(2);
  expect(rig.model.count('pa-2')).toBeGreaterThan(2);
  await expectOneEventPerRequest(result, ['pa-1', 'pa-2']);
});

test("a call past the provider's timeoutSec is booked as estimated spend, not $0; the activity's timeouts fit the provider", async () => {
  rig.model.script('slow', [answer(4000), answer()]);
  const handle = await rig.start(rig.task(await rig.newRepo(), [rig.provider('slow', { timeoutSec: 1 })], { strategy: { retry: { initialIntervalMs: 50 } } }));
  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  const events = await expectOneEventPerRequest(result, ['slow']);
  expect(events.map((e) => `${e.outcome}:${e.errorFamily ?? ''}`)).toEqual(['lost:timeout', 'ok:']);
  expect(events[0]).toMatchObject({ tokensIn: 0, tokensOut: 0, costUsd: 0 });
  expect(events[0].estimatedCostUsd).toBeGreaterThan(0);
  expect(result.usage.estimatedCostUsd).toBeCloseTo(events[0].estimatedCostUsd!, 9);
  // The openai SDK gave up after 1 s and closed the request.
  await rig.model.waitFor((m) => m.requestsFor('slow')[0].aborted, 5000);
  // Start-to-close = the provider's 1 s + 60 s to store the answer; heartbeats say the worker lives.
  expect(await activityTimeouts(handle, 'generateChange')).toEqual([
    { startToCloseSec: 61, heartbeatSec: 10 },
    { startToCloseSec: 61, heartbeatSec: 10 },
  ]);
});

test('an answer the artifact store cannot keep is booked at its real tokens (not $0), asked again, and the task succeeds', async () => {
  const first = wholeFile('src/slugify.js', GOOD, 'first');
  // Where the store will put the first answer's response record (content-addressed): a directory
  // there makes every write of it fail, as a full or broken disk would.
  const record = JSON.stringify(responseRecord({ id: 'store-block', model: 'store-block' }, 'editblock', 'stop', first), null, 2);
  const hex = createHash('sha256').update(record).digest('hex');
  const blocked = path.join(rig.artifactDir, 'sha256', hex.slice(0, 2), hex);
  await mkdir(blocked, { recursive: true });
  await writeFile(path.join(blocked, 'in-the-way'), '');
  rig.model.script('store-block', [{ content: first, usage }, { content: wholeFile('src/slugify.js', GOOD, 'second'), usage }]);

  const result = await rig.run(rig.task(await rig.newRepo(), [rig.provider('store-block')], { strategy: { retry: { initialIntervalMs: 50 } } }));
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(1);
  const events = await expectOneEventPerRequest(result, ['store-block']);
  expect(events.map((e) => `${e.outcome}:${e.errorFamily ?? ''}`)).toEqual(['error:artifact_store', 'ok:']);
  // 100 + 100 tokens at the rig's $1 / $2 per MTok: $0.0003 for each answer, the unstored one included.
  expect(events[0]).toMatchObject({ tokensIn: 100, tokensOut: 100, costUsd: 0.0003 });
  expect(result.usage).toMatchObject({ tokensIn: 200, tokensOut: 200, calls: 2 });
  expect(result.usage.costUsd).toBeCloseTo(0.0006, 9);
  expect(result.usage.byProvider['store-block'].failures).toEqual({ artifact_store: 1 });
});
