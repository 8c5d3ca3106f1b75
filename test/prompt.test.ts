// buildPrompt reads repository files with the same confinement as applyChange (design rule 7):
// relatedFiles (from the task or a model's subtask) and tracked symlinks cannot pull
// `.git/config`, `../x` or a file outside the workspace into the prompt artifact.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { applyChangeSet } from '../src/activities/apply';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { PromptMessages } from '../src/activities/llm';
import { buildPrompt } from '../src/activities/prompt';
import type { WorkspaceHandle } from '../src/activities/types';
import { REDACTED } from '../src/domain/redact';
import type { ChangeSet } from '../src/domain/schema';

const OUTSIDE = 'OUTSIDE-SECRET-7f3a';
const PARENT = 'PARENT-SECRET-91bc';
const GIT_CONFIG_MARK = 'weaver-test-remote-token-c0ffee';

let base: string;
let ws: WorkspaceHandle;
let store: LocalArtifactStore;

beforeEach(async () => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-prompt-'));
  const dir = path.join(base, 'ws');
  const outside = path.join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), `${OUTSIDE}\n`);
  writeFileSync(path.join(base, 'x'), `${PARENT}\n`);
  mkdirSync(path.join(dir, 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'src', 'a.js'), 'module.exports = 1; // INSIDE-CONTENT\n');
  symlinkSync(outside, path.join(dir, 'leak')); // a directory symlink out of the workspace
  symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'notes.txt')); // a file symlink out
  symlinkSync('src/a.js', path.join(dir, 'alias.js')); // a file symlink that stays inside
  symlinkSync('.git', path.join(dir, 'gitlink')); // into .git
  const git = simpleGit(dir);
  await git.init(['--initial-branch=main']);
  await git.addConfig('remote.origin.url', `https://x:${GIT_CONFIG_MARK}@example.invalid/r.git`);
  await git.add('.');
  await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-m', 'init']);
  ws = { id: 'ws', dir, taskQueue: 'q', branch: 'main', baseCommit: (await git.revparse(['HEAD'])).trim() };
  store = new LocalArtifactStore(path.join(base, 'artifacts'));
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

async function promptFor(relatedFiles?: string[]): Promise<string> {
  const built = await buildPrompt(store, {
    workspace: ws,
    task: { title: 'T', description: 'D', relatedFiles },
    attempt: 1,
    tokenBudget: 16_000,
    allowSubtasks: false,
  }, { cacheDir: path.join(base, 'cache') });
  return (await store.readJson<PromptMessages>(built.prompt)).user;
}

function expectNothingFromOutside(user: string): void {
  expect(user).not.toContain(OUTSIDE);
  expect(user).not.toContain(PARENT);
  expect(user).not.toContain(GIT_CONFIG_MARK);
  expect(user).not.toContain('repositoryformatversion');
}

