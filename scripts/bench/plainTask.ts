// What a user writes instead of Weaver: one coding task as a plain, non-durable Node function.
// The same steps Weaver takes, none skipped: clone (--no-local, as Weaver clones a local path),
// a task branch, one model call with the `openai` SDK, the change written, the tests run, a
// commit, a push of the branch to the repository, the workspace removed. No retries, no
// history, no sandbox: if the process dies the task is lost.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';

const run = promisify(execFile);

export interface PlainTask {
  id: string;
  /** The repository to clone (a local path here) and push the branch back to. */
  repo: string;
  baseBranch: string;
  branch: string;
  model: string;
  title: string;
  description: string;
  files: string[];
  testCommand: string[];
  /** Where the clone goes (removed at the end). */
  workDir: string;
}

export interface PlainResult {
  id: string;
  ok: boolean;
  ms: number;
  commit?: string;
  error?: string;
}

const SYSTEM = [
  'You change code in a repository. Answer with a one-line summary, then every file you change',
  'in full: its path on a line, then `<<<<<<< FILE`, the new content, and `>>>>>>> FILE`.',
].join('\n');

/** path → content of every file block in the answer. */
export function parseFiles(answer: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const m of answer.matchAll(/^(\S[^\n]*)\n<<<<<<< FILE\n([\s\S]*?)^>>>>>>> FILE$/gm)) files.set(m[1].trim(), m[2]);
  return files;
}

const git = (cwd: string, args: string[]) => run('git', args, { cwd, maxBuffer: 16 << 20 });

export async function runPlainTask(openai: OpenAI, t: PlainTask): Promise<PlainResult> {
  const started = Date.now();
  const dir = path.join(t.workDir, t.id);
  try {
    await mkdir(t.workDir, { recursive: true });
    await git(t.workDir, ['clone', '--no-local', '--branch', t.baseBranch, '--', t.repo, dir]);
    await git(dir, ['checkout', '-b', t.branch]);

    const shown = await Promise.all(t.files.map(async (f) => `${f}\n\`\`\`\n${await readFile(path.join(dir, f), 'utf8')}\`\`\``));
    const completion = await openai.chat.completions.create({
      model: t.model,
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: `# ${t.title}\n\n${t.description}\n\n${shown.join('\n\n')}` },
      ],
    });
    const files = parseFiles(completion.choices[0]?.message.content ?? '');
    if (!files.size) throw new Error('the model changed no file');
    for (const [rel, content] of files) {
      const target = path.resolve(dir, rel);
      if (!target.startsWith(dir + path.sep)) throw new Error(`the model wrote outside the repository: ${rel}`);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, content);
    }

    // A failing test run rejects (non-zero exit): the task fails, nothing is committed.
    const [cmd, ...args] = t.testCommand;
    await run(cmd, args, { cwd: dir, maxBuffer: 64 << 20 });

    await git(dir, ['add', '-A']);
    await git(dir, ['-c', 'user.name=Plain Script', '-c', 'user.email=plain@localhost', 'commit', '-q', '-m', t.title]);
    const commit = (await git(dir, ['rev-parse', 'HEAD'])).stdout.trim();
    await git(dir, ['push', '-q', 'origin', `${t.branch}:refs/heads/${t.branch}`]);
    return { id: t.id, ok: true, ms: Date.now() - started, commit };
  } catch (err) {
    return { id: t.id, ok: false, ms: Date.now() - started, error: (err as Error).message.slice(0, 2000) };
  } finally {
    // Retried: a git process that outlives its command (auto-maintenance) may still be writing in .git.
    await rm(dir, { recursive: true, force: true, maxRetries: 5 }).catch(() => undefined);
  }
}
