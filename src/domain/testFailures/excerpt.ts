// A bounded excerpt of a log of any size, fed in chunks, for extractFailures: the detectors read
// the whole text at once (a 16 MB log would hold the event loop for hundreds of ms and take a
// string as large), so a large log is first reduced, in one streaming pass over its lines, to
// the parts failures are found in: its first lines (runner headers, pytest's rootdir), regions
// around lines that look like failures from the start on, and its last lines (the summaries).
// What is left out between kept parts is marked with a line count. Memory and the final text
// stay within the budgets whatever the log's size. Pure, like the rest of the folder.

/** Lines are cut to this many characters as they come: a log without newlines stays bounded too. */
const MAX_LINE = 4000;

export interface ExcerptBudget {
  /** Characters of the log's first lines kept. */
  firstChars: number;
  /** Characters of regions around failure-looking lines, from the start on. */
  regionChars: number;
  /** Characters of the log's last lines kept. */
  lastChars: number;
  /** Lines kept before a failure-looking line (its heading, a separator). */
  before: number;
  /** Lines kept after one (its assertion, its stack); extended by each next such line. */
  after: number;
}

/** About 512 K characters in all: extractFailures on that takes a few milliseconds. */
export const DEFAULT_EXCERPT_BUDGET: ExcerptBudget = { firstChars: 32 * 1024, regionChars: 224 * 1024, lastChars: 256 * 1024, before: 8, after: 200 };

// What the detectors of index.ts start from (their `applies` markers) and what the generic
// fallback looks for: a superset is fine, the detectors decide on the excerpt.
const TRIGGER_RE = /error|fail|assert|exception|traceback|panic|●|not ok |✖|✗|✘|<<< |= (?:FAILURES|ERRORS) =|short test summary|goroutine |\.go:\d|stdout ----|Tests run:/i;

const omitted = (n: number) => `… ${n} line${n === 1 ? '' : 's'} omitted …`;

export class LogExcerpt {
  private readonly budget: ExcerptBudget;
  /** Kept, in order: the first lines, then regions with markers between them. */
  private readonly kept: string[] = [];
  private firstUsed = 0;
  private firstDone = false;
  private regionUsed = 0;
  private afterLeft = 0;
  /** Lines since the last kept one, the last `lastChars` of them: a deque (start index) so eviction is O(1). */
  private recent: string[] = [];
  private recentStart = 0;
  private recentChars = 0;
  /** Lines since the last kept one that are no longer in `recent`. */
  private skipped = 0;
  /** The line being assembled across chunks, cut at MAX_LINE. */
  private partial = '';
  private partialCut = false;
  /** Characters seen; lines seen. */
  chars = 0;
  lines = 0;

  constructor(budget: Partial<ExcerptBudget> = {}) {
    this.budget = { ...DEFAULT_EXCERPT_BUDGET, ...budget };
  }

  push(text: string): void {
    this.chars += text.length;
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      const piece = nl < 0 ? text.slice(from) : text.slice(from, nl);
      if (!this.partialCut) {
        const room = MAX_LINE - this.partial.length;
        if (piece.length > room) {
          this.partial += `${piece.slice(0, room)}…`;
          this.partialCut = true;
        } else {
          this.partial += piece;
        }
      }
      if (nl < 0) return;
      this.line(this.partial);
      this.partial = '';
      this.partialCut = false;
      from = nl + 1;
    }
  }

  /** The excerpt: within the budgets (plus the marker lines). */
  end(): string {
    if (this.partial || this.partialCut) this.line(this.partial);
    this.partial = '';
    const out = this.kept.slice();
    const recent = this.recent.slice(this.recentStart);
    if (this.skipped) out.push(omitted(this.skipped));
    out.push(...recent);
    return out.join('\n');
  }

  private line(l: string): void {
    this.lines++;
    const size = l.length + 1;
    const b = this.budget;
    if (!this.firstDone) {
      if (this.firstUsed + size <= b.firstChars) {
        this.kept.push(l);
        this.firstUsed += size;
        return;
      }
      this.firstDone = true;
    }
    if (this.regionUsed < b.regionChars && (this.afterLeft > 0 || TRIGGER_RE.test(l))) {
      const trigger = this.afterLeft === 0 || TRIGGER_RE.test(l);
      // A new region starts with the few lines before it; the rest since the last kept line is counted.
      const waiting = this.recent.length - this.recentStart;
      const context = Math.min(waiting, this.afterLeft > 0 ? waiting : b.before);
      const gap = this.skipped + waiting - context;
      if (gap) this.kept.push(omitted(gap));
      for (let i = this.recent.length - context; i < this.recent.length; i++) {
        this.kept.push(this.recent[i]);
        this.regionUsed += this.recent[i].length + 1;
      }
      this.kept.push(l);
      this.regionUsed += size;
      this.recent = [];
      this.recentStart = 0;
      this.recentChars = 0;
      this.skipped = 0;
      this.afterLeft = trigger ? b.after : this.afterLeft - 1;
      return;
    }
    this.afterLeft = 0;
    this.recent.push(l);
    this.recentChars += size;
    while (this.recentChars > b.lastChars && this.recentStart < this.recent.length) {
      this.recentChars -= this.recent[this.recentStart].length + 1;
      this.recent[this.recentStart++] = '';
      this.skipped++;
    }
    if (this.recentStart > 4096 && this.recentStart * 2 > this.recent.length) {
      this.recent = this.recent.slice(this.recentStart);
      this.recentStart = 0;
    }
  }
}
