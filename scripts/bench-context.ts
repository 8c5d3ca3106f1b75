// Benchmark (not a test): does the prompt show the model the code a task is about?
//
//   npx tsx scripts/bench-context.ts [--per-repo 25]
//
// Repositories: real JavaScript/TypeScript sources already in node_modules (webpack's lib,
// ESLint with typescript-eslint, the openai SDK's src), each copied into a temp git repo.
// Tasks: "implement function F" — F's body removed (it throws), its name and JSDoc in the
// description, its file not named. For each task it reports whether the file defining F is
// shown (with F's definition) in the prompt, for the old selection (first 400 paths + the 12
// smallest files, 24 KB cut) and the new one (ranked map + files by priority), at 8k and 32k
// prompt tokens; the mean prompt tokens; the map's build time (cold, cached); and the output
// tokens of a SEARCH/REPLACE answer against a whole-file answer for the same fix.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { PromptMessages } from '../src/activities/llm';
import { buildPrompt } from '../src/activities/prompt';
import { buildRepoMap } from '../src/activities/repomap';
import { countTokens } from '../src/activities/tokens';
import { editFormat } from '../src/domain/editformats';

const ROOT = path.resolve(__dirname, '..');
const NM = path.join(ROOT, 'node_modules');
const perRepo = Number(process.argv[process.argv.indexOf('--per-repo') + 1]) || 25;

interface RepoSpec {
  name: string;
  sources: string[];
}
const REPOS: RepoSpec[] = [
  { name: 'webpack', sources: ['webpack/lib', 'webpack/hot', 'webpack/schemas'] },
  { name: 'eslint+typescript-eslint', sources: ['eslint/lib', '@typescript-eslint/eslint-plugin/dist', '@typescript-eslint/typescript-estree/dist'] },
  { name: 'openai-sdk', sources: ['openai/src'] },
];

interface Task {
  file: string;
  name: string;
  signature: string;
  original: string;
  stubbed: string;
  fnOriginal: string;
  fnStub: string;
  doc: string;
}

