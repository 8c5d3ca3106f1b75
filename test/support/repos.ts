// Real git repositories for tests: files in, one commit on `main`, the path out.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';

export async function makeRepo(dir: string, files: Record<string, string | Buffer>): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await simpleGit(dir).init(['--initial-branch=main']);
  return addFiles(dir, files, 'init');
}

/** Writes `files` into the repository at `dir` and commits them. */
export async function addFiles(dir: string, files: Record<string, string | Buffer>, message = 'more files'): Promise<string> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  const git = simpleGit(dir);
  await git.add('.');
  await git.raw(['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', message]);
  return dir;
}
