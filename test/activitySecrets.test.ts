// Design rule 6 at the activity layer, with real processes and real HTTP: provider keys named
// by the worker's registry or by secretEnvNames (whatever their name looks like) never reach a test or
// setup command nor any stored log; a provider with its own baseURL never receives a key of the worker's (nor its
// OPENAI_API_KEY); every call is bounded by max_tokens.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { ActivityDeps, GenerateChangeRequest, GenerateChangeResult, RunTestsResult, WorkspaceHandle } from '../src/activities/types';
import { createExampleRepo } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import { DEFAULT_RESERVED_OUTPUT_TOKENS } from '../src/domain/ledger';
import { REDACTED } from '../src/domain/redact';
import type { ProviderRegistry } from '../src/domain/registry';
import { SandboxPolicySchema, type ProviderSpec } from '../src/domain/schema';
import { wholeFile } from './support/answers';

// Names with no secret-looking suffix: only secretEnvNames / the registry's apiKeyEnv mark them as keys.
const CRED_NAME = 'MY_LLM_CRED';
const CRED = 'cred-value-Zq9xW2pL7vK4mN';
const ECHO_NAME = 'WEAVER_TEST_PLAIN_COPY';

let base: string;
let deps: ActivityDeps;
const saved: Record<string, string | undefined> = {};

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-secrets-'));
  for (const n of [CRED_NAME, ECHO_NAME]) saved[n] = process.env[n];
  process.env[CRED_NAME] = CRED;
  // The same value under an innocent name: it reaches the command, so only redaction can hide it.
  process.env[ECHO_NAME] = CRED;
  deps = {
    artifactDir: path.join(base, 'artifacts'),
    workspaceRoot: path.join(base, 'workspaces'),
    workspaceQueue: 'ws-queue',
    env: process.env,
    heartbeatMs: 50,
    repoRoots: [base],
  };
});

afterEach(() => {
  for (const [n, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[n];
    else process.env[n] = v;
  }
  rmSync(base, { recursive: true, force: true });
});

const mockEnv = () => new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });

/** Every stored artifact's content, for "the secret is nowhere" checks. */
function allArtifacts(dir: string): string {
  let out = '';
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out += `${readFileSync(p, 'utf8')}\n`;
    }
  };
  walk(dir);
  return out;
}

// Only env vars the task lets in by name reach a command; this one holds the key's value under a plain name.
const LET_IN = SandboxPolicySchema.parse({ env: [ECHO_NAME] });
const PRINT = `echo "scrubbed=[$${CRED_NAME}]"; echo "echoed=[$${ECHO_NAME}]"`;

describe('commands get no provider key named in secretEnvNames, and their output is redacted', () => {
  test('runTests: the tail and the stored test log', async () => {
    const repo = await createExampleRepo(path.join(base, 'origin'));
    const acts = createActivities(deps);
    const env = mockEnv();
    const workspace = (await env.run(acts.prepareWorkspace, { workflowId: 'wf-tests', repo, baseBranch: 'main', branch: 'weaver/t' })) as WorkspaceHandle;
    const r = (await env.run(acts.runTests, { workspace, command: PRINT, timeoutSec: 30, secretEnvNames: [CRED_NAME], sandbox: LET_IN })) as RunTestsResult;
    expect(r.passed).toBe(true);
    expect(r.tail).toContain('scrubbed=[]');
    expect(r.tail).toContain(`echoed=[${REDACTED}]`);
    expect(r.tail).not.toContain(CRED);
    const log = await new LocalArtifactStore(deps.artifactDir).read(r.log!);
    expect(log).toContain('scrubbed=[]');
    expect(log).toContain(`echoed=[${REDACTED}]`);
    expect(allArtifacts(deps.artifactDir)).not.toContain(CRED);
  });

  test('setup command: scrubbed env; the failure message and the stored setup log are redacted', async () => {
    const repo = await createExampleRepo(path.join(base, 'origin'));
    const err = await mockEnv()
      .run(createActivities(deps).prepareWorkspace, {
        workflowId: 'wf-setup',
        repo,
        baseBranch: 'main',
        branch: 'weaver/s',
        setupCommand: `${PRINT}; exit 3`,
        secretEnvNames: [CRED_NAME],
        sandbox: LET_IN,
      })
      .then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'SetupFailed' });
    const message = (err as Error).message;
    expect(message).toContain('exited with 3');
    expect(message).toContain('scrubbed=[]');
    expect(message).toContain(`echoed=[${REDACTED}]`);
    expect(message).not.toContain(CRED);
    const stored = allArtifacts(deps.artifactDir);
    expect(stored).toContain('scrubbed=[]');
    expect(stored).not.toContain(CRED);
  });
});

