// The worker's provider registry (WEAVER_PROVIDERS): its schema, the file loader, and the rules
// that turn a task's provider ids into calls — pure, no Temporal (issue 8, item 3).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadProviderRegistry } from '../src/activities/providers';
import {
  defaultProviderRegistry,
  endpointFor,
  modelAllowed,
  parseProviderRegistry,
  ProviderPolicyError,
  ProviderRegistryError,
  registryKeyEnvNames,
  resolveTaskProviders,
  type ProviderRegistry,
} from '../src/domain/registry';
import { parseTaskInput } from '../src/domain/schema';
import { checkInlineEndpoints, inlineEndpointAllowed, InlineEndpointsError, splitPatterns } from '../src/domain/endpoints';
import { config } from '../src/config';
import { DEFAULT_PROMPT_BUDGET, promptBudget, quirksOf, resolveProvider } from '../src/domain/models';
import { costOf } from '../src/domain/pricing';
import type { ProviderSpec } from '../src/domain/schema';

const ROOT = path.resolve(__dirname, '..');

const registry: ProviderRegistry = parseProviderRegistry(
  {
    providers: {
      openai: { apiKeyEnv: 'OPENAI_API_KEY', models: ['gpt-4o-mini', 'gpt-4o*'], pricing: { inputPerMTok: 1, outputPerMTok: 2 }, maxTokens: 2000 },
      router: {
        baseURL: 'https://router.example/v1',
        apiKeyEnv: 'ROUTER_KEY',
        models: ['a/big', 'b/small'],
        pricing: { 'a/big': { inputPerMTok: 3, outputPerMTok: 15 }, '*': { inputPerMTok: 0.5, outputPerMTok: 1 } },
        contextWindow: 100_000,
        editFormat: 'whole',
        stream: true,
      },
      local: { baseURL: 'http://localhost:11434/v1', models: ['qwen'] },
    },
  },
  'test',
);

/** The issues of a registry that does not validate. */
function registryIssues(raw: unknown): string[] {
  try {
    parseProviderRegistry(raw, 'file.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ProviderRegistryError);
    expect((e as Error).message).toContain('file.yaml');
    return (e as ProviderRegistryError).issues;
  }
  throw new Error('the registry was accepted');
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProviderPolicyError);
    return (e as Error).message;
  }
  throw new Error('not refused');
}

describe('registry schema', () => {
  test('a valid registry parses', () => {
    expect(Object.keys(registry.providers)).toEqual(['openai', 'router', 'local']);
  });

  test.each([
    ['providers.x.models', { providers: { x: { models: [] } } }],
    ['providers.x.models', { providers: { x: { models: ['*'] } } }],
    ['providers.x.models', { providers: { x: {} } }],
    ['providers.x.apiKeyEnv', { providers: { x: { models: ['m'], apiKeyEnv: 'sk-live-0123456789abcdef' } } }],
    ['providers.x.apiKeyEnv', { providers: { x: { models: ['m'], apiKeyEnv: 'not a name' } } }],
    ['providers.x.baseURL', { providers: { x: { models: ['m'], baseURL: 'localhost:11434' } } }],
    ['providers.x.pricing', { providers: { x: { models: ['m'], pricing: { inputPerMTok: 1 } } } }],
    ['providers.x.maxTokens', { providers: { x: { models: ['m'], maxTokens: 9000, contextWindow: 8192 } } }],
    ['providers.x.editFormat', { providers: { x: { models: ['m'], editFormat: 'diff' } } }],
    ['providers.x.promptBudgetTokens', { providers: { x: { models: ['m'], promptBudgetTokens: 100 } } }],
    ['providers.x.pricing.cachedInputPerMTok', { providers: { x: { models: ['m'], pricing: { inputPerMTok: 1, outputPerMTok: 2, cachedInputPerMTok: -1 } } } }],
    ['providers.x', { providers: { x: { models: ['m'], apiKey: 'sk-oops' } } }],
    ['providers', {}],
    ['(root)', { providers: {}, extra: true }],
  ])('names the bad field %s', (field, raw) => {
    const issues = registryIssues(raw);
    expect(issues.some((i) => i.startsWith(`${field}: `))).toBe(true);
  });

  test('a key value in apiKeyEnv is refused without being echoed', () => {
    const issues = registryIssues({ providers: { x: { models: ['m'], apiKeyEnv: 'sk-live-0123456789abcdef' } } });
    expect(issues.join('\n')).not.toContain('sk-live-0123456789abcdef');
  });

  test('model patterns and per-model pricing', () => {
    expect(modelAllowed(registry.providers.openai, 'gpt-4o-2024-08-06')).toBe(true);
    expect(modelAllowed(registry.providers.openai, 'gpt-5')).toBe(false);
    expect(modelAllowed(registry.providers.openai, 'gpt-4o.mini')).toBe(true);
    expect(modelAllowed(defaultProviderRegistry().providers.openai, 'anything-at-all')).toBe(true);
  });

  test('key env names: every one the registry holds', () => {
    expect(registryKeyEnvNames(registry)).toEqual(['OPENAI_API_KEY', 'ROUTER_KEY']);
  });
});

