// The demo's example repository and its scripted offline model. The model is labelled as
// such everywhere it shows: it is a script, not an LLM.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { editFormat } from '../../src/domain/editformats';
import type { CodingTaskInput, ProviderChoice } from '../../src/domain/schema';
import { lastUserText, type StaticStep } from './scriptedModelServer';

export const DEMO_MODEL = 'weaver-demo-scripted';

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'weaver-example', version: '1.0.0', private: true, scripts: { test: 'node --test test/' } }, null, 2) + '\n',
  'README.md': '# weaver-example\n\nA tiny library whose `slugify` is not written yet.\n',
  'src/slugify.js': `// Turns a title into a URL slug.\nfunction slugify(text) {\n  throw new Error('not implemented');\n}\n\nmodule.exports = { slugify };\n`,
  'src/index.js': `const { slugify } = require('./slugify');\n\nmodule.exports = { slugify };\n`,
  'test/slugify.test.js': `const test = require('node:test');
const assert = require('node:assert');
const { slugify } = require('../src/slugify');

test('lowercases and joins words with dashes', () => {
  assert.strictEqual(slugify('Hello World'), 'hello-world');
});

test('drops accents and punctuation, trims dashes', () => {
  assert.strictEqual(slugify('  Déjà vu!  '), 'deja-vu');
});

test('collapses runs of separators', () => {
  assert.strictEqual(slugify('a -- b__c'), 'a-b-c');
});
`,
};

/** A fresh git repository (main branch, one commit) whose tests fail until slugify is written. */
export async function createExampleRepo(dir: string): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(FILES)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  const git = simpleGit(dir);
  await git.init(['--initial-branch=main']);
  await git.add('.');
  await git.raw(['-c', 'user.name=Weaver Demo', '-c', 'user.email=demo@localhost', 'commit', '-m', 'Example project: slugify to be written']);
  return dir;
}

export function exampleTask(repo: string, provider: ProviderChoice): CodingTaskInput {
  return {
    repo,
    baseBranch: 'main',
    task: {
      title: 'Implement slugify',
      description: 'Write `slugify(text)` in src/slugify.js so that it turns a title into a URL slug.',
      acceptanceCriteria: [
        'lowercase ASCII letters and digits joined by single dashes',
        'accents are dropped (é → e), punctuation removed',
        'no leading or trailing dashes',
        'all tests in test/ pass',
      ],
      relatedFiles: ['src/slugify.js', 'test/slugify.test.js'],
    },
    testCommand: ['node', '--test', 'test/'],
    providers: [provider],
    limits: { maxAttempts: 3, testTimeoutSec: 60 },
    push: true,
  };
}

const STUB = `  throw new Error('not implemented');\n`;
const NAIVE = `  return String(text).trim().toLowerCase().replace(/ +/g, '-');\n`;
const FIXED = `  return String(text)\n    .normalize('NFKD')\n    .replace(/[\\u0300-\\u036f]/g, '')\n    .toLowerCase()\n    .replace(/[^a-z0-9]+/g, '-')\n    .replace(/^-+|-+$/g, '');\n`;

/**
 * The scripted offline model: a first answer that looks plausible and fails the tests, and —
 * once the prompt carries that failure as feedback — an answer that passes them. Both answer
 * in Weaver's plain-text edit format: a summary, then a SEARCH/REPLACE block.
 */
export function demoModelStep(req: { messages: { role: string; content?: unknown }[] }): StaticStep {
  const prompt = lastUserText(req as Parameters<typeof lastUserText>[0]);
  const sawFailure = /previous attempt .* failed/i.test(prompt);
  const [summary, replace] = sawFailure
    ? ['[scripted demo model] Normalise to NFKD, strip accents, replace every run of non-alphanumerics with one dash and trim dashes.', FIXED]
    : ['[scripted demo model] Lowercase the text and replace spaces with dashes.', NAIVE];
  const content = editFormat('editblock').render({ summary, files: [{ path: 'src/slugify.js', action: 'edit', search: STUB, replace }] });
  return { content, delayMs: 300 };
}
