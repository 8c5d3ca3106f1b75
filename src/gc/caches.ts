// The host caches' size cap (WEAVER_CACHE_MAX_MB), enforced by `weaver gc` after the age-based
// prune: the repository map's tag cache (WEAVER_CACHE_DIR), the per-repository toolchain caches
// (<workspaceRoot>/.cache/toolchains) and, with the S3 store, this host's copies of its artifacts.
// One cap over all three, least recently used first across them, so a cold toolchain cache goes
// before a hot tag cache. Never evicted: a toolchain cache a command holds (its lease, taken and
// re-checked under the lease's own mutex, so a command starting meanwhile either keeps it or finds
// it gone and starts cold) nor a cached artifact used within the last minutes (a reader may have
// just been handed its path). Tag-cache entries are evicted by last use like the age prune does.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactStore } from '../activities/artifacts';
import { repomapCacheDirOf } from '../activities/repomap/cache';
import { pruneTagCache, tagCacheUse } from '../activities/repomap/cachePrune';
import { S3ArtifactStore } from '../activities/s3Artifacts';
import { diskUse } from '../activities/sandbox/limits';
import { readLock, withMutex } from '../activities/sandbox/uids';

export type CacheKind = 'tag cache' | 'toolchain cache' | 'artifact cache';

export interface CacheUnit {
  kind: CacheKind;
  /** The tag cache's evicted entries as one unit (`N entries`), a toolchain cache's folder, an artifact's `sha256:<hex>`. */
  what: string;
  bytes: number;
  usedMs: number;
}

export interface CacheTrim {
  capBytes: number;
  /** Each cache's size before, and their total. */
  sizes: Record<CacheKind, number>;
  totalBytes: number;
  evicted: CacheUnit[];
  freedBytes: number;
  /** Would have gone by age of use, but in use. */
  inUse: (CacheUnit & { why: string })[];
}

/** A cached artifact copy used this recently counts as in use. */
export const ARTIFACT_IN_USE_MS = 10 * 60_000;

interface Candidate extends CacheUnit {
  /** Why it may not go now; undefined: it may. */
  held?: string;
}

/** Evicts least recently used cache entries until the caches fit `capBytes`; with `dryRun`, says what would go. */
export async function trimCaches(opts: { cacheDir?: string; workspaceRoot: string; store: ArtifactStore; capBytes: number; dryRun?: boolean; now?: number }): Promise<CacheTrim> {
  const now = opts.now ?? Date.now();
  const tagDir = repomapCacheDirOf(opts);
  const tags = await tagCacheUse(tagDir);
  const toolchains = await toolchainCaches(opts.workspaceRoot);
  const artifacts = await artifactCopies(opts.store, now);
  const sizes: Record<CacheKind, number> = { 'tag cache': tags.bytes, 'toolchain cache': sum(toolchains), 'artifact cache': sum(artifacts) };
  const totalBytes = sizes['tag cache'] + sizes['toolchain cache'] + sizes['artifact cache'];
  const out: CacheTrim = { capBytes: opts.capBytes, sizes, totalBytes, evicted: [], freedBytes: 0, inUse: [] };
  if (totalBytes <= opts.capBytes) return out;

  const candidates: Candidate[] = [...tags.entries.map((e) => ({ kind: 'tag cache' as const, what: '', ...e })), ...toolchains, ...artifacts].sort((a, b) => a.usedMs - b.usedMs);
  let left = totalBytes;
  let tagCutoff: number | undefined;
  const tagUnit: CacheUnit = { kind: 'tag cache', what: '', bytes: 0, usedMs: 0 };
  let tagEntries = 0;
  for (const c of candidates) {
    if (left <= opts.capBytes) break;
    if (c.held) {
      out.inUse.push({ kind: c.kind, what: c.what, bytes: c.bytes, usedMs: c.usedMs, why: c.held });
      continue;
    }
    if (c.kind === 'toolchain cache' && !opts.dryRun && !evictToolchainCache(c.what)) {
      out.inUse.push({ kind: c.kind, what: c.what, bytes: c.bytes, usedMs: c.usedMs, why: 'a command took it meanwhile' });
      continue;
    }
    if (c.kind === 'artifact cache' && !opts.dryRun) await (opts.store as S3ArtifactStore).removeLocal(c.what.slice('sha256:'.length));
    left -= c.bytes;
    out.freedBytes += c.bytes;
    if (c.kind !== 'tag cache') out.evicted.push({ kind: c.kind, what: c.what, bytes: c.bytes, usedMs: c.usedMs });
    else {
      tagCutoff = c.usedMs + 1;
      tagEntries++;
      tagUnit.bytes += c.bytes;
      tagUnit.usedMs = c.usedMs;
    }
  }
  if (tagCutoff !== undefined) {
    // Entries by last use, as the age prune drops them: those used before the last one chosen.
    if (!opts.dryRun) await pruneTagCache(tagDir, tagCutoff);
    out.evicted.push({ ...tagUnit, bytes: Math.round(tagUnit.bytes), what: `${tagEntries} entries` });
  }
  await rm(path.join(opts.workspaceRoot, '.cache', 'toolchains', '.evicted'), { recursive: true, force: true });
  return out;
}