test('READ ranges, symbols and searches stay in the workspace too', async () => {
  const built = await buildPrompt(store, {
    workspace: ws,
    task: { title: 'T', description: 'D' },
    attempt: 1,
    tokenBudget: 16_000,
    requestedFiles: ['leak/secret.txt:1-2', '.git/config:1-5', '../x:1-1', 'notes.txt#main', 'gitlink/config:1-3', 'grep: SECRET', 'grep: formatversion', 'grep: INSIDE-CONTENT'],
    allowSubtasks: false,
  }, { cacheDir: path.join(base, 'cache') });
  const user = (await store.readJson<PromptMessages>(built.prompt)).user;
  expectNothingFromOutside(user);
  expect(user).toMatch(/^### \.git\/config:1-5 \(.+\)$/m);
  expect(user).toMatch(/^### \.\.\/x:1-1 \(.+\)$/m);
  expect(user).toMatch(/^### grep: SECRET \(0 matches/m);
  expect(user).toContain('src/a.js:1: module.exports = 1; // INSIDE-CONTENT');
});

test('relatedFiles escaping the workspace are listed as not readable, never read', async () => {
  const user = await promptFor([
    'leak/secret.txt',
    '.git/config',
    '../x',
    'gitlink/config',
    'notes.txt',
    '/etc/hostname',
    'src/a.js',
    'alias.js',
    'missing.js',
    'src',
  ]);
  expectNothingFromOutside(user);
  expect(user).toMatch(/^### leak\/secret\.txt \(not readable: .+\)$/m);
  expect(user).toMatch(/^### \.git\/config \(not readable: .+\)$/m);
  expect(user).toMatch(/^### \.\.\/x \(not readable: .+\)$/m);
  expect(user).toMatch(/^### gitlink\/config \(not readable: .+\)$/m);
  expect(user).toMatch(/^### notes\.txt \(not readable: .+\)$/m);
  expect(user).toMatch(/^### \/etc\/hostname \(not readable: .+\)$/m);
  expect(user).toMatch(/^### src \(not readable: .+\)$/m);
  // What is inside is still shown, a symlink to a workspace file included.
  expect(user).toContain('### src/a.js\n```js\nmodule.exports = 1; // INSIDE-CONTENT');
  expect(user).toContain('### alias.js\n```js\nmodule.exports = 1; // INSIDE-CONTENT');
  expect(user).toContain('### missing.js (does not exist yet)');
});

test('without relatedFiles, a tracked symlink to a file outside is not read either', async () => {
  const user = await promptFor();
  expectNothingFromOutside(user);
  // The map and the ranked files never follow notes.txt out of the workspace.
  expect(user).not.toContain('### notes.txt\n');
  expect(user).toContain('### src/a.js\n```js\nmodule.exports = 1; // INSIDE-CONTENT');
});

test('the prompt stays within its token budget whatever the task, the named files and the requests hold', async () => {
  const built = await buildPrompt(
    store,
    {
      workspace: ws,
      task: {
        title: 'T'.repeat(5000),
        description: 'word '.repeat(20_000),
        acceptanceCriteria: Array.from({ length: 2000 }, (_, i) => `criterion number ${i} must hold`),
        relatedFiles: Array.from({ length: 3000 }, (_, i) => `missing/file-${i}-${'x'.repeat(200)}.js`),
      },
      attempt: 1,
      tokenBudget: 8000,
      guidance: ['be brief '.repeat(5000)],
      allowSubtasks: true,
    },
    { cacheDir: path.join(base, 'cache') },
  );
  expect(built.estTokens).toBeLessThanOrEqual(8000);
  const user = (await store.readJson<PromptMessages>(built.prompt)).user;
  // At most 20 of the unreadable names are listed.
  expect(user.match(/^### missing\//gm)?.length).toBe(20);
});

// Issue 8, item 7: prompts are redacted like logs, and secret files stay home unless named.
describe('secrets in the prompt', () => {
  const WORKER_KEY = 'sk-test-secret-key-123456789';
  const AWS_ID = 'AKIAIOSFODNN7EXAMPLE';
  const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  const ENV_ONLY = 'hunter2-env-only-value';
  const PEM_BODY = 'MIIEowIBAAKCAQEAx1x2y3z4PEMBODY';
  const config = [
    '"""Settings."""',
    `AWS_ACCESS_KEY_ID = "${AWS_ID}"`,
    `AWS_SECRET_ACCESS_KEY = "${AWS_SECRET}"`,
    'REGION = "eu-west-1"',
    '',
    '',
    'def bucket_name(env):',
    '    return f"app-{env}-{REGION}"',
    '',
  ].join('\n');
  let sws: WorkspaceHandle;
  const markers = (text: string) => text.split(REDACTED).length - 1;

  beforeEach(async () => {
    const dir = path.join(base, 'secrets-ws');
    const files: Record<string, string> = {
      'app/config.py': config,
      'app/main.py': 'from app.config import bucket_name\n\n\ndef main():\n    return bucket_name("prod")\n',
      '.env': `TEST_API_KEY=${WORKER_KEY}\nDB_PASSWORD=${ENV_ONLY}\n`,
      '.env.example': 'DB_PASSWORD=change-me\n',
      'deploy/server.pem': `-----BEGIN PRIVATE KEY-----\n${PEM_BODY}\n-----END PRIVATE KEY-----\n`,
      'deploy/secrets.py': `def db_password():\n    return "${ENV_ONLY}"\n`,
    };
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), content);
    }
    const git = simpleGit(dir);
    await git.init(['--initial-branch=main']);
    await git.add('.');
    await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-m', 'init']);
    sws = { id: 'sws', dir, taskQueue: 'q', branch: 'main', baseCommit: (await git.revparse(['HEAD'])).trim() };
  });

  async function build(task: { title?: string; description?: string; relatedFiles?: string[] }, extra: { requestedFiles?: string[]; tokenBudget?: number } = {}) {
    const built = await buildPrompt(
      store,
      {
        workspace: sws,
        task: { title: task.title ?? 'Fix bucket_name', description: task.description ?? 'bucket_name must include the region.', relatedFiles: task.relatedFiles },
        attempt: 1,
        tokenBudget: extra.tokenBudget ?? 16_000,
        requestedFiles: extra.requestedFiles,
        allowSubtasks: false,
      },
      { cacheDir: path.join(base, 'cache'), secrets: [WORKER_KEY] },
    );
    return { built, user: (await store.readJson<PromptMessages>(built.prompt)).user };
  }

  test('credential-looking values are masked and counted; secret files are neither shown nor mapped', async () => {
    const { built, user } = await build({ description: `bucket_name must include the region (our key is ${WORKER_KEY}).` });
    for (const secret of [WORKER_KEY, AWS_ID, AWS_SECRET, ENV_ONLY, PEM_BODY]) expect(user).not.toContain(secret);
    // The file stays readable: the lines are there, the values masked.
    expect(user).toContain(`### app/config.py\n\`\`\`py\n"""Settings."""\nAWS_ACCESS_KEY_ID = "${REDACTED}"\nAWS_SECRET_ACCESS_KEY = "${REDACTED}"\nREGION = "eu-west-1"`);
    expect(built.shown['app/config.py']).toBe('masked');
    expect(built.shown['app/main.py']).toBe('whole');
    // Every marker in the prompt is counted: the worker's key in the task text, config.py's two
    // values in the map and in the file, the placeholder in .env.example.
    expect(built.redactions).toBe(markers(user));
    expect(built.redactions).toBe(6);
    // Not shown, not listed, not in the map: .env, the key, secrets.py. The template is shown.
    for (const rel of ['.env', 'deploy/server.pem', 'deploy/secrets.py']) {
      expect(built.shown[rel]).toBeUndefined();
      const name = rel.replace(/\./g, '\\.');
      expect(user).not.toMatch(new RegExp(`^### ${name}\\b(?!\\.)`, 'm'));
      expect(user).not.toMatch(new RegExp(`^${name}:$`, 'm'));
    }
    expect(user).not.toContain('db_password');
    // A template is no secret file (its env-style value is still masked, as any would be).
    expect(user).toContain(`### .env.example\n\`\`\`example\nDB_PASSWORD=${REDACTED}\n`);
    expect(built.shown['.env.example']).toBe('masked');
    expect(built.stats.secretFilesWithheld).toBeGreaterThanOrEqual(2);
  });

  test('a READ of a secret file gets a refusal note, not its contents', async () => {
    const { built, user } = await build({}, { requestedFiles: ['.env', './deploy/server.pem', 'app/config.py'] });
    expect(user).toMatch(/^### \.env \(withheld: a dotenv file; secret files are sent only when the task names them\)$/m);
    expect(user).toMatch(/^### deploy\/server\.pem \(withheld: .+\)$/m);
    expect(user).not.toContain(ENV_ONLY);
    expect(user).not.toContain(PEM_BODY);
    expect(built.shown['.env']).toBeUndefined();
    expect(built.shown['app/config.py']).toBe('masked');
  });

  test('READ ranges, symbols and searches withhold secret files and mask what they show', async () => {
    const { built, user } = await build({}, { requestedFiles: ['.env:1-2', 'deploy/server.pem:1-3', 'grep: DB_PASSWORD', 'grep: BEGIN PRIVATE', 'app/config.py:1-3', 'app/main.py#main'] });
    expect(user).toMatch(/^### \.env:1-2 \(withheld: a dotenv file; secret files are sent only when the task names them\)$/m);
    expect(user).toMatch(/^### deploy\/server\.pem:1-3 \(withheld: .+\)$/m);
    for (const secret of [WORKER_KEY, AWS_ID, AWS_SECRET, ENV_ONLY, PEM_BODY]) expect(user).not.toContain(secret);
    expect(user).toMatch(/^### grep: BEGIN PRIVATE \(0 matches/m);
    expect(user).toMatch(/^### grep: DB_PASSWORD \(1 match in \d+ files searched/m);
    expect(user).toContain('.env.example:1: DB_PASSWORD=');
    expect(user).toContain('def main():\n    return bucket_name("prod")');
    expect(built.redactions).toBe(markers(user));
    expect(built.shown['.env']).toBeUndefined();
  });

  test('a secret file the task names is sent as it is, but for the worker\'s own secrets', async () => {
    for (const task of [{ relatedFiles: ['.env'] }, { description: 'DB_PASSWORD in .env is wrong: fix it.' }]) {
      const { built, user } = await build(task);
      expect(user).toContain(`### .env\n\`\`\`\nTEST_API_KEY=${REDACTED}\nDB_PASSWORD=${ENV_ONLY}\n\`\`\``);
      expect(user).not.toContain(WORKER_KEY);
      expect(built.shown['.env']).toBe('masked');
      // Naming one secret file does not send the others.
      expect(user).not.toContain(PEM_BODY);
    }
    // `.env.example` in the text does not name `.env`.
    const { user } = await build({ description: 'Copy .env.example when you document DB_PASSWORD.' });
    expect(user).not.toContain(ENV_ONLY);
  });

  test('a file with masked values is edited around them, never rewritten whole, and keeps its secrets', async () => {
    const { built } = await build({});
    const apply = (files: ChangeSet['files']) => applyChangeSet(sws.dir, { summary: 's', files }, { shown: built.shown });
    const rewritten = config.replace('REGION = "eu-west-1"', 'REGION = "eu-central-1"').replace(AWS_SECRET, REDACTED);
    const whole = await apply([{ path: 'app/config.py', action: 'write', content: rewritten }]);
    expect(whole.applied).toBe(false);
    expect(whole.errors[0]).toMatch(/holds values shown to you as \[REDACTED\]: a whole-file rewrite would overwrite them/);
    const copied = await apply([{ path: 'app/config.py', action: 'edit', search: `AWS_SECRET_ACCESS_KEY = "${REDACTED}"\nREGION = "eu-west-1"\n`, replace: 'REGION = "eu-central-1"\n' }]);
    expect(copied.applied).toBe(false);
    expect(copied.errors[0]).toMatch(/SEARCH contains \[REDACTED\], a value masked in what you were shown/);
    const around = await apply([{ path: 'app/config.py', action: 'edit', search: 'REGION = "eu-west-1"\n', replace: 'REGION = "eu-central-1"\n' }]);
    expect(around.applied).toBe(true);
    const after = readFileSync(path.join(sws.dir, 'app/config.py'), 'utf8');
    expect(after).toContain(AWS_SECRET);
    expect(after).toContain('REGION = "eu-central-1"');
  });

  test('a partly shown file counts only the values in the lines it shows', async () => {
    const lines = [`API_KEY = "${'a1b2c3d4'.repeat(3)}"`, ...Array.from({ length: 3000 }, (_, i) => `def f${i}(x):\n    return x + ${i}  # ${'.'.repeat(30)}`), `TOKEN_X_PASSWORD = "far-away-${'z9'.repeat(8)}"`];
    writeFileSync(path.join(sws.dir, 'app/big.py'), `${lines.join('\n')}\n`);
    const { built, user } = await build({ relatedFiles: ['app/big.py'] }, { tokenBudget: 6000 });
    expect(built.shown['app/big.py']).toBe('partial');
    expect(user).toMatch(/### app\/big\.py \(partial: /);
    expect(user).toContain(`API_KEY = "${REDACTED}"`);
    expect(user).not.toContain('a1b2c3d4');
    expect(user).not.toContain('far-away');
    // The value in an unshown line is not counted: the count is what the prompt holds.
    expect(built.redactions).toBe(markers(user));
    expect(user.match(/^API_KEY = /gm)).toHaveLength(1);
  });
});

test('a retry keeps the first attempt\'s prompt as its prefix (task, map, files) and adds its feedback after it: the part a provider can serve from its cache', async () => {
  const build = async (attempt: number, feedback?: string) => {
    const built = await buildPrompt(store, {
      workspace: ws,
      task: { title: 'T', description: 'D', relatedFiles: ['src/a.js'] },
      attempt,
      tokenBudget: 16_000,
      allowSubtasks: false,
      ...(feedback ? { feedback } : {}),
    }, { cacheDir: path.join(base, 'cache') });
    return store.readJson<PromptMessages>(built.prompt);
  };
  const first = await build(1);
  const retry = await build(2, 'Tests failed: expected 2, got 1');
  expect(first.user).toContain('INSIDE-CONTENT');
  expect(retry.stableChars).toBe(first.stableChars);
  expect(retry.user.slice(0, retry.stableChars)).toBe(first.user.slice(0, first.stableChars));
  expect(retry.user.slice(0, retry.stableChars)).toContain('INSIDE-CONTENT');
  expect(retry.user.indexOf('expected 2, got 1')).toBeGreaterThan(retry.stableChars!);
});
