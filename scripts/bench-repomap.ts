// Benchmark of the repository map's build time (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-repomap.ts [dir] [--files N] [--mix] [--runs R] [--load L] [--keep]
//
// With a directory (a git checkout): maps it. Without: generates a repository of N (default
// 10,000) source files from the JavaScript/TypeScript files of the packages in node_modules
// (--mix: a third each of JS/TS, Python's standard library and Go's), each copied with a header
// line naming its copy, so every blob is distinct; commits it, and maps it. --runs R: medians of
// R cold and cached builds, in new processes and in this one; --load L: the same beside L
// busy-loop processes. Figures: files, cold build (empty tag cache), cached build in the same process,
// cached build read back from disk (as a new worker process would), tags/s and files/s.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { buildRepoMap, clearTagCacheMemory, type RepoMap } from '../src/activities/repomap';
import { tagCounters } from '../src/activities/repomap/extract';

const RENAME_DIRS: Record<string, string> = { node_modules: 'deps', dist: 'out', build: 'bld', vendor: 'vnd', bower_components: 'bc', testdata: 'td' };

/** Where real sources come from: JS/TS in node_modules; with --mix also Python's and Go's standard libraries. */
interface SourceRoot {
  name: string;
  root: string;
  ext: RegExp;
}
const NM = path.resolve(__dirname, '..', 'node_modules');
const JS: SourceRoot = { name: 'js', root: NM, ext: /\.(js|mjs|cjs|ts|tsx|jsx)$/ };
function mixRoots(): SourceRoot[] {
  const roots = [JS];
  const py = readdirSync('/usr/lib').filter((n) => /^python3\.\d+$/.test(n)).sort().pop();
  if (py) roots.push({ name: 'py', root: path.join('/usr/lib', py), ext: /\.py$/ });
  let goroot = '';
  try {
    goroot = execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim();
  } catch {
    // no Go toolchain: JS/TS and Python only
  }
  if (goroot) roots.push({ name: 'go', root: path.join(goroot, 'src'), ext: /\.go$/ });
  return roots;
}

