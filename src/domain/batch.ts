// A batch of thousands: its tasks and results live in the artifact store, its history holds
// references and counters. The tasks are JSON Lines (one task a line, read a window at a time);
// the results go out in pages of `pageSize` rows, in input order. Pure, shared by the workflow,
// the activity that reads the tasks and the client that uploads them and reads the pages back.
import type { ArtifactRef, CodingTaskResult, Usage } from './schema';

/** The `kind` of a batch's task list and of one page of its results in the store. */
export const BATCH_TASKS_KIND = 'batch-tasks';
export const BATCH_PAGE_KIND = 'batch-results';
/** Results per page (and tasks read per activity call): ≈ 5.6 KB a row, a page stays under the SDK's 512 KB payload warning. */
export const DEFAULT_PAGE_SIZE = 50;
/** A page's JSON past this has its rows shortened (domain/slim.ts resultRows): a page is an activity's input. */
export const MAX_PAGE_BYTES = 512 * 1024;
/** Children started per run before the batch continues as new: ≈ 9 events and 10 KB of history each. */
export const DEFAULT_CONTINUE_AFTER = 500;

/** Rows `from`..`from + count - 1` of the batch's results (input order), stored as a JSON array. */
export interface ResultPage {
  from: number;
  count: number;
  ref: ArtifactRef;
}

/** What one run of a batch hands the next (continue-as-new): where it got to and the totals so far. */
export interface BatchCarry {
  /** The index of the first task not yet started: every task before it has finished and is paged. */
  next: number;
  total: number;
  successCount: number;
  usage: Usage;
  pages: ResultPage[];
  /** Runs before this one. */
  runs: number;
}

export function toJsonLines(items: unknown[]): string {
  return items.map((t) => JSON.stringify(t)).join('\n') + '\n';
}

/** Items `from`..`from + count - 1` of a JSON Lines text, and how many it holds in all. */
export function jsonLinesWindow(text: string, from: number, count: number): { items: unknown[]; total: number } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return { items: lines.slice(from, from + count).map((l) => JSON.parse(l) as unknown), total: lines.length };
}

/**
 * Results that arrive out of order, handed out as pages in input order: a page is ready when
 * its `size` rows from `start` on are all in (or, at `drain`, whatever is contiguous).
 */
export class PageBuffer {
  private readonly rows = new Map<number, CodingTaskResult>();

  constructor(
    private start: number,
    private readonly size: number,
  ) {}

  add(i: number, row: CodingTaskResult): void {
    this.rows.set(i, row);
  }

  /** The next full page (taken out of the buffer), or undefined. `drain`: a partial one too. */
  take(drain = false): { from: number; rows: CodingTaskResult[] } | undefined {
    const rows: CodingTaskResult[] = [];
    while (rows.length < this.size && this.rows.has(this.start + rows.length)) rows.push(this.rows.get(this.start + rows.length)!);
    if (!rows.length || (rows.length < this.size && !drain)) return undefined;
    const from = this.start;
    for (let i = from; i < from + rows.length; i++) this.rows.delete(i);
    this.start += rows.length;
    return { from, rows };
  }
}

/** The pages' rows, concatenated in input order; refuses pages that leave a gap or overlap. */
export async function joinPages(pages: ResultPage[], read: (p: ResultPage) => Promise<CodingTaskResult[]>): Promise<CodingTaskResult[]> {
  const out: CodingTaskResult[] = [];
  for (const p of [...pages].sort((a, b) => a.from - b.from)) {
    if (p.from !== out.length) throw new Error(`batch result pages do not line up: page at ${p.from} after ${out.length} rows`);
    const rows = await read(p);
    if (rows.length !== p.count) throw new Error(`batch result page at ${p.from} holds ${rows.length} rows, not ${p.count}`);
    out.push(...rows);
  }
  return out;
}