describe('resolving a task against the registry', () => {
  test("an id alone gets the registry's default model, price and settings, and no endpoint or key in the spec", () => {
    const r = resolveTaskProviders(registry, [{ id: 'router' }]);
    expect(r.providers).toEqual([{ id: 'router', model: 'a/big', pricing: { inputPerMTok: 3, outputPerMTok: 15 }, contextWindow: 100_000, editFormat: 'whole', stream: true }]);
    expect(JSON.stringify(r)).not.toContain('router.example');
    expect(r.secretEnvNames).toEqual(['OPENAI_API_KEY', 'ROUTER_KEY']);
  });

  test('a model from the allowed list, the `*` price, task maxTokens/temperature win; the task pricing is ignored with a note', () => {
    const r = resolveTaskProviders(registry, [{ id: 'router', model: 'b/small', maxTokens: 500, temperature: 0.3, pricing: { inputPerMTok: 0, outputPerMTok: 0 } }]);
    expect(r.providers[0]).toMatchObject({ model: 'b/small', pricing: { inputPerMTok: 0.5, outputPerMTok: 1 }, maxTokens: 500, temperature: 0.3 });
    expect(r.notes).toEqual([expect.stringContaining("the task's pricing is ignored")]);
    expect(resolveTaskProviders(registry, [{ id: 'openai' }]).providers[0]).toMatchObject({ model: 'gpt-4o-mini', maxTokens: 2000 });
  });

  test('a model not in the allowed list is refused, naming the list', () => {
    expect(refusal(() => resolveTaskProviders(registry, [{ id: 'openai', model: 'gpt-5' }]))).toMatch(
      /providers\.0 \(openai\): model "gpt-5" is not allowed for provider "openai" \(allowed: gpt-4o-mini, gpt-4o\*\)/,
    );
  });

  test('an unknown id without an endpoint is refused, naming the known ids and the fix', () => {
    expect(refusal(() => resolveTaskProviders(registry, [{ id: 'anthropic', model: 'claude' }]))).toMatch(
      /providers\.0 \(anthropic\): not in the worker's provider registry \(known: openai, router, local\); name a provider id from the worker's registry \(WEAVER_PROVIDERS\)/,
    );
  });

  test("a task's own baseURL is refused by default, for a registry id or not, naming the field, the setting and the fix", () => {
    const msg = refusal(() =>
      resolveTaskProviders(registry, [
        { id: 'router' },
        { id: 'router', model: 'a/big', baseURL: 'https://evil.example/v1' },
        { id: 'local', model: 'qwen', baseURL: 'http://gpu-box:8000/v1' },
        { id: 'ollama', model: 'llama3', baseURL: 'http://localhost:11434/v1' },
      ]),
    );
    expect(msg).toContain(
      "providers.1.baseURL (router): https://evil.example/v1 is not allowed by the worker (WEAVER_INLINE_ENDPOINTS); leave baseURL out and name a provider id from the worker's registry (WEAVER_PROVIDERS) (known: openai, router, local)",
    );
    // A keyless registry entry does not make any other URL acceptable, nor does a loopback address.
    expect(msg).toContain('providers.2.baseURL (local): http://gpu-box:8000/v1 is not allowed by the worker');
    expect(msg).toContain('providers.3.baseURL (ollama): http://localhost:11434/v1 is not allowed by the worker');
    expect(msg).not.toContain('providers.0');
    // The same baseURL as the registry's (a trailing slash aside) is the registry's endpoint.
    expect(resolveTaskProviders(registry, [{ id: 'router', baseURL: 'https://router.example/v1/', model: 'a/big' }]).providers[0].baseURL).toBeUndefined();
  });

  test('with WEAVER_INLINE_ENDPOINTS a matching baseURL resolves to that URL, called without a key; others are still refused', () => {
    const policy = { inlineEndpoints: ['http://localhost:11434/*', 'http://127.0.0.1:*'] };
    const r = resolveTaskProviders(
      registry,
      [
        { id: 'ollama', model: 'llama3', baseURL: 'http://localhost:11434/v1', pricing: { inputPerMTok: 0, outputPerMTok: 0 } },
        { id: 'router', model: 'a/big', baseURL: 'http://127.0.0.1:9999/v1' },
      ],
      policy,
    );
    expect(r.providers[0]).toEqual({ id: 'ollama', model: 'llama3', baseURL: 'http://localhost:11434/v1', pricing: { inputPerMTok: 0, outputPerMTok: 0 } });
    expect(r.providers[1]).toMatchObject({ id: 'router', model: 'a/big', baseURL: 'http://127.0.0.1:9999/v1' });
    expect(endpointFor(registry, r.providers[0], policy)).toEqual({ baseURL: 'http://localhost:11434/v1', inline: true });
    // A registry id sent elsewhere keeps nothing of the registry's key.
    expect(endpointFor(registry, r.providers[1], policy)).toEqual({ baseURL: 'http://127.0.0.1:9999/v1', inline: true });
    expect(refusal(() => resolveTaskProviders(registry, [{ id: 'router', model: 'a/big', baseURL: 'https://evil.example/v1' }], policy))).toMatch(
      /^providers\.0\.baseURL \(router\): https:\/\/evil\.example\/v1 is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\)/,
    );
    // The call checks again: a spec resolved under a wider allowlist is refused under a narrower one.
    expect(refusal(() => endpointFor(registry, r.providers[1], { inlineEndpoints: ['http://localhost:11434/*'] }))).toMatch(/is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\)/);
  });

  test('an apiKeyEnv that slipped past the schema is refused all the same', () => {
    expect(refusal(() => resolveTaskProviders(registry, [{ id: 'x', model: 'm', baseURL: 'https://evil.example/v1', apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' } as never]))).toMatch(
      /may not name a key or its env var \(apiKeyEnv\)/,
    );
  });

  test('every problem is named at once', () => {
    const msg = refusal(() => resolveTaskProviders(registry, [{ id: 'openai', model: 'nope' }, { id: 'ghost' }]));
    expect(msg).toMatch(/providers\.0 .*; providers\.1 /);
  });

  test("the endpoint and key of a call come from the registry by id: the request's baseURL never gets the key", () => {
    expect(endpointFor(registry, { id: 'router', model: 'a/big' })).toEqual({ baseURL: 'https://router.example/v1', apiKeyEnv: 'ROUTER_KEY' });
    expect(endpointFor(registry, { id: 'openai', model: 'gpt-4o' })).toEqual({ baseURL: undefined, apiKeyEnv: 'OPENAI_API_KEY' });
    expect(refusal(() => endpointFor(registry, { id: 'router', model: 'a/big', baseURL: 'https://evil.example/v1' }))).toMatch(/is not allowed by the worker \(WEAVER_INLINE_ENDPOINTS\)/);
    expect(refusal(() => endpointFor(registry, { id: 'ghost', model: 'm', baseURL: 'http://localhost:11434/v1' }))).toMatch(/is not allowed by the worker/);
    expect(refusal(() => endpointFor(registry, { id: 'openai', model: 'gpt-5' }))).toMatch(/not allowed/);
    expect(refusal(() => endpointFor(registry, { id: 'ghost', model: 'm' }))).toMatch(/not in the worker's provider registry/);
    // Sample n of a provider (consensus `samples`) is that provider.
    expect(endpointFor(registry, { id: 'router#2', model: 'a/big' })).toEqual({ baseURL: 'https://router.example/v1', apiKeyEnv: 'ROUTER_KEY' });
    // Prototype keys are not providers.
    expect(refusal(() => endpointFor(registry, { id: 'constructor', model: 'm' }))).toMatch(/not in the worker's provider registry/);
  });
});

describe('loading WEAVER_PROVIDERS', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'weaver-registry-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('YAML and JSON files; without a file, the built-in `openai`', () => {
    const y = path.join(dir, 'p.yaml');
    writeFileSync(y, 'providers:\n  local:\n    baseURL: http://localhost:11434/v1\n    models: [qwen]\n');
    expect(loadProviderRegistry(y).providers.local.models).toEqual(['qwen']);
    const j = path.join(dir, 'p.json');
    writeFileSync(j, JSON.stringify({ providers: { a: { models: ['m'], apiKeyEnv: 'A_KEY' } } }));
    expect(loadProviderRegistry(j).providers.a.apiKeyEnv).toBe('A_KEY');
    expect(loadProviderRegistry(undefined)).toEqual(defaultProviderRegistry());
  });

  test('a bad file names the file and the field; unreadable and unparsable files are named too', () => {
    const y = path.join(dir, 'bad.yaml');
    writeFileSync(y, 'providers:\n  a:\n    models: [m]\n    apiKeyEnvv: A_KEY\n');
    expect(() => loadProviderRegistry(y)).toThrow(new RegExp(`WEAVER_PROVIDERS=${y.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[\\s\\S]*providers\\.a: Unrecognized key: "apiKeyEnvv"`));
    expect(() => loadProviderRegistry(path.join(dir, 'missing.yaml'))).toThrow(/cannot read the file/);
    const j = path.join(dir, 'bad.json');
    writeFileSync(j, '{ "providers": ');
    expect(() => loadProviderRegistry(j)).toThrow(/not valid JSON/);
  });

  test('weaver.providers.example.yaml is valid, and the example tasks resolve against it', () => {
    const example = loadProviderRegistry(path.join(ROOT, 'weaver.providers.example.yaml'));
    expect(Object.keys(example.providers)).toEqual(expect.arrayContaining(['openai', 'openrouter', 'local']));
    expect(parseYaml(readFileSync(path.join(ROOT, 'weaver.providers.example.yaml'), 'utf8'))).toBeTruthy();
    for (const file of ['task.json', 'consensus-task.json']) {
      const task = parseTaskInput(JSON.parse(readFileSync(path.join(ROOT, 'examples', file), 'utf8')));
      expect(resolveTaskProviders(example, task.providers).providers).toHaveLength(task.providers.length);
    }
  });
});

describe('WEAVER_INLINE_ENDPOINTS patterns (scheme and host exact, * in the port and the path)', () => {
  const allowed = (patterns: string[], url: string) => inlineEndpointAllowed(patterns, url);

  test('nothing is allowed without patterns', () => {
    expect(allowed([], 'http://127.0.0.1:8080/v1')).toBe(false);
    expect(inlineEndpointAllowed(undefined, 'http://127.0.0.1:8080/v1')).toBe(false);
  });

  test('a * port matches any port of that scheme and host, any path', () => {
    const p = ['http://127.0.0.1:*'];
    expect(allowed(p, 'http://127.0.0.1:8080/v1')).toBe(true);
    expect(allowed(p, 'http://127.0.0.1/v1')).toBe(true);
    expect(allowed(p, 'https://127.0.0.1:8080/v1')).toBe(false);
    expect(allowed(p, 'http://127.0.0.2:8080/v1')).toBe(false);
    expect(allowed(p, 'http://localhost:8080/v1')).toBe(false);
    // The URL as the HTTP client reads it: other spellings of 127.0.0.1 are 127.0.0.1.
    expect(allowed(p, 'http://0x7f.1:8080/v1')).toBe(true);
  });

  test('a fixed port, a path with *; the host is never a prefix or suffix match', () => {
    const p = ['http://localhost:11434/*', 'https://models.internal/v1'];
    expect(allowed(p, 'http://localhost:11434/v1')).toBe(true);
    expect(allowed(p, 'http://localhost:11434')).toBe(true);
    expect(allowed(p, 'http://localhost:11435/v1')).toBe(false);
    expect(allowed(p, 'http://localhost.evil.example:11434/v1')).toBe(false);
    expect(allowed(p, 'https://models.internal/v1/')).toBe(true);
    expect(allowed(p, 'https://models.internal:443/v1')).toBe(true);
    expect(allowed(p, 'https://models.internal/v2')).toBe(false);
    expect(allowed(p, 'https://models.internal:8443/v1')).toBe(false);
    expect(allowed(p, 'https://evil.models.internal/v1')).toBe(false);
  });

  test('a URL with a user, a password, a query or a fragment never matches (the host is what follows the @)', () => {
    const p = ['http://127.0.0.1:*'];
    expect(allowed(p, 'http://127.0.0.1:80@evil.example/v1')).toBe(false);
    expect(allowed(p, 'http://user:pw@127.0.0.1:8080/v1')).toBe(false);
    expect(allowed(p, 'http://127.0.0.1:8080/v1?x=1')).toBe(false);
    expect(allowed(p, 'http://127.0.0.1:8080/v1#x')).toBe(false);
    expect(allowed(p, 'not a url')).toBe(false);
  });

  test('bad patterns are named, with the variable', () => {
    expect(splitPatterns(' http://a:*, http://b:1/v1\nhttp://c ')).toEqual(['http://a:*', 'http://b:1/v1', 'http://c']);
    expect(checkInlineEndpoints(['http://127.0.0.1:*', 'https://[::1]:8000/v1/*'])).toHaveLength(2);
    let err: unknown;
    try {
      checkInlineEndpoints(['http://*.example', 'ftp://x', 'http://u:p@x', 'http://x:99999', 'http://ok:1']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InlineEndpointsError);
    const issues = (err as InlineEndpointsError).issues;
    expect(issues).toEqual([
      '"http://*.example": the host must be exact (no *)',
      '"ftp://x": must start with http:// or https://',
      '"http://u:p@x": no user or password in a pattern',
      '"http://x:99999": port 99999 is out of range',
    ]);
    expect((err as Error).message).toMatch(/^WEAVER_INLINE_ENDPOINTS: /);
  });

  test('config(): WEAVER_INLINE_ENDPOINTS is read and checked; the old boolean stops the start, naming its replacement', () => {
    expect(config({ WEAVER_INLINE_ENDPOINTS: 'http://127.0.0.1:*,http://localhost:11434/*' }).inlineEndpoints).toEqual(['http://127.0.0.1:*', 'http://localhost:11434/*']);
    expect(config({}).inlineEndpoints).toEqual([]);
    expect(() => config({ WEAVER_INLINE_ENDPOINTS: 'localhost:11434' })).toThrow(/WEAVER_INLINE_ENDPOINTS: "localhost:11434": must start with http:\/\/ or https:\/\//);
    expect(() => config({ WEAVER_ALLOW_INLINE_ENDPOINTS: '1' })).toThrow(/WEAVER_ALLOW_INLINE_ENDPOINTS is no longer read .* list the endpoints tasks may name in WEAVER_INLINE_ENDPOINTS/);
    // Off was what it said by default: harmless, ignored.
    expect(config({ WEAVER_ALLOW_INLINE_ENDPOINTS: '0' }).inlineEndpoints).toEqual([]);
  });
});

describe('prompt budgets and model quirks (issue 19, item 1)', () => {
  const resolved = (extra: Partial<ProviderSpec>) => resolveProvider({ id: 'p', model: 'gpt-4.1', maxTokens: 4096, ...extra });

  test('16k by default whatever the window; a task or provider budget below the window wins; never above the window less the answer', () => {
    expect(promptBudget([resolved({})], {})).toBe(DEFAULT_PROMPT_BUDGET);
    expect(promptBudget([resolved({})], { task: 6000 })).toBe(6000);
    expect(promptBudget([resolved({ promptBudgetTokens: 3000 }), resolved({})], { task: 6000 })).toBe(3000);
    expect(promptBudget([resolved({ contextWindow: 8192, maxTokens: 1024 })], { task: 100_000 })).toBe(Math.floor((8192 - 1024) * 0.9));
    // Runs before budgets: the window alone.
    expect(promptBudget([resolved({})])).toBe(Math.floor((1_047_576 - 4096) * 0.9));
  });

  test("the registry entry's budget and the task's: the smaller; quirks and cacheControl are the registry's", () => {
    const reg = parseProviderRegistry({ providers: { o: { models: ['o1-mini'], promptBudgetTokens: 8000, cacheControl: true } } }, 'test');
    const [spec] = resolveTaskProviders(reg, [{ id: 'o', promptBudgetTokens: 12_000 }]).providers;
    expect(spec).toMatchObject({ promptBudgetTokens: 8000, cacheControl: true });
    expect(resolveTaskProviders(reg, [{ id: 'o', promptBudgetTokens: 2000 }]).providers[0].promptBudgetTokens).toBe(2000);
    expect(quirksOf(spec)).toEqual({ systemRole: false, temperature: false });
    expect(quirksOf({ model: 'gpt-4o-mini' })).toEqual({ systemRole: true, temperature: true });
    expect(quirksOf({ model: 'o4-mini' })).toEqual({ systemRole: true, temperature: false });
    expect(quirksOf({ model: 'my-o1-proxy', systemRole: false }).systemRole).toBe(false);
  });

  test('a task budget below 1024 tokens is refused naming the field', () => {
    expect(() => parseTaskInput({ repo: '/r', task: { title: 't', description: 'd' }, providers: [{ id: 'openai' }], promptBudgetTokens: 10 })).toThrow(/promptBudgetTokens/);
  });

  test('cached input at its price: the table\'s for known models, the input price where none is known', () => {
    // gpt-4o: $2.5 input, $1.25 cached, $10 output per million.
    expect(costOf({ model: 'gpt-4o' }, 10_000, 1000, 8000)).toBeCloseTo((2000 * 2.5 + 8000 * 1.25 + 1000 * 10) / 1e6, 9);
    expect(costOf({ model: 'x', pricing: { inputPerMTok: 1, outputPerMTok: 2 } }, 10_000, 0, 8000)).toBeCloseTo(10_000 / 1e6, 9);
    expect(costOf({ model: 'gpt-4o' }, 10_000, 0)).toBeCloseTo(0.025, 9);
  });
});
