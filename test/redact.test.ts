import { growthRatio, GROWTH_FACTOR, MAX_LINEAR_GROWTH } from './support/growth';
import { findRedactions, normalizeSecrets, redact, redactCounted, redactCut, REDACTED, scrubEnv, secretFileReason, secretsFromEnv, StreamRedactor } from '../src/domain/redact';

describe('redact', () => {
  it('replaces every occurrence of each literal secret', () => {
    const out = redact('key=abc123XYZ and again abc123XYZ; other hunter22 done', ['abc123XYZ', 'hunter22']);
    expect(out).not.toContain('abc123XYZ');
    expect(out).not.toContain('hunter22');
    expect(out.split(REDACTED)).toHaveLength(4);
    expect(out).toContain('other [REDACTED] done');
  });

  it('ignores empty and short secrets', () => {
    expect(redact('a b c 12345 x', ['', 'a', '12345'])).toBe('a b c 12345 x');
    expect(normalizeSecrets(['', 'short', 'longenough', 'longenough'])).toEqual(['longenough']);
  });

  it('prefers the longer of two overlapping secrets', () => {
    expect(redact('token: zz-abcdef-ghijkl-zz', ['abcdef', 'abcdef-ghijkl'].reverse())).not.toMatch(/ghijkl/);
    expect(redact('<abcdef-ghijkl>', ['abcdef', 'abcdef-ghijkl'])).toBe(`<${REDACTED}>`);
  });

  it('treats secrets literally (regex metacharacters)', () => {
    expect(redact('x a.b*c+d(e) y', ['a.b*c+d(e)'])).toBe(`x ${REDACTED} y`);
    expect(redact('x aXbbbcd(e) y', ['a.b*c+d(e)'])).toBe('x aXbbbcd(e) y');
  });

  it('redacts OpenAI-style keys without knowing them', () => {
    expect(redact('using sk-proj-AbCdEfGhIjKlMnOpQrSt now', [])).toBe(`using ${REDACTED} now`);
    // Too short to be a key, and not at a word start: left alone.
    expect(redact('sk-short task-abcdefghijklmnopqrstuvwxyz', [])).toBe('sk-short task-abcdefghijklmnopqrstuvwxyz');
  });

  it('redacts Bearer tokens but keeps the scheme', () => {
    expect(redact('Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9.abc-def_ghi', [])).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redact('authorization: bearer abcdefgh12345678', [])).toBe(`authorization: bearer ${REDACTED}`);
    expect(redact('Bearer auth is used', [])).toBe('Bearer auth is used');
  });

  it('redacts key=value style assignments, keeping the name', () => {
    expect(redact('api_key=abc123', [])).toBe(`api_key=${REDACTED}`);
    expect(redact('OPENAI_API_KEY=foo-bar-baz ok', [])).toBe(`OPENAI_API_KEY=${REDACTED} ok`);
    expect(redact('{"apiKey": "some value with spaces", "n": 1}', [])).toBe(`{"apiKey": "${REDACTED}", "n": 1}`);
    expect(redact("X-Api-Key: 0123456789abcdef", [])).toBe(`X-Api-Key: ${REDACTED}`);
    expect(redact('GITHUB_TOKEN=ghx123456 password: hunter2', [])).toBe(`GITHUB_TOKEN=${REDACTED} password: ${REDACTED}`);
    // Not assignments of a secret.
    expect(redact('max_tokens=100 tokensIn: 5 apiKeyEnv: "OPENAI_API_KEY"', [])).toBe('max_tokens=100 tokensIn: 5 apiKeyEnv: "OPENAI_API_KEY"');
  });

  it('redacts well-known token shapes and credentials in URLs', () => {
    expect(redact('ghp_abcdefghijklmnopqrstuvwxyz0123456789', [])).toBe(REDACTED);
    expect(redact('id AKIAABCDEFGHIJKLMNOP.', [])).toBe(`id ${REDACTED}.`);
    expect(redact('https://x-access-token:s3cr3tvalue@github.com/o/r.git', [])).toBe(`https://x-access-token:${REDACTED}@github.com/o/r.git`);
  });

  it('leaves ordinary text alone', () => {
    const text = 'PASS test/a.test.ts\n  ✓ adds numbers (3 ms)\nTests: 1 passed, 1 total\nSyntaxError: Unexpected token }';
    expect(redact(text, [])).toBe(text);
    expect(findRedactions(text, [])).toEqual([]);
  });

  it('is linear on long runs (no catastrophic backtracking)', () => {
    // Long runs that near-match the patterns; scale 1 is the 1 MB input this test always used.
    const input = (scale: number) => 'a.'.repeat(200_000 * scale) + 'x'.repeat(400_000 * scale) + ' api_key'.repeat(20_000 * scale);
    const big = input(GROWTH_FACTOR);
    expect(redact(big, ['not-in-there'])).toBe(big);
    // Growth, not a time: 8× the input costs about 8× (quadratic would be 64×), on any machine.
    expect(growthRatio('redact, long runs', input, (s) => redact(s, ['not-in-there']))).toBeLessThan(MAX_LINEAR_GROWTH);
  });
});

