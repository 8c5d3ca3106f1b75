// Durable records of unpushed commits. A commit stored as a git bundle but not pushed (approval
// pending or refused, a refused push, `push: false`, a child's hand-over) has that bundle as its
// only copy once the workspace goes; Temporal's history names it only until the namespace's
// retention drops the run. So the commit activity writes a small record into the artifact store
// itself (`unpushed/<workflowId>/<runId>.json`: the bundle's reference, the branch, the commit, the
// repository) and deletes it when the commit is pushed, or contained in a later commit that is
// pushed or recorded (a parent's integration holds its children's commits; children's ids extend
// their parent's, so their records lie under its prefix). `weaver gc` keeps every bundle a record
// names, whatever its age or Temporal's memory; `weaver discard` deletes a task's records.
import type { ArtifactStore } from './artifacts';
import { gitFor } from './git';

export const UNPUSHED_PREFIX = 'unpushed/';

export interface UnpushedRecord {
  workflowId: string;
  runId: string;
  /** The git bundle's reference (`sha256:<hex>`): its only copy off the workspace. */
  bundle: string;
  branch: string;
  commit: string;
  /** The repository, without credentials. */
  repo?: string;
  /** When it was recorded (ISO). */
  at: string;
}

/** One workflow-id segment as a key segment: `/` splits segments; `.`, `%` and the empty one cannot pass as path parts. */
const segment = (s: string) => encodeURIComponent(s).replace(/\./g, '%2E') || '%';

/** The prefix of a workflow's records, and of its children's (their ids are `<parent>/<n>-<title>`). */
export function unpushedPrefix(workflowId: string): string {
  return `${UNPUSHED_PREFIX}${workflowId.split('/').map(segment).join('/')}/`;
}

export function unpushedKey(workflowId: string, runId: string): string {
  return `${unpushedPrefix(workflowId)}${segment(runId)}.json`;
}

export async function recordUnpushed(store: ArtifactStore, rec: UnpushedRecord): Promise<string> {
  const key = unpushedKey(rec.workflowId, rec.runId);
  await store.putRecord(key, JSON.stringify(rec, null, 2));
  return key;
}

/** The records under `prefix` (default: all), each with its key; an unreadable one is skipped. */
export async function listUnpushed(store: ArtifactStore, prefix = UNPUSHED_PREFIX): Promise<(UnpushedRecord & { key: string })[]> {
  const out: (UnpushedRecord & { key: string })[] = [];
  for (const key of await store.listRecords(prefix)) {
    const text = await store.readRecord(key);
    try {
      const rec = text === undefined ? undefined : (JSON.parse(text) as UnpushedRecord);
      if (rec?.bundle && rec.commit) out.push({ ...rec, key });
    } catch {
      // Not one of ours (or cut short): left alone, and protects nothing.
    }
  }
  return out;
}

/**
 * After a commit of `workflowId` was pushed or recorded: deletes its (and its children's) other
 * records whose commit `contains` says is in it, except `keep`. Returns what was deleted.
 */
export async function dropContained(store: ArtifactStore, workflowId: string, contains: (commit: string) => Promise<boolean>, keep?: string): Promise<UnpushedRecord[]> {
  const dropped: UnpushedRecord[] = [];
  for (const rec of await listUnpushed(store, unpushedPrefix(workflowId))) {
    if (rec.key === keep || !(await contains(rec.commit))) continue;
    await store.removeRecord(rec.key);
    dropped.push(rec);
  }
  return dropped;
}

/** `weaver discard`: a task's records (and its children's) deleted, so gc may prune their bundles. */
export async function discardUnpushed(store: ArtifactStore, workflowId: string): Promise<UnpushedRecord[]> {
  return dropContained(store, workflowId, async () => true);
}

/**
 * The commit activity's part: `r` pushed → the records its commit contains go; bundled and not
 * pushed → recorded (a failure throws: the activity is retried, never reported without its
 * record), and older records it contains go. Deleting is best effort: a stale record only keeps a
 * bundle longer (and `weaver discard` clears it).
 */
export async function settleUnpushed(
  store: ArtifactStore,
  at: { workflowId: string; runId: string; dir: string; branch: string; repo?: string },
  r: { commit: string; pushed: boolean; bundle?: { ref: string } },
  warn: (message: string, error: Error) => void,
): Promise<void> {
  if (!r.pushed && !r.bundle) return;
  const keep = r.pushed ? undefined : await recordUnpushed(store, { workflowId: at.workflowId, runId: at.runId, bundle: r.bundle!.ref, branch: at.branch, commit: r.commit, ...(at.repo ? { repo: at.repo } : {}), at: new Date().toISOString() });
  // In this commit's history (a missing object, a commit of another line: not contained).
  const contains = (commit: string) => gitFor(at.dir).raw(['rev-list', '--count', `${r.commit}..${commit}`]).then((n) => n.trim() === '0', () => false);
  await dropContained(store, at.workflowId, contains, keep).catch((err: Error) => warn('could not delete the records of commits now pushed or recorded', err));
}
