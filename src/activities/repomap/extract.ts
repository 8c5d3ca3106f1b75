// Tag extraction: tree-sitter parse + tag query per file, in-process or on the tagging threads.
// The tagger itself is in ./tagger.ts, the threads in ./pool.ts.
import { availableParallelism } from 'node:os';
import type { LangId } from './languages';
import { TagPool, type PoolJob } from './pool';
import { createTagger, taggerOptions, workerMain, type Tagger, type TagResult } from './tagger';

export { createTagger, taggerOptions, workerMain, type DefTag, type FileTags, type Tagger, type TaggerOptions, type TagResult } from './tagger';

/** Counters since the process started (diagnostics: benchmarks and tests read them). */
export const tagCounters = { inProcess: 0, inWorkers: 0, workersStarted: 0, workerFailures: 0 };

const warned = new Set<string>();
function warnOnce(messages: string[]): void {
  for (const m of messages) {
    if (warned.has(m)) continue;
    warned.add(m);
    console.warn(m);
  }
}

let local: Tagger | undefined;
/** The main thread's tagger (one Parser per language, grammars loaded on first use). */
export function localTagger(): Tagger {
  if (!local) local = createTagger(taggerOptions());
  return local;
}

export interface Job {
  abs: string;
  lang: LangId;
}

/** How many worker threads a cold build of `files` uncached files uses (0: in-process). */
export function workerCount(files: number): number {
  const env = process.env.WEAVER_REPOMAP_WORKERS;
  if (env !== undefined && env !== '' && Number.isFinite(Number(env))) return Math.min(Math.max(0, Math.floor(Number(env))), files);
  const cores = typeof availableParallelism === 'function' ? availableParallelism() : 2;
  if (files < 200 || cores < 2) return 0;
  return Math.min(cores, 8, Math.ceil(files / 100));
}

async function tagInProcess(jobs: Job[], idx: number[], out: TagResult[]): Promise<void> {
  const tagger = localTagger();
  let k = 0;
  for (const i of idx) {
    try {
      out[i] = await tagger.tagFile(jobs[i].abs, jobs[i].lang);
    } catch (e) {
      out[i] = { error: String((e as Error)?.message ?? e) };
    }
    // Parsing is synchronous: let the event loop breathe (activity heartbeats, timers).
    if (++k % 16 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  tagCounters.inProcess += idx.length;
  warnOnce(tagger.takeWarnings());
}

const WORKER_SOURCE = (): string =>
  [
    // esbuild (tsx) keeps function names with a `__name` helper; give the worker one.
    'var __name = (f) => f;',
    `const createTagger = (${createTagger.toString()});`,
    `(${workerMain.toString()})(createTagger);`,
  ].join('\n');

const pool = new TagPool(WORKER_SOURCE, taggerOptions, warnOnce, tagCounters);

/** Ends the tagging threads (they end by themselves after 10 idle minutes and never hold the process). */
export function closeTagPool(): Promise<void> {
  return pool.close();
}

/**
 * Tags every job: on the process's tagging threads when there are many (a 10k-file cold build
 * uses every core) or when the threads are already up, else in-process. Files of a thread that
 * fails are tagged by the main thread.
 */
export async function tagFiles(jobs: Job[]): Promise<TagResult[]> {
  const out: TagResult[] = new Array(jobs.length);
  const explicit = process.env.WEAVER_REPOMAP_WORKERS;
  const n = explicit !== undefined && explicit !== '' ? workerCount(jobs.length) : Math.max(workerCount(jobs.length), Math.min(pool.size, jobs.length));
  if (n === 0) {
    await tagInProcess(
      jobs,
      jobs.map((_, i) => i),
      out,
    );
    return out;
  }
  // Biggest languages first would balance better, but file order keeps batches language-local
  // (fewer grammars per thread); batches are small enough to balance.
  const BATCH = 24;
  const batches: PoolJob[][] = [];
  for (let i = 0; i < jobs.length; i += BATCH) batches.push(jobs.slice(i, i + BATCH).map((j, k) => ({ i: i + k, abs: j.abs, lang: j.lang })));
  const answers = await pool.run(batches, n);
  const leftover: number[] = [];
  answers.forEach((answer, k) => {
    if (!answer) {
      leftover.push(...batches[k].map((j) => j.i));
      return;
    }
    for (const { i, r } of answer) out[i] = r;
    tagCounters.inWorkers += answer.length;
  });
  if (leftover.length) await tagInProcess(jobs, leftover, out);
  return out;
}
