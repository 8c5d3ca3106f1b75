import OpenAI, {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  RateLimitError,
} from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { ScriptedModelServer, lastUserText, type RecordedRequest } from '../scripts/demo/scriptedModelServer';

let server: ScriptedModelServer;
let client: OpenAI;

beforeAll(async () => {
  server = await ScriptedModelServer.start();
  client = new OpenAI({ baseURL: server.url, apiKey: 'test', maxRetries: 0 });
});

afterEach(() => server.reset());

afterAll(async () => {
  await server.close();
});

const ask = (model: string, prompt: string, options?: OpenAI.RequestOptions) =>
  client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }] }, options);

/** A streamed chat completion through the real SDK, every chunk collected with its arrival time. */
async function askStreaming(model: string, prompt: string, includeUsage: boolean | undefined, options?: OpenAI.RequestOptions) {
  const stream = await client.chat.completions.create(
    {
      model,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
      ...(includeUsage === undefined ? {} : { stream_options: { include_usage: includeUsage } }),
    },
    options,
  );
  const chunks: ChatCompletionChunk[] = [];
  const at: number[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    at.push(Date.now());
  }
  const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  return { chunks, at, content };
}

/** Runs `fn` and returns what it threw (fails the test if it did not throw). */
async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('ScriptedModelServer', () => {
  test('url is a loopback base URL ending in /v1', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(server.port).toBeGreaterThan(0);
  });

  test('a scripted answer returns its content and usage as a chat.completion', async () => {
    server.script('gpt-a', [{ content: 'hello there', usage: { prompt_tokens: 11, completion_tokens: 7 } }]);

    const completion = await ask('gpt-a', 'say hello');

    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.model).toBe('gpt-a');
    expect(typeof completion.created).toBe('number');
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0].index).toBe(0);
    expect(completion.choices[0].message.role).toBe('assistant');
    expect(completion.choices[0].message.content).toBe('hello there');
    expect(completion.choices[0].finish_reason).toBe('stop');
    expect(completion.usage).toEqual({ prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    expect(completion._request_id).toBe(`req_scripted_${server.requests[0].id}`);

    expect(server.count()).toBe(1);
    const [rec] = server.requests;
    expect(rec.model).toBe('gpt-a');
    expect(rec.messages).toEqual([{ role: 'user', content: 'say hello' }]);
    expect(rec.body).toMatchObject({ model: 'gpt-a' });
    expect(rec.status).toBe(200);
    expect(rec.aborted).toBe(false);
    expect(rec.finishedAt).toBeGreaterThanOrEqual(rec.receivedAt);
    expect(server.remaining('gpt-a')).toBe(0);
  });

  test('default usage is derived from lengths and object content is JSON-encoded', async () => {
    const plan = { files: ['a.ts'], summary: 'x' };
    server.script('gpt-a', [{ content: plan }]);
    const prompt = 'p'.repeat(40); // 40 chars -> 10 prompt tokens

    const completion = await ask('gpt-a', prompt);

    const content = completion.choices[0].message.content ?? '';
    expect(JSON.parse(content)).toEqual(plan);
    expect(completion.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: Math.ceil(JSON.stringify(plan).length / 4),
      total_tokens: 10 + Math.ceil(JSON.stringify(plan).length / 4),
    });
  });

  test('two models have independent scripts', async () => {
    server.script('model-a', [{ content: 'a1' }, { content: 'a2' }]);
    server.script('model-b', [{ content: 'b1' }]);

    // Interleaved on purpose: B's first answer must not be taken from A's queue.
    const b1 = await ask('model-b', 'x');
    const a1 = await ask('model-a', 'x');
    const a2 = await ask('model-a', 'x');

    expect([a1, a2, b1].map((c) => c.choices[0].message.content)).toEqual(['a1', 'a2', 'b1']);
    expect(server.count('model-a')).toBe(2);
    expect(server.count('model-b')).toBe(1);
    expect(server.requestsFor('model-b').map((r) => r.model)).toEqual(['model-b']);

    // B's script is spent: a clear 400 (a test's mistake, not retried), while A's default keeps answering.
    const err = await caught(() => ask('model-b', 'x'));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as APIError).message).toMatch(/script for model 'model-b' ran out/);
    expect((err as APIError).code).toBe('script_exhausted');
  });

  test('a never-scripted model gets a 400 that says so', async () => {
    const err = await caught(() => ask('nobody', 'x'));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as APIError).message).toMatch(/no script for model 'nobody'/);
  });

  test('setDefault answers when the queue is empty; reset clears it all', async () => {
    server.script('m', [{ content: 'first' }]);
    server.setDefault('m', { content: 'fallback' });

    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await ask('m', 'x')).choices[0].message.content);
    expect(answers).toEqual(['first', 'fallback', 'fallback']);
    expect(server.count()).toBe(3);

    server.reset();
    expect(server.count()).toBe(0);
    expect(server.maxInFlight).toBe(0);
    await expect(ask('m', 'x')).rejects.toBeInstanceOf(BadRequestError);
  });

  test('429 with retry-after surfaces as RateLimitError with the header readable', async () => {
    server.script('m', [{ status: 429, headers: { 'retry-after': '2' } }]);

    const err = await caught(() => ask('m', 'x'));

    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as RateLimitError;
    expect(e.status).toBe(429);
    expect(e.headers?.get('retry-after')).toBe('2');
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.type).toBe('requests');
    expect(server.requests[0].status).toBe(429);
  });

  test('the SDK honours retry-after-ms and retries into the next step', async () => {
    server.script('m', [{ status: 429, headers: { 'retry-after-ms': '150' } }, { content: 'after retry' }]);
    const retrying = new OpenAI({ baseURL: server.url, apiKey: 'test', maxRetries: 1 });

    const completion = await retrying.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });

    expect(completion.choices[0].message.content).toBe('after retry');
    expect(server.count('m')).toBe(2);
    const [first, second] = server.requests;
    // -5ms: Date.now() granularity on both sides.
    expect(second.receivedAt - (first.finishedAt ?? 0)).toBeGreaterThanOrEqual(145);
  });

  test('401 surfaces as AuthenticationError with the OpenAI-style body', async () => {
    server.script('m', [
      { status: 401 },
      { status: 401, body: { error: { message: 'custom auth failure', type: 'invalid_request_error', code: 'invalid_api_key' } } },
    ]);

    const first = await caught(() => ask('m', 'x'));
    expect(first).toBeInstanceOf(AuthenticationError);
    expect((first as AuthenticationError).code).toBe('invalid_api_key');
    expect((first as AuthenticationError).message).toMatch(/^401 Incorrect API key/);

    const second = await caught(() => ask('m', 'x'));
    expect(second).toBeInstanceOf(AuthenticationError);
    expect((second as AuthenticationError).message).toBe('401 custom auth failure');
  });

  test('500 surfaces as InternalServerError', async () => {
    server.script('m', [{ status: 500 }, { status: 503, body: 'upstream melted' }]);

    const err = await caught(() => ask('m', 'x'));
    expect(err).toBeInstanceOf(InternalServerError);
    expect((err as InternalServerError).status).toBe(500);
    expect((err as InternalServerError).type).toBe('server_error');

    // A non-JSON error body still maps by status; the text becomes the message.
    const raw = await caught(() => ask('m', 'x'));
    expect(raw).toBeInstanceOf(InternalServerError);
    expect((raw as InternalServerError).status).toBe(503);
    expect((raw as InternalServerError).message).toBe('503 upstream melted');
  });

  test('a malformed JSON body makes the SDK throw a SyntaxError (not an APIError)', async () => {
    server.script('m', [{ malformed: true }]);

    const err = await caught(() => ask('m', 'x'));

    // Checked by name, not instanceof: the SyntaxError comes from undici's
    // response.json() in Node's realm, not from jest's sandbox realm.
    expect((err as Error).name).toBe('SyntaxError');
    expect((err as Error).message).toMatch(/JSON/);
    expect(err).not.toBeInstanceOf(APIError);
    expect(server.requests[0].status).toBe(200);
    expect(server.requests[0].kind).toBe('malformed');
  });

  test('a delayed answer aborted by the client is recorded as aborted and nothing crashes', async () => {
    // The answer would come after 60 s: the only time asserted is a relation to that.
    server.script('slow', [{ content: 'too late', delayMs: 60_000 }]);
    const aborted: RecordedRequest[] = [];
    server.on('aborted', (r) => aborted.push(r));
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);

    const err = await caught(() => ask('slow', 'x', { signal: controller.signal }));

    expect(err).toBeInstanceOf(APIUserAbortError);
    await server.waitFor((s) => s.abortedCount() === 1, 10_000);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(server.abortedCount('slow')).toBe(1);
    expect(server.abortedCount('other')).toBe(0);
    const [rec] = server.requests;
    expect(rec.aborted).toBe(true);
    expect(rec.status).toBeNull();
    expect(aborted).toEqual([rec]);
    expect(server.inFlight).toBe(0);
    server.removeAllListeners('aborted');

    // The server is still healthy afterwards.
    server.script('slow', [{ content: 'fine' }]);
    expect((await ask('slow', 'x')).choices[0].message.content).toBe('fine');
    expect(server.abortedCount()).toBe(1);
  });

  test('a hang is ended by the client timeout', async () => {
    // A hang never ends by itself: that the call ended at all is the client's timeout.
    server.script('stuck', [{ hang: true }]);

    const err = await caught(() => ask('stuck', 'x', { timeout: 200 }));

    // Plain Node gives APIConnectionTimeoutError (a subclass). Under jest the SDK
    // cannot recognise undici's cross-realm AbortError and reports a generic
    // APIConnectionError('Connection error.'), so only the base class is asserted.
    expect(err).toBeInstanceOf(APIConnectionError);
    expect(err).not.toBeInstanceOf(APIUserAbortError);
    await server.waitFor((s) => s.abortedCount('stuck') === 1, 10_000);
    expect(server.requests[0].kind).toBe('hang');
    expect(server.inFlightFor('stuck')).toBe(0);
  });

  test('a hang is ended by close(), which does not wait for it', async () => {
    const own = await ScriptedModelServer.start();
    own.script('stuck', [{ hang: true }]);
    const ownClient = new OpenAI({ baseURL: own.url, apiKey: 'test', maxRetries: 0 });

    const pending = caught(() => ownClient.chat.completions.create({ model: 'stuck', messages: [{ role: 'user', content: 'x' }] }));
    await own.waitFor((s) => s.inFlight === 1, 10_000);
    // The hang never ends by itself: close() resolving at all is close() not waiting for it.
    await own.close();

    const err = await pending;
    expect(err).toBeInstanceOf(APIConnectionError);
    expect(own.abortedCount()).toBe(1);
    expect(own.inFlight).toBe(0);
  });

  test('inFlight and maxInFlight reach 3 with three concurrent delayed requests, then inFlight returns to 0', async () => {
    server.script('a', [{ content: 'a1', delayMs: 300 }, { content: 'a2', delayMs: 300 }]);
    server.script('b', [{ content: 'b1', delayMs: 300 }]);

    const all = Promise.all([ask('a', 'x'), ask('a', 'y'), ask('b', 'z')]);
    await server.waitFor((s) => s.inFlight === 3, 10_000);
    expect(server.inFlightFor('a')).toBe(2);
    expect(server.inFlightFor('b')).toBe(1);

    const answers = await all;
    expect(answers.map((c) => c.choices[0].message.content).sort()).toEqual(['a1', 'a2', 'b1']);
    expect(server.inFlight).toBe(0);
    expect(server.inFlightFor('a')).toBe(0);
    expect(server.maxInFlight).toBe(3);
    expect(server.maxInFlightFor('a')).toBe(2);
    expect(server.maxInFlightFor('b')).toBe(1);
  });

  test('function steps see the messages and decide the answer', async () => {
    const seen: RecordedRequest[] = [];
    server.setDefault('demo', (req) => {
      seen.push(req);
      return lastUserText(req).includes('plan') ? { content: { steps: ['edit'] } } : { status: 500 };
    });

    const completion = await client.chat.completions.create({
      model: 'demo',
      messages: [
        { role: 'system', content: 'you are weaver' },
        { role: 'user', content: [{ type: 'text', text: 'make a plan' }] },
      ],
    });
    expect(JSON.parse(completion.choices[0].message.content ?? '')).toEqual({ steps: ['edit'] });
    expect(seen).toHaveLength(1);
    expect(seen[0].messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(seen[0].messages[0].content).toBe('you are weaver');

    await expect(ask('demo', 'something else')).rejects.toBeInstanceOf(InternalServerError);
    expect(seen).toHaveLength(2);
  });

  test('a throwing step function yields a clear 400 (a test mistake, not retried)', async () => {
    server.script('m', [
      () => {
        throw new Error('boom in script');
      },
    ]);
    const err = await caught(() => ask('m', 'x'));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as APIError).message).toMatch(/step function for model 'm' threw: boom in script/);
  });

  test('emits request events with the parsed body', async () => {
    server.script('m', [{ content: 'ok' }]);
    const got: RecordedRequest[] = [];
    const listener = (r: RecordedRequest): void => {
      got.push(r);
    };
    server.on('request', listener);
    try {
      await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 0.2 });
    } finally {
      server.off('request', listener);
    }
    expect(got).toHaveLength(1);
    expect(got[0].body.temperature).toBe(0.2);
  });

  test('GET /v1/models lists the scripted models', async () => {
    server.script('zeta', [{ content: 'z' }]);
    server.setDefault('alpha', { content: 'a' });

    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);

    expect(ids).toEqual(['alpha', 'zeta']);
  });

  test('also serves /chat/completions without the /v1 prefix, and rejects bad bodies with 400', async () => {
    server.script('m', [{ content: 'no prefix' }]);
    const base = server.url.replace(/\/v1$/, '');

    const ok = await fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(ok.status).toBe(200);
    const json = (await ok.json()) as { choices: { message: { content: string } }[] };
    expect(json.choices[0].message.content).toBe('no prefix');

    const bad = await fetch(`${base}/chat/completions`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    expect(server.requests[1].kind).toBe('invalid');
  });
});

