// Provider credentials belong to the worker (issue 8, item 3), against the real dev server, a
// real worker and the real openai SDK over HTTP: a task names provider ids from the worker's
// registry (WEAVER_PROVIDERS); it never names a key or the env var holding one, and never
// chooses where a key is sent. Refused at the client and again at workflow entry; a registry
// provider works; its key appears nowhere Weaver writes.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { startCodingTask, TaskInputError } from '../src/client';
import type { RecordedRequest } from '../scripts/demo/scriptedModelServer';
import { ProviderRegistryError } from '../src/domain/registry';
import type { CodingTaskResult } from '../src/domain/schema';
import { createWorkers } from '../src/worker';
import { historyShape } from './support/histories';
import { testNativeConnection, uniqueQueue, workflowBundle } from './support/temporal';
import { useRig, type Rig } from './support/weaver';
import { wholeFile } from './support/answers';

const ROOT = path.resolve(__dirname, '..');
/**
 * The registry's key, under a name and in a shape no generic "looks like a secret" rule catches
 * (no `_KEY` suffix, no `sk-` prefix): only the registry marks it as a key.
 */
const KEY_NAME = 'REGISTRY_CRED';
const KEY = 'zq7RegistryCred7Hq2ZpX9wL4mN0vB';
/** What a hostile task would like sent to its own server. */
const AWS = 'aws-Secret-Value-9f8E7d6C5b4A3z2Y1x';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;

// Everything the worker logs, at DEBUG (installed before the rig's first connection).
const logs: string[] = [];
Runtime.install({
  logger: new DefaultLogger('DEBUG', (e: LogEntry) => void logs.push(`${e.level} ${e.message} ${safeJson(e.meta)}`)),
});

// Test commands run with the worker process's env: the key is there too (and must not reach them).
process.env[KEY_NAME] = KEY;
process.env.AWS_SECRET_ACCESS_KEY = AWS;

let rig: Rig;
useRig((r) => (rig = r), {
  deps: { env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789', [KEY_NAME]: KEY, AWS_SECRET_ACCESS_KEY: AWS } },
});

beforeAll(() => {
  rig.providers.providers.reg = {
    baseURL: rig.model.url,
    apiKeyEnv: KEY_NAME,
    models: ['reg-model', 'reg-model-2'],
    pricing: { inputPerMTok: 1, outputPerMTok: 2 },
  };
});

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return String(v);
  }
}

/** Every string in a value, byte arrays (payloads) decoded as UTF-8 and as base64 text. */
function allText(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'), Buffer.from(v).toString('base64'));
  else if (Array.isArray(v)) for (const x of v) allText(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) allText(x, out);
  return out;
}

async function filesUnder(dir: string): Promise<{ file: string; text: string }[]> {
  const out: { file: string; text: string }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    out.push({ file, text: await readFile(file, 'latin1') });
  }
  return out;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Asserts that `secret` (or its base64) is nowhere in `where`. */
function expectNowhere(secret: string, where: Record<string, string>) {
  for (const [name, text] of Object.entries(where)) {
    const hit = text.includes(secret) || text.includes(b64(secret));
    expect({ where: name, contains: hit }).toEqual({ where: name, contains: false });
  }
}

