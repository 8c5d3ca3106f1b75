// At worker start: the workspaces of runs that are over go. Runs die with lost hosts and killed
// workers, and a rebuilt workspace leaves its old folder behind (70–82 per crash campaign run),
// so the worker asks Temporal about each folder under its root: a closed run's is removed, unless
// a commit lives only there (not pushed, no bundle of it); an open run's, or one whose run cannot
// be told (Temporal unreachable, no marker), stays. `weaver gc` (src/gc.ts) runs the same sweep
// with a retention period: a finished run's folder stays that long after its close (a person may
// look at it), and a dry run says what would go.
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Client, type ConnectionLike } from '@temporalio/client';
import { resultOf } from './client';
import { diskUse } from './activities/sandbox/limits';
import { gitFor, workflowIdOfWorkspace } from './activities/workspace';

export interface SweepOutcome {
  removed: { name: string; workflowId: string; status: string; bytes?: number }[];
  kept: { name: string; why: string }[];
}

/** Removes the folders under `root` whose run is closed and holds no commit found nowhere else; says what it did through `log`. */
export async function sweepWorkspaces(opts: {
  root: string;
  connection: ConnectionLike;
  namespace: string;
  log?: (line: string) => void;
  /** Keep a closed run's folder until it has been closed this long (default 0: at once). */
  retentionMs?: number;
  /** The clock retention is judged by (default: now). */
  now?: number;
  /** Say what would go, remove nothing. */
  dryRun?: boolean;
}): Promise<SweepOutcome> {
  const { root } = opts;
  const client = new Client({ connection: opts.connection, namespace: opts.namespace });
  const out: SweepOutcome = { removed: [], kept: [] };
  // Dot-folders are the worker's own (.slots, .cache); a workspace's name never starts with one.
  const names = (await readdir(root, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  for (const name of names) {
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
    if (status === 'RUNNING') {
      out.kept.push({ name, why: `run ${workflowId} is open` });
      continue;
    }
    const age = (opts.now ?? Date.now()) - (closedMs ?? 0);
    if (opts.retentionMs && age < opts.retentionMs) {
      out.kept.push({ name, why: `run ${workflowId} is ${status.toLowerCase()}, closed ${Math.round(age / 3_600_000)}h ago: within the retention period` });
      continue;
    }
    if (await commitOnlyHere(path.join(root, name), status === 'COMPLETED' || status === 'FAILED' ? handle : undefined)) {
      out.kept.push({ name, why: `run ${workflowId} is ${status.toLowerCase()}, but a commit of it lives only here (not pushed, no bundle)` });
      continue;
    }
    const { bytes } = await diskUse([path.join(root, name)]);
    if (!opts.dryRun) await rm(path.join(root, name), { recursive: true, force: true });
    out.removed.push({ name, workflowId, status, bytes });
  }
  const log = opts.log ?? ((l: string) => console.log(l));
  if (out.removed.length && !opts.dryRun) log(`weaver worker: swept ${out.removed.length} workspace(s) of closed runs from ${root}: ${out.removed.map((r) => `${r.workflowId} (${r.status.toLowerCase()})`).join(', ')}`);
  for (const k of out.kept.filter((x) => !/ is open$/.test(x.why))) log(`weaver worker: kept workspace ${k.name}: ${k.why}`);
  return out;
}

/**
 * Whether a closed run's folder holds a commit found nowhere else: its result says it pushed or
 * bundled the branch (then no), else a checkout there has commits no remote branch has.
 */
async function commitOnlyHere(home: string, handle?: { result(): Promise<unknown> }): Promise<boolean> {
  const result = handle ? ((await resultOf(handle).catch(() => undefined)) as { pushed?: boolean; bundle?: unknown } | undefined) : undefined;
  if (result?.pushed || result?.bundle) return false;
  for (const e of await readdir(home, { withFileTypes: true }).catch(() => [])) {
    // Its own .git only: git would otherwise answer for a repository above (the worker's checkout).
    if (!e.isDirectory() || !existsSync(path.join(home, e.name, '.git'))) continue;
    const git = gitFor(path.join(home, e.name));
    const local = await git.raw(['rev-list', '--count', 'HEAD', '--not', '--remotes']).then((n) => Number(n.trim()), () => 0);
    if (local > 0) return true;
  }
  return false;
}
