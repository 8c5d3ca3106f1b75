// The tagging threads, shared by every map this process builds: started on first need and kept
// (a long-lived worker pays thread start, grammar loading and query compilation once, not per
// build), unref'd while idle so they never hold the process open, ended after IDLE_MS unused.
// Builds queue their batches on the same threads, first come first served.
import { Worker } from 'node:worker_threads';
import type { TaggerOptions, TagResult } from './tagger';

export interface PoolJob {
  i: number;
  abs: string;
  lang: string;
}
export type BatchOut = { i: number; r: TagResult }[];
interface Batch {
  id: number;
  jobs: PoolJob[];
  /** undefined: the thread failed before answering (the caller tags these files itself). */
  done: (out: BatchOut | undefined) => void;
}
interface Thread {
  worker: Worker;
  inFlight: Map<number, Batch>;
}

/** Batches per thread at once: one being parsed, one waiting, so a thread never idles on the round trip. */
const IN_FLIGHT = 2;
const IDLE_MS = 10 * 60_000;

export class TagPool {
  private threads: Thread[] = [];
  private queue: Batch[] = [];
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  constructor(
    private readonly source: () => string,
    private readonly options: () => TaggerOptions,
    private readonly onWarnings: (warnings: string[]) => void,
    /** Diagnostics, counted as threads start and fail. */
    private readonly counters: { workersStarted: number; workerFailures: number },
  ) {}

  /** Live threads. */
  get size(): number {
    return this.threads.length;
  }

  /** Tags `batches` on the pool, first growing it to `threads`; one answer per batch. */
  run(batches: PoolJob[][], threads: number): Promise<(BatchOut | undefined)[]> {
    this.grow(threads);
    if (this.threads.length === 0) return Promise.resolve(batches.map(() => undefined));
    const answers = batches.map((jobs) => new Promise<BatchOut | undefined>((done) => this.queue.push({ id: this.nextId++, jobs, done })));
    this.pump();
    return Promise.all(answers);
  }

  /** Ends every thread; queued and unanswered batches answer undefined. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    for (const b of this.queue.splice(0)) b.done(undefined);
    for (const t of threads) for (const b of t.inFlight.values()) b.done(undefined);
    clearTimeout(this.idleTimer);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private grow(want: number): void {
    while (this.threads.length < want) {
      let worker: Worker;
      try {
        worker = new Worker(this.source(), { eval: true, workerData: this.options() });
      } catch {
        this.counters.workerFailures++;
        return;
      }
      this.counters.workersStarted++;
      const t: Thread = { worker, inFlight: new Map() };
      worker.on('message', (msg: { id: number; out: BatchOut; warnings: string[] }) => {
        const b = t.inFlight.get(msg.id);
        t.inFlight.delete(msg.id);
        this.onWarnings(msg.warnings);
        b?.done(msg.out);
        this.pump();
      });
      worker.on('error', (err) => this.fail(t, err));
      worker.on('exit', () => this.fail(t));
      this.threads.push(t);
    }
  }

  private fail(t: Thread, err?: Error): void {
    const k = this.threads.indexOf(t);
    if (k === -1) return; // already gone (closed, or an error followed by its exit)
    this.threads.splice(k, 1);
    if (err) {
      this.counters.workerFailures++;
      this.onWarnings([`repomap: a tagging worker failed, its files are tagged in-process: ${err.message}`]);
    }
    for (const b of t.inFlight.values()) b.done(undefined);
    t.inFlight.clear();
    void t.worker.terminate();
    if (this.threads.length === 0) for (const b of this.queue.splice(0)) b.done(undefined);
    this.pump();
  }

  private pump(): void {
    for (const t of this.threads) {
      while (t.inFlight.size < IN_FLIGHT && this.queue.length) {
        const b = this.queue.shift()!;
        t.inFlight.set(b.id, b);
        t.worker.postMessage({ id: b.id, jobs: b.jobs });
      }
      // A busy thread keeps the process alive until it answers; an idle one does not.
      if (t.inFlight.size) t.worker.ref();
      else t.worker.unref();
    }
    const idle = this.threads.every((t) => t.inFlight.size === 0);
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (idle && this.threads.length) {
      this.idleTimer = setTimeout(() => void this.close(), IDLE_MS);
      this.idleTimer.unref();
    }
  }
}
