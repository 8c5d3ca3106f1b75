// Retention (`weaver gc`, and a worker's periodic run: WEAVER_GC_INTERVAL). What goes, once older
// than the retention period: finished runs' workspaces (src/workspaceSweep.ts: never one holding
// a commit found nowhere else), artifacts no open run refers to (by last write: a content written
// again is young again), scratch files of crashed writers, and tag-cache entries not used since.
// Never pruned, whatever their age: the artifacts an open run refers to and the bundles holding
// unpushed commits (references.ts: closed runs' results, and the store's own unpushed records,
// which outlive Temporal's history). The references are read before anything is deleted: when
// Temporal cannot be asked, no artifact goes. Then the host caches are trimmed to their size cap
// (caches.ts, WEAVER_CACHE_MAX_MB).
import { Client, type ConnectionLike } from '@temporalio/client';
import type { ArtifactStore, StoredArtifact } from '../activities/artifacts';
import { repomapCacheDirOf } from '../activities/repomap/cache';
import { pruneTagCache, type TagCachePrune } from '../activities/repomap/cachePrune';
import { S3ArtifactStore } from '../activities/s3Artifacts';
import { listUnpushed, type UnpushedRecord } from '../activities/unpushed';
import { sweepWorkspaces, type SweepOutcome } from '../workspaceSweep';
import { trimCaches, type CacheTrim } from './caches';
import { liveReferences, type Keep } from './references';

export interface GcOptions {
  connection: ConnectionLike;
  namespace: string;
  workspaceRoot: string;
  /** The host's cache directory (WEAVER_CACHE_DIR; unset: `<workspaceRoot>/.cache`): its tag cache is pruned. */
  cacheDir?: string;
  store: ArtifactStore;
  retentionMs: number;
  /** The host caches' size cap (WEAVER_CACHE_MAX_MB); undefined: not enforced. */
  cacheMaxBytes?: number;
  dryRun?: boolean;
  /** The clock ages are judged by (default: now). */
  now?: number;
}

export interface PrunedArtifact {
  /** `sha256:<hex>`, or the path of a scratch or partial file. */
  what: string;
  bytes: number;
  ageMs: number;
  /** Where it was: the store, or (with S3) this host's cache of it. */
  from: 'store' | 'cache';
}

export interface GcReport {
  dryRun: boolean;
  /** The clock ages were judged by. */
  now: number;
  retentionMs: number;
  openRuns: number;
  workspaces: SweepOutcome;
  artifacts: { removed: PrunedArtifact[]; kept: { what: string; bytes: number; ageMs: number; why: string }[]; young: { count: number; bytes: number } };
  tagCache: TagCachePrune;
  /** The store's records of unpushed commits: each one's bundle is kept. */
  unpushed: UnpushedRecord[];
  caches?: CacheTrim;
}


export async function runGc(opts: GcOptions): Promise<GcReport> {
  const now = opts.now ?? Date.now();
  const cutoff = now - opts.retentionMs;
  const client = new Client({ connection: opts.connection, namespace: opts.namespace });
  const { keep, openRuns } = await liveReferences(client);
  // Read after Temporal's references: a record written meanwhile names a bundle too young to go.
  const unpushed = (await listUnpushed(opts.store)).map(({ key: _key, ...rec }) => rec);
  for (const u of unpushed) if (!keep.has(u.bundle)) keep.set(u.bundle, `unpushed commit ${u.commit} of ${u.workflowId} (its record)`);
  const workspaces = await sweepWorkspaces({ root: opts.workspaceRoot, connection: opts.connection, namespace: opts.namespace, retentionMs: opts.retentionMs, now, dryRun: opts.dryRun, unpushed, log: () => undefined });
  const artifacts = await pruneArtifacts(opts.store, keep, cutoff, now, opts.dryRun);
  const tagCache = await pruneTagCache(repomapCacheDirOf(opts), cutoff, opts.dryRun);
  const caches = opts.cacheMaxBytes === undefined ? undefined : await trimCaches({ cacheDir: opts.cacheDir, workspaceRoot: opts.workspaceRoot, store: opts.store, capBytes: opts.cacheMaxBytes, dryRun: opts.dryRun, now });
  return { dryRun: !!opts.dryRun, now, retentionMs: opts.retentionMs, openRuns, workspaces, artifacts, tagCache, unpushed, ...(caches ? { caches } : {}) };
}

/** The artifacts (and, with S3, this host's cached copies) last written before `cutoff` and not in `keep`: removed unless `dryRun`. */
export async function pruneArtifacts(store: ArtifactStore, keep: Keep, cutoff: number, now = Date.now(), dryRun = false): Promise<GcReport['artifacts']> {
  const artifacts: GcReport['artifacts'] = { removed: [], kept: [], young: { count: 0, bytes: 0 } };
  const prune = async (entries: AsyncIterable<StoredArtifact>, from: PrunedArtifact['from'], remove: (e: StoredArtifact) => Promise<boolean>) => {
    for await (const e of entries) {
      const what = e.hex ? `sha256:${e.hex}` : e.file;
      const ageMs = now - e.modifiedMs;
      const young = e.modifiedMs >= cutoff;
      const why = young ? undefined : keep.get(what);
      // Removed only when still as listed: one written again meanwhile counts as young.
      if (young || (!why && !dryRun && !(await remove(e)))) {
        if (from === 'store') {
          artifacts.young.count++;
          artifacts.young.bytes += e.bytes;
        }
        continue;
      }
      if (why) {
        if (from === 'store') artifacts.kept.push({ what, bytes: e.bytes, ageMs, why });
        continue;
      }
      artifacts.removed.push({ what, bytes: e.bytes, ageMs, from });
    }
  };
  await prune(store.list(), 'store', (e) => store.remove(e));
  // With S3, this host's cache too: what the store dropped is gone with it; old copies of the rest go as well.
  if (store instanceof S3ArtifactStore) await prune(store.localEntries(), 'cache', async (e) => (await store.removeLocal(e.hex ?? e.file), true));
  return artifacts;
}