function walk(root: string, ext: RegExp, out: string[], limit: number): void {
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
    if (e.isDirectory()) walk(p, ext, out, limit);
    else if (e.isFile() && ext.test(e.name) && !/\.min\.js$/.test(e.name)) {
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

function generate(count: number, roots: SourceRoot[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'weaver-bench-repomap-'));
  let bytes = 0;
  let k = 0;
  const from: string[] = [];
  roots.forEach((r, ri) => {
    // An even share per root (the first takes the remainder).
    const share = Math.floor(count / roots.length) + (ri === 0 ? count % roots.length : 0);
    const sources: string[] = [];
    walk(r.root, r.ext, sources, share * 3);
    if (sources.length === 0) throw new Error(`no sources under ${r.root}`);
    from.push(`${share} ${r.name} (${sources.length} sources in ${r.root})`);
    const comment = r.name === 'py' ? '#' : '//';
    for (let j = 0; j < share; j++, k++) {
      // Spread over all packages when there are more sources than needed; reuse (varied) when fewer.
      const src = sources[Math.floor((j * sources.length) / share) % sources.length];
      const rel = path
        .relative(r.root, src)
        .split(path.sep)
        .map((p) => RENAME_DIRS[p] ?? p)
        .join('/');
      const copy = Math.floor((j * sources.length) / share / sources.length);
      const dest = path.join(dir, r.name === 'js' ? 'src' : r.name, copy ? `copy${copy}` : '', rel);
      const text = `${comment} bench copy ${k} of ${rel}\n${readFileSync(src, 'utf8')}`;
      mkdirSync(path.dirname(dest), { recursive: true });
      writeFileSync(dest, text);
      bytes += Buffer.byteLength(text);
    }
  });
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'bench repository');
  console.log(`generated ${count} files (${(bytes / 1e6).toFixed(1)} MB): ${from.join(', ')} at ${dir}`);
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

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const digest = (m: RepoMap) => createHash('sha1').update(JSON.stringify([m.text, m.ranked])).digest('hex').slice(0, 12);
const emptyDir = () => mkdtempSync(path.join(tmpdir(), 'weaver-bench-repomap-cache-'));
const request = (dir: string, cacheDir: string) => ({ dir, cacheDir, mentionedFiles: [], mentionedIdents: [], tokenBudget: 2048 });

/** One build in a new process (as a freshly started worker does): its build time and output digest. */
function buildInChild(dir: string, cacheDir: string): { ms: number; cpu: number; parsed: number; digest: string } {
  const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--child', dir, cacheDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!) as { ms: number; cpu: number; parsed: number; digest: string };
}

/**
 * Medians over `runs`: cold in a new process (threads started and grammars loaded by the build),
 * cold in a process that built a map before (another repository), cached read from disk by a
 * new process, cached in the same process.
 */
async function figures(dir: string, runs: number, load: number): Promise<void> {
  // Busy loops that end with this process even if it is killed (they check their parent).
  const loop = `const p = ${process.pid}; for (let i = 0; ; i++) if (i % 1e7 === 0) try { process.kill(p, 0); } catch { process.exit(); }`;
  const busy = Array.from({ length: load }, () => spawn(process.execPath, ['-e', loop], { stdio: 'ignore' }));
  const dirs: string[] = [];
  const rows: Record<string, number[]> = { 'cold, new process': [], 'cold, warm process': [], 'cached, new process': [], 'cached, same process': [] };
  const cpu: Record<string, number[]> = { 'cold, new process': [], 'cold, warm process': [] };
  const digests = new Set<string>();
  try {
    if (load) await new Promise((r) => setTimeout(r, 1000));
    console.log(`\n${runs} runs${load ? ` beside ${load} busy-loop processes` : ''}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    for (let run = 0; run < runs; run++) {
      const c1 = emptyDir();
      dirs.push(c1);
      const child = buildInChild(dir, c1);
      rows['cold, new process'].push(child.ms);
      cpu['cold, new process'].push(child.cpu);
      digests.add(child.digest);
      rows['cached, new process'].push(buildInChild(dir, c1).ms);
      const c2 = emptyDir();
      dirs.push(c2);
      clearTagCacheMemory();
      cpuMs();
      const cold = await buildRepoMap(request(dir, c2));
      rows['cold, warm process'].push(cold.stats.ms);
      cpu['cold, warm process'].push(cpuMs());
      digests.add(digest(cold));
      const warm = await buildRepoMap(request(dir, c2));
      rows['cached, same process'].push(warm.stats.ms);
      digests.add(digest(warm));
    }
  } finally {
    for (const b of busy) b.kill();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  for (const [label, ms] of Object.entries(rows)) {
    const c = cpu[label] ? `   cpu median ${median(cpu[label])} ms (${cpu[label].join(', ')})` : '';
    console.log(`${label.padEnd(24)} median ${String(median(ms)).padStart(6)} ms wall (${ms.join(', ')})${c}`);
  }
  console.log(`identical output in every build: ${digests.size === 1}`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    cpuMs();
    const m = await buildRepoMap(request(args[1], args[2]));
    console.log(JSON.stringify({ ms: m.stats.ms, cpu: cpuMs(), parsed: m.stats.parsed, digest: digest(m) }));
    process.exit(0);
  }
  const flag = (name: string) => (args.includes(name) ? (args.splice(args.indexOf(name), 1), true) : false);
  const option = (name: string, dflt: number) => (args.includes(name) ? Number(args.splice(args.indexOf(name), 2)[1]) : dflt);
  const keep = flag('--keep');
  const mix = flag('--mix');
  const count = option('--files', 10_000);
  const runs = option('--runs', 0);
  const load = option('--load', 0);
  const given = args[0];
  const dir = given ? path.resolve(given) : generate(count, mix ? mixRoots() : [JS]);
  const cacheDir = emptyDir();
  try {
    const req = request(dir, cacheDir);
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
    if (runs > 0) await figures(dir, runs, load);
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
