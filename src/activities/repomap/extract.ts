// Tag extraction: tree-sitter parse + tag query per file, in-process or in worker threads.
// The tagger itself is in ./tagger.ts; this is the pool that runs it on many files.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { LangId } from './languages';
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

/**
 * Tags every job: in worker threads when there are many (a 10k-file cold build uses every
 * core), else in-process. A worker that fails hands its unfinished files to the main thread.
 */
export async function tagFiles(jobs: Job[]): Promise<TagResult[]> {
  const out: TagResult[] = new Array(jobs.length);
  const n = workerCount(jobs.length);
  if (n === 0) {
    await tagInProcess(
      jobs,
      jobs.map((_, i) => i),
      out,
    );
    return out;
  }
  // Biggest languages first would balance better, but file order keeps batches language-local
  // (fewer grammars per worker); batches are small enough to balance.
  const BATCH = 24;
  const batches: number[][] = [];
  for (let i = 0; i < jobs.length; i += BATCH) batches.push(jobs.slice(i, i + BATCH).map((_, k) => i + k));
  let next = 0;
  const leftover: number[] = [];
  const source = WORKER_SOURCE();
  const opts = taggerOptions();

  const runWorker = () =>
    new Promise<void>((resolve) => {
      let worker: Worker;
      try {
        worker = new Worker(source, { eval: true, workerData: opts });
        tagCounters.workersStarted++;
      } catch {
        tagCounters.workerFailures++;
        while (next < batches.length) leftover.push(...batches[next++]);
        resolve();
        return;
      }
      const inFlight = new Map<number, number[]>();
      let done = false;
      const finish = (err?: unknown) => {
        if (done) return;
        done = true;
        if (err instanceof Error) {
          tagCounters.workerFailures++;
          warnOnce([`repomap: a tagging worker failed, its files are tagged in-process: ${err.message}`]);
        }
        for (const b of inFlight.values()) leftover.push(...b);
        inFlight.clear();
        void worker.terminate();
        resolve();
      };
      const feed = () => {
        while (inFlight.size < 2 && next < batches.length) {
          const id = next++;
          const b = batches[id];
          inFlight.set(id, b);
          worker.postMessage({ id, jobs: b.map((i) => ({ i, abs: jobs[i].abs, lang: jobs[i].lang })) });
        }
        if (inFlight.size === 0) finish();
      };
      worker.on('message', (msg: { id: number; out: { i: number; r: TagResult }[]; warnings: string[] }) => {
        for (const { i, r } of msg.out) out[i] = r;
        tagCounters.inWorkers += msg.out.length;
        inFlight.delete(msg.id);
        warnOnce(msg.warnings);
        feed();
      });
      worker.on('error', finish);
      worker.on('exit', () => finish());
      feed();
    });

  await Promise.all(Array.from({ length: n }, runWorker));
  if (leftover.length) await tagInProcess(jobs, leftover, out);
  return out;
}
