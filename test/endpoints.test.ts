// Endpoints only from the worker (issue 15, item 1), through real tasks: the real dev server, a
// real worker, real git repos and the real openai SDK over HTTP to the scripted model server.
// Prompts carry repository files, so a task's own `baseURL` is where the repository would go:
// refused at start unless the worker's WEAVER_INLINE_ENDPOINTS allows it, and an allowed one
// is called without any key. A provider's error body reaches history cut and redacted.
// (Part of the escape suite; kept out of test/sandbox.test.ts because it needs no sandbox.)
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { CodingTaskResult, ProviderChoice } from '../src/domain/schema';
import { WeaverStatus } from '../src/domain/searchAttributes';
import type { codingTask } from '../src/workflows';
import { wholeFile } from './support/answers';
import { historyShape } from './support/histories';
import { startRig, type Rig } from './support/weaver';
import { closeTestConnections } from './support/temporal';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
/** The key the rig's worker holds (TEST_API_KEY) for its registry providers. */
const KEY = 'sk-test-secret-key-123456789';

/** Every string in a value, byte arrays (payloads) decoded as UTF-8. */
function allText(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'));
  else if (Array.isArray(v)) for (const x of v) allText(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) allText(x, out);
  return out;
}

/** A task that must be refused at start: its failure, and proof that nothing was called. */
async function refusedAtStart(rig: Rig, providers: ProviderChoice[]): Promise<{ message: string; handle: WorkflowHandle<typeof codingTask> }> {
  const before = rig.model.count();
  // Through the client: the input is valid; only the worker knows which endpoints it allows.
  const handle = await rig.start(rig.task(await rig.newRepo(), providers));
  const err = await handle.result().then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
  expect({ type: cause.type, nonRetryable: cause.nonRetryable }).toEqual({ type: 'ProviderNotAllowed', nonRetryable: true });
  // Nothing reached any model, and nothing but the provider check ran: no workspace, no clone.
  expect(rig.model.count()).toBe(before);
  const shape = historyShape(await handle.fetchHistory());
  expect({ activities: shape.activities, local: shape.localActivities }).toEqual({ activities: {}, local: { resolveProviders: 1 } });
  // Refused like bad input: `invalid` in the Web UI, not `failed`.
  expect((await handle.describe()).typedSearchAttributes.get(WeaverStatus)).toBe('invalid');
  return { message: cause.message, handle };
}

describe('a worker without WEAVER_INLINE_ENDPOINTS (the default)', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(() => rig?.close());

  test('a task naming a baseURL that is not in the registry is refused at start, naming the field and the fix; the URL is never called', async () => {
    const { message } = await refusedAtStart(rig, [{ id: 'exfil', model: 'exfil-model', baseURL: rig.model.url }]);
    expect(message).toContain(
      `providers.0.baseURL (exfil): ${rig.model.url} is not allowed by the worker (WEAVER_INLINE_ENDPOINTS); leave baseURL out and name a provider id from the worker's registry (WEAVER_PROVIDERS)`,
    );
    expect(rig.model.requestsFor('exfil-model')).toEqual([]);
  });

  test('a registry id pointed at a baseURL of the task is refused the same way (the registry entry is keyless or not)', async () => {
    const reg = rig.provider('reg-default');
    const { message } = await refusedAtStart(rig, [{ ...reg, baseURL: rig.model.url.replace('127.0.0.1', 'localhost') }]);
    expect(message).toMatch(/providers\.0\.baseURL \(reg-default\): http:\/\/localhost:\d+\/v1 is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\)/);
  });
});

