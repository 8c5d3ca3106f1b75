// Tag cache, content-addressed by git blob SHA (+ language), shared by every clone, attempt and
// worker process that uses the same cache directory (WEAVER_CACHE_DIR: one per host).
//
// Layout: <cacheDir>/tags-<TAGS_VERSION>/seg-*.json, each segment one JSON object
// {"v": version, "e": {"<lang>:<sha>": tags}}. A build appends one new segment (written to a
// temporary file, then renamed: readers never see a partial one); past MAX_SEGMENTS the
// segments are merged into one and the merged ones deleted. No locks: entries are immutable
// (same key, same tags), so concurrent writers at worst write a duplicate, and a segment deleted
// under a reader is a miss (the file is parsed again), never a wrong answer. Segments already
// read by this process are remembered, so a repeated build only reads the new ones.
// Retention (cachePrune.ts) drops entries not used for a while: each entry has a last-use time
// ("t", else its segment's mtime), and an entry used again after USE_REFRESH_MS is written again
// in the build's new segment, so its use is recorded without rewriting an old segment in place.
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileTags } from './extract';
import { TAGS_VERSION } from './languages';

const MAX_SEGMENTS = 12;
const STALE_TMP_MS = 60 * 60 * 1000;
const USE_REFRESH_MS = 24 * 60 * 60 * 1000;

interface Memo {
  loaded: Set<string>;
  entries: Map<string, FileTags>;
  /** When each entry was last written or used (ms). */
  used: Map<string, number>;
}

/** A segment file's content: entries and (since retention) their last-use times. */
export interface Segment {
  v?: string;
  e?: Record<string, FileTags>;
  t?: Record<string, number>;
}

/** The repository map's cache: under the host's cache directory (WEAVER_CACHE_DIR), else the worker's `<workspaceRoot>/.cache`. */
export function repomapCacheDirOf(dirs: { cacheDir?: string; workspaceRoot: string }): string {
  return path.join(dirs.cacheDir ?? path.join(dirs.workspaceRoot, '.cache'), 'repomap');
}

/** The tag cache's folder under a cache directory. */
export function tagCacheDir(cacheDir: string): string {
  return path.join(path.resolve(cacheDir), `tags-${TAGS_VERSION}`);
}

/** Writes a segment whole or not at all (a temporary file renamed); false, having said why, when it could not. */
export async function writeSegment(dir: string, name: string, entries: Map<string, FileTags>, used: Map<string, number>): Promise<boolean> {
  const tmp = path.join(dir, `${uniqueName('.tmp-')}.json`);
  const t = Object.fromEntries([...entries.keys()].map((k) => [k, used.get(k) ?? Date.now()]));
  try {
    await writeFile(tmp, JSON.stringify({ v: TAGS_VERSION, e: Object.fromEntries(entries), t }));
    await rename(tmp, path.join(dir, name));
    return true;
  } catch (e) {
    console.warn(`repomap: could not write the tag cache (${(e as Error).message})`);
    await unlink(tmp).catch(() => undefined);
    return false;
  }
}
const memos = new Map<string, Memo>();

/** Forgets what this process has read (the next open reads every segment from disk). */
export function clearTagCacheMemory(): void {
  memos.clear();
}

export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

export class TagCache {
  private readonly pending = new Map<string, FileTags>();

  private constructor(
    private readonly dir: string | undefined,
    private readonly memo: Memo,
    private segments: string[],
  ) {}

  /** Opens (creates) the cache under `cacheDir`; an unusable directory gives a memory-only cache. */
  static async open(cacheDir: string): Promise<TagCache> {
    const dir = tagCacheDir(cacheDir);
    let memo = memos.get(dir);
    if (!memo) {
      memo = { loaded: new Set(), entries: new Map(), used: new Map() };
      memos.set(dir, memo);
    }
    let names: string[];
    try {
      await mkdir(dir, { recursive: true });
      names = (await readdir(dir)).filter((n) => n.startsWith('seg-') && n.endsWith('.json')).sort();
    } catch (e) {
      console.warn(`repomap: tag cache ${dir} unusable, caching in memory only: ${(e as Error).message}`);
      return new TagCache(undefined, memo, []);
    }
    const fresh = names.filter((n) => !memo.loaded.has(n));
    const texts = await Promise.all(fresh.map((n) => readFile(path.join(dir, n), 'utf8').catch(() => undefined)));
    const mtimes = await Promise.all(fresh.map((n) => stat(path.join(dir, n)).then((st) => st.mtimeMs, () => Date.now())));
    const present: string[] = [];
    for (const n of names) if (memo.loaded.has(n)) present.push(n);
    fresh.forEach((n, k) => {
      const text = texts[k];
      if (text === undefined) return; // deleted by a concurrent compaction: its entries are in the merged segment
      try {
        const seg = JSON.parse(text) as Segment;
        if (seg.v !== TAGS_VERSION || !seg.e) return;
        for (const key of Object.keys(seg.e)) {
          memo.entries.set(key, seg.e[key]);
          memo.used.set(key, Math.max(memo.used.get(key) ?? 0, seg.t?.[key] ?? mtimes[k]));
        }
        memo.loaded.add(n);
        present.push(n);
      } catch {
        // Not ours or damaged: ignore (never fatal).
      }
    });
    return new TagCache(dir, memo, present.sort());
  }

  get(key: string): FileTags | undefined {
    const tags = this.memo.entries.get(key);
    // In use again after a while: written again with this build, so retention keeps it.
    if (tags && Date.now() - (this.memo.used.get(key) ?? 0) > USE_REFRESH_MS) this.put(key, tags);
    return tags;
  }

  put(key: string, tags: FileTags): void {
    this.memo.entries.set(key, tags);
    this.memo.used.set(key, Date.now());
    this.pending.set(key, tags);
  }

  /** Writes this build's new entries as one segment; merges segments when there are many. */
  async flush(): Promise<void> {
    if (!this.dir || this.pending.size === 0) return;
    const name = `${uniqueName('seg-')}.json`;
    if (!(await writeSegment(this.dir, name, this.pending, this.memo.used))) return;
    this.pending.clear();
    this.memo.loaded.add(name);
    this.segments.push(name);
    if (this.segments.length > MAX_SEGMENTS) await this.compact();
  }

  private async compact(): Promise<void> {
    const dir = this.dir!;
    const merged = `${uniqueName('seg-')}.json`;
    const old = this.segments;
    if (!(await writeSegment(dir, merged, this.memo.entries, this.memo.used))) return;
    this.memo.loaded.add(merged);
    this.segments = [merged];
    await Promise.all(old.map((n) => unlink(path.join(dir, n)).catch(() => undefined)));
    // Temporary files left by crashed writers.
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((n) => n.startsWith('.tmp-'))
        .map(async (n) => {
          const p = path.join(dir, n);
          const st = await stat(p).catch(() => undefined);
          if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await unlink(p).catch(() => undefined);
        }),
    );
  }
}
