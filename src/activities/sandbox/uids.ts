// A root worker runs each workspace's sandbox as its own unprivileged uid
// (WEAVER_SANDBOX_UID_RANGE): the uid chosen per workspace and held by a lock file per uid (so
// two worker processes on one host never hand out the same one), the workspace handed over to
// it, and its parents below the workspace root made traversable for it — nothing above.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, type Stats, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, lchown, lstat, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isInside } from '../paths';
import { sleepSync } from '../processGroups';
import type { SandboxSetting } from './setting';
import { walkSmall } from './smallTree';
import { execFileVia } from '../spawner';

// Through the spawn helper: the worker itself never forks.
const run = execFileVia;

/** Which uid each workspace's sandbox runs as (this process; the lock files say it for the host). */
const uidOfDir = new Map<string, number>();

/** Where the lock files are: WEAVER_SANDBOX_UID_LOCKS, else /run/weaver/sandbox-uids (gone at reboot, like the processes). */
export function uidLockDir(env: NodeJS.ProcessEnv): string {
  if (env.WEAVER_SANDBOX_UID_LOCKS) return path.resolve(env.WEAVER_SANDBOX_UID_LOCKS);
  try {
    mkdirSync('/run/weaver/sandbox-uids', { recursive: true, mode: 0o700 });
    return '/run/weaver/sandbox-uids';
  } catch {
    return path.join(os.tmpdir(), 'weaver-sandbox-uids');
  }
}

/** The start time of a process (jiffies since boot), so a reused pid is not taken for the holder. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export const SELF = `${process.pid} ${startTimeOf(process.pid) ?? '?'}`;

/** A lock's holder: `<pid> <start time>\n<workspace>`; held while that process lives. */
export function readLock(file: string): { holder: string; dir: string; alive: boolean } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const [holder = '', dir = ''] = text.split('\n');
  const [pid, start] = holder.split(' ');
  return { holder, dir, alive: holder === SELF || (Number(pid) > 0 && startTimeOf(Number(pid)) === start) };
}

/**
 * Host-wide mutual exclusion for the few milliseconds of a choice (mkdir is atomic); a mutex
 * left by a process that died mid-choice is broken after 2 s (the wait blocks this process's
 * event loop, so it stays well inside every heartbeat timeout).
 */
export function withMutex<T>(locks: string, fn: () => T): T {
  const mutex = path.join(locks, '.choosing');
  for (;;) {
    try {
      mkdirSync(mutex);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(mutex).mtimeMs > 2_000) rmdirSync(mutex);
      } catch {
        // released meanwhile
      }
      sleepSync(5);
    }
  }
  try {
    return fn();
  } finally {
    try {
      rmdirSync(mutex);
    } catch {
      // broken as stale by another process: nothing left to release
    }
  }
}

/** Takes uid's lock for `dir` unless a live process holds it for another workspace. */
function tryLock(locks: string, uid: number, dir: string): boolean {
  const file = path.join(locks, String(uid));
  const held = readLock(file);
  if (held?.alive) return held.holder === SELF && held.dir === dir;
  // Free, or stale: its holder is gone (a restarted worker takes its workspace's uid back).
  const tmp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}`;
  writeFileSync(tmp, `${SELF}\n${dir}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return true;
}

/**
 * A workspace's own uid: from a hash of its path, so every command of a task (and a restarted
 * worker) gets the same one; a uid another workspace holds — on this host, in any worker
 * process (its lock file) — is skipped.
 */
