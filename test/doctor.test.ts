// `weaver doctor` and the CLI's one-line errors, through the real CLI as a process
// (bin/weaver.mjs): against the test dev server, the scripted OpenAI-compatible server and
// temp directories; no worker is needed.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { msToTs } from '@temporalio/common/lib/time';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import type { Check } from '../src/doctor';
import { explain, run, WEAVER_BIN } from './support/processes';
import { useS3Server, type S3Server } from './support/s3';
import { testAddress, testClient } from './support/temporal';

const KEY_VALUE = 'sk-doctor-secret-value-0123456789';
let model: ScriptedModelServer;
let tmp: string;

beforeAll(async () => {
  model = await ScriptedModelServer.start();
  model.setDefault('doctor-model', { content: 'ok' });
  tmp = sandboxableTempDir('weaver-doctor-');
});
afterAll(() => model?.close());

/** A registry file with the scripted server under the given key variable. */
async function registry(name: string, providers: Record<string, unknown>): Promise<string> {
  const file = path.join(tmp, `${name}.json`);
  await writeFile(file, JSON.stringify({ providers }));
  return file;
}

const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  TEMPORAL_ADDRESS: testAddress(),
  TEMPORAL_NAMESPACE: 'default',
  WEAVER_WORKSPACE_ROOT: path.join(tmp, 'workspaces'),
  WEAVER_ARTIFACT_DIR: path.join(tmp, 'artifacts'),
  WEAVER_CACHE_DIR: path.join(tmp, 'cache'),
  // What the test machine has: bwrap when it works, else unconfined (either passes).
  WEAVER_SANDBOX: 'auto',
  ...extra,
});
const weaver = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [WEAVER_BIN, ...args], env(extra));

const CHECK_NAMES = ['temporal', 'search attributes', 'provider scripted', 'git', 'sandbox', 'workspace root', 'artifact store', 'cache dir', 'disk', 'caches', 'telemetry'];
const STACK = /^\s+at /m;

