// Benchmark (not a test): how much of a large file the prompt shows around the function a task
// names, at a given prompt budget.
//
//   npx tsx scripts/bench-file-view.ts [--budget 8192] [--per-repo 6]
//
// Repositories: real sources (webpack's lib, ESLint's lib, zod's src, the Temporal TypeScript
// SDK's packages from node_modules; the Python standard library's top-level modules), each
// copied into a temp git repo. In each, the largest files of 1,500-9,000 lines; in each file
// the function or method (6-60 lines, named in snake_case or camelCase, defined in no other
// file) nearest its middle has its body replaced by a stub, and the task names it ("Implement
// F"). Reported per repository: the tokens of the file's view (0 when the file is not shown),
// the share it was given (when the prompt builder reports it), whether F's definition is shown
// whole, and whether F with 20 lines either side is shown (the issue's recall measure).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { PromptMessages } from '../src/activities/llm';
import { buildPrompt } from '../src/activities/prompt';
import { localTagger } from '../src/activities/repomap/extract';
import { countTokens } from '../src/activities/tokens';

const arg = (name: string, dflt: number) => Number(process.argv[process.argv.indexOf(name) + 1]) || dflt;
const BUDGET = arg('--budget', 8192);
const PER_REPO = arg('--per-repo', 6);
const NM = path.resolve(__dirname, '..', 'node_modules');

const git = (dir: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function pythonStdlib(): string | undefined {
  const lib = readdirSync('/usr/lib').filter((d) => /^python3\.\d+$/.test(d)).sort().pop();
  return lib && path.join('/usr/lib', lib);
}

const REPOS: { name: string; copy: (into: string) => void }[] = [
  { name: 'webpack (JS)', copy: (into) => cpSync(path.join(NM, 'webpack/lib'), path.join(into, 'lib'), { recursive: true }) },
  { name: 'eslint (JS)', copy: (into) => cpSync(path.join(NM, 'eslint/lib'), path.join(into, 'lib'), { recursive: true }) },
  { name: 'zod (TS)', copy: (into) => cpSync(path.join(NM, 'zod/src'), path.join(into, 'src'), { recursive: true, filter: (s) => !s.endsWith('.d.ts') }) },
  {
    name: 'temporalio (TS)',
    copy: (into) => {
      for (const pkg of ['client', 'worker', 'common', 'workflow', 'activity', 'testing']) {
        cpSync(path.join(NM, '@temporalio', pkg, 'src'), path.join(into, pkg), { recursive: true, filter: (s) => !s.endsWith('.d.ts') });
      }
    },
  },
  {
    name: 'python stdlib (Python)',
    copy: (into) => {
      const lib = pythonStdlib();
      if (!lib) return;
      mkdirSync(path.join(into, 'lib'), { recursive: true });
      for (const f of readdirSync(lib).filter((f) => f.endsWith('.py'))) cpSync(path.join(lib, f), path.join(into, 'lib', f));
    },
  },
];

const langOf = (rel: string) => (rel.endsWith('.py') ? 'python' : rel.endsWith('.ts') ? 'typescript' : 'javascript');

/** The function or method nearest the file's middle that can be stubbed, and the stubbed text. */
async function stubMiddle(text: string, rel: string, unique: (name: string) => boolean): Promise<{ name: string; line: number; endLine: number; stubbed: string } | undefined> {
  const r = await localTagger().tagSource(text, langOf(rel));
  if (!('tags' in r)) return undefined;
  const lines = text.split('\n');
  const py = rel.endsWith('.py');
  const middle = lines.length / 2;
  const fit = r.tags.d
    // Names a task would be written with (snake_case, camelCase) and found by (defined in one file):
    // this measures the view of the file, not the lookup of the name.
    .filter(([name, kind, line, end]) => /function|method/.test(kind) && /^_?[a-z]+(_[a-z0-9]+|[A-Z][a-z0-9]+)+$/.test(name) && end - line >= 5 && end - line <= 60)
    // One-line signatures only (the stub keeps the first line): `f(a) {`, `f(a): T {`, `def f(a) -> T:`.
    .filter(([, , line, end]) => (py ? /\)(\s*->[^:]+)?:\s*$/.test(lines[line - 1]) : /\)(\s*:[^{]+)?\s*\{\s*$/.test(lines[line - 1]) && /^\s*\}/.test(lines[end - 1])))
    .sort((a, b) => Math.abs(a[2] - middle) - Math.abs(b[2] - middle));
  const found = fit.find(([name]) => unique(name));
  if (!found) return undefined;
  const [name, , line, end] = found;
  const indent = /^\s*/.exec(lines[line - 1])![0];
  const body = py ? [`${indent}    raise NotImplementedError`] : [`${indent}  throw new Error('not implemented');`, lines[end - 1]];
  const stubbed = [...lines.slice(0, line), ...body, ...lines.slice(end)];
  return { name, line, endLine: line + body.length, stubbed: stubbed.join('\n') };
}

