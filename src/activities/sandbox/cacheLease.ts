// A repository's toolchain cache is used by one sandbox uid at a time: a root worker hands it
// to the workspace's uid before a command (./uids.ts handOver), and a command of another uid
// still running there would find the directories it writes into taken away (Go's build then
// fails). Each command using the cache leaves a user file beside it while it runs (host-wide:
// several worker processes may share a workspace root); one of another uid that finds a live
// user of a different uid gets a cache of its own workspace instead (cold, but never broken).
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readLock, SELF, withMutex } from './uids';

/** Registers `uid` as a user of `cacheDir`; its release, or undefined when a live command of another uid holds it. */
export function leaseCache(cacheDir: string, uid: number): (() => void) | undefined {
  const users = `${cacheDir}.users`;
  mkdirSync(users, { recursive: true, mode: 0o700 });
  const mine = path.join(users, `${uid}-${process.pid}-${randomUUID().slice(0, 8)}`);
  const taken = withMutex(users, () => {
    for (const name of readdirSync(users)) {
      if (name.startsWith('.')) continue;
      const held = readLock(path.join(users, name));
      // A user file whose process is gone (a worker that died mid-command) holds nothing.
      if (!held?.alive) rmSync(path.join(users, name), { force: true });
      else if (!name.startsWith(`${uid}-`)) return true;
    }
    writeFileSync(mine, `${SELF}\n${cacheDir}\n`, { mode: 0o600 });
    return false;
  });
  return taken ? undefined : () => rmSync(mine, { force: true });
}
