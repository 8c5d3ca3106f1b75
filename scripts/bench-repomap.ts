// Benchmark of the repository map's build time (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-repomap.ts [dir] [--files N] [--keep]
//
// With a directory (a git checkout): maps it. Without: generates a repository of N (default
// 10,000) source files from the JavaScript/TypeScript files of the packages in node_modules
// (each copied with a header line naming its copy, so every blob is distinct), commits it, and
// maps it. Figures: files, cold build (empty tag cache), cached build in the same process,
// cached build read back from disk (as a new worker process would), tags/s and files/s.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { buildRepoMap, clearTagCacheMemory, type RepoMap } from '../src/activities/repomap';
import { tagCounters } from '../src/activities/repomap/extract';

const SOURCE_EXT = /\.(js|mjs|cjs|ts|tsx|jsx)$/;
const RENAME_DIRS: Record<string, string> = { node_modules: 'deps', dist: 'out', build: 'bld', vendor: 'vnd', bower_components: 'bc' };

function walk(root: string, out: string[], limit: number): void {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (out.length >= limit) return;
    const p = path.join(root, e.name);
    if (e.isDirectory()) walk(p, out, limit);
    else if (e.isFile() && SOURCE_EXT.test(e.name) && !/\.min\.js$/.test(e.name)) {
      const size = statSync(p).size;
      if (size > 200 && size <= 100 * 1024) out.push(p);
    }
  }
}

function git(dir: string, ...args: string[]): void {
  execFileSync('git', ['-C', dir, '-c', 'user.name=bench', '-c', 'user.email=bench@example.com', ...args], {
    stdio: 'ignore',
    maxBuffer: 1 << 30,
  });
}

function generate(count: number): string {
  const nm = path.resolve(__dirname, '..', 'node_modules');
  const sources: string[] = [];
  walk(nm, sources, count * 3);
  if (sources.length === 0) throw new Error(`no sources under ${nm}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'weaver-bench-repomap-'));
  let bytes = 0;
  for (let k = 0; k < count; k++) {
    // Spread over all packages when there are more sources than needed; reuse (varied) when fewer.
    const src = sources[Math.floor((k * sources.length) / count) % sources.length];
    const rel = path
      .relative(nm, src)
      .split(path.sep)
      .map((p) => RENAME_DIRS[p] ?? p)
      .join('/');
    const copy = Math.floor((k * sources.length) / count / sources.length);
    const dest = path.join(dir, 'src', copy ? `copy${copy}` : '', rel);
    const body = readFileSync(src, 'utf8');
    const text = `// bench copy ${k} of ${rel}\n${body}`;
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, text);
    bytes += Buffer.byteLength(text);
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'bench repository');
  console.log(`generated ${count} files (${(bytes / 1e6).toFixed(1)} MB) from ${sources.length} sources in node_modules at ${dir}`);
  return dir;
}

let cpuMark = process.cpuUsage();
/** CPU time (all threads: main + tagging workers) since the last call, in ms. */
function cpuMs(): number {
  const d = process.cpuUsage(cpuMark);
  cpuMark = process.cpuUsage();
  return Math.round((d.user + d.system) / 1000);
}