/** Lines a file's section of the prompt shows (all of them when it is shown whole). */
function shownLines(section: string, total: number): Set<number> {
  const out = new Set<number>();
  if (!/^### \S+ \(partial/.test(section)) {
    if (section) for (let i = 1; i <= total; i++) out.add(i);
    return out;
  }
  for (const m of section.matchAll(/^@@ lines (\d+)-(\d+) @@$/gm)) for (let i = Number(m[1]); i <= Number(m[2]); i++) out.add(i);
  return out;
}

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'bench-file-view-'));
  const rows: string[] = [];
  const all = { n: 0, tokens: 0, room: 0, whole: 0, near: 0 };
  for (const repo of REPOS) {
    const dir = path.join(base, repo.name.replace(/\W+/g, '-'));
    mkdirSync(dir, { recursive: true });
    repo.copy(dir);
    git(dir, 'init', '-q', '--initial-branch=main');
    git(dir, 'add', '-A');
    git(dir, 'commit', '-q', '-m', 'sources');
    const tracked = git(dir, 'ls-files').split('\n').filter((f) => /\.(js|ts|py)$/.test(f));
    const big = tracked
      .map((rel) => ({ rel, lines: readFileSync(path.join(dir, rel), 'utf8').split('\n').length }))
      .filter((f) => f.lines >= 1500 && f.lines <= 9000)
      .sort((a, b) => b.lines - a.lines)
      .slice(0, PER_REPO);
    const store = new LocalArtifactStore(path.join(base, 'artifacts'));
    const r = { n: 0, tokens: 0, room: 0, whole: 0, near: 0 };
    for (const { rel } of big) {
      const original = readFileSync(path.join(dir, rel), 'utf8');
      const stub = await stubMiddle(original, rel, (name) => {
        try {
          const defines = `(def|function) ${name}\\b|^\\s*((async|static|private|public|protected|get|set) )*${name}\\s*\\(`;
          return git(dir, 'grep', '-l', '-E', defines, '--', '*.js', '*.ts', '*.py').split('\n').filter(Boolean).length <= 1;
        } catch {
          return true; // git grep found nothing (the tagger did): no other file defines it
        }
      });
      if (!stub) continue;
      writeFileSync(path.join(dir, rel), stub.stubbed);
      git(dir, 'commit', '-q', '-am', `stub ${stub.name}`);
      const head = git(dir, 'rev-parse', 'HEAD').trim();
      const built = await buildPrompt(
        store,
        {
          workspace: { id: 'b', dir, taskQueue: 'q', branch: 'main', baseCommit: head },
          task: { title: `Implement ${stub.name}`, description: `${stub.name} is not implemented yet (its body is a stub): implement it.` },
          attempt: 1,
          tokenBudget: BUDGET,
          allowSubtasks: false,
        },
        { cacheDir: path.join(base, 'cache') },
      );
      const user = (await store.readJson<PromptMessages>(built.prompt)).user;
      const section = user.split(/\n(?=### )/).find((s) => s.startsWith(`### ${rel} `) || s.startsWith(`### ${rel}\n`)) ?? '';
      const total = stub.stubbed.split('\n').length;
      const seen = shownLines(section, total);
      const covers = (a: number, b: number) => {
        for (let i = Math.max(1, a); i <= Math.min(total, b); i++) if (!seen.has(i)) return false;
        return true;
      };
      const views = (built.stats as { partialViews?: Record<string, { room: number; tokens: number }> }).partialViews;
      if (process.env.BENCH_DEBUG) console.log(rel, stub.name, stub.line, stub.endLine, JSON.stringify(views?.[rel]), section.split("\n")[0].slice(0, 400), "\n  files:", [...user.matchAll(/^### (\S+)/gm)].map((m) => m[1]).join(" "));
      r.n++;
      r.tokens += countTokens(section);
      r.room += views?.[rel]?.room ?? 0;
      r.whole += covers(stub.line, stub.endLine) ? 1 : 0;
      r.near += covers(stub.line - 20, stub.endLine + 20) ? 1 : 0;
      git(dir, 'reset', '-q', '--hard', 'HEAD~1');
    }
    const mean = (x: number) => (r.n ? Math.round(x / r.n) : 0);
    rows.push(
      `${repo.name.padEnd(24)} files ${String(r.n).padStart(2)}  view ${String(mean(r.tokens)).padStart(5)} tokens` +
        `${r.room ? ` of ${mean(r.room)} (share)` : ''}  F whole ${r.whole}/${r.n}  F ±20 lines ${r.near}/${r.n}`,
    );
    all.n += r.n;
    all.tokens += r.tokens;
    all.room += r.room;
    all.whole += r.whole;
    all.near += r.near;
  }
  rmSync(base, { recursive: true, force: true });
  console.log(`prompt budget ${BUDGET} tokens; per file: the target file's view in the prompt`);
  for (const row of rows) console.log(row);
  const share = all.room ? ` of ${Math.round(all.room / all.n)} (share)` : '';
  console.log(`all: ${all.n} files, view ${Math.round(all.tokens / Math.max(1, all.n))} tokens${share} on average, F whole ${all.whole}/${all.n}, F ±20 lines ${all.near}/${all.n}`);
}

void main();
