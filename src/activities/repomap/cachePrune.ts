// Retention of the tag cache (cache.ts): entries not used within the retention period go. No
// locks, like the cache itself: a segment holding only old entries is deleted; one mixing old and
// recent entries is written anew with the recent ones (new file first, then the old one deleted),
// so a crash leaves at worst a duplicate, and a reader that loses a segment meanwhile has a miss
// (the file is tagged again), never a wrong answer.
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { FileTags } from './extract';
import { tagCacheDir, uniqueName, writeSegment, type Segment } from './cache';

export interface TagCachePrune {
  entriesKept: number;
  entriesRemoved: number;
  segmentsRemoved: number;
  bytesFreed: number;
}

/** Drops the entries under `cacheDir` last used before `cutoffMs`; with `dryRun`, only counts them. */
export async function pruneTagCache(cacheDir: string, cutoffMs: number, dryRun = false): Promise<TagCachePrune> {
  const dir = tagCacheDir(cacheDir);
  const out: TagCachePrune = { entriesKept: 0, entriesRemoved: 0, segmentsRemoved: 0, bytesFreed: 0 };
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('seg-') && n.endsWith('.json'));
  for (const name of names) {
    const file = path.join(dir, name);
    const [text, st] = await Promise.all([readFile(file, 'utf8').catch(() => undefined), stat(file).catch(() => undefined)]);
    if (text === undefined || !st) continue; // compacted meanwhile
    let seg: Segment;
    try {
      seg = JSON.parse(text) as Segment;
    } catch {
      continue; // not ours: left alone
    }
    const keep = new Map<string, FileTags>();
    const used = new Map<string, number>();
    for (const [key, tags] of Object.entries(seg.e ?? {})) {
      const t = seg.t?.[key] ?? st.mtimeMs;
      if (t >= cutoffMs) {
        keep.set(key, tags);
        used.set(key, t);
      }
    }
    const total = Object.keys(seg.e ?? {}).length;
    out.entriesKept += keep.size;
    out.entriesRemoved += total - keep.size;
    if (keep.size === total) continue;
    out.segmentsRemoved++;
    out.bytesFreed += st.size;
    if (dryRun) continue;
    if (keep.size && !(await writeSegment(dir, `${uniqueName('seg-')}.json`, keep, used))) continue;
    await unlink(file).catch(() => undefined);
  }
  return out;
}
