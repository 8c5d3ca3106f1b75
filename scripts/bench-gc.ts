// Benchmark of retention's local work (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-gc.ts [--artifacts N] [--entries M] [--records R] [--toolchains T]
//
// A local artifact store of N (default 20000) 1 KiB artifacts, half of them 8 days old and a
// tenth of those referenced by a "live" run; a tag cache of M (default 100000) entries in 12
// segments, half unused for 8 days. Figures: the artifact prune (list, stat, delete) and the
// tag-cache prune (read, rewrite) with a 7-day retention, each as a dry run and for real; reading
// R (default 1000) unpushed-commit records (what every gc does before pruning); the size cap over
// T (default 40) toolchain caches of 1 MiB (256 files each) and the tag cache left, capped at half.
// Not measured here: asking Temporal (a visibility list, then one history per open run).
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { tagCacheDir } from '../src/activities/repomap/cache';
import { pruneTagCache } from '../src/activities/repomap/cachePrune';
import { TAGS_VERSION } from '../src/activities/repomap/languages';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { recordUnpushed, listUnpushed } from '../src/activities/unpushed';
import { pruneArtifacts } from '../src/gc';
import { trimCaches } from '../src/gc/caches';
import type { Keep } from '../src/gc/references';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DAY = 86_400_000;

async function main(): Promise<void> {
  const n = arg('--artifacts', 20_000);
  const m = arg('--entries', 100_000);
  const tmp = sandboxableTempDir('weaver-bench-gc-');
  const store = new LocalArtifactStore(path.join(tmp, 'artifacts'));
  const keep: Keep = new Map();
  const old = new Date(Date.now() - 8 * DAY);
  for (let i = 0; i < n; i++) {
    const ref = await store.put('log', `artifact ${i} `.padEnd(1024, '.'));
    if (i % 2) continue;
    await utimes(store.pathOf(ref), old, old);
    if (i % 20 === 0) keep.set(ref.ref, 'bench: a live run');
  }
  const cutoff = Date.now() - 7 * DAY;
  let t = performance.now();
  const dry = await pruneArtifacts(store, keep, cutoff, Date.now(), true);
  const dryMs = performance.now() - t;
  t = performance.now();
  const real = await pruneArtifacts(store, keep, cutoff);
  const realMs = performance.now() - t;
  console.log(`artifacts: ${n} stored; dry run ${dryMs.toFixed(0)} ms (would remove ${dry.removed.length}); prune ${realMs.toFixed(0)} ms (removed ${real.removed.length}, kept ${real.kept.length} referenced + ${real.young.count} young)`);

  const dir = tagCacheDir(path.join(tmp, 'cache'));
  await mkdir(dir, { recursive: true });
  const per = Math.ceil(m / 12);
  for (let s = 0; s < 12; s++) {
    const e: Record<string, unknown> = {};
    const used: Record<string, number> = {};
    for (let k = 0; k < per; k++) {
      const key = `ts:${s}-${k}`;
      e[key] = { d: [[`fn${k}`, 'function', k, k + 3]], r: [[`x${k}`, 1]] };
      used[key] = k % 2 ? Date.now() : old.getTime();
    }
    await writeFile(path.join(dir, `seg-${s}.json`), JSON.stringify({ v: TAGS_VERSION, e, t: used }));
  }
  t = performance.now();
  const tdry = await pruneTagCache(path.join(tmp, 'cache'), cutoff, true);
  const tdryMs = performance.now() - t;
  t = performance.now();
  const treal = await pruneTagCache(path.join(tmp, 'cache'), cutoff);
  const trealMs = performance.now() - t;
  console.log(`tag cache: ${12 * per} entries in 12 segments; dry run ${tdryMs.toFixed(0)} ms (would remove ${tdry.entriesRemoved}); prune ${trealMs.toFixed(0)} ms (removed ${treal.entriesRemoved}, kept ${treal.entriesKept}, ${treal.segmentsRemoved} segments rewritten)`);

  const r = arg('--records', 1000);
  for (let i = 0; i < r; i++) await recordUnpushed(store, { workflowId: `bench/${i}`, runId: 'r', bundle: `sha256:${'0'.repeat(64)}`, branch: `weaver/bench/${i}`, commit: 'f'.repeat(40), at: new Date().toISOString() });
  t = performance.now();
  const recs = await listUnpushed(store);
  console.log(`unpushed records: ${recs.length} listed and read in ${(performance.now() - t).toFixed(0)} ms`);

  const tc = arg('--toolchains', 40);
  const workspaceRoot = path.join(tmp, 'ws');
  for (let i = 0; i < tc; i++) {
    const dir = path.join(workspaceRoot, '.cache', 'toolchains', i.toString(16).padStart(16, '0'), 'go-build');
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 256; f++) await writeFile(path.join(dir, `o${f}`), Buffer.alloc(4096, f));
    const used = new Date(Date.now() - (tc - i) * 3_600_000);
    await utimes(dir, used, used);
    await utimes(path.dirname(dir), used, used);
  }
  const measured = await trimCaches({ cacheDir: path.join(tmp, 'cache'), workspaceRoot, store, capBytes: Infinity });
  const capBytes = Math.round(measured.totalBytes / 2);
  t = performance.now();
  const cdry = await trimCaches({ cacheDir: path.join(tmp, 'cache'), workspaceRoot, store, capBytes, dryRun: true });
  const cdryMs = performance.now() - t;
  t = performance.now();
  const creal = await trimCaches({ cacheDir: path.join(tmp, 'cache'), workspaceRoot, store, capBytes });
  const crealMs = performance.now() - t;
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
  console.log(`cache cap: ${mib(measured.totalBytes)} (${tc} toolchain caches + tag cache) capped at ${mib(capBytes)}; dry run ${cdryMs.toFixed(0)} ms (would evict ${cdry.evicted.length}); trim ${crealMs.toFixed(0)} ms (evicted ${creal.evicted.length}, freed ${mib(creal.freedBytes)})`);
  await import('node:fs/promises').then((fs) => fs.rm(tmp, { recursive: true, force: true }));
}

void main();
