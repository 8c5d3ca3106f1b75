// Benchmark (not a test): does the prompt show the model the code a task is about?
//
//   npx tsx scripts/bench-context.ts [--repos webpack,django,...] [--per-repo 20]
//                                    [--budgets 4000,8000,16000] [--seed bench] [--dump dir]
//                                    [--drop-doc]
//
// 11-16 minutes for the six default repositories on the shared 2-core VM. The first run also
// downloads django and sympy from PyPI (`pip download`) and prometheus and terraform from the
// Go proxy (`go mod download`) into .bench-cache/ (gitignored), about a minute; later runs are
// offline. Go makes its module cache read-only: `chmod -R u+w .bench-cache` before deleting
// it. A repository whose download or copy fails is reported and skipped.
//
// Repositories (scripts/bench-context/repos.ts): JS/TS sources in node_modules (webpack,
// ESLint with typescript-eslint), Python (django's and sympy's packages), Go (prometheus,
// terraform's internal/), each copied into a temp git repo.
// Tasks (scripts/bench-context/tasks.ts): documented functions with 4-80 body lines, sampled
// with a seed; F's body becomes a stub (its doc comment stays); two tasks per function:
//   (a) names F: "Implement F", F's name and its doc's first sentence; the file not named;
//   (b) describes F: "A function in this project is not implemented yet (its body is a stub).
//       <the doc's first sentence(s), F's name replaced by "it", its file's basename removed>";
//   no relatedFiles in either.
// Recall: the prompt holds the stub and the 20 lines either side of it, contiguous (line
// content, fences and span headers ignored), at each budget; "stub only": the stub without its
// surroundings (the function located, maybe shown too narrowly). For Weaver's buildPrompt and
// the git grep and BM25 baselines (scripts/bench-context/baselines.ts), which get the same room
// as Weaver's user message (the budget less the system prompt and the edit format's share).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { PromptMessages } from '../src/activities/llm';
import { buildPrompt } from '../src/activities/prompt';
import { countTokens } from '../src/activities/tokens';
import { editFormat } from '../src/domain/editformats';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { Bm25, gitGrepPrompt, holds } from './bench-context/baselines';
import { materialize, REPOS } from './bench-context/repos';
import { sampleTasks, variants } from './bench-context/tasks';

const flag = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const perRepo = Number(flag('per-repo') ?? 20);
const budgets = (flag('budgets') ?? '4000,8000,16000').split(',').map(Number);
const seed = flag('seed') ?? 'bench';
const only = flag('repos')?.split(',');
/** Where to write the prompts that missed (to see why), if anywhere. */
const dump = flag('dump');
/** Remove the doc comment / docstring with the body: the description's words are then nowhere verbatim. */
const dropDoc = process.argv.includes('--drop-doc');
const METHODS = ['weaver', 'git grep', 'bm25'] as const;
type Method = (typeof METHODS)[number];

/** Hits and prompt tokens by variant, method and budget. */
class Tally {
  tasks = 0;
  hits = new Map<string, number>();
  tokens = new Map<string, number[]>();
  add(key: string, hit: boolean, tokens: number) {
    this.hits.set(key, (this.hits.get(key) ?? 0) + (hit ? 1 : 0));
    this.tokens.set(key, [...(this.tokens.get(key) ?? []), tokens]);
  }
  merge(o: Tally) {
    this.tasks += o.tasks;
    for (const [k, v] of o.hits) this.hits.set(k, (this.hits.get(k) ?? 0) + v);
    for (const [k, v] of o.tokens) this.tokens.set(k, [...(this.tokens.get(k) ?? []), ...v]);
  }
  table(): string {
    const k = (b: number) => `${b / 1000}k`;
    const head = `| task | method | ${budgets.map((b) => `@${k(b)}`).join(' | ')} | stub only ${budgets.map(k).join('/')} | mean tokens ${budgets.map(k).join('/')} |`;
    const rows = [head, `|---|---|${budgets.map(() => '---|').join('')}---|---|`];
    const pct = (key: string) => `${this.tasks ? Math.round((100 * (this.hits.get(key) ?? 0)) / this.tasks) : 0}%`;
    for (const v of ['a', 'b'])
      for (const m of METHODS) {
        const cells = budgets.map((b) => pct(`${v}|${m}|${b}`));
        const located = budgets.map((b) => pct(`${v}|${m}|${b}|stub`));
        const toks = budgets.map((b) => Math.round(mean(this.tokens.get(`${v}|${m}|${b}`) ?? [])));
        rows.push(`| ${v === 'a' ? '(a) names F' : '(b) describes F'} | ${m} | ${cells.join(' | ')} | ${located.join('/')} | ${toks.join('/')} |`);
      }
    return rows.join('\n');
  }
}
const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);

