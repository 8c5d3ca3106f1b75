// A repository's toolchain cache is used by one sandbox uid at a time: a root worker hands it
// to the workspace's uid before a command (./uids.ts handOver), and a command of another uid
// still running there would find the directories it writes into taken away (Go's build then
// fails). Each command using the cache leaves a user file beside it while it runs (host-wide:
// several worker processes may share a workspace root); one of another uid that finds a live
// user of a different uid gets a cache of its own workspace instead (cold, but never broken).
// Every lease also bumps the cache's generation and names its uid (`.generation`): a workspace
// whose uid was the last to use the cache needs no hand-over, and one that finds the generation
// its last command ended at knows the cache's size has not changed since.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readLock, SELF, withMutex } from './uids';

export interface CacheLease {
  /** Gives the cache back. */
  release: () => void;
  /** The uid of the command that used the cache before this one (undefined: none recorded). */
  lastUid?: number;
  /** The cache's generation before this command. */
  before: number;
  /** The generation now, if this command is the cache's only live user (its end measurement is then the next baseline). */
  alone: () => number | undefined;
}

/** Registers `uid` as a user of `cacheDir`; undefined when a live command of another uid holds it. */
export function leaseCache(cacheDir: string, uid: number): CacheLease | undefined {
  const users = `${cacheDir}.users`;
  mkdirSync(users, { recursive: true, mode: 0o700 });
  const name = `${uid}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const mine = path.join(users, name);
  const genFile = path.join(users, '.generation');
  const taken = withMutex(users, () => {
    if (othersLive(users, (other) => !other.startsWith(`${uid}-`))) return undefined;
    writeFileSync(mine, `${SELF}\n${cacheDir}\n`, { mode: 0o600 });
    const was = readGeneration(genFile);
    writeFileSync(genFile, `${was.generation + 1} ${uid}\n`);
    return was;
  });
  if (!taken) return undefined;
  return {
    release: () => rmSync(mine, { force: true }),
    lastUid: taken.uid,
    before: taken.generation,
    alone: () => withMutex(users, () => (othersLive(users, (other) => other !== name) ? undefined : readGeneration(genFile).generation)),
  };
}

/** Whether a live user file for which `counts` holds is there (dead processes' files are removed on the way). */
function othersLive(users: string, counts: (name: string) => boolean): boolean {
  for (const other of readdirSync(users)) {
    if (other.startsWith('.')) continue;
    const held = readLock(path.join(users, other));
    // A user file whose process is gone (a worker that died mid-command) holds nothing.
    if (!held?.alive) rmSync(path.join(users, other), { force: true });
    else if (counts(other)) return true;
  }
  return false;
}

function readGeneration(file: string): { generation: number; uid?: number } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // never leased since the cache was made
  }
  const [gen, uid] = text.trim().split(' ');
  return { generation: Number(gen) || 0, ...(uid && /^\d+$/.test(uid) ? { uid: Number(uid) } : {}) };
}
