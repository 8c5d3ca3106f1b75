// The provider-call activity on its own (Temporal's activity context, no workflow): the real
// openai SDK over HTTP to the scripted model server, a real artifact store on disk. What leaves
// the activity when the call may have been paid for but could not complete normally.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { CallBeat, KeptAnswer } from '../src/activities/answers';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { generateChange } from '../src/activities/llm';
import type { ActivityDeps, GenerateChangeRequest } from '../src/activities/types';
import { messageText, ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import type { ArtifactRef } from '../src/domain/schema';
import { wholeFile } from './support/answers';

const KEY_ENV = { TEST_API_KEY: 'sk-test-secret-key-123456789' };
const ANSWER = { content: wholeFile('src/a.js', 'module.exports = 1;\n', 'set a'), usage: { prompt_tokens: 120, completion_tokens: 80 } };

let tmp: string;
let model: ScriptedModelServer;
let deps: ActivityDeps;
let prompt: ArtifactRef;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'weaver-llm-'));
  model = await ScriptedModelServer.start();
  deps = {
    artifactDir: path.join(tmp, 'artifacts'),
    workspaceRoot: path.join(tmp, 'ws'),
    workspaceQueue: 'unused',
    env: KEY_ENV,
    heartbeatMs: 20,
    providers: { providers: {} },
  };
  prompt = await new LocalArtifactStore(deps.artifactDir).putJson('prompt', { system: 'You edit code.', user: 'Set a to 1.' });
});

afterAll(async () => {
  await model.close();
  await rm(tmp, { recursive: true, force: true });
});

/** Registers `id` at the scripted server and returns the request for it. */
function request(id: string, extra: { timeoutSec?: number } = {}): GenerateChangeRequest {
  deps.providers!.providers[id] = { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: [id], ...extra };
  return { workflowId: 'wf', attempt: 1, provider: { id, model: id, maxTokens: 1000, ...extra }, prompt, role: 'primary' };
}

/** A store whose writes fail `failures` times, then work; counts the tries. */
class FlakyStore extends LocalArtifactStore {
  tries = 0;
  constructor(private failures: number) {
    super(deps.artifactDir);
  }
  override async putJson(kind: string, value: unknown): Promise<ArtifactRef> {
    this.tries += 1;
    if (this.failures-- > 0) throw new Error('ENOSPC: no space left on device (scripted)');
    return super.putJson(kind, value);
  }
}

const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

test('a store that fails twice after the answer came: retried in the activity, the answer kept, one HTTP request', async () => {
  model.script('store-flaky', [ANSWER]);
  const store = new FlakyStore(2);
  const result = (await new MockActivityEnvironment().run(generateChange, deps, store, request('store-flaky'))) as Awaited<ReturnType<typeof generateChange>>;
  expect(result.outcome).toBe('ok');
  expect(result).toMatchObject({ tokensIn: 120, tokensOut: 80 });
  expect(store.tries).toBeGreaterThanOrEqual(3); // 2 failed writes of the answer + the one that worked (+ response, change set)
  expect(model.count('store-flaky')).toBe(1);
});

test('a store that keeps failing: an ArtifactStoreFailed carrying the real usage, so the workflow books the tokens (and asks again itself)', async () => {
  model.script('store-down', [ANSWER]);
  const store = new FlakyStore(Infinity);
  const err = await failureOf(new MockActivityEnvironment().run(generateChange, deps, store, request('store-down')));
  expect(err).toBeInstanceOf(ApplicationFailure);
  const f = err as ApplicationFailure;
  expect(f.type).toBe('ArtifactStoreFailed');
  // Final for the activity: Temporal retries a call only after a lost worker; the workflow asks again.
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toMatch(/answered, but its answer could not be stored after 3 tries: ENOSPC/);
  expect(f.details?.[0]).toMatchObject({ provider: 'store-down', tokensIn: 120, tokensOut: 80 });
  expect(store.tries).toBe(3);
  expect(model.count('store-down')).toBe(1);
});