async function main() {
  const work = sandboxableTempDir('weaver-bench-context-');
  const store = new LocalArtifactStore(path.join(work, 'artifacts'));
  const overall = new Tally();
  const reports: string[] = [];
  const started = Date.now();
  const srRatios: number[] = [];
  try {
    for (const spec of REPOS.filter((r) => !only || only.includes(r.name))) {
      const dir = path.join(work, spec.name);
      let tracked: string[];
      const t0 = Date.now();
      try {
        tracked = await materialize(spec, dir);
      } catch (err) {
        reports.push(`### ${spec.name}: skipped (${String((err as Error).message ?? err).split('\n')[0]})`);
        console.error(reports[reports.length - 1]);
        continue;
      }
      const copyMs = Date.now() - t0;
      const read = (rel: string) => readFileSync(path.join(dir, rel), 'utf8');
      const tasks = sampleTasks(dir, tracked, perRepo, `${seed}:${spec.name}`);
      const sources = new Map(tracked.filter((f) => /\.(py|go|[cm]?js|tsx?)$/.test(f)).map((f) => [f, read(f)]));
      const bm25 = new Bm25(sources);
      const cacheDir = path.join(work, `cache-${spec.name}`);
      const tally = new Tally();
      const mapMs: number[] = [];
      for (const f of tasks) {
        const original = read(f.file);
        const lines = original.split('\n');
        const [from, stub] = dropDoc ? [f.docStart, f.bare] : [f.start, f.stub];
        const stubbed = [...lines.slice(0, from), ...stub, ...lines.slice(f.end + 1)];
        writeFileSync(path.join(dir, f.file), stubbed.join('\n'));
        const window = stubbed.slice(Math.max(0, from - 20), from + stub.length + 20);
        try {
          for (const v of variants(f)) {
            for (const budget of budgets) {
              const built = await buildPrompt(
                store,
                { workspace: { id: 'b', dir, taskQueue: 'q', branch: 'main', baseCommit: 'HEAD' }, task: { title: v.title, description: v.description }, attempt: 1, tokenBudget: budget, allowSubtasks: false },
                { cacheDir },
              );
              mapMs.push(built.stats.mapMs);
              const user = (await store.readJson<PromptMessages>(built.prompt)).user;
              // The baselines get the room Weaver's user message had: the budget less its fixed parts.
              const room = budget - (built.estTokens - countTokens(user));
              const head = `# Task: ${v.title}\n\n${v.description}`;
              const prompts: Record<Method, string> = {
                weaver: user,
                'git grep': gitGrepPrompt(dir, head, read, room),
                bm25: bm25.prompt(head, room, read, { rel: f.file, text: stubbed.join('\n') }),
              };
              for (const m of METHODS) {
                const hit = holds(prompts[m], { window });
                tally.add(`${v.id}|${m}|${budget}`, hit, m === 'weaver' ? built.estTokens : countTokens(prompts[m]) + built.estTokens - countTokens(user));
                // Located: the stub itself shown, with or without its surroundings.
                tally.add(`${v.id}|${m}|${budget}|stub`, holds(prompts[m], { window: stub }), 0);
                if (dump && !hit) {
                  mkdirSync(dump, { recursive: true });
                  const name = `${spec.name}-${f.name}-${v.id}-${m.replace(' ', '')}-${budget}.md`;
                  writeFileSync(path.join(dump, name), `<!-- ${f.file}:${f.start + 1} -->\n${window.join('\n')}\n<!-- prompt -->\n${prompts[m]}`);
                }
              }
            }
          }
        } finally {
          writeFileSync(path.join(dir, f.file), original);
        }
        tally.tasks++;
        if (original.length > 10_000) srRatios.push(editRatio(f.file, stub.join('\n'), lines.slice(from, f.end + 1).join('\n'), original));
        process.stderr.write('.');
      }
      const warm = mapMs.slice(1);
      reports.push(
        `### ${spec.name}: ${tracked.length} files, ${tasks.length} tasks; copy ${(copyMs / 1000).toFixed(1)} s, map cold ${((mapMs[0] ?? 0) / 1000).toFixed(1)} s, warm ${(mean(warm) / 1000).toFixed(2)} s (mean)\n\n${tally.table()}`,
      );
      console.error(`\n${reports[reports.length - 1]}\n`);
      overall.merge(tally);
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log('context recall: the stubbed function F and the 20 lines either side of it, in the prompt, by budget\n');
  console.log(reports.join('\n\n'));
  console.log(`\n### all: ${overall.tasks} tasks\n\n${overall.table()}`);
  const sorted = [...srRatios].sort((a, b) => a - b);
  console.log(`\noutput tokens of a SEARCH/REPLACE answer over a whole-file answer, for the fixes in files over 10 KB: median ${(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(3)} over ${sorted.length}`);
  console.log(`\n(${((Date.now() - started) / 60000).toFixed(1)} min)`);
}

/** Output tokens of the fix as SEARCH/REPLACE over the same fix as the whole file. */
function editRatio(file: string, search: string, replace: string, whole: string): number {
  const fmt = editFormat('editblock');
  const summary = 'Implement the function.';
  const sr = countTokens(fmt.render({ summary, files: [{ path: file, action: 'edit', search, replace }] }));
  return sr / countTokens(fmt.render({ summary, files: [{ path: file, action: 'write', content: whole }] }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