const git = (dir: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function makeRepo(spec: RepoSpec, into: string): string[] {
  mkdirSync(into, { recursive: true });
  for (const src of spec.sources) cpSync(path.join(NM, src), path.join(into, src.replace(/\//g, '_')), { recursive: true, filter: (s) => !/\.(map|d\.ts)$/.test(s) });
  git(into, 'init', '-q', '--initial-branch=main');
  git(into, 'add', '-A');
  git(into, 'commit', '-q', '-m', 'sources');
  return git(into, 'ls-files').split('\n').filter(Boolean);
}

/** Top-level documented functions with unique names: "implement F" tasks. */
function findTasks(dir: string, files: string[]): Task[] {
  const defs = new Map<string, number>();
  const candidates: Task[] = [];
  const startRe = /^(?:export\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*[(<]|^(?:export\s+)?const\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?\([^)]*\)\s*(?::[^=]+)?=>\s*\{\s*$/;
  for (const rel of files.filter((f) => /\.(js|ts)$/.test(f))) {
    const text = readFileSync(path.join(dir, rel), 'utf8');
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      const m = startRe.exec(line);
      if (!m) return;
      const name = m[1] ?? m[2];
      defs.set(name, (defs.get(name) ?? 0) + 1);
      if (!lines[i - 1]?.trim().endsWith('*/') || !line.trimEnd().endsWith('{')) return;
      let end = i + 1;
      while (end < lines.length && !/^\}[;]?\s*$/.test(lines[end])) end++;
      if (end >= lines.length || end - i < 4 || end - i > 80) return;
      let docStart = i - 1;
      while (docStart > 0 && !lines[docStart].trim().startsWith('/**')) docStart--;
      const doc = lines.slice(docStart, i).join('\n');
      const fnOriginal = lines.slice(i, end + 1).join('\n') + '\n';
      const fnStub = `${line}\n\tthrow new Error("TODO: implement ${name}");\n${lines[end]}\n`;
      const stubbed = [...lines.slice(0, i), ...fnStub.slice(0, -1).split('\n'), ...lines.slice(end + 1)].join('\n');
      candidates.push({ file: rel, name, signature: line, original: text, stubbed, fnOriginal, fnStub, doc });
    });
  }
  const unique = candidates.filter((c) => defs.get(c.name) === 1 && c.name.length >= 6);
  const step = Math.max(1, Math.floor(unique.length / perRepo));
  return unique.filter((_, i) => i % step === 0).slice(0, perRepo);
}

/** The selection before the repository map (kept here to compare against). */
function oldPrompt(dir: string, tracked: string[], t: { title: string; description: string }): string {
  const tree = tracked.slice(0, 400).join('\n') + (tracked.length > 400 ? `\n… and ${tracked.length - 400} more` : '');
  const sized = tracked
    .filter((f) => /\.(c|cc|cpp|cs|css|go|h|html|java|js|jsx|json|kt|md|mjs|cjs|py|rb|rs|sh|toml|ts|tsx|txt|yaml|yml)$/.test(f))
    .slice(0, 2000)
    .map((f) => ({ f, size: statSync(path.join(dir, f)).size }))
    .filter((s) => s.size <= 24_000)
    .sort((a, b) => a.size - b.size || a.f.localeCompare(b.f))
    .slice(0, 12)
    .map((s) => s.f)
    .sort();
  let budget = 80_000;
  const files: string[] = [];
  for (const rel of sized) {
    const text = readFileSync(path.join(dir, rel), 'utf8');
    const shown = text.slice(0, Math.min(24_000, budget));
    budget -= shown.length;
    files.push(`--- ${rel}\n${shown}`);
  }
  return [`# Task: ${t.title}`, t.description, `## Repository files\n${tree}`, `## File contents\n${files.join('\n\n')}`].join('\n\n');
}

/** The first `tokens` tokens of a prompt (what a model with that budget could be sent). */
function cut(text: string, tokens: number): string {
  if (countTokens(text) <= tokens) return text;
  let lo = 0;
  let hi = text.length;
  while (hi - lo > 200) {
    const mid = Math.floor((lo + hi) / 2);
    if (countTokens(text.slice(0, mid)) <= tokens) lo = mid;
    else hi = mid;
  }
  return text.slice(0, lo);
}

/** Shown = a section of the defining file that holds F's definition line. */
function shows(prompt: string, task: Task, header: (rel: string) => string): boolean {
  const at = prompt.indexOf(header(task.file));
  if (at < 0) return false;
  const next = prompt.indexOf('\n### ', at + 1);
  const nextOld = prompt.indexOf('\n--- ', at + 1);
  const end = Math.min(next < 0 ? Infinity : next, nextOld < 0 ? Infinity : nextOld);
  return prompt.slice(at, end).includes(task.signature.trim());
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const pct = (n: number, d: number) => `${d ? ((100 * n) / d).toFixed(0) : '-'}%`;

async function main() {
  const work = mkdtempSync(path.join(tmpdir(), 'weaver-bench-context-'));
  const store = new LocalArtifactStore(path.join(work, 'artifacts'));
  const rows: string[] = [];
  const ratios: number[] = [];
  const promptTokens: Record<number, number[]> = { 8000: [], 32000: [] };
  const totals = { tasks: 0, old8: 0, old32: 0, new8: 0, new32: 0, big: { tasks: 0, new8: 0 } };
  let mapFigures = '';
  let largest = { files: 0, dir: '' };
  try {
    for (const spec of REPOS) {
      const dir = path.join(work, spec.name);
      const tracked = makeRepo(spec, dir);
      if (tracked.length > largest.files) largest = { files: tracked.length, dir };
      const tasks = findTasks(dir, tracked);
      const cacheDir = path.join(work, 'cache');
      const hits = { old8: 0, old32: 0, new8: 0, new32: 0 };
      for (const task of tasks) {
        writeFileSync(path.join(dir, task.file), task.stubbed);
        git(dir, 'commit', '-q', '-am', `stub ${task.name}`);
        const t = {
          title: `Implement ${task.name}`,
          description: `\`${task.name}\` currently throws "TODO": its body was removed. Implement it as documented:\n\n${task.doc}`,
        };
        const old = oldPrompt(dir, tracked, t);
        if (shows(cut(old, 8000), task, (rel) => `--- ${rel}\n`)) hits.old8++;
        if (shows(cut(old, 32000), task, (rel) => `--- ${rel}\n`)) hits.old32++;
        for (const budget of [8000, 32000]) {
          const built = await buildPrompt(
            store,
            { workspace: { id: 'b', dir, taskQueue: 'q', branch: 'main', baseCommit: 'HEAD' }, task: t, attempt: 1, tokenBudget: budget, allowSubtasks: false },
            { cacheDir },
          );
          const user = (await store.readJson<PromptMessages>(built.prompt)).user;
          promptTokens[budget].push(built.estTokens);
          if (shows(user, task, (rel) => `### ${rel}`)) hits[budget === 8000 ? 'new8' : 'new32']++;
        }
        git(dir, 'reset', '-q', '--hard', 'HEAD~1');
        if (task.original.length > 10_000) {
          const fmt = editFormat('editblock');
          const sr = countTokens(fmt.render({ summary: `Implement ${task.name}.`, files: [{ path: task.file, action: 'edit', search: task.fnStub, replace: task.fnOriginal }] }));
          const whole = countTokens(fmt.render({ summary: `Implement ${task.name}.`, files: [{ path: task.file, action: 'write', content: task.original }] }));
          ratios.push(sr / whole);
        }
      }
      totals.tasks += tasks.length;
      totals.old8 += hits.old8;
      totals.old32 += hits.old32;
      totals.new8 += hits.new8;
      totals.new32 += hits.new32;
      if (tracked.length >= 500) {
        totals.big.tasks += tasks.length;
        totals.big.new8 += hits.new8;
      }
      rows.push(
        `| ${spec.name} | ${tracked.length} | ${tasks.length} | ${pct(hits.old8, tasks.length)} | ${pct(hits.old32, tasks.length)} | ${pct(hits.new8, tasks.length)} | ${pct(hits.new32, tasks.length)} |`,
      );
    }
    // Map build time on the largest repository: a cold cache, then the cached one.
    const cold = path.join(work, 'cold-cache');
    const req = { dir: largest.dir, cacheDir: cold, mentionedFiles: [], mentionedIdents: ['compile'], tokenBudget: 2048 };
    let t0 = Date.now();
    const first = await buildRepoMap(req);
    const coldMs = Date.now() - t0;
    t0 = Date.now();
    await buildRepoMap(req);
    const cachedMs = Date.now() - t0;
    mapFigures = `repository map of the largest repository (${first.stats.files} files mapped): cold ${coldMs} ms, cached ${cachedMs} ms`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const mean = (xs: number[]) => Math.round(xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length));
  console.log('context recall: the file defining F shown with its definition, in the first N prompt tokens\n');
  console.log('| repository | files | tasks | old @8k | old @32k | new @8k | new @32k |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`| all | | ${totals.tasks} | ${pct(totals.old8, totals.tasks)} | ${pct(totals.old32, totals.tasks)} | ${pct(totals.new8, totals.tasks)} | ${pct(totals.new32, totals.tasks)} |`);
  console.log(`\nrecall at 8k on repositories of >= 500 files: ${pct(totals.big.new8, totals.big.tasks)} of ${totals.big.tasks} tasks`);
  console.log(`mean prompt tokens (new): ${mean(promptTokens[8000])} at the 8k budget, ${mean(promptTokens[32000])} at the 32k budget`);
  console.log(mapFigures);
  console.log(
    `output tokens, SEARCH/REPLACE vs whole file, single-function fixes in files over 10 KB: median ratio ${median(ratios).toFixed(3)} over ${ratios.length} fixes`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