const sum = (xs: { bytes: number }[]) => xs.reduce((a, x) => a + x.bytes, 0);

/** Each repository's toolchain cache: its size, last use (its lease folder's or its own mtime, whichever is later) and live lease. */
async function toolchainCaches(workspaceRoot: string): Promise<Candidate[]> {
  const root = path.join(workspaceRoot, '.cache', 'toolchains');
  const out: Candidate[] = [];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory() || e.name.startsWith('.') || e.name.endsWith('.users')) continue;
    const dir = path.join(root, e.name);
    const mtimes = await Promise.all([dir, `${dir}.users`, ...(await readdir(dir).catch(() => [] as string[])).map((n) => path.join(dir, n))].map((p) => stat(p).then((s) => s.mtimeMs, () => 0)));
    const holder = liveUser(`${dir}.users`);
    out.push({ kind: 'toolchain cache', what: dir, bytes: (await diskUse([dir])).bytes, usedMs: Math.max(...mtimes), ...(holder ? { held: `in use: leased by ${holder}` } : {}) });
  }
  return out;
}

/** A live holder of a lease under `users` (cacheLease.ts), as `pid <n>`; undefined when none. */
function liveUser(users: string): string | undefined {
  for (const name of existsSync(users) ? readdirSync(users) : []) {
    if (name.startsWith('.')) continue;
    const held = readLock(path.join(users, name));
    if (held?.alive) return `pid ${held.holder.split(' ')[0]}`;
  }
  return undefined;
}

/** Moves the cache out of use under its lease mutex (unless a command holds it), to be deleted after; false when held. */
function evictToolchainCache(dir: string): boolean {
  const users = `${dir}.users`;
  mkdirSync(users, { recursive: true, mode: 0o700 });
  const trash = path.join(path.dirname(dir), '.evicted');
  mkdirSync(trash, { recursive: true });
  return withMutex(users, () => {
    if (liveUser(users)) return false;
    renameSync(dir, path.join(trash, `${path.basename(dir)}-${randomUUID().slice(0, 8)}`));
    return true;
  });
}

/** With the S3 store, this host's copies of its artifacts (the local store is no cache: never evicted). */
async function artifactCopies(store: ArtifactStore, now: number): Promise<Candidate[]> {
  if (!(store instanceof S3ArtifactStore)) return [];
  const out: Candidate[] = [];
  for await (const e of store.localEntries()) {
    if (!e.hex) continue; // scratch files: being written, or the age prune's
    const recent = now - e.modifiedMs < ARTIFACT_IN_USE_MS;
    out.push({ kind: 'artifact cache', what: `sha256:${e.hex}`, bytes: e.bytes, usedMs: e.modifiedMs, ...(recent ? { held: 'in use: read within the last minutes' } : {}) });
  }
  return out;
}
