// The failing part of a test run's output, for retry feedback and for the repository map's
// personalisation: the assertion / traceback blocks of the runners Weaver meets (pytest,
// unittest, jest, node:test, mocha, go test, cargo test, JUnit via Maven Surefire or Gradle),
// the files and functions they name, and a generic fallback for everything else.
//
// Pure (no Node built-ins, no I/O): bundled into Temporal workflow code. Line-oriented: the
// log is split once and every detector walks the lines with cheap prefix checks before any
// regular expression, no regex has nested quantifiers and lines are capped in length first, so
// a 1 MB log costs 10-30 ms.

// One module per runner family (python.ts, javascript.ts, go.ts, cargo.ts, junit.ts, and
// generic.ts for the rest), on the Block of blocks.ts; files.ts gathers the files and symbols,
// render.ts the text.
import { splitLines, stripAnsi, type Block, type Ctx, type DetectorResult } from './blocks';
import { detectCargo } from './cargo';
import { collectFilesAndSymbols, dedupe } from './files';
import { detectGeneric } from './generic';
import { detectGo } from './go';
import { detectJest, detectMocha, detectNodeSpec, detectNodeTap } from './javascript';
import { detectJunit } from './junit';
import { detectPytest, detectUnittest } from './python';
import { renderBlocks, renderGeneric } from './render';

export { stripAnsi };

export interface FailureExtract {
  /**
   * The failing part of the output: assertion / traceback blocks, bounded by maxChars. When no runner
   * is recognised, the lines that look like errors (with context), else the tail; '' for an empty log.
   */
  text: string;
  /**
   * Which runner(s) were recognised: 'pytest' | 'unittest' | 'jest' | 'node:test' | 'mocha' | 'go' |
   * 'cargo' | 'junit' | 'generic'; several are joined with ',' in order of first appearance.
   */
  framework: string;
  /**
   * Repo-relative-looking source paths named in the failures (tracebacks, stack frames, `file:line`),
   * in order, deduped. Library paths (node_modules, site-packages, the Go/Rust/Java runtimes) are left
   * out. Absolute paths are made relative to `opts.root`, to pytest's `rootdir:`, or to a root inferred
   * from a relative and an absolute spelling of the same file; otherwise they stay absolute (go test
   * names only base names, JUnit frames only packages: Java paths are given as `com/acme/FooTest.java`),
   * so a consumer should match them against tracked paths by suffix.
   */
  files: string[];
  /** Function / test names named in the failures (test names, their identifier parts, frames' function names). */
  symbols: string[];
  /** How many failing tests were recognised (0 when unknown). */
  failures: number;
}

export interface ExtractFailuresOptions {
  /** Upper bound on `text` (default 6000). */
  maxChars?: number;
  /** The directory the tests ran in: absolute paths under it are reported relative to it. */
  root?: string;
}

const DEFAULT_MAX_CHARS = 6000;

interface Detector {
  framework: string;
  applies: (log: string) => boolean;
  run: (ctx: Ctx) => DetectorResult;
}

const DETECTORS: Detector[] = [
  { framework: 'pytest', applies: (log) => log.includes('= FAILURES =') || log.includes('= ERRORS =') || log.includes('short test summary info'), run: detectPytest },
  { framework: 'unittest', applies: (log) => log.includes('\nFAIL: ') || log.includes('\nERROR: '), run: detectUnittest },
  { framework: 'jest', applies: (log) => log.includes('●'), run: detectJest },
  { framework: 'node:test', applies: (log) => log.includes('not ok '), run: detectNodeTap },
  { framework: 'node:test', applies: (log) => log.includes('✖'), run: detectNodeSpec },
  { framework: 'mocha', applies: (log) => log.includes(' failing'), run: detectMocha },
  { framework: 'go', applies: (log) => log.includes('--- FAIL') || log.includes('goroutine ') || log.includes('.go:'), run: detectGo },
  { framework: 'cargo', applies: (log) => log.includes(' stdout ----') || log.includes('panicked at') || log.includes('error['), run: detectCargo },
  { framework: 'junit', applies: (log) => log.includes('<<< ') || log.includes(' FAILED') || log.includes('Tests run:'), run: detectJunit },
];

export function extractFailures(log: string, opts: ExtractFailuresOptions = {}): FailureExtract {
  const maxChars = Math.max(200, Math.floor(opts.maxChars ?? DEFAULT_MAX_CHARS));
  const clean = stripAnsi(log);
  const lines = splitLines(clean);
  const ctx: Ctx = { lines };

  const found: Block[] = [];
  const summaries = new Map<string, number>();
  for (const d of DETECTORS) {
    if (!d.applies(clean)) continue;
    const r = d.run(ctx);
    found.push(...r.blocks);
    if (r.summaryCount !== undefined && r.blocks.length) summaries.set(d.framework, Math.max(summaries.get(d.framework) ?? 0, r.summaryCount));
  }

  const seen = new Set<string>();
  const blocks = found
    .map((b, i) => ({ b, i }))
    .sort((x, y) => x.b.start - y.b.start || x.i - y.i)
    .map(({ b }) => b)
    .filter((b) => (seen.has(b.key) ? false : (seen.add(b.key), true)));

  if (blocks.length === 0) {
    if (clean.trim() === '') return { text: '', framework: 'generic', files: [], symbols: [], failures: 0 };
    const windows = detectGeneric(ctx);
    const { files, symbols } = collectFilesAndSymbols(windows, lines, opts);
    return { text: renderGeneric(windows, lines, maxChars), framework: 'generic', files, symbols, failures: 0 };
  }

  const frameworks = dedupe(blocks.map((b) => b.framework));
  let failures = 0;
  for (const fw of frameworks) {
    const counted = blocks.filter((b) => b.framework === fw && b.counts).length;
    failures += Math.max(counted, summaries.get(fw) ?? 0);
  }
  const { files, symbols } = collectFilesAndSymbols(blocks, lines, opts);
  return { text: renderBlocks(blocks, maxChars), framework: frameworks.join(','), files, symbols, failures };
}