test('cancelled because its worker shuts down: a WorkerShutdown saying the request was sent; a workflow cancel stays a cancellation', async () => {
  model.script('stop-me', [{ ...ANSWER, delayMs: 5000 }, { ...ANSWER, delayMs: 5000 }]);
  const stopping = new MockActivityEnvironment();
  const running = failureOf(stopping.run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('stop-me')));
  await model.waitFor((m) => m.inFlightFor('stop-me') === 1);
  stopping.cancel('WORKER_SHUTDOWN');
  const err = await running;
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ type: 'WorkerShutdown', nonRetryable: true, details: [{ provider: 'stop-me', sent: true }] });
  await model.waitFor((m) => m.abortedCount('stop-me') === 1);

  const cancelled = new MockActivityEnvironment();
  const second = failureOf(cancelled.run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('stop-me')));
  await model.waitFor((m) => m.inFlightFor('stop-me') === 1);
  cancelled.cancel('CANCELLED');
  expect(await second).toBeInstanceOf(CancelledFailure);
});

test("past the provider's timeoutSec: a ProviderTimeout marked as sent (estimated spend), and the request closed", async () => {
  // The answer would come after 60 s: failing at all (a timeout, the request aborted) is the
  // deadline at work; the only time asserted is a relation to that natural end.
  model.script('too-slow', [{ ...ANSWER, delayMs: 60_000 }]);
  const started = Date.now();
  const err = await failureOf(new MockActivityEnvironment().run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('too-slow', { timeoutSec: 0.5 })));
  expect(Date.now() - started).toBeLessThan(30_000);
  expect(err).toMatchObject({ type: 'ProviderTimeout', nonRetryable: true, details: [{ family: 'timeout', provider: 'too-slow', sent: true }] });
  await model.waitFor((m) => m.abortedCount('too-slow') === 1);
});

test('a 503 is not marked as sent: the provider refused it, nothing to pay', async () => {
  model.script('refuses', [{ status: 503 }]);
  const err = await failureOf(new MockActivityEnvironment().run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('refuses')));
  expect(err).toMatchObject({ type: 'ProviderServer', nonRetryable: true });
  expect((err as ApplicationFailure).details?.[0]).not.toHaveProperty('sent');
});

test('heartbeats stay well inside the heartbeat timeout even when WEAVER_HEARTBEAT_MS is longer', async () => {
  model.script('beats', [{ ...ANSWER, delayMs: 1500 }]);
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: number[] = [];
  env.on('heartbeat', () => beats.push(Date.now()));
  // The period the activity asks its timer for (what it means to do), not the gaps a busy
  // machine's event loop happens to leave between beats (printed, not asserted).
  const intervals = jest.spyOn(global, 'setInterval');
  let periods: (number | undefined)[];
  try {
    await env.run(generateChange, { ...deps, heartbeatMs: 10_000 }, new LocalArtifactStore(deps.artifactDir), request('beats'));
  } finally {
    periods = intervals.mock.calls.map(([, ms]) => ms);
    intervals.mockRestore();
  }
  expect(periods).toContain(100); // a third of the timeout...
  expect(periods).not.toContain(10_000); // ...not WEAVER_HEARTBEAT_MS
  // Beats while the 1.5 s answer is awaited (a beat every 10 s would give none).
  expect(beats.length).toBeGreaterThanOrEqual(5);
  const gaps = beats.slice(1).map((t, i) => t - beats[i]);
  process.stderr.write(`[llmActivity] ${beats.length} heartbeats, largest gap ${Math.max(...gaps)} ms (timeout 300 ms)\n`);
});

test('a call answered within one heartbeat period beats once: its kept answer, which Temporal then has at once (the first beat is not throttled)', async () => {
  model.script('one-beat', [ANSWER]);
  const env = new MockActivityEnvironment();
  const beats: CallBeat[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d as CallBeat));
  await env.run(generateChange, { ...deps, heartbeatMs: 60_000 }, new LocalArtifactStore(deps.artifactDir), request('one-beat'));
  expect(beats).toHaveLength(1);
  expect(beats[0]).toMatchObject({ provider: 'one-beat', answer: { kind: 'answer' } });
});

