// The worker's Prometheus endpoint (WEAVER_METRICS_ADDRESS) after a real run: Weaver's own
// metrics (provider calls by outcome, tokens with the cached part apart, cost, latency, task
// outcomes, attempts, step durations) agree with the run's `usage`, beside the SDK's own; and
// the same run's OpenTelemetry spans (WEAVER_OTEL_ENDPOINT) at a local OTLP/HTTP receiver.
// A worker PROCESS: Runtime.install (where the exporter is set) runs once per process. It bundles
// its workflows from source (no prebuilt bundle), so the tracing interceptors are in the bundle.
import { rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import { startCodingTask } from '../src/client';
import { createExampleRepo, exampleTask } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import type { CodingTaskResult, ProviderSpec } from '../src/domain/schema';
import { limitLabel, stepKindLabel } from '../src/domain/metrics';
import { metricsAddress, telemetryCheck, tracesUrl } from '../src/telemetry';
import { wholeFile } from './support/answers';
import { killStartedWorkers, startWorkerProcess, waitUntil, type WorkerProcess } from './support/processes';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { closeTestConnections, testAddress, testClient, uniqueQueue } from './support/temporal';

const MODEL = 'metrics-model';
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const WRONG = `function slugify(t) {\n  return String(t);\n}\nmodule.exports = { slugify };\n`;
// Cached input reported by the provider: booked (and counted) at the cached price.
const USAGE = { prompt_tokens: 1200, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 1000 } };
const PRICING = { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3 };

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format, the sample lines only. */
function parseScrape(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(l);
      if (!m) throw new Error(`not a sample line: ${l}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
      return { name: m[1], labels, value: Number(m[3]) };
    });
}

const sum = (samples: Sample[], name: string, where: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  killStartedWorkers();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closeTestConnections();
});

interface Span {
  name: string;
  traceId: string;
}

/** An OTLP/HTTP receiver (JSON, as the exporter sends it): the spans it was sent. */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; server: Server }> {
  const spans: Span[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const doc = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] };
        for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans.map((x) => ({ name: x.name, traceId: x.traceId })));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, server };
}

let worker: WorkerProcess;
let address: string;
let otlp: Awaited<ReturnType<typeof otlpReceiver>>;
let model: ScriptedModelServer;
let result: CodingTaskResult;
let workflowId: string;

beforeAll(async () => {
  const tmp = sandboxableTempDir('weaver-metrics-');
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  model = await ScriptedModelServer.start();
  cleanups.push(() => model.close());
  otlp = await otlpReceiver();
  cleanups.push(() => new Promise((r) => otlp.server.close(() => r())));
  const registryFile = path.join(tmp, 'providers.json');
  await writeFile(registryFile, JSON.stringify({ providers: { [MODEL]: { baseURL: model.url, apiKeyEnv: 'TEST_API_KEY', models: [MODEL], pricing: PRICING } } }));
  const taskQueue = uniqueQueue('metrics');
  address = `127.0.0.1:${await freePort()}`;
  worker = await startWorkerProcess(
    {
      TEST_API_KEY: 'sk-test-secret-key-123456789',
      WEAVER_PROVIDERS: registryFile,
      TEMPORAL_ADDRESS: testAddress(),
      TEMPORAL_NAMESPACE: 'default',
      WEAVER_TASK_QUEUE: taskQueue,
      WEAVER_WORKSPACE_ROOT: path.join(tmp, 'workspaces'),
      WEAVER_ARTIFACT_DIR: path.join(tmp, 'artifacts'),
      WEAVER_REPO_ROOTS: tmp,
      WEAVER_RETRY_DELAY_SCALE: '0.01',
      WEAVER_WORKFLOW_BUNDLE: '',
      WEAVER_SANDBOX: 'off',
      WEAVER_LOG_LEVEL: 'WARN',
      WEAVER_METRICS_ADDRESS: address,
      WEAVER_OTEL_ENDPOINT: otlp.url,
      // Spans leave in batches: every 200 ms here rather than the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    },
    120_000,
  );

  // A rate limit, a wrong answer (its tests fail: a second attempt), then the right one.
  model.script(MODEL, [
    { status: 429, headers: { 'retry-after': '0' } },
    { content: wholeFile('src/slugify.js', WRONG, 'first try'), usage: USAGE },
    { content: wholeFile('src/slugify.js', GOOD, 'slugify'), usage: USAGE },
  ]);
  const repo = await createExampleRepo(path.join(tmp, 'repo'));
  const provider: ProviderSpec = { id: MODEL, model: MODEL, maxTokens: 10_000 };
  const handle = await startCodingTask(
    { ...exampleTask(repo, provider), strategy: { mode: 'sequential', retry: { maxTries: 3, initialIntervalMs: 10, maxIntervalMs: 50 } } },
    { client: await testClient(), taskQueue, workflowId: `metrics-${taskQueue}` },
  );
  workflowId = handle.workflowId;
  result = await handle.result();
}, 240_000);

test('after a run, /metrics shows provider calls by outcome, tokens and cost matching the usage, task outcomes, and the SDK metrics', async () => {
  expect(worker.output()).toContain(`Prometheus metrics at http://${address}/metrics`);
  expect(result.status).toBe('succeeded');
  expect(result.attempts).toHaveLength(2);

  const text = await (await fetch(`http://${address}/metrics`)).text();
  process.stderr.write(`[metrics] scrape after the run:\n${text.split('\n').filter((l) => /^(weaver_|temporal_workflow_completed)/.test(l)).join('\n')}\n`);
  const samples = parseScrape(text);
  process.stderr.write(`[metrics] the SDK's series: ${[...new Set(samples.filter((s) => s.name.startsWith('temporal_')).map((s) => s.name))].join(' ')}\n`);
  const p = { provider: MODEL, model: MODEL };

  // Calls: every request the server received, by outcome; the usage counts the same calls.
  expect(model.count(MODEL)).toBe(3);
  expect(sum(samples, 'weaver_provider_calls_total', { ...p, outcome: 'ok' })).toBe(2);
  expect(sum(samples, 'weaver_provider_calls_total', { ...p, outcome: 'rate_limit' })).toBe(1);
  expect(sum(samples, 'weaver_provider_calls_total', p)).toBe(result.usage.calls);

  // Tokens: input + cached = the usage's tokensIn; cached apart; output = tokensOut.
  const input = sum(samples, 'weaver_provider_tokens_total', { ...p, kind: 'input' });
  const cached = sum(samples, 'weaver_provider_tokens_total', { ...p, kind: 'cached' });
  expect(cached).toBe(2 * USAGE.prompt_tokens_details.cached_tokens);
  expect(cached).toBe(result.usage.tokensCached);
  expect(input + cached).toBe(result.usage.tokensIn);
  expect(sum(samples, 'weaver_provider_tokens_total', { ...p, kind: 'output' })).toBe(result.usage.tokensOut);

  // Cost: the histogram's sum is the spend, at the cached price for the cached part.
  expect(result.usage.costUsd).toBeGreaterThan(0);
  expect(sum(samples, 'weaver_provider_cost_usd_sum', p)).toBeCloseTo(result.usage.costUsd, 9);
  expect(sum(samples, 'weaver_provider_cost_usd_count', p)).toBe(2);
  expect(sum(samples, 'weaver_provider_call_latency_ms_count', p)).toBe(3);

  // The task: one succeeded root, two attempts; its test runs timed (one failed, one passed).
  expect(sum(samples, 'weaver_tasks_total', { status: 'succeeded', level: 'root' })).toBe(1);
  expect(sum(samples, 'weaver_task_attempts_sum', { status: 'succeeded' })).toBe(2);
  expect(sum(samples, 'weaver_step_duration_ms_count', { kind: 'test', status: 'failed' })).toBe(1);
  expect(sum(samples, 'weaver_step_duration_ms_count', { kind: 'test', status: 'passed' })).toBe(1);

  // Labels stay bounded: no workflow id anywhere in Weaver's series.
  expect(samples.filter((s) => s.name.startsWith('weaver_') && Object.values(s.labels).some((v) => v.includes(workflowId)))).toEqual([]);

  // The SDK's own metrics, on the same endpoint.
  expect(sum(samples, 'temporal_workflow_completed', { workflow_type: 'codingTask' })).toBeGreaterThanOrEqual(1);
  expect(samples.some((s) => s.name === 'temporal_activity_execution_latency_count' && s.labels.activity_type === 'generateChange')).toBe(true);
});