const evilProvider = () => ({ id: 'evil', model: 'evil-model', baseURL: `${rig.model.url}`, apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' });

test('a task naming apiKeyEnv "AWS_SECRET_ACCESS_KEY" with its own baseURL is refused by startCodingTask, naming the field and the fix; nothing starts', async () => {
  const repo = await rig.newRepo();
  const workflowId = `reg-client-${uniqueQueue('x')}`;
  const err = await startCodingTask(rig.task(repo, [evilProvider() as never]), { client: rig.client, taskQueue: rig.taskQueue, workflowId }).then(
    () => new Error('started'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TaskInputError);
  expect((err as TaskInputError).issues).toEqual([
    "providers.0.apiKeyEnv: not accepted in a task input: name a provider id from the worker's registry (WEAVER_PROVIDERS) instead; the worker decides which key is sent where",
  ]);
  await expect(rig.client.workflow.getHandle(workflowId).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
  expect(rig.model.count('evil-model')).toBe(0);
});

test('the same task started raw (around the client) fails at workflow entry with a clear error; no provider call is made', async () => {
  const repo = await rig.newRepo();
  const handle = await rig.client.workflow.start('codingTask', {
    taskQueue: rig.taskQueue,
    workflowId: `reg-raw-${uniqueQueue('x')}`,
    args: [rig.task(repo, [evilProvider() as never])],
  });
  const err = await handle.result().then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as Error & { type?: string };
  expect(cause.type).toBe('InvalidTaskInput');
  expect(cause.message).toMatch(/providers\.0\.apiKeyEnv: not accepted in a task input: name a provider id from the worker's registry \(WEAVER_PROVIDERS\)/);
  expect(rig.model.count('evil-model')).toBe(0);
  // Nothing touched the world: no activity was even scheduled.
  const history = await handle.fetchHistory();
  expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
});

describe('refused at workflow entry by the worker registry (ProviderNotAllowed), before any call', () => {
  async function refusedRun(providers: unknown[]): Promise<string> {
    const repo = await rig.newRepo();
    const before = rig.model.count();
    // Through the client: these inputs are valid; only the worker's registry can refuse them.
    const handle = await rig.start(rig.task(repo, providers as never));
    const err = await handle.result().then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
    expect(cause.type).toBe('ProviderNotAllowed');
    expect(rig.model.count()).toBe(before);
    return cause.message;
  }

  test('a model not in the allowed list', async () => {
    expect(await refusedRun([{ id: 'reg', model: 'gpt-4o' }])).toMatch(/model "gpt-4o" is not allowed for provider "reg" \(allowed: reg-model, reg-model-2\)/);
  });

  test('an id the registry does not know, without an endpoint', async () => {
    expect(await refusedRun([{ id: 'anthropic', model: 'claude' }])).toMatch(/not in the worker's provider registry .*WEAVER_PROVIDERS/);
  });

  test("a registry id that carries a key, sent to the task's own baseURL", async () => {
    const msg = await refusedRun([{ id: 'reg', model: 'reg-model', baseURL: rig.model.url.replace('127.0.0.1', 'localhost') }]);
    expect(msg).toMatch(/providers\.0\.baseURL \(reg\): http:\/\/localhost:\d+\/v1 is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\); leave baseURL out and name a provider id/);
  });
});

test('a registry provider works end to end; its key reaches only its endpoint and appears nowhere in history, logs, result, events or artifacts', async () => {
  const repo = await rig.newRepo();
  // A hostile provider echoes the key it received into its answer's summary.
  rig.model.setDefault('reg-model', (req: RecordedRequest) => ({
    content: wholeFile('src/slugify.js', GOOD, `implemented slugify (your credential is ${String(req.headers.authorization).replace(/^Bearer /, '')})`),
    usage: { prompt_tokens: 1000, completion_tokens: 500 },
  }));
  const logsBefore = logs.length;
  const handle = await rig.start(
    rig.task(repo, [{ id: 'reg' }], {
      // The test command looks for the key in its env — even asking for it by name.
      testCommand: ['sh', '-c', `echo "cred=[$${KEY_NAME}] aws=[$AWS_SECRET_ACCESS_KEY]"; node --test test/`],
      sandbox: { env: [KEY_NAME] },
    }),
  );
  const result: CodingTaskResult = await handle.result();
  expect(`${result.status}: ${result.reason}`).toMatch(/^succeeded: /);

  // The registry's default model, its endpoint, its key as the Bearer token.
  const [req] = rig.model.requestsFor('reg-model');
  expect(req.headers.authorization).toBe(`Bearer ${KEY}`);
  expect(result.usage.byProvider.reg).toMatchObject({ calls: 1, tokensIn: 1000, tokensOut: 500, costUsd: 0.002 });
  // The test command saw neither the registry's key nor the AWS secret.
  expect(result.attempts[0].tests?.tail).toContain('cred=[] aws=[]');

  const history = await handle.fetchHistory();
  const historyText = allText(history).join('\n');
  // The resolution is in the history (the registry's settings, recorded once), the key is not.
  expect(historyText).toContain('resolveProviders');
  expect(historyShape(history).patches).toContain('provider-registry');
  const artifacts = await filesUnder(rig.artifactDir);
  expect(artifacts.length).toBeGreaterThan(3);
  const events = artifacts.filter((a) => a.text.includes('"strategy"'));
  expect(events.length).toBeGreaterThan(0);
  const where: Record<string, string> = {
    history: historyText,
    result: JSON.stringify(result),
    logs: logs.slice(logsBefore).join('\n'),
    ...Object.fromEntries(artifacts.map((a) => [a.file, a.text])),
  };
  // The scan looks at real material: the worker logged this run, the summary echoed the header.
  expect(where.logs).toContain(result.workflowId);
  expectNowhere(KEY, where);
  expectNowhere(AWS, where);
  // The echoed key was redacted where the answer left it (summary, raw response).
  expect(result.attempts[0].summary).toContain('[REDACTED]');
});

test('a model from the allowed list other than the default is used as asked', async () => {
  const repo = await rig.newRepo();
  rig.model.script('reg-model-2', [{ content: wholeFile('src/slugify.js', GOOD, 'implemented slugify') }]);
  const result = await rig.run(rig.task(repo, [{ id: 'reg', model: 'reg-model-2' }]));
  expect(`${result.status}: ${result.reason}`).toMatch(/^succeeded: /);
  expect(rig.model.requestsFor('reg-model-2')[0].headers.authorization).toBe(`Bearer ${KEY}`);
});

describe('a registry file with a bad field fails the worker start, naming the file and the field', () => {
  let dir: string;
  let bad: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'weaver-bad-registry-'));
    bad = path.join(dir, 'providers.yaml');
    await writeFile(bad, `providers:\n  reg:\n    baseURL: ${rig.model.url}\n    apiKeyEnv: ${KEY_NAME}\n    models: [reg-model]\n    contextWindow: lots\n`);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('createWorkers (WEAVER_PROVIDERS read from the env)', async () => {
    const saved = process.env.WEAVER_PROVIDERS;
    process.env.WEAVER_PROVIDERS = bad;
    try {
      const err = await createWorkers({
        connection: await testNativeConnection(),
        taskQueue: uniqueQueue('bad-registry'),
        workflowBundle: workflowBundle(),
        deps: { artifactDir: path.join(dir, 'a'), workspaceRoot: path.join(dir, 'w') },
      }).then(
        () => new Error('started'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ProviderRegistryError);
      expect((err as Error).message).toContain(`WEAVER_PROVIDERS=${bad}`);
      expect((err as Error).message).toMatch(/providers\.reg\.contextWindow: /);
    } finally {
      if (saved === undefined) delete process.env.WEAVER_PROVIDERS;
      else process.env.WEAVER_PROVIDERS = saved;
    }
  });

  test('the worker process (`tsx src/worker.ts`) exits non-zero with the field named', async () => {
    const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['src/worker.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      // An address nobody listens on: the registry is checked before connecting.
      env: { ...process.env, WEAVER_PROVIDERS: bad, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(out).toContain(`invalid provider registry WEAVER_PROVIDERS=${bad}`);
    expect(out).toMatch(/providers\.reg\.contextWindow: /);
    expect(out).not.toContain('weaver worker:');
  }, 60_000);
});
