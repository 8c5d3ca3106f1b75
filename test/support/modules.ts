// Multi-module repositories and subtask scripting for decomposition tests: one module per name,
// each with a test wanting value() === '<name>-done'; answers picked by the task title.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { lastUserText, type StaticStep, type StepFn } from '../../scripts/demo/scriptedModelServer';
import type { CodingTaskInput, TaskSpec } from '../../src/domain/schema';
import { wholeFile } from './answers';
import type { Rig } from './weaver';

/** A repo under `rig.tmp` with one module per name; each test wants value() === '<name>-done'. */
export async function multiRepo(rig: Pick<Rig, 'tmp'>, names: string[]): Promise<string> {
  const dir = path.join(rig.tmp, `multi-${Math.random().toString(36).slice(2, 8)}`);
  for (const n of names) {
    await mkdir(path.join(dir, 'src'), { recursive: true });
    await mkdir(path.join(dir, 'test'), { recursive: true });
    await writeFile(path.join(dir, 'src', `${n}.js`), moduleFor(n, 'todo'));
    await writeFile(
      path.join(dir, 'test', `${n}.test.js`),
      `const test = require('node:test');\nconst assert = require('node:assert');\ntest('${n}', () => assert.strictEqual(require('../src/${n}').value(), '${n}-done'));\n`,
    );
  }
  const git = simpleGit(dir);
  await git.init(['--initial-branch=main']);
  await git.add('.');
  await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-m', 'init']);
  return dir;
}

export const moduleFor = (n: string, v: string) => `// module ${n}\nfunction value() {\n  return '${v}';\n}\nmodule.exports = { value };\n`;

/** An answer setting module `n` to `v` (its test passes only with `<n>-done`). */
export const fix = (n: string, v = `${n}-done`, delayMs = 0): StaticStep => ({
  content: wholeFile(`src/${n}.js`, moduleFor(n, v), `set ${n}`),
  usage: { prompt_tokens: 100, completion_tokens: 100 },
  delayMs,
});

export const sub = (title: string, n: string): TaskSpec => ({
  title,
  description: `Make src/${n}.js return '${n}-done'.`,
  relatedFiles: [`src/${n}.js`],
  // Each child checks its own module; the parent runs the whole suite on the merge.
  testCommand: ['node', '--test', `test/${n}.test.js`],
});

/** The subtask without its own test command: the child runs the parent's. */
export const withParentTests = ({ testCommand: _t, ...rest }: TaskSpec): TaskSpec => rest;

/** The task title a request is for (the prompt's `# Task:` line). */
export const titleOf = (req: Parameters<StepFn>[0]) => /^# Task: (.+)$/m.exec(lastUserText(req))?.[1] ?? '';

/** Answers by the task title in the prompt; a list answers in turn per title. */
export function byTitle(answers: Record<string, StaticStep | StaticStep[]>): StepFn {
  const seen: Record<string, number> = {};
  return (req) => {
    const title = titleOf(req);
    const a = answers[title];
    if (!a) return { status: 500, body: { error: { message: `no answer for task "${title}"` } } };
    if (!Array.isArray(a)) return a;
    const i = (seen[title] = (seen[title] ?? -1) + 1);
    return a[Math.min(i, a.length - 1)];
  };
}

export function parentTask(rig: Rig, repo: string, model: string, extra: Partial<CodingTaskInput>): CodingTaskInput {
  return {
    repo,
    baseBranch: 'main',
    task: { title: 'Finish every module', description: 'Make every module return its done value.' },
    testCommand: ['node', '--test', 'test/'],
    providers: [rig.provider(model)],
    limits: { maxAttempts: 2, testTimeoutSec: 60, maxDepth: 1, childConcurrency: 2 },
    push: true,
    ...extra,
  };
}
