// A root worker runs each workspace's sandbox as its own unprivileged uid
// (WEAVER_SANDBOX_UID_RANGE): the uid chosen per workspace, the workspace handed over to it, and
// the parents made traversable for it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { SandboxSetting } from './setting';

const run = promisify(execFile);

/** Which uid each workspace's sandbox runs as, and which workspace holds each uid (this process). */
const uidOfDir = new Map<string, number>();
const dirOfUid = new Map<number, string>();

/**
 * A workspace's own uid: from a hash of its path, so every command of a task (and a restarted
 * worker) gets the same one; a uid another workspace of this worker holds is skipped.
 */
export function uidFor(setting: SandboxSetting, dir: string): number | undefined {
  if (!setting.uids) return setting.runAs;
  const key = path.resolve(dir);
  const { first, last } = setting.uids;
  const known = uidOfDir.get(key);
  if (known !== undefined && known >= first && known <= last) return known;
  const n = last - first + 1;
  let i = Number(BigInt(`0x${createHash('sha256').update(key).digest('hex').slice(0, 16)}`) % BigInt(n));
  for (let k = 0; k < n && dirOfUid.has(first + i); k++) i = (i + 1) % n;
  const uid = first + i;
  uidOfDir.set(key, uid);
  dirOfUid.set(uid, key);
  return uid;
}

/**
 * A root worker's sandbox runs as an unprivileged uid: the workspace's files (not its `.git`,
 * which stays root's and read-only) are handed to it before each command.
 */
export async function handOver(dir: string, uid: number): Promise<void> {
  await makeTraversable(dir);
  await run('chown', ['-h', `${uid}:${uid}`, dir]);
  // Only what is not the sandbox's yet: chown changes a file's ctime even to the same owner, and
  // git would then re-read every file (the rollback to the state after setup, status) — a venv's
  // thousands each time.
  const git = `${path.resolve(dir).replace(/[*?[\]\\]/g, '\\$&')}/.git`;
  const notYet = ['(', '!', '-uid', String(uid), '-o', '!', '-gid', String(uid), ')'];
  await run('find', [path.resolve(dir), '-mindepth', '1', '(', '-path', git, '-prune', ')', '-o', ...notYet, '-exec', 'chown', '-h', `${uid}:${uid}`, '{}', '+']);
}

/**
 * bwrap, running as the sandbox's uid, must reach `dir`: its parents get search (x) permission
 * for others — never read, so nobody can list them.
 */
export async function makeTraversable(dir: string): Promise<void> {
  for (let p = path.dirname(path.resolve(dir)); ; p = path.dirname(p)) {
    const st = await stat(p);
    if (!(st.mode & 0o001)) await chmod(p, (st.mode & 0o7777) | 0o001);
    if (p === path.dirname(p)) break;
  }
}
