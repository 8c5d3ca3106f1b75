// Answers read from a workspace's `.git` files instead of a git process (issue 18: each git is a
// process start, ≈ 1–2 ms of CPU). Only where the files answer exactly what git would: a loose
// ref or object in the files layout Weaver's clones have. Anything else (a packed or symbolic
// ref, a reftable repository, an object in a pack, replace refs) answers `undefined`, and the
// caller asks git.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { inflate } from 'node:zlib';
import { promisify } from 'node:util';
import { gitRun } from './git';

const inflated = promisify(inflate);
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

const read = (file: string) => readFile(file, 'utf8').catch(() => undefined);

/** HEAD of the repository at `dir`: its commit, and the branch it names (none when detached). */
export async function readHead(dir: string): Promise<{ commit: string; branch?: string } | undefined> {
  const gitDir = path.join(dir, '.git');
  const head = (await read(path.join(gitDir, 'HEAD')))?.trim();
  if (!head) return undefined;
  if (OBJECT_ID.test(head)) return { commit: head };
  const ref = /^ref: (refs\/heads\/\S+)$/.exec(head)?.[1];
  // A ref name with `..` or a component starting with `.` is not a branch git would write (a
  // reftable repository's HEAD names `refs/heads/.invalid`).
  if (!ref || ref.split('/').some((part) => part.startsWith('.'))) return undefined;
  // Loose only: a packed ref (or none: an unborn branch) is git's to resolve.
  const commit = (await read(path.join(gitDir, ref)))?.trim();
  return commit && OBJECT_ID.test(commit) ? { commit, branch: ref.slice('refs/heads/'.length) } : undefined;
}

/** `git rev-parse HEAD`, from the files when they answer. */
export async function headCommit(dir: string): Promise<string> {
  return (await readHead(dir))?.commit ?? (await gitRun(dir, ['rev-parse', 'HEAD'])).trim();
}

/**
 * The tree of `commit` (`git rev-parse <commit>^{tree}`) from its loose object — the state a
 * commit just made is in — checked against its id (the content's hash), so it is the commit
 * itself, not a file that only sits at its path. Undefined when the object is packed, or replace
 * refs could make git answer for another object.
 */
export async function looseCommitTree(dir: string, commit: string): Promise<string | undefined> {
  if (!OBJECT_ID.test(commit)) return undefined;
  const gitDir = path.join(dir, '.git');
  if (existsSync(path.join(gitDir, 'refs', 'replace')) || (await read(path.join(gitDir, 'packed-refs')))?.includes(' refs/replace/')) return undefined;
  const raw = await readFile(path.join(gitDir, 'objects', commit.slice(0, 2), commit.slice(2))).catch(() => undefined);
  const object = raw && (await inflated(raw).catch(() => undefined));
  if (!object) return undefined;
  const hash = createHash(commit.length === 40 ? 'sha1' : 'sha256').update(object).digest('hex');
  if (hash !== commit) return undefined;
  const nul = object.indexOf(0);
  const header = object.subarray(0, nul).toString('latin1');
  if (nul < 0 || header !== `commit ${object.length - nul - 1}`) return undefined;
  const tree = /^tree ([0-9a-f]+)\n/.exec(object.subarray(nul + 1, nul + 1 + 80).toString('latin1'))?.[1];
  return tree && tree.length === commit.length ? tree : undefined;
}