describe('weaver doctor', () => {
  test('against the dev server and a reachable provider with its key: every check passes, exit 0', async () => {
    const file = await registry('good', { scripted: { baseURL: model.url, apiKeyEnv: 'DOCTOR_KEY', models: ['doctor-model'] } });
    const r = await weaver(['doctor'], { WEAVER_PROVIDERS: file, DOCTOR_KEY: KEY_VALUE });
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 0 });
    const lines = r.stdout.trim().split('\n');
    for (const name of CHECK_NAMES) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^✓ ${name}: `)));
    expect(lines).toContain(`✓ temporal: ${testAddress()}, namespace "default"`);
    expect(lines).toContainEqual(expect.stringMatching(/^✓ search attributes: WeaverStatus, WeaverPhase, WeaverRepo, WeaverCostUsd, WeaverAttempt$/));
    // The scripted server lists the one model it has a default for: the check really asked it.
    expect(lines).toContain(`✓ provider scripted: ${model.url} answers GET /models (1 model(s)), key DOCTOR_KEY set`);
    expect(lines[lines.length - 1]).toBe(`all ${CHECK_NAMES.length} checks passed`);
    expect(r.stdout).not.toContain(KEY_VALUE);

    const j = await weaver(['doctor', '--json'], { WEAVER_PROVIDERS: file, DOCTOR_KEY: KEY_VALUE });
    expect(j.code).toBe(0);
    const checks = JSON.parse(j.stdout) as Check[];
    expect(checks.map((c) => c.name)).toEqual(CHECK_NAMES);
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  test("a rate-limited provider: its queue's partitions are checked — one on the test dev server, so its tightest bound", async () => {
    const file = await registry('limited', { scripted: { baseURL: model.url, apiKeyEnv: 'DOCTOR_KEY', models: ['doctor-model'], rateLimit: { requestsPerSecond: 2 } } });
    const r = await weaver(['doctor'], { WEAVER_PROVIDERS: file, DOCTOR_KEY: KEY_VALUE });
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 0 });
    expect(r.stdout.trim().split('\n')).toContain('✓ rate limit scripted: queue weaver-provider-scripted has 1 partition: at most 5 calls in any second at 2/s');
  });

  test('a provider whose key is not set, and one that does not answer: each fails naming the fix, the key by NAME; exit 1', async () => {
    const file = await registry('bad', {
      scripted: { baseURL: model.url, apiKeyEnv: 'DOCTOR_KEY', models: ['doctor-model'] },
      nokey: { baseURL: model.url, apiKeyEnv: 'DOCTOR_MISSING_KEY', models: ['doctor-model'] },
      // Port 1 on loopback: nothing listens there.
      down: { baseURL: 'http://127.0.0.1:1/v1', models: ['m'] },
    });
    const r = await weaver(['doctor'], { WEAVER_PROVIDERS: file, DOCTOR_KEY: KEY_VALUE, DOCTOR_MISSING_KEY: '' });
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 1 });
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain(`✗ provider nokey: ${model.url}: key DOCTOR_MISSING_KEY is not set — fix: set DOCTOR_MISSING_KEY in the worker's environment`);
    expect(lines).toContainEqual(expect.stringMatching(/^✗ provider down: http:\/\/127\.0\.0\.1:1\/v1: GET \/models failed: .* — fix: check the endpoint is up/));
    expect(lines).toContainEqual(expect.stringMatching(/^✓ provider scripted: /));
    expect(lines[lines.length - 1]).toBe(`2 of ${CHECK_NAMES.length + 2} checks failed`);
    expect(r.stdout).not.toContain(KEY_VALUE);
  });

  test('the cache dir (WEAVER_CACHE_DIR): writable passes and the caches are measured against WEAVER_CACHE_MAX_MB; one that cannot be made fails naming the setting, exit 1', async () => {
    const file = await registry('cache', { scripted: { baseURL: model.url, models: ['doctor-model'] } });
    const cacheDir = path.join(tmp, 'cache-measured');
    // 300 KiB of toolchain cache and a 1 MiB cap: measured, within it.
    const toolchain = path.join(tmp, 'workspaces', '.cache', 'toolchains', '0123456789abcdef', 'go-build');
    await mkdir(toolchain, { recursive: true });
    await writeFile(path.join(toolchain, 'obj'), Buffer.alloc(300 * 1024, 1));
    const ok = await weaver(['doctor'], { WEAVER_PROVIDERS: file, WEAVER_CACHE_DIR: cacheDir, WEAVER_CACHE_MAX_MB: '1' });
    expect({ code: ok.code, why: explain(ok) }).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain(`✓ cache dir: ${cacheDir} is writable`);
    expect(ok.stdout).toMatch(/^✓ caches: 3\d\d KiB of the 1 MiB cap \(WEAVER_CACHE_MAX_MB\): tag cache 0 bytes, toolchain caches 3\d\d KiB, artifact cache 0 bytes$/m);
    const over = await weaver(['doctor'], { WEAVER_PROVIDERS: file, WEAVER_CACHE_DIR: cacheDir, WEAVER_CACHE_MAX_MB: '0.1' });
    expect(over.stdout).toMatch(/^✓ caches: .* — over the cap: the next `weaver gc`/m);

    // Under a regular file: no user (root included) can make a directory there.
    const blocker = path.join(tmp, 'not-a-dir');
    await writeFile(blocker, 'a file\n');
    const bad = await weaver(['doctor'], { WEAVER_PROVIDERS: file, WEAVER_CACHE_DIR: path.join(blocker, 'cache') });
    expect({ code: bad.code, why: explain(bad) }).toMatchObject({ code: 1 });
    expect(bad.stdout).toMatch(new RegExp(`^✗ cache dir: ${blocker}/cache is not writable: .* — fix: make it writable by this user, or point the setting elsewhere \\(WEAVER_CACHE_DIR\\)$`, 'm'));
    expect(bad.stdout.trim().split('\n').pop()).toMatch(/^1 of \d+ checks failed$/);
  });

  test('with a wrong address: the Temporal check fails naming the address, exit 1', async () => {
    const wrong = '127.0.0.1:1';
    const file = await registry('good2', { scripted: { baseURL: model.url, models: ['doctor-model'] } });
    const r = await weaver(['doctor'], { TEMPORAL_ADDRESS: wrong, WEAVER_CONNECT_TIMEOUT: '2s', WEAVER_PROVIDERS: file });
    expect({ code: r.code, why: explain(r) }).toMatchObject({ code: 1 });
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^✗ temporal: not reachable at ${wrong} .* — fix: .*TEMPORAL_ADDRESS`)));
    expect(lines).toContain(`✗ search attributes: not checked: no server at ${wrong} — fix: fix the temporal check first`);
    // The checks that need no server still ran.
    expect(lines).toContainEqual(expect.stringMatching(/^✓ git: git version /));
  });

  test('a namespace that does not exist fails the Temporal check naming it; a fresh one lacks the search attributes, each named', async () => {
    const file = await registry('good3', { scripted: { baseURL: model.url, models: ['doctor-model'] } });
    const absent = `doctor-absent-${process.pid}-${Date.now().toString(36)}`;
    const a = await weaver(['doctor'], { TEMPORAL_NAMESPACE: absent, WEAVER_PROVIDERS: file });
    expect({ code: a.code, why: explain(a) }).toMatchObject({ code: 1 });
    expect(a.stdout).toMatch(new RegExp(`^✗ temporal: ${testAddress()} answers, but namespace "${absent}" is not there .* — fix: temporal operator namespace create --namespace ${absent}`, 'm'));

    // A namespace of its own (the dev server registers Weaver's attributes in "default" only).
    const fresh = `doctor-fresh-${process.pid}-${Date.now().toString(36)}`;
    const client = await testClient();
    await client.workflowService.registerNamespace({ namespace: fresh, workflowExecutionRetentionPeriod: msToTs('1 day') });
    let f = await weaver(['doctor'], { TEMPORAL_NAMESPACE: fresh, WEAVER_PROVIDERS: file });
    // A new namespace takes a moment to be served by the frontend (its cache refreshes).
    for (let i = 0; i < 10 && f.stdout.includes('is not there'); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      f = await weaver(['doctor'], { TEMPORAL_NAMESPACE: fresh, WEAVER_PROVIDERS: file });
    }
    expect({ code: f.code, why: explain(f) }).toMatchObject({ code: 1 });
    expect(f.stdout).toContain(`✓ temporal: ${testAddress()}, namespace "${fresh}"`);
    expect(f.stdout).toContain(
      `✗ search attributes: missing: WeaverStatus, WeaverPhase, WeaverRepo, WeaverCostUsd, WeaverAttempt — fix: start a worker (it registers them) or run temporal operator search-attribute create --namespace ${fresh} --name WeaverStatus --type Keyword`,
    );
  });
});

describe('weaver doctor with an S3 artifact store (WEAVER_ARTIFACTS)', () => {
  let s3: S3Server;
  useS3Server((s) => (s3 = s));

  test("the store's own check(): a reachable bucket passes, an endpoint nobody answers fails naming the settings", async () => {
    const file = await registry('s3', { scripted: { baseURL: model.url, models: ['doctor-model'] } });
    const store = 's3://doctor-artifacts/weaver';
    const ok = await weaver(['doctor'], { ...s3.env, WEAVER_ARTIFACTS: store, WEAVER_PROVIDERS: file });
    expect({ code: ok.code, why: explain(ok) }).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(new RegExp(`^✓ artifact store: .*doctor-artifacts.* reachable \\(put, get and delete work\\); cache ${path.join(tmp, 'artifacts')} writable$`, 'm'));
    // The probe cleaned up after itself: nothing left under the prefix's doctor/ keys.
    const left = await s3.client.send(new ListObjectsV2Command({ Bucket: 'doctor-artifacts', Prefix: 'weaver/doctor/' }));
    expect(left.KeyCount ?? 0).toBe(0);

    const down = await weaver(['doctor'], { ...s3.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:1', WEAVER_ARTIFACTS: store, WEAVER_PROVIDERS: file });
    expect({ code: down.code, why: explain(down) }).toMatchObject({ code: 1 });
    expect(down.stdout).toMatch(/^✗ artifact store: .* — fix: check WEAVER_ARTIFACTS and the AWS_\* variables/m);
  });
});

describe('CLI errors: one line, non-zero exit, the stack only with --debug', () => {
  test('status of a workflow that does not exist: one line, exit 1', async () => {
    const r = await weaver(['status', 'no-such-id']);
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 1, stderr: 'no such workflow: no-such-id\n', stdout: '' });
  });

  test('no server at the address: one line naming it, exit 1; --debug adds the stack', async () => {
    const wrong = '127.0.0.1:1';
    const r = await weaver(['status', 'no-such-id'], { TEMPORAL_ADDRESS: wrong, WEAVER_CONNECT_TIMEOUT: '2s' });
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr.trim().split('\n')).toEqual([`Temporal is not reachable at ${wrong}: start the server or set TEMPORAL_ADDRESS (WEAVER_CONNECT_TIMEOUT: how long to wait)`]);

    const d = await weaver(['status', 'no-such-id', '--debug'], { TEMPORAL_ADDRESS: wrong, WEAVER_CONNECT_TIMEOUT: '2s' });
    expect(d.code).toBe(1);
    expect(d.stderr.split('\n')[0]).toBe(`Temporal is not reachable at ${wrong}: start the server or set TEMPORAL_ADDRESS (WEAVER_CONNECT_TIMEOUT: how long to wait)`);
    expect(d.stderr).toMatch(STACK);
    expect(d.stderr).toContain('Failed to connect before the deadline');
  });

  test('a bad input file: the path and the position (JSON and YAML), exit 2, no stack', async () => {
    const json = path.join(tmp, 'bad.json');
    await writeFile(json, '{\n  "repo": "x",\n  oops\n}\n');
    const j = await weaver(['run', json]);
    expect({ code: j.code, stdout: j.stdout }).toEqual({ code: 2, stdout: '' });
    expect(j.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^task file ${json} is not valid JSON: .* \\(line 3, column 3\\)$`))]);

    const yaml = path.join(tmp, 'bad.yaml');
    await writeFile(yaml, 'repo: x\ntask:\n  title: [unclosed\n');
    const y = await weaver(['batch', yaml]);
    expect({ code: y.code, stdout: y.stdout }).toEqual({ code: 2, stdout: '' });
    expect(y.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^batch file ${yaml} is not valid YAML: .* \\(line \\d+, column \\d+\\)$`))]);
    expect(y.stderr).not.toMatch(STACK);

    const missing = path.join(tmp, 'nowhere.json');
    const m = await weaver(['run', missing]);
    expect({ code: m.code, stderr: m.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(new RegExp(`^cannot read task file ${missing}: ENOENT`)) });
  });

  test('a refused task names the field in one line, exit 2', async () => {
    const file = path.join(tmp, 'refused.yaml');
    await writeFile(file, 'repo: /tmp/x\ntask:\n  title: t\n  description: d\nproviders: []\n');
    const r = await weaver(['run', file]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^task refused: providers: /)]);
  });
});