function line(label: string, m: RepoMap, extra = ''): void {
  console.log(
    `${label.padEnd(28)} ${String(m.stats.ms).padStart(6)} ms wall ${String(cpuMs()).padStart(6)} ms cpu   files ${m.stats.files}  parsed ${m.stats.parsed}  from cache ${m.stats.fromCache}  map ${m.tokens} tokens${extra}`,
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const keep = args.includes('--keep');
  if (keep) args.splice(args.indexOf('--keep'), 1);
  const fi = args.indexOf('--files');
  const count = fi >= 0 ? Number(args.splice(fi, 2)[1]) : 10_000;
  const given = args[0];
  const dir = given ? path.resolve(given) : generate(count);
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'weaver-bench-repomap-cache-'));
  try {
    const req = { dir, cacheDir, mentionedFiles: [], mentionedIdents: [], tokenBudget: 2048 };
    console.log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}`);

    console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other processes share the cores)`);
    cpuMs();
    const cold = await buildRepoMap(req);
    const secs = cold.stats.ms / 1000;
    line('cold (empty cache)', cold, `  | ${Math.round(cold.stats.tags / secs)} tags/s, ${Math.round(cold.stats.parsed / secs)} files/s`);
    console.log(`  tagged by ${tagCounters.workersStarted} worker threads: ${tagCounters.inWorkers} files; in-process: ${tagCounters.inProcess}`);
    cpuMs();
    const warm = await buildRepoMap(req);
    line('cached (same process)', warm);
    clearTagCacheMemory();
    cpuMs();
    const disk = await buildRepoMap(req);
    line('cached (read from disk)', disk);
    // A task naming a function defined in one file only, from a file in the middle of the ranking.
    const definers = new Map<string, number>();
    for (const r of disk.ranked) for (const name of new Set(r.defs.map((d) => d.name))) definers.set(name, (definers.get(name) ?? 0) + 1);
    const middle = disk.ranked.slice(Math.floor(disk.ranked.length / 2));
    const picked = middle.find((r) => r.defs.some((d) => d.name.length >= 8 && definers.get(d.name) === 1));
    const def = picked?.defs.find((d) => d.name.length >= 8 && definers.get(d.name) === 1);
    if (picked && def) {
      cpuMs();
    const named = await buildRepoMap({ ...req, mentionedIdents: [def.name] });
      const pos = named.ranked.findIndex((r) => r.path === picked.path);
      line('cached, naming one function', named, `  | ${def.name} (${picked.path}): file ranks #${pos + 1} (was #${disk.ranked.indexOf(picked) + 1}), definition line in text: ${named.text.includes(`${String(def.line).padStart(4)}│`) && named.text.includes(`${picked.path}:`)}`);
    }
    // The task's words (issue 16, item 3): the lexical index costs a read and a scan of every
    // mapped file, cold or cached. The words: the doc comment above a definition in the middle
    // of the ranking, behind the preamble of a task that describes a stub.
    let target = disk.ranked[0];
    let comment = '';
    for (const r of middle.slice(0, 500)) {
      const lines = readFileSync(path.join(dir, r.path), 'utf8').split('\n');
      for (const d of r.defs) {
        let k = d.line - 2;
        while (k >= 0 && d.line - 2 - k < 6 && /^\s*(?:\/\/|\/?\*)/.test(lines[k])) k--;
        const above = lines.slice(k + 1, d.line - 1).join(' ').replace(/[/*]+/g, ' ');
        if (above.split(/\s+/).filter((w) => /^[a-z]{4,}$/i.test(w)).length >= 6) [target, comment] = [r, above];
        if (comment) break;
      }
      if (comment) break;
    }
    const words = `A function in this project is not implemented yet (its body is a stub). ${comment}`;
    const withWords = { ...req, queryText: words };
    cpuMs();
    const worded = await buildRepoMap(withWords);
    line('cached, with the task words', worded, `  | ${target.path}: file ranks #${worded.ranked.findIndex((r) => r.path === target.path) + 1} (was #${disk.ranked.indexOf(target) + 1})`);
    cpuMs();
    line('again (words memoised)', await buildRepoMap({ ...withWords, queryText: `${words} (again)` }));
    const coldCache = mkdtempSync(path.join(tmpdir(), 'weaver-bench-repomap-cache-'));
    clearTagCacheMemory();
    cpuMs();
    line('cold, with the task words', await buildRepoMap({ ...withWords, cacheDir: coldCache }));
    rmSync(coldCache, { recursive: true, force: true });
    const same = JSON.stringify([warm.text, warm.ranked]) === JSON.stringify([disk.text, disk.ranked]);
    console.log(`identical output cached vs from disk: ${same}`);
    console.log(`tags: ${cold.stats.tags}, files with definitions: ${cold.ranked.length}`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
    if (!given && !keep) rmSync(dir, { recursive: true, force: true });
    else if (!given) console.log(`kept ${dir}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