describe('secretsFromEnv', () => {
  it('collects values of *_API_KEY, *_TOKEN, *_SECRET vars and the named ones', () => {
    const env = {
      OPENAI_API_KEY: 'sk-value-000001',
      GITHUB_TOKEN: 'gh-token-value',
      CLIENT_SECRET: 'client-secret-value',
      my_api_key: 'lowercase-value',
      CUSTOM_CRED: 'custom-cred-value',
      HOME: '/root',
      PATH: '/usr/bin:/bin',
      TOKENIZER: 'not-a-secret',
      SHORT_TOKEN: 'abc',
      EMPTY_SECRET: '',
      UNSET_TOKEN: undefined,
    };
    const got = secretsFromEnv(env, ['CUSTOM_CRED']);
    expect(new Set(got)).toEqual(
      new Set(['sk-value-000001', 'gh-token-value', 'client-secret-value', 'lowercase-value', 'custom-cred-value']),
    );
    expect(secretsFromEnv(env)).not.toContain('custom-cred-value');
  });

  it("reads the worker's environment as it is at each call", () => {
    const name = 'WEAVER_TEST_ROTATED_TOKEN';
    try {
      process.env[name] = 'first-token-value';
      expect(secretsFromEnv(process.env)).toContain('first-token-value');
      process.env[name] = 'second-token-value';
      expect(secretsFromEnv(process.env)).toEqual(expect.arrayContaining(['second-token-value']));
      expect(secretsFromEnv(process.env)).not.toContain('first-token-value');
      delete process.env[name];
      expect(secretsFromEnv(process.env)).not.toContain('second-token-value');
    } finally {
      delete process.env[name];
    }
  });

  it('deduplicates and orders longest first', () => {
    expect(secretsFromEnv({ A_TOKEN: 'same-value', B_TOKEN: 'same-value', C_SECRET: 'a-longer-value' })).toEqual([
      'a-longer-value',
      'same-value',
    ]);
  });
});

describe('scrubEnv', () => {
  it('drops secret vars and the named ones, keeping the rest', () => {
    const env = { PATH: '/bin', OPENAI_API_KEY: 'x', GH_TOKEN: 'y', LLM_CRED: 'z', HOME: '/root' };
    expect(scrubEnv(env, ['LLM_CRED'])).toEqual({ PATH: '/bin', HOME: '/root' });
    expect(env.OPENAI_API_KEY).toBe('x');
  });
});