describe('a worker with WEAVER_INLINE_ENDPOINTS=http://127.0.0.1:*', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ deps: { inlineEndpoints: ['http://127.0.0.1:*'] } });
  });
  afterAll(async () => {
    await rig?.close();
    await closeTestConnections();
  });

  test('an allowed inline endpoint is called, with no Authorization header and no key of the worker', async () => {
    rig.model.setDefault('inline-model', () => ({ content: wholeFile('src/slugify.js', GOOD, 'implemented slugify') }));
    // The worker holds a registry provider with a key: it must not travel to the task's endpoint.
    rig.provider('keyed-model');
    const result: CodingTaskResult = await rig.run(rig.task(await rig.newRepo(), [{ id: 'inline', model: 'inline-model', baseURL: rig.model.url }]));
    expect(`${result.status}: ${result.reason}`).toMatch(/^succeeded: /);
    const requests = rig.model.requestsFor('inline-model');
    expect(requests.length).toBeGreaterThan(0);
    for (const req of requests) {
      expect(req.headers.authorization).toBeUndefined();
      expect(JSON.stringify(req.headers)).not.toContain(KEY);
    }
  });

  test('a redirect from an allowed endpoint is never followed: the prompt does not reach the host it points at', async () => {
    let hits = 0;
    const target = http.createServer((req, res) => {
      hits += 1;
      req.resume();
      res.end('{}');
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    try {
      const port = (target.address() as { port: number }).port;
      rig.model.setDefault('redirecting', () => ({ status: 307, headers: { location: `http://127.0.0.1:${port}/v1/chat/completions` }, body: '' }));
      const result = await rig.run({
        ...rig.task(await rig.newRepo(), [{ id: 'inline-redirect', model: 'redirecting', baseURL: rig.model.url }]),
        strategy: { mode: 'sequential', retry: { maxTries: 1, maxWaitSec: 1 } },
        limits: { maxAttempts: 1 },
        decomposition: 'never',
      });
      expect(result.status).not.toBe('succeeded');
      expect(rig.model.requestsFor('redirecting').length).toBeGreaterThan(0);
      expect(hits).toBe(0);
    } finally {
      await new Promise((resolve) => target.close(resolve));
    }
  });

  test('a registry id with a task baseURL outside the allowlist is refused at start', async () => {
    const reg = rig.provider('reg-allow');
    const { message } = await refusedAtStart(rig, [{ ...reg, baseURL: rig.model.url.replace('127.0.0.1', 'localhost') }]);
    expect(message).toMatch(/providers\.0\.baseURL \(reg-allow\): http:\/\/localhost:\d+\/v1 is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\)/);
  });

  test("a provider's error body — a secret and 10 KB of text — reaches the result and history cut and redacted", async () => {
    const secret = 'sk-proj-Zq7xLeakedUpstreamKey0123456789abcdef';
    const filler = 'upstream proxy trace line; '.repeat(400);
    expect(filler.length).toBeGreaterThan(10_000);
    // A proxy's error page: the worker's own key echoed back, another key, then 10 KB.
    rig.model.setDefault('err-model', () => ({ status: 400, body: `bad gateway config: sent ${KEY}, upstream wants ${secret}. ${filler}` }));
    const reg = rig.provider('err-model');
    const handle = await rig.start(rig.task(await rig.newRepo(), [reg], { limits: { maxAttempts: 1 } }));
    const result: CodingTaskResult = await handle.result().then(
      (r) => r,
      (e: unknown) => ((e as WorkflowFailedError).cause as { details?: unknown[] }).details?.[0] as CodingTaskResult,
    );
    expect(rig.model.requestsFor('err-model').length).toBeGreaterThan(0);
    expect(result.status).toBe('failed');
    const resultText = JSON.stringify(result);
    const historyText = allText(await handle.fetchHistory()).join('\n');
    // The call events (JSONL in the artifact store) record the failure by family, without the body.
    const stored = await Promise.all(
      (await readdir(rig.artifactDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => readFile(path.join(e.parentPath, e.name), 'utf8')),
    );
    const eventsText = stored.filter((t) => t.includes('"errorFamily":"bad_request"')).join('\n');
    expect(eventsText).toContain('"provider":"err-model"');
    for (const text of [resultText, historyText]) {
      // The body is there (the start of it), redacted, and marked as cut.
      expect(text).toContain('bad gateway config: sent [REDACTED], upstream wants [REDACTED]');
      expect(text).toMatch(/\[cut: \d+ chars in all\]/);
    }
    for (const text of [resultText, historyText, eventsText]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(KEY);
      // Never the 10 KB: not even 1 KB of it in one piece.
      expect(text).not.toContain(filler.slice(0, 1000));
    }
  });
});
