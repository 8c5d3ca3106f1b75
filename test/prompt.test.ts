// buildPrompt reads repository files with the same confinement as applyChange (design rule 7):
// relatedFiles (from the task or a model's subtask) and tracked symlinks cannot pull
// `.git/config`, `../x` or a file outside the workspace into the prompt artifact.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { ArtifactStore } from '../src/activities/artifacts';
import type { PromptMessages } from '../src/activities/llm';
import { buildPrompt } from '../src/activities/prompt';
import type { WorkspaceHandle } from '../src/activities/types';

const OUTSIDE = 'OUTSIDE-SECRET-7f3a';
const PARENT = 'PARENT-SECRET-91bc';
const GIT_CONFIG_MARK = 'weaver-test-remote-token-c0ffee';

let base: string;
let ws: WorkspaceHandle;
let store: ArtifactStore;

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
  store = new ArtifactStore(path.join(base, 'artifacts'));
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
