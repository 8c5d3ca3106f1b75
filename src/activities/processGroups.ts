// Process groups: killing them whole, telling whether one still runs, and making sure none
// outlives its worker (design rule 7) — a parent-death signal, a watchdog outside the group, and
// pid files naming running groups, so that a rerun or a worker's successor can kill leftovers.
// The watchdog is the spawn helper (./spawner), which starts every command.
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFileVia } from './spawner';

/** `unref`: the timer alone does not keep the process alive (a watch that ends with its command). */
export const sleep = (ms: number, opts: { unref?: boolean } = {}) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    if (opts.unref) t.unref();
  });

/** Blocks this thread for `ms`: only where the caller must stay synchronous (a process 'exit' handler, a sync mutex). */
export const sleepSync = (ms: number) => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Signals process group `pgid`; false when nobody was left in it (ESRCH). */
export function killGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether any live (non-zombie) process is in process group `pgid`. `kill(-pgid, 0)` first: an
 * empty group (the usual end of a command) is told without a scan. On Linux a group that is not
 * empty is then looked for in /proc, because orphans that nobody reaps would otherwise count as alive.
 */
export async function processGroupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  let entries: string[] | undefined;
  try {
    entries = await readdir('/proc');
  } catch {
    entries = undefined;
  }
  if (entries && entries.includes('self')) {
    for (const name of entries) {
      if (!/^\d+$/.test(name)) continue;
      let stat: string;
      try {
        stat = await readFile(`/proc/${name}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      // pid (comm) state ppid pgrp …  — comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/<pid>/stat: when the process started (clock ticks since boot); tells a reused pid apart. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs and, when `start` is known, is the process that was recorded (not a reused pid). */
export function processAlive(pid: number, start?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = processStartTime(pid);
  return !start || !now || now === start;
}

/** `<pgid> <start time of its leader>`: enough to kill the group later without hitting a reused pid. */
export async function recordGroup(file: string, pgid: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${pgid} ${processStartTime(pgid) ?? ''}\n`);
}

/** Removes `file` if it still names `pgid` (a newer run may have taken it over). */
export async function unrecordGroup(file: string, pgid: number): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (Number(text.split(/\s/)[0]) === pgid) await unlink(file).catch(() => undefined);
}

/**
 * Kills the process group recorded in `file` (recordGroup) if it still runs, waits until it is
 * gone (≤ 5 s), and removes the file. A leader that is alive but started at another time is a
 * reused pid: left alone. A dead leader with members left is still the recorded group (Linux
 * does not hand out an id that a live group still uses). Returns whether something was killed.
 */
export async function killRecordedGroup(file: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  const [pgidText, start] = text.trim().split(/\s+/);
  const pgid = Number(pgidText);
  let killed = false;
  if (Number.isInteger(pgid) && pgid > 1 && pgid !== process.pid) {
    const leaderStart = processStartTime(pgid);
    const reused = leaderStart !== undefined && !!start && leaderStart !== start;
    if (!reused && (await processGroupAlive(pgid))) {
      killGroup(pgid, 'SIGKILL');
      killed = true;
      for (let i = 0; i < 100 && (await processGroupAlive(pgid)); i++) await sleep(50);
    }
  }
  await unlink(file).catch(() => undefined);
  return killed;
}

/** Kills every group recorded in `dir` (a predecessor's running commands); returns how many were alive. */
export async function sweepRecordedGroups(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let killed = 0;
  for (const name of names) if (name.endsWith('.pid') && (await killRecordedGroup(path.join(dir, name)))) killed += 1;
  return killed;
}

/**
 * Whether `setpriv --pdeathsig` works here (util-linux ≥ 2.33, Linux). Checked once per process.
 * Tried for real: a util-linux too old for the flag, or a non-Linux system, fails the run.
 */
let pdeathsig: Promise<boolean> | undefined;
export function hasPdeathsig(): Promise<boolean> {
  pdeathsig ??= new Promise((resolve) => {
    if (process.platform !== 'linux') return resolve(false);
    execFileVia('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { timeout: 5000 }).then(
      () => resolve(true),
      () => resolve(false),
    );
  });
  return pdeathsig;
}