export function uidFor(setting: SandboxSetting, dir: string): number | undefined {
  if (!setting.uids) return setting.runAs;
  const key = path.resolve(dir);
  const { first, last } = setting.uids;
  // One uid for all (WEAVER_SANDBOX_UID): shared on purpose, so nothing to lock.
  if (first === last) return first;
  const known = uidOfDir.get(key);
  if (known !== undefined && known >= first && known <= last) return known;
  const locks = setting.uidLocks ?? uidLockDir({});
  mkdirSync(locks, { recursive: true, mode: 0o700 });
  const n = last - first + 1;
  const start = Number(BigInt(`0x${createHash('sha256').update(key).digest('hex').slice(0, 16)}`) % BigInt(n));
  const uid = withMutex(locks, () => {
    for (let k = 0; k < n; k++) {
      const candidate = first + ((start + k) % n);
      if (tryLock(locks, candidate, key)) return candidate;
    }
    throw new Error(`every sandbox uid in ${first}-${last} is held by a live workspace on this host (lock files in ${locks}): widen WEAVER_SANDBOX_UID_RANGE`);
  });
  uidOfDir.set(key, uid);
  return uid;
}

/** A released workspace gives its uid back (its lock file, if this process holds it for that workspace). */
export function releaseUid(setting: SandboxSetting, dir: string): void {
  const key = path.resolve(dir);
  const uid = uidOfDir.get(key);
  uidOfDir.delete(key);
  if (uid === undefined || !setting.uids || setting.uids.first === setting.uids.last) return;
  const locks = setting.uidLocks ?? uidLockDir({});
  withMutex(locks, () => {
    const file = path.join(locks, String(uid));
    const held = readLock(file);
    if (held?.holder === SELF && held.dir === key) rmSync(file, { force: true });
  });
}

/**
 * A root worker's sandbox runs as an unprivileged uid: the workspace's files (not its `.git`,
 * which stays root's and read-only) are handed to it before each command.
 */
export async function handOver(dir: string, uid: number, workspaceRoot?: string): Promise<void> {
  await makeTraversable(dir, workspaceRoot);
  const top = path.resolve(dir);
  // Only what is not the sandbox's yet: chown changes a file's ctime even to the same owner, and
  // git would then re-read every file (the rollback to the state after setup, status) — a venv's
  // thousands each time.
  const few = await notYetOwned(top, uid);
  if (few) {
    for (const p of few) await lchown(p, uid, uid);
    return;
  }
  // A big tree: one `find` walks it faster than this process would (and off its event loop).
  const git = `${top.replace(/[*?[\]\\]/g, '\\$&')}/.git`;
  const notYet = ['(', '!', '-uid', String(uid), '-o', '!', '-gid', String(uid), ')'];
  await run('find', [top, '(', '-path', git, '-prune', ')', '-o', ...notYet, '-exec', 'chown', '-h', `${uid}:${uid}`, '{}', '+']);
}

/**
 * What `find <top> -path <top>/.git -prune -o ( ! -uid U -o ! -gid U ) -print` lists (symlinks
 * not followed), or undefined past a small tree's entries (a fresh clone of a small repository,
 * an empty cache are walked here).
 */
async function notYetOwned(top: string, uid: number): Promise<string[] | undefined> {
  const out: string[] = [];
  const notOwned = (p: string, st: Stats) => {
    if (st.uid !== uid || st.gid !== uid) out.push(p);
    return true;
  };
  const st = await lstat(top);
  notOwned(top, st);
  if (!st.isDirectory()) return out;
  const git = path.join(top, '.git');
  return (await walkSmall(top, notOwned, { skip: (p) => p === git })) === undefined ? undefined : out;
}

/**
 * bwrap, running as the sandbox's uid, must reach `dir`: its parents up to the workspace root
 * (included; only the direct parent without one) get search (x) permission for others — never
 * read, so nobody can list them. Above the root nothing is changed: the worker checked at start
 * that those directories let others through.
 */
export async function makeTraversable(dir: string, workspaceRoot?: string): Promise<void> {
  const top = workspaceRoot && isInside(path.resolve(dir), workspaceRoot) ? workspaceRoot : path.dirname(path.resolve(dir));
  for (let p = path.dirname(path.resolve(dir)); isInside(p, top); p = path.dirname(p)) {
    const st = await stat(p);
    if (!(st.mode & 0o001)) await chmod(p, (st.mode & 0o7777) | 0o001);
    if (p === top) break;
  }
}