describe('generateChange against the scripted model server', () => {
  let server: ScriptedModelServer;
  const WORKER_OPENAI_KEY = 'sk-worker-openai-key-must-not-travel-0123456789';

  beforeAll(async () => {
    server = await ScriptedModelServer.start();
  });
  afterAll(async () => {
    await server.close();
  });

  async function call(provider: ProviderSpec, workerEnv: Record<string, string | undefined>, more: Partial<ActivityDeps> = {}): Promise<GenerateChangeResult> {
    const d = { ...deps, env: workerEnv, ...more };
    const prompt = await new LocalArtifactStore(d.artifactDir).putJson('prompt', { system: 'sys', user: 'do the thing' });
    const req: GenerateChangeRequest = { workflowId: 'wf-llm', attempt: 1, provider, prompt, role: 'primary' };
    return (await mockEnv().run(createActivities(d).generateChange, req)) as GenerateChangeResult;
  }
  const change = (summary: string) => ({ content: wholeFile('a.txt', 'hi\n', summary) });

  test('an inline endpoint (a baseURL, no registry entry) is refused unless WEAVER_INLINE_ENDPOINTS allows it; allowed, it gets no key of the worker (no Authorization at all); max_tokens defaults to the reservation', async () => {
    const before = server.count();
    const refused = await call({ id: 'local', model: 'local-model', baseURL: server.url }, { OPENAI_API_KEY: WORKER_OPENAI_KEY }).then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ type: 'ProviderNotAllowed', nonRetryable: true });
    expect(server.count()).toBe(before);
    server.script('local-model', [change('local answer')]);
    const r = await call({ id: 'local', model: 'local-model', baseURL: server.url }, { OPENAI_API_KEY: WORKER_OPENAI_KEY }, { inlineEndpoints: ['http://127.0.0.1:*'] });
    expect(r.outcome).toBe('ok');
    const [req] = server.requestsFor('local-model');
    expect(req.headers.authorization).toBeUndefined();
    expect(JSON.stringify(req.headers)).not.toContain(WORKER_OPENAI_KEY);
    expect(req.body.max_tokens).toBe(DEFAULT_RESERVED_OUTPUT_TOKENS);
    expect(DEFAULT_RESERVED_OUTPUT_TOKENS).toBe(4096);
  });

  const keyedRegistry = (): ProviderRegistry => ({ providers: { keyed: { baseURL: server.url, apiKeyEnv: CRED_NAME, models: ['keyed-model'] } } });

  test("a registry provider's key (any env var name) is sent to the registry's endpoint, maxTokens is honoured, and the key is redacted from what the answer leaves behind", async () => {
    // The answer echoes the key: in the summary (history) and in the raw response (artifact).
    server.script('keyed-model', [change(`I saw ${CRED} in the env`)]);
    const r = await call({ id: 'keyed', model: 'keyed-model', maxTokens: 321 }, { OPENAI_API_KEY: WORKER_OPENAI_KEY, [CRED_NAME]: CRED }, { providers: keyedRegistry() });
    expect(r.outcome).toBe('ok');
    const [req] = server.requestsFor('keyed-model');
    expect(req.headers.authorization).toBe(`Bearer ${CRED}`);
    expect(req.body.max_tokens).toBe(321);
    expect(r.summary).toBe(`I saw ${REDACTED} in the env`);
    expect(JSON.stringify(r)).not.toContain(CRED);
    expect(allArtifacts(deps.artifactDir)).not.toContain(CRED);
  });

  test('without WEAVER_PROVIDERS, `openai` is the built-in provider: the worker OPENAI_API_KEY at its OPENAI_BASE_URL', async () => {
    // OPENAI_BASE_URL is the worker's own endpoint setting: the provider spec names no baseURL.
    server.script('default-model', [change('default answer')]);
    const r = await call({ id: 'openai', model: 'default-model' }, { OPENAI_API_KEY: WORKER_OPENAI_KEY, OPENAI_BASE_URL: server.url });
    expect(r.outcome).toBe('ok');
    expect(server.requestsFor('default-model')[0].headers.authorization).toBe(`Bearer ${WORKER_OPENAI_KEY}`);
  });

  test('the endpoint comes from the registry by id: a request with its own baseURL for a keyed provider is refused, nothing is sent', async () => {
    const before = server.count();
    const err = await call({ id: 'keyed', model: 'keyed-model', baseURL: `${server.url}/evil` }, { [CRED_NAME]: CRED }, { providers: keyedRegistry() }).then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ type: 'ProviderNotAllowed', nonRetryable: true });
    expect(server.count()).toBe(before);
  });

  test('with WEAVER_INLINE_ENDPOINTS a registry id may go to an allowed baseURL of its own — without the key', async () => {
    server.script('keyed-model', [change('inline answer')]);
    const r = await call(
      { id: 'keyed', model: 'keyed-model', baseURL: server.url.replace('127.0.0.1', 'localhost') },
      { [CRED_NAME]: CRED },
      { providers: keyedRegistry(), inlineEndpoints: ['http://localhost:*'] },
    );
    expect(r.outcome).toBe('ok');
    const req = server.requestsFor('keyed-model').at(-1)!;
    expect(req.headers.authorization).toBeUndefined();
    expect(JSON.stringify(req.headers)).not.toContain(CRED);
  });

  test('an id that is not in the registry and names no endpoint is refused', async () => {
    const err = await call({ id: 'somewhere', model: 'x' }, { OPENAI_API_KEY: WORKER_OPENAI_KEY }).then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ type: 'ProviderNotAllowed' });
    expect((err as Error).message).toMatch(/WEAVER_PROVIDERS/);
  });
});