describe('StreamRedactor', () => {
  const secret = 'S3CRET-VALUE-0123456789';

  function streamed(input: string, sizes: number[], opts = {}) {
    const r = new StreamRedactor([secret], opts);
    let out = '';
    let i = 0;
    let k = 0;
    while (i < input.length) {
      const n = sizes[k++ % sizes.length];
      out += r.push(input.slice(i, i + n));
      i += n;
    }
    return out + r.flush();
  }

  it('matches redact() whatever the chunking, including secrets split across chunks', () => {
    const parts: string[] = [];
    for (let i = 0; i < 3000; i++) {
      parts.push(`line ${i} ${i % 97 === 0 ? secret : 'plain'} ${i % 131 === 0 ? 'Bearer abcdefghijklmnop' : ''} ${i % 173 === 0 ? 'sk-ABCDEFGHIJKLMNOPQRST' : ''}\n`);
    }
    const input = parts.join('');
    const expected = redact(input, [secret]);
    expect(expected).not.toContain(secret);
    for (const sizes of [[1], [7], [1000, 3, 17], [65536]]) {
      const out = streamed(input, sizes, { minEmit: 64, carry: 64 });
      expect(out).toBe(expected);
    }
  });

  it('holds back no more than needed and emits everything on flush', () => {
    const r = new StreamRedactor([], { carry: 64, minEmit: 64 });
    const a = r.push('x'.repeat(1000));
    expect(a.length).toBeGreaterThan(0);
    expect(a.length).toBeLessThan(1000);
    expect(a + r.flush()).toBe('x'.repeat(1000));
  });

  it('redacts an endless token beyond maxPending instead of buffering it', () => {
    const r = new StreamRedactor([], { carry: 64, minEmit: 64, maxPending: 4096 });
    let out = r.push('before sk-');
    for (let i = 0; i < 100; i++) out += r.push('A'.repeat(1000));
    out += r.push(' after');
    out += r.flush();
    expect(out).toBe(`before ${REDACTED} after`);
  });

  it('never splits a surrogate pair', () => {
    const input = '😀'.repeat(5000);
    const out = streamed(input, [333], { carry: 64, minEmit: 64 });
    expect(out).toBe(input);
  });
});

