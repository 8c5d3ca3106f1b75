// A worker's periodic `weaver gc` (WEAVER_GC_INTERVAL, default daily; 0: off). On by default
// because most of what it prunes is the host's own (workspaces, the tag cache, the S3 cache) and
// only a process on that host can prune it; the shared store's prune is idempotent, so several
// workers running it cost a visibility list and the open runs' histories each, once a day.
// The first run waits one interval: the start already swept closed runs' workspaces.
import { formatBytes, totalBytes } from '../activities/commands';
import type { GcReport } from '.';

/** Runs `gc` every `intervalMs` (never two at once) until the returned stop is called. */
export function periodicGc(intervalMs: number, gc: () => Promise<GcReport>, log: (line: string) => void = (l) => console.log(l)): () => void {
  if (!(intervalMs > 0)) return () => undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    gc()
      .then((r) => log(`weaver worker: gc ${gcSummary(r)}`))
      .catch((err: Error) => log(`weaver worker: gc failed, nothing more removed: ${err.message.split('\n')[0]}`))
      .finally(() => (running = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** One line: what went and how much it freed. */
export function gcSummary(r: GcReport): string {
  return (
    `removed ${r.workspaces.removed.length} workspace(s) (${totalBytes(r.workspaces.removed)}), ${r.artifacts.removed.length} artifact(s) (${totalBytes(r.artifacts.removed)}), ` +
    `${r.tagCache.entriesRemoved} tag-cache entries; kept ${r.artifacts.kept.length} old artifact(s) still referenced (${r.unpushed.length} unpushed commit(s) recorded)` +
    (r.caches?.evicted.length ? `; evicted ${r.caches.evicted.length} cache entries (${formatBytes(r.caches.freedBytes)}) to fit the ${formatBytes(r.caches.capBytes)} cap` : '')
  );
}