test('a store slow to keep the answer: the call beats until it is kept (no heartbeat timeout hands the paid call to a retry), the kept reference last', async () => {
  model.script('slow-keep', [ANSWER]);
  class SlowStore extends LocalArtifactStore {
    override async putJson(kind: string, value: unknown): Promise<ArtifactRef> {
      // Three heartbeat timeouts of 300 ms: a call that stopped beating with its answer would time out.
      if (kind === 'answer') await new Promise((r) => setTimeout(r, 900));
      return super.putJson(kind, value);
    }
  }
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: CallBeat[] = [];
  let answeredAt = 0;
  model.once('response', () => (answeredAt = beats.length));
  env.on('heartbeat', (d: unknown) => beats.push(d as CallBeat));
  await env.run(generateChange, { ...deps, heartbeatMs: 10_000 }, new SlowStore(deps.artifactDir), request('slow-keep'));
  // Beats every 100 ms while the answer was being kept (a third of the timeout)…
  expect(beats.length - answeredAt).toBeGreaterThanOrEqual(4);
  // …and none after its reference: Temporal's record names the kept answer.
  expect(beats.at(-1)).toMatchObject({ provider: 'slow-keep', answer: { kind: 'answer' } });
  expect(beats.filter((b) => b.answer)).toHaveLength(1);
});

test('the answer is kept and its reference heartbeated as it arrives; a retry after a lost worker delivers it without a second request', async () => {
  model.script('kept', [ANSWER]);
  const store = new LocalArtifactStore(deps.artifactDir);
  const req = request('kept');
  const beats: CallBeat[] = [];
  const first = new MockActivityEnvironment();
  first.on('heartbeat', (d: unknown) => beats.push(d as CallBeat));
  const answered = await first.run(generateChange, deps, store, req);
  const kept = beats.filter((b) => b.answer);
  expect(kept).toHaveLength(1);
  expect(kept[0]).toMatchObject({ provider: 'kept', tokensIn: 120, tokensOut: 80, answer: { kind: 'answer' } });
  // What the store holds under that reference is the whole answer: its verdict and raw response.
  const record = await store.readJson<KeptAnswer>(kept[0].answer!);
  expect(record).toMatchObject({ provider: 'kept', tokensIn: 120, tokensOut: 80, verdict: { outcome: 'ok' } });

  // Temporal's retry of that execution (attempt 2) carries the last heartbeat's details.
  const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: kept[0] });
  const again: CallBeat[] = [];
  retry.on('heartbeat', (d: unknown) => again.push(d as CallBeat));
  const delivered = await retry.run(generateChange, deps, store, req);
  expect(delivered).toEqual(answered);
  expect(model.count('kept')).toBe(1);
  // Beaten again, so a retry lost in its turn leaves the reference to the next one.
  expect(again).toEqual([kept[0]]);
});

test('a retry after a worker lost before it kept an answer: WorkerLost (sent, so estimated spend), no new request', async () => {
  const err = await failureOf(new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { provider: 'lost-early' } }).run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('lost-early')));
  expect(err).toMatchObject({ type: 'WorkerLost', nonRetryable: true, details: [{ provider: 'lost-early', sent: true }] });
  expect((err as ApplicationFailure).details?.[0]).not.toHaveProperty('ranOut');
  // A first execution that ran its whole start-to-close (a live worker, a provider too slow) says so.
  const now = Date.now();
  const late = { attempt: 2, heartbeatDetails: { provider: 'lost-early' }, scheduledTimestampMs: now - 62_000, currentAttemptScheduledTimestampMs: now, startToCloseTimeoutMs: 61_000 };
  const ranOut = await failureOf(new MockActivityEnvironment(late).run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('lost-early')));
  expect(ranOut).toMatchObject({ type: 'WorkerLost', details: [{ provider: 'lost-early', sent: true, ranOut: true }] });
  // Lost within its first heartbeat period, before its answer: it beat nothing at all (no details).
  const silent = await failureOf(new MockActivityEnvironment({ attempt: 2 }).run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('lost-early')));
  expect(silent).toMatchObject({ type: 'WorkerLost', nonRetryable: true, details: [{ provider: 'lost-early', sent: true }] });
  expect(model.count('lost-early')).toBe(0);
});