describe('ScriptedModelServer streaming (stream: true)', () => {
  test('an answer arrives as chat.completion.chunk events: role first, the content in chunks, finish_reason, then usage once', async () => {
    const text = 'Hello, streaming world: the whole answer, piece by piece.';
    server.script('s', [{ content: text, usage: { prompt_tokens: 12, completion_tokens: 9 }, chunks: 5 }]);

    const { chunks, content } = await askStreaming('s', 'stream please', true);

    expect(content).toBe(text);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].id).toBe(`chatcmpl-scripted-${server.requests[0].id}`);
    expect(chunks.every((c) => c.model === 's')).toBe(true);
    // role chunk + 5 content chunks + finish chunk + usage chunk
    expect(chunks).toHaveLength(8);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.filter((c) => c.choices[0]?.delta?.content)).toHaveLength(5);

    const finishing = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishing).toHaveLength(1);
    expect(finishing[0]).toBe(chunks[chunks.length - 2]);
    expect(finishing[0].choices[0].finish_reason).toBe('stop');
    expect(finishing[0].choices[0].delta).toEqual({});

    const withUsage = chunks.filter((c) => c.usage);
    expect(withUsage).toHaveLength(1);
    expect(withUsage[0]).toBe(chunks[chunks.length - 1]);
    expect(withUsage[0].choices).toEqual([]);
    expect(withUsage[0].usage).toEqual({ prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 });

    const [rec] = server.requests;
    expect(rec.streamed).toBe(true);
    expect(rec.body.stream).toBe(true);
    expect(rec.kind).toBe('answer');
    expect(rec.status).toBe(200);
    expect(rec.aborted).toBe(false);
    expect(server.inFlight).toBe(0);
  });

  test('the streamed usage is the one the non-streaming answer reports; content never splits a surrogate pair', async () => {
    const text = 'añb👋c🎉d'; // 7 code points, 9 UTF-16 units
    server.script('s', [{ content: text }, { content: text, chunks: 7 }]);

    const plain = await ask('s', 'same prompt');
    const { chunks, content } = await askStreaming('s', 'same prompt', true);

    expect(content).toBe(text);
    expect(chunks.filter((c) => c.choices[0]?.delta?.content).map((c) => c.choices[0].delta.content)).toEqual(Array.from(text));
    expect(chunks[chunks.length - 1].usage).toEqual(plain.usage);
    expect(server.requests.map((r) => r.streamed)).toEqual([false, true]);
  });

  test("finish_reason 'length' passes through on the last choice chunk", async () => {
    server.script('s', [{ content: 'a partial answer that was cut', finishReason: 'length', chunks: 3 }]);

    const { chunks, content } = await askStreaming('s', 'x', true);

    expect(content).toBe('a partial answer that was cut');
    const finishing = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishing.map((c) => c.choices[0].finish_reason)).toEqual(['length']);
    expect(chunks.indexOf(finishing[0])).toBe(chunks.length - 2); // the usage chunk follows it
  });

  test('without stream_options.include_usage (or with false) no chunk carries usage', async () => {
    server.script('s', [{ content: 'no usage here', chunks: 2 }, { content: 'nor here', chunks: 2 }]);

    for (const includeUsage of [undefined, false]) {
      const { chunks, content } = await askStreaming('s', 'x', includeUsage);
      expect(content.length).toBeGreaterThan(0);
      expect(chunks).toHaveLength(4); // role, 2 content, finish
      expect(chunks.every((c) => !('usage' in c))).toBe(true);
      expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('stop');
    }
  });

  test('the wire format is OpenAI\'s: text/event-stream, `data: {json}` events, `usage: null` until the last, `data: [DONE]`', async () => {
    server.script('s', [{ content: 'wire', chunks: 2, usage: { prompt_tokens: 3, completion_tokens: 1 } }]);

    const res = await fetch(`${server.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 's', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } }),
    });
    const raw = await res.text();

    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-request-id')).toBe(`req_scripted_${server.requests[0].id}`);
    expect(raw.endsWith('\n\ndata: [DONE]\n\n')).toBe(true);
    const events = raw.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    const payloads = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)) as Record<string, unknown>);
    expect(payloads).toHaveLength(5);
    expect(payloads[0]).toMatchObject({
      object: 'chat.completion.chunk',
      model: 's',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      usage: null,
    });
    expect(payloads.slice(0, -1).every((p) => p.usage === null)).toBe(true);
    expect(payloads[4]).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
  });

  test('chunkDelayMs spaces the chunks; the request stays in flight until [DONE]', async () => {
    server.script('s', [{ content: 'one two three four', chunks: 4, chunkDelayMs: 60 }]);

    const pending = askStreaming('s', 'x', true);
    await server.waitFor((s) => s.inFlight === 1, 10_000);
    const { chunks, at, content } = await pending;

    expect(content).toBe('one two three four');
    const contentAt = chunks.map((c, i) => (c.choices[0]?.delta?.content ? at[i] : null)).filter((t): t is number => t !== null);
    expect(contentAt).toHaveLength(4);
    expect(contentAt[3] - contentAt[0]).toBeGreaterThanOrEqual(3 * 60 - 15);
    expect(server.inFlight).toBe(0);
    expect(server.requests[0].finishedAt! - server.requests[0].receivedAt).toBeGreaterThanOrEqual(6 * 60 - 15);
  });

  test('a client that aborts mid-stream is recorded as aborted, and the server stays healthy', async () => {
    // The whole stream would take 10 s; the only time asserted is a relation to that.
    server.script('s', [{ content: 'x'.repeat(200), chunks: 20, chunkDelayMs: 500 }]);
    const aborted: RecordedRequest[] = [];
    server.on('aborted', (r) => aborted.push(r));
    const started = Date.now();

    const stream = await client.chat.completions.create({
      model: 's',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let received = '';
    for await (const chunk of stream) {
      received += chunk.choices[0]?.delta?.content ?? '';
      if (received.length >= 30) break; // the SDK aborts the request
    }

    await server.waitFor((s) => s.abortedCount('s') === 1, 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(received).toBe('x'.repeat(30));
    const [rec] = server.requests;
    expect(rec.streamed).toBe(true);
    expect(rec.aborted).toBe(true);
    expect(rec.status).toBeNull();
    expect(rec.finishedAt).toBeDefined();
    expect(aborted).toEqual([rec]);
    expect(server.inFlight).toBe(0);
    server.removeAllListeners('aborted');

    server.script('s', [{ content: 'still fine', chunks: 2 }]);
    expect((await askStreaming('s', 'x', true)).content).toBe('still fine');
    expect(server.abortedCount()).toBe(1);
  });

  test('errors stay plain HTTP responses before any stream starts', async () => {
    server.script('s', [{ status: 429, headers: { 'retry-after': '1' } }, { hang: true }]);

    const err = await caught(() => askStreaming('s', 'x', true));
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).headers?.get('retry-after')).toBe('1');

    const hung = await caught(() => askStreaming('s', 'x', true, { timeout: 200 }));
    expect(hung).toBeInstanceOf(APIConnectionError);
    await server.waitFor((s) => s.abortedCount('s') === 1, 10_000);

    expect(server.requests.map((r) => [r.kind, r.streamed])).toEqual([
      ['status', false],
      ['hang', false],
    ]);
    expect(server.requests[0].status).toBe(429);
  });
});
