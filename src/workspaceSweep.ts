// At worker start: the workspaces of runs that are over, or that moved, go. Runs die with lost
// hosts and killed workers, and a rebuilt workspace leaves its old folder behind (70–82 per crash
// campaign run), so the worker asks Temporal about each folder under its root. A run's folder
// whose workspace was rebuilt elsewhere (an open run's progress, or a closed run's result, names
// another folder or another worker's queue) is a lost host's leftover: removed at once. A closed
// run's own folder stays for the retention period (a person may look at it), then goes. Never
// one holding a commit found nowhere else (not pushed, no bundle of it); an open run's own, or one
// whose run cannot be told (Temporal unreachable, no marker, an old run that does not say where
// its workspace is), stays. `weaver gc` (src/gc) runs the same sweep; a dry run says what would go.
// A closed run's result names its workspace's folder but not its host, so a host whose root path
// is the one a replacement (or the lost) host used is judged by folder only: the folder's own
// commits are checked, never the result's word alone. A commit counts as safe elsewhere only
// when it is on a remote, in the result's pushed or bundled commit, or in a commit the store's
// unpushed records hold (src/activities/unpushed.ts); any other commit keeps the folder.
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Client, type ConnectionLike, type WorkflowHandle } from '@temporalio/client';
import { resultOf } from './client';
import { diskUse } from './activities/sandbox/limits';
import { gitFor, RELEASED_DIR, workflowIdOfWorkspace } from './activities/workspace';
import type { UnpushedRecord } from './activities/unpushed';
import type { Progress } from './domain/schema';

/** How long an open run's progress query may take: it needs a worker with the workflow in its cache or replaying it. */
const PROGRESS_QUERY_MS = 10_000;

export interface SweepOutcome {
  /** `elsewhere`: the run's workspace was rebuilt on another host or folder (a lost host's leftover). */
  removed: { name: string; workflowId: string; status: string; bytes?: number; elsewhere?: boolean }[];
  kept: { name: string; why: string }[];
}