test('a retry that cannot read the kept answer (a store local to the lost host): ArtifactStoreFailed with its real usage, no new request', async () => {
  model.script('kept-elsewhere', [ANSWER]);
  const beats: CallBeat[] = [];
  const first = new MockActivityEnvironment();
  first.on('heartbeat', (d: unknown) => beats.push(d as CallBeat));
  await first.run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), request('kept-elsewhere'));
  const beat = beats.find((b) => b.answer)!;
  const otherHost = new LocalArtifactStore(path.join(tmp, 'other-host-artifacts'));
  const err = await failureOf(new MockActivityEnvironment({ attempt: 2, heartbeatDetails: beat }).run(generateChange, deps, otherHost, request('kept-elsewhere')));
  expect(err).toMatchObject({ type: 'ArtifactStoreFailed', nonRetryable: true, details: [{ provider: 'kept-elsewhere', tokensIn: 120, tokensOut: 80 }] });
  expect(model.count('kept-elsewhere')).toBe(1);
});

test('an o1-family registry entry: no `system` message (the instructions lead the user message), and no temperature even when one is set', async () => {
  model.script('o1-mini-quirks', [ANSWER]);
  const req = request('o1-mini-quirks');
  const result = (await new MockActivityEnvironment().run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), { ...req, provider: { ...req.provider, temperature: 0.2 } })) as Awaited<ReturnType<typeof generateChange>>;
  expect(result.outcome).toBe('ok');
  const [sent] = model.requestsFor('o1-mini-quirks');
  expect(sent.messages.map((m) => m.role)).toEqual(['user']);
  expect(messageText(sent.messages[0])).toMatch(/^You edit code\.[\s\S]*Set a to 1\./);
  expect(sent.body).not.toHaveProperty('temperature');
  // A model that takes both still gets them.
  model.script('gpt-4o-plain', [ANSWER]);
  const plain = request('gpt-4o-plain');
  await new MockActivityEnvironment().run(generateChange, deps, new LocalArtifactStore(deps.artifactDir), { ...plain, provider: { ...plain.provider, temperature: 0.2 } });
  const [both] = model.requestsFor('gpt-4o-plain');
  expect(both.messages.map((m) => m.role)).toEqual(['system', 'user']);
  expect(both.body.temperature).toBe(0.2);
});

test('an endpoint that takes cache_control: the instructions and the stable part of the user message are marked cacheable, the attempt\'s feedback is not', async () => {
  const store = new LocalArtifactStore(deps.artifactDir);
  const stable = '# Task: set a\n\n## Files\n### src/a.js';
  const cached = await store.putJson('prompt', { system: 'You edit code.', user: `${stable}\n\n## Your previous attempt (attempt 1) failed\nboom`, stableChars: stable.length });
  model.script('cache-marks', [{ ...ANSWER, usage: { ...ANSWER.usage, prompt_tokens_details: { cached_tokens: 64 } } }]);
  deps.providers!.providers['cache-marks'] = { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: ['cache-marks'], cacheControl: true };
  const result = await new MockActivityEnvironment().run(generateChange, deps, store, { ...request('cache-marks'), prompt: cached, provider: { id: 'cache-marks', model: 'cache-marks', maxTokens: 1000, cacheControl: true } });
  expect(result).toMatchObject({ tokensIn: 120, tokensCached: 64 });
  const [sent] = model.requestsFor('cache-marks');
  const [system, user] = sent.messages.map((m) => m.content as { text: string; cache_control?: unknown }[]);
  expect(system).toEqual([expect.objectContaining({ cache_control: { type: 'ephemeral' } })]);
  expect(user[0]).toEqual({ type: 'text', text: stable, cache_control: { type: 'ephemeral' } });
  expect(user[1].text).toContain('failed\nboom');
  expect(user[1]).not.toHaveProperty('cache_control');
});
