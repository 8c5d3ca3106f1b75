// Which worker process this is on its host, stable across restarts: the slot names the
// workspace queue (`<taskQueue>@<host>/<slot>-<root>`), so two processes on one host never share a
// queue, while a process restarted in the same place comes back on the queue its workspaces
// are waiting on. A slot is a pid file under the workspace root, created with O_EXCL; it is
// free again once the pid recorded there is dead. The slot's directory records the process
// groups of the commands its holder runs: a new holder kills what a dead one left running.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, realpath, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { processAlive, processStartTime, sweepRecordedGroups } from './activities/processGroups';

export interface WorkerSlot {
  /** 0, 1, …: the lowest slot free on this host under this workspace root (or the one asked for). */
  index: number;
  /**
   * `<index>-<4 hex digits of the workspace root>`: what the workspace queue is named by. Two
   * processes on one host with different workspace roots both hold slot 0, but not the same label.
   */
  label: string;
  /** The pid file holding the slot. */
  file: string;
  /** Where this holder's running commands are recorded (one `<pgid>.pid` each). */
  commandsDir: string;
  /** Process groups a dead predecessor left running, killed on claiming the slot. */
  orphansKilled: number;
  /** Gives the slot up (on a clean stop). */
  release(): Promise<void>;
}

/** How many slots a host may have before a start is refused (a runaway restart loop, most likely). */
const MAX_SLOTS = 256;
/** A takeover lock older than this was left by a process that died mid-takeover (which takes microseconds). */
const STALE_TAKEOVER_MS = 10_000;

/** The slot files' directory: per host, should the workspace root ever be shared between hosts. */
function slotsDir(workspaceRoot: string): string {
  return path.join(workspaceRoot, '.slots', os.hostname().replace(/[^A-Za-z0-9._-]+/g, '_'));
}

/**
 * Claims a slot for this process: `want` exactly (WEAVER_WORKER_SLOT) or the lowest free one.
 * Throws if `want` is held by a live process, or all MAX_SLOTS are.
 */
export async function claimWorkerSlot(workspaceRoot: string, want?: number): Promise<WorkerSlot> {
  const dir = slotsDir(workspaceRoot);
  await mkdir(dir, { recursive: true });
  const rootTag = createHash('sha256').update(await realpath(workspaceRoot)).digest('hex').slice(0, 4);
  const candidates = want === undefined ? Array.from({ length: MAX_SLOTS }, (_, i) => i) : [want];
  for (const index of candidates) {
    const file = path.join(dir, `${index}.pid`);
    if (!(await tryClaim(file))) continue;
    const commandsDir = path.join(dir, `${index}.commands`);
    await mkdir(commandsDir, { recursive: true });
    // Whatever the previous holder recorded and did not finish: still running only if it was killed.
    const orphansKilled = await sweepRecordedGroups(commandsDir);
    return { index, label: `${index}-${rootTag}`, file, commandsDir, orphansKilled, release: () => releaseSlot(file) };
  }
  const holder = want === undefined ? undefined : await readHolder(path.join(dir, `${want}.pid`));
  throw new Error(
    want === undefined
      ? `no free worker slot under ${dir}: ${MAX_SLOTS} live workers on this host?`
      : `WEAVER_WORKER_SLOT=${want} is held by live process ${holder?.pid ?? '?'} (${path.join(dir, `${want}.pid`)})`,
  );
}

/** Creates `file` holding this process (O_EXCL), taking it over when its holder is dead. */
async function tryClaim(file: string): Promise<boolean> {
  if (await create(file)) return true;
  const holder = await readHolder(file);
  if (holder && (holder.pid === undefined || processAlive(holder.pid, holder.start))) return false;
  // Dead holder: take over under a second O_EXCL lock, so that of two processes finding the same
  // stale file only one removes it (the other would otherwise remove the winner's fresh claim).
  const takeover = `${file}.takeover`;
  if (!(await create(takeover))) {
    const age = await stat(takeover).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > STALE_TAKEOVER_MS) await unlink(takeover).catch(() => undefined);
    return false;
  }
  try {
    const again = await readHolder(file);
    if (again && (again.pid !== holder?.pid || again.start !== holder?.start)) return false; // someone else took it meanwhile
    await unlink(file).catch(() => undefined);
    return await create(file);
  } finally {
    await unlink(takeover).catch(() => undefined);
  }
}

async function create(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'wx');
    try {
      await fh.writeFile(`${process.pid} ${processStartTime(process.pid) ?? ''}\n`);
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The holder recorded in `file`; `pid` undefined: the file is being written this instant (a live claim). */
async function readHolder(file: string): Promise<{ pid?: number; start?: string } | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const [pid, start] = text.trim().split(/\s+/);
  return Number(pid) > 0 ? { pid: Number(pid), start: start || undefined } : {};
}

async function releaseSlot(file: string): Promise<void> {
  const holder = await readHolder(file);
  if (holder?.pid === process.pid) await unlink(file).catch(() => undefined);
}