/** Removes the folders under `root` of runs that are over or moved elsewhere, unless a commit lives only there; says what it did through `log`. */
export async function sweepWorkspaces(opts: {
  root: string;
  connection: ConnectionLike;
  namespace: string;
  /** This worker's workspace queue: a run whose workspace is on another queue moved elsewhere (absent: judged by folder only). */
  workspaceQueue?: string;
  log?: (line: string) => void;
  /** Keep a closed run's own folder until it has been closed this long (default 0: at once); leftovers of rebuilt workspaces go at once. */
  retentionMs?: number;
  /** The clock retention is judged by (default: now). */
  now?: number;
  /** Say what would go, remove nothing. */
  dryRun?: boolean;
  /** How long an open run's progress query may take (default PROGRESS_QUERY_MS). */
  queryMs?: number;
  /** The store's records of unpushed commits: a folder whose commits one of its run's holds may go. */
  unpushed?: Pick<UnpushedRecord, 'workflowId' | 'commit'>[];
}): Promise<SweepOutcome> {
  const { root } = opts;
  const client = new Client({ connection: opts.connection, namespace: opts.namespace });
  const out: SweepOutcome = { removed: [], kept: [] };
  // Dot-folders are the worker's own (.slots, .cache); a workspace's name never starts with one.
  const names = (await readdir(root, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  for (const name of names) {
    const folder = path.join(root, name);
    const workflowId = await workflowIdOfWorkspace(root, name);
    if (!workflowId) {
      out.kept.push({ name, why: 'its run is not known (no marker)' });
      continue;
    }
    const handle = client.workflow.getHandle(workflowId);
    let status: string;
    let closedMs: number | undefined;
    try {
      const desc = await handle.describe();
      status = desc.status.name;
      closedMs = desc.closeTime?.getTime();
    } catch (err) {
      if ((err as Error).name !== 'WorkflowNotFoundError') {
        out.kept.push({ name, why: `its run could not be asked about: ${(err as Error).message.split('\n')[0]}` });
        continue;
      }
      status = 'NOT_FOUND'; // past the namespace's retention: over long ago
    }
    const result = status === 'COMPLETED' || status === 'FAILED' ? await resultOf(handle as WorkflowHandle).catch(() => undefined) : undefined;
    const current = status === 'RUNNING' ? await workspaceOfOpenRun(client, handle, opts.queryMs ?? PROGRESS_QUERY_MS) : result?.workspace ? { dir: result.workspace } : undefined;
    const elsewhere = !!current && !isIn(current, folder, opts.workspaceQueue);
    if (status === 'RUNNING' && !elsewhere) {
      out.kept.push({ name, why: `run ${workflowId} is open` });
      continue;
    }
    const age = (opts.now ?? Date.now()) - (closedMs ?? 0);
    if (!elsewhere && opts.retentionMs && age < opts.retentionMs) {
      out.kept.push({ name, why: `run ${workflowId} is ${status.toLowerCase()}, closed ${Math.round(age / 3_600_000)}h ago: within the retention period` });
      continue;
    }
    const safe = [...(result?.commit && (result.pushed || result.bundle) ? [result.commit] : []), ...(opts.unpushed ?? []).filter((u) => u.workflowId === workflowId).map((u) => u.commit)];
    if (await commitOnlyHere(folder, safe)) {
      out.kept.push({ name, why: `run ${workflowId} is ${status.toLowerCase()}${elsewhere ? ' and its workspace was rebuilt elsewhere' : ''}, but a commit of it lives only here (on no remote, in no pushed or bundled commit)` });
      continue;
    }
    const { bytes } = await diskUse([folder]);
    if (!opts.dryRun) await rm(folder, { recursive: true, force: true });
    out.removed.push({ name, workflowId, status, bytes, ...(elsewhere ? { elsewhere } : {}) });
  }
  if (!opts.dryRun) await pruneReleasedRecords(root, (opts.now ?? Date.now()) - Math.max(opts.retentionMs ?? 0, RELEASED_KEEP_MS));
  const log = opts.log ?? ((l: string) => console.log(l));
  const said = (r: SweepOutcome['removed'][number]) => `${r.workflowId} (${r.status.toLowerCase()}${r.elsewhere ? ', rebuilt elsewhere' : ''})`;
  if (out.removed.length && !opts.dryRun) log(`weaver worker: swept ${out.removed.length} workspace(s) of closed runs and lost hosts from ${root}: ${out.removed.map(said).join(', ')}`);
  for (const k of out.kept.filter((x) => !/ is open$/.test(x.why))) log(`weaver worker: kept workspace ${k.name}: ${k.why}`);
  return out;
}

/** A released workspace's commit result only serves a retry of the activity that wrote it: a day is ample. */
const RELEASED_KEEP_MS = 24 * 3_600_000;

async function pruneReleasedRecords(root: string, before: number): Promise<void> {
  const dir = path.join(root, RELEASED_DIR);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const file = path.join(dir, name);
    const s = await stat(file).catch(() => undefined);
    if (s && s.mtimeMs < before) await rm(file, { force: true });
  }
}

/** Where an open run's workspace is now (its progress query); undefined when it does not say (an old run, a batch, no worker answering). */
async function workspaceOfOpenRun(client: Client, handle: WorkflowHandle, queryMs: number): Promise<{ dir: string; taskQueue?: string } | undefined> {
  const progress = await client.withDeadline(Date.now() + queryMs, () => handle.query<Progress>('progress')).catch(() => undefined);
  return progress?.workspace;
}

/** Whether the workspace `ws` is this folder on this worker (a queue not named counts as this one's). */
function isIn(ws: { dir: string; taskQueue?: string }, folder: string, workspaceQueue?: string): boolean {
  const inFolder = ws.dir === folder || ws.dir.startsWith(folder + path.sep);
  return inFolder && (!workspaceQueue || !ws.taskQueue || ws.taskQueue === workspaceQueue);
}

/**
 * Whether a run's folder holds a commit found nowhere else: one of its checkout's branches (or
 * HEAD) has a commit no remote branch has and none of the `safe` commits (pushed or bundled) holds.
 */
async function commitOnlyHere(home: string, safe: string[]): Promise<boolean> {
  for (const e of await readdir(home, { withFileTypes: true }).catch(() => [])) {
    // Its own .git only: git would otherwise answer for a repository above (the worker's checkout).
    if (!e.isDirectory() || !existsSync(path.join(home, e.name, '.git'))) continue;
    const git = gitFor(path.join(home, e.name));
    // --ignore-missing: a safe commit made on another host is not in this checkout (and holds nothing of it).
    const local = await git.raw(['rev-list', '--count', '--ignore-missing', 'HEAD', '--branches', '--not', '--remotes', ...safe]).then((n) => Number(n.trim()), () => 0);
    if (local > 0) return true;
  }
  return false;
}