describe('redaction of prompts (issue 8, item 7)', () => {
  const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1x2y3z4\nAbCdEf0123456789+/==\n-----END RSA PRIVATE KEY-----\n';

  it('counts what it masks, and masking twice masks (and counts) nothing more', () => {
    const once = redactCounted('key AKIAABCDEFGHIJKLMNOP and sk-test-secret-key-123456789 and api_key="abc-123-xyz"', ['sk-test-secret-key-123456789']);
    expect(once.count).toBe(3);
    expect(once.text).toBe(`key ${REDACTED} and ${REDACTED} and api_key="${REDACTED}"`);
    expect(redactCounted(once.text, ['sk-test-secret-key-123456789'])).toEqual({ text: once.text, count: 0 });
    expect(redactCounted('', ['abcdefgh'])).toEqual({ text: '', count: 0 });
  });

  it('masks AWS secret access keys and private key blocks (a file and a string literal)', () => {
    const aws = 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\nAWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n';
    expect(redact(aws, [])).toBe(`AWS_ACCESS_KEY_ID = "${REDACTED}"\nAWS_SECRET_ACCESS_KEY = "${REDACTED}"\n`);
    expect(redact(`aws_secret_access_key=wJalrXUtnFEMI/K7MDENG`, [])).toBe(`aws_secret_access_key=${REDACTED}`);
    expect(redact(PEM, [])).toBe(`-----BEGIN RSA PRIVATE KEY-----${REDACTED}\n-----END RSA PRIVATE KEY-----\n`);
    const inString = `const KEY = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\nkqhkiG9w0BAQEF\\n-----END PRIVATE KEY-----";`;
    expect(redact(inString, [])).toBe(`const KEY = "-----BEGIN PRIVATE KEY-----${REDACTED}\\n-----END PRIVATE KEY-----";`);
  });

  it('code mode masks literals, not expressions, names or placeholders', () => {
    const code = (t: string) => redactCounted(t, [], { code: true }).text;
    // Literals: quoted values, unquoted tokens with a digit, env-file lines, known token shapes.
    expect(code('password = "hunter2-db"')).toBe(`password = "${REDACTED}"`);
    expect(code("API_KEY: 'abc123def456'")).toBe(`API_KEY: '${REDACTED}'`);
    expect(code('auth_token = a1b2c3d4e5f6')).toBe(`auth_token = ${REDACTED}`);
    expect(code('DB_PASSWORD=hunter2')).toBe(`DB_PASSWORD=${REDACTED}`);
    expect(code('key = "AKIAABCDEFGHIJKLMNOP"')).toBe(`key = "${REDACTED}"`);
    expect(code('url = "postgres://app:s3cretpass@db/app"')).toBe(`url = "postgres://app:${REDACTED}@db/app"`);
    // Code that only names secrets is left readable (redact() for logs would mask these).
    for (const line of [
      'next_token = tokens[0]',
      'password: string;',
      'connect(user, password=password)',
      'api_key = os.environ["API_KEY"]',
      'api_key = "${API_KEY}"',
      'headers = {"X-Api-Key": "<your key>"}',
      'password = "x"',
      'url = f"postgres://{user}:{password}@{host}/db"',
    ]) {
      expect(code(line)).toBe(line);
    }
    expect(redact('next_token = tokens[0]', [])).not.toBe('next_token = tokens[0]');
  });

  it('literalOnly masks the given values and nothing else', () => {
    expect(redactCounted('A=sk-ABCDEFGHIJKLMNOPQRST B=mysecretvalue', ['mysecretvalue'], { literalOnly: true })).toEqual({
      text: `A=sk-ABCDEFGHIJKLMNOPQRST B=${REDACTED}`,
      count: 1,
    });
  });

  it('stays linear with the new patterns', () => {
    // Scale 1 is the input this test always used.
    const headers = (scale: number) => '-----BEGIN RSA PRIVATE KEY-----'.repeat(5000 * scale);
    const names = (scale: number) => ' aws_secret_access_key'.repeat(20_000 * scale);
    const input = (scale: number) => headers(scale) + '\nAAAA'.repeat(100_000 * scale) + names(scale);
    // It still gets through the big input: the headers before and the bare names after are kept as they were.
    const { text } = redactCounted(input(GROWTH_FACTOR), [], { code: true });
    expect(text.startsWith(headers(GROWTH_FACTOR))).toBe(true);
    expect(text.endsWith(names(GROWTH_FACTOR))).toBe(true);
    expect(growthRatio('redactCounted code, new patterns', input, (s) => redactCounted(s, [], { code: true }))).toBeLessThan(MAX_LINEAR_GROWTH);
  });

  it('knows secret files by name, and by content where the name is not enough', () => {
    for (const rel of [
      '.env',
      'config/.env.local',
      '.env.production',
      '.envrc',
      'certs/server.pem',
      'tls/server.key',
      'id_rsa',
      'home/.ssh/id_ed25519',
      '.netrc',
      '.git-credentials',
      'credentials.json',
      'store.p12',
      'store.pfx',
      'secrets.yaml',
      'deploy/secrets.json',
      '.aws/credentials',
      'client_secret_1234.json',
    ]) {
      expect([rel, secretFileReason(rel)]).toEqual([rel, expect.any(String)]);
    }
    for (const rel of ['.env.example', '.env.sample', '.env.template', 'src/env.ts', 'id_rsa.pub', 'src/keys.py', 'docs/secrets.md.txt', 'environment.yml', '.npmrc', 'secrets.example.yaml']) {
      expect([rel, secretFileReason(rel)]).toEqual([rel, undefined]);
    }
    // By content: a token in a package-manager config, a private key anywhere.
    expect(secretFileReason('.npmrc', 'registry=https://registry.npmjs.org/\n')).toBeUndefined();
    expect(secretFileReason('.npmrc', '//registry.npmjs.org/:_authToken=npm_abcdef\n')).toMatch(/token/);
    expect(secretFileReason('.pypirc', '[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc\n')).toMatch(/token/);
    expect(secretFileReason('test/fixtures/key.js', `module.exports = ${JSON.stringify(PEM)};`)).toMatch(/private key/);
    expect(secretFileReason('id_rsa.pub', 'ssh-rsa AAAAB3Nza user@host')).toBeUndefined();
  });
});

describe('redactCut (provider error text bound for history)', () => {
  it('short text: redacted, not cut', () => {
    expect(redactCut('denied for sk-abcdefghijklmnop0123', [])).toBe(`denied for ${REDACTED}`);
  });

  it('long text: redacted before the cut (a key across the cut is masked whole), cut with its full length named', () => {
    const key = 'worker-key-0123456789';
    const text = `${'a'.repeat(490)}${key}${'b'.repeat(20_000)}`;
    const out = redactCut(text, [key], 500);
    expect(out).toBe(`${'a'.repeat(490)}${REDACTED}… [cut: ${text.length} chars in all]`);
    expect(out).not.toContain('worker-key');
  });

  it('never leaves half a surrogate pair', () => {
    const out = redactCut(`${'a'.repeat(9)}😀${'b'.repeat(100)}`, [], 10);
    expect(out).toBe(`${'a'.repeat(9)}… [cut: 111 chars in all]`);
  });
});
