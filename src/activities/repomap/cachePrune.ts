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

/** Each readable segment under `cacheDir`'s tag cache with its file, size and entries' last-use times ("t", else the segment's mtime). */
async function* segments(cacheDir: string): AsyncGenerator<{ file: string; bytes: number; seg: Segment; usedAt: (key: string) => number }> {
  const dir = tagCacheDir(cacheDir);
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
    yield { file, bytes: st.size, seg, usedAt: (key) => seg.t?.[key] ?? st.mtimeMs };
  }
}

/** Drops the entries under `cacheDir` last used before `cutoffMs`; with `dryRun`, only counts them. */
export async function pruneTagCache(cacheDir: string, cutoffMs: number, dryRun = false): Promise<TagCachePrune> {
  const dir = tagCacheDir(cacheDir);
  const out: TagCachePrune = { entriesKept: 0, entriesRemoved: 0, segmentsRemoved: 0, bytesFreed: 0 };
  for await (const { file, bytes, seg, usedAt } of segments(cacheDir)) {
    const keep = new Map<string, FileTags>();
    const used = new Map<string, number>();
    for (const [key, tags] of Object.entries(seg.e ?? {})) {
      const t = usedAt(key);
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
    out.bytesFreed += bytes;
    if (dryRun) continue;
    if (keep.size && !(await writeSegment(dir, `${uniqueName('seg-')}.json`, keep, used))) continue;
    await unlink(file).catch(() => undefined);
  }
  return out;
}

/**
 * The tag cache's size on disk and each entry's last use and share of it (its segment's bytes
 * split by the entries' JSON lengths): what the host caches' size cap weighs (src/gc/caches.ts).
 */
export async function tagCacheUse(cacheDir: string): Promise<{ bytes: number; entries: { usedMs: number; bytes: number }[] }> {
  const out = { bytes: 0, entries: [] as { usedMs: number; bytes: number }[] };
  for await (const { bytes, seg, usedAt } of segments(cacheDir)) {
    out.bytes += bytes;
    const sizes = Object.entries(seg.e ?? {}).map(([key, tags]) => ({ key, len: key.length + JSON.stringify(tags).length }));
    const sum = sizes.reduce((a, x) => a + x.len, 0) || 1;
    for (const x of sizes) out.entries.push({ usedMs: usedAt(x.key), bytes: (bytes * x.len) / sum });
  }
  return out;
}