test('with WEAVER_OTEL_ENDPOINT, the run is traced: a workflow span and its activities\' spans in one trace', async () => {
  expect(worker.output()).toContain(`OpenTelemetry traces to ${otlp.url}/v1/traces`);
  await waitUntil('the run\'s spans at the receiver', () => otlp.spans.some((x) => x.name === 'RunActivity:generateChange') && otlp.spans.some((x) => x.name === 'RunWorkflow:codingTask'), 30_000);
  const run = otlp.spans.find((x) => x.name === 'RunWorkflow:codingTask')!;
  const calls = otlp.spans.filter((x) => x.name === 'RunActivity:generateChange');
  // One span per provider request the activity made (3), in the workflow's trace.
  expect(calls).toHaveLength(3);
  expect(new Set(calls.map((x) => x.traceId))).toEqual(new Set([run.traceId]));
  expect(otlp.spans.some((x) => x.name === 'RunActivity:applyChangeAndCheck' && x.traceId === run.traceId)).toBe(true);
});

test('metric labels and the address setting stay bounded and checked', () => {
  expect(limitLabel('killed: memory limit 2 GiB (1 process(es) ended by the OOM killer)', false)).toBe('memory');
  expect(limitLabel('killed: file size limit 64 MiB', false)).toBe('file_size');
  expect(limitLabel('process limit 256 reached: new processes were refused', false)).toBe('processes');
  expect(limitLabel(undefined, true)).toBe('timeout');
  expect(limitLabel(undefined, false)).toBeUndefined();
  expect(stepKindLabel('lint-log')).toBe('lint');
  expect(stepKindLabel('my-own-step-log')).toBe('custom');
  expect(metricsAddress({ WEAVER_METRICS_ADDRESS: '0.0.0.0:9464' })).toBe('0.0.0.0:9464');
  expect(metricsAddress({})).toBeUndefined();
  expect(() => metricsAddress({ WEAVER_METRICS_ADDRESS: '9464' })).toThrow(/WEAVER_METRICS_ADDRESS must be host:port/);
  // Traces: off unless an endpoint is set; Weaver's variable first, else the OTel standard ones.
  expect(tracesUrl({})).toBeUndefined();
  expect(tracesUrl({ WEAVER_OTEL_ENDPOINT: 'http://collector:4318/' })).toBe('http://collector:4318/v1/traces');
  expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe('http://c:4318/v1/traces');
  expect(tracesUrl({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/traces' })).toBe('http://c:4318/traces');
  expect(() => tracesUrl({ WEAVER_OTEL_ENDPOINT: 'collector:4318' })).toThrow(/WEAVER_OTEL_ENDPOINT must be an http\(s\) URL/);
});

test("weaver doctor's telemetry check: off passes; the running worker's metrics port fails as taken, naming it; a free one passes", async () => {
  expect(await telemetryCheck({})).toMatchObject({ ok: true, detail: expect.stringContaining('no metrics endpoint') });
  const taken = await telemetryCheck({ WEAVER_METRICS_ADDRESS: address });
  expect(taken).toMatchObject({ ok: false, detail: `${address} cannot be bound here (EADDRINUSE)` });
  expect(taken.fix).toMatch(/its own WEAVER_METRICS_ADDRESS port/);
  const free = `127.0.0.1:${await freePort()}`;
  expect(await telemetryCheck({ WEAVER_METRICS_ADDRESS: free, WEAVER_OTEL_ENDPOINT: 'http://collector:4318' })).toEqual({
    ok: true,
    detail: `Prometheus metrics at http://${free}/metrics (WEAVER_METRICS_ADDRESS); OpenTelemetry traces to http://collector:4318/v1/traces`,
  });
  expect(await telemetryCheck({ WEAVER_OTEL_ENDPOINT: 'collector' })).toMatchObject({ ok: false, detail: expect.stringContaining('WEAVER_OTEL_ENDPOINT must be') });
});
