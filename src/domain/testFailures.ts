// The failing part of a test run's output, for retry feedback and for the repository map's
// personalisation: the assertion / traceback blocks of the runners Weaver meets (pytest,
// unittest, jest, node:test, mocha, go test, cargo test, JUnit via Maven Surefire or Gradle),
// the files and functions they name, and a generic fallback for everything else.
//
// Pure (no Node built-ins, no I/O): bundled into Temporal workflow code. Line-oriented: the
// log is split once and every detector walks the lines with cheap prefix checks before any
// regular expression, no regex has nested quantifiers and lines are capped in length first, so
// a 1 MB log costs 10-30 ms.

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
/** Lines are cut to this many characters before any parsing (keeps every regex cheap). */
const MAX_SCAN_LINE = 4000;
/** Lines are cut to this many characters in `text`. */
const MAX_TEXT_LINE = 400;
/** Failures rendered whole (bounded); the rest are listed by name. */
const MAX_WHOLE_BLOCKS = 5;
const MAX_FILES = 40;
const MAX_SYMBOLS = 60;

// ---------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------

interface Block {
  framework: string;
  /** Dedup key (first occurrence wins: jest and node:test repeat failures in a summary). */
  key: string;
  /** The test's name as its runner writes it; '' for a non-test block (compile error, generic). */
  name: string;
  /** Line index where the block starts, for ordering. */
  start: number;
  /** First line shown for the block. */
  header: string;
  /** Body lines (noise frames already removed). */
  body: string[];
  /** Counts as a failing test. */
  counts: boolean;
  /** Files known from context (suite file, location, node id), listed before those in the body. */
  files: string[];
  /** Symbols known from context (frames a detector parsed itself). */
  symbols: string[];
  /** Lines worth keeping when the block must be shortened. */
  isKey: (line: string) => boolean;
}

interface DetectorResult {
  blocks: Block[];
  /** Failing-test count from the runner's own summary, when it prints one. */
  summaryCount?: number;
}

interface Ctx {
  lines: string[];
}

const KEY_RE =
  /assert|expect|receiv|error|exception|panic|fail|\bleft\b|\bright\b|actual|!==|===|==|\bwant\b|\bgot\b|\bbut was\b|^\s*at\s.*:\d+|\.(?:py|js|mjs|cjs|ts|tsx|go|rs|java|kt):\d+/i;
const defaultKey = (line: string): boolean => KEY_RE.test(line);

function block(framework: string, fields: Partial<Block> & Pick<Block, 'start' | 'header'>): Block {
  const name = fields.name ?? '';
  return {
    framework,
    key: fields.key ?? `${framework}\u0000${name || fields.header}`,
    name,
    start: fields.start,
    header: fields.header,
    body: fields.body ?? [],
    counts: fields.counts ?? name !== '',
    files: fields.files ?? [],
    symbols: fields.symbols ?? [],
    isKey: fields.isKey ?? defaultKey,
  };
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

// CSI sequences (colours, cursor moves), OSC sequences (hyperlinks, titles), charset switches.
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]/g;

export function stripAnsi(text: string): string {
  return text.includes('\x1b') ? text.replace(ANSI_RE, '') : text;
}

function splitLines(text: string): string[] {
  const raw = text.split('\n');
  for (let i = 0; i < raw.length; i++) {
    let line = raw[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    // A bare CR redraws the terminal line (progress bars): what stays visible is the last part.
    const cr = line.lastIndexOf('\r');
    if (cr >= 0) line = line.slice(cr + 1);
    if (line.length > MAX_SCAN_LINE) line = `${line.slice(0, MAX_SCAN_LINE)}…`;
    raw[i] = line;
  }
  return raw;
}

function indentOf(line: string): number {
  let i = 0;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++;
  return i;
}

const isBlank = (line: string): boolean => line.trim() === '';

/** JS stack frames that are not the project's code: Node internals, node_modules, native. */
const JS_NOISE_FRAME_RE = /\(node:|^\s*(?:at\s+)?node:|node_modules[\\/]|\(<anonymous>\)|\(native\)|^\s*(?:at\s+)?async Promise\.all/;
function isJsNoiseFrame(line: string): boolean {
  return JS_NOISE_FRAME_RE.test(line);
}

// ---------------------------------------------------------------------------
// pytest
// ---------------------------------------------------------------------------

const pytestKey = (line: string): boolean => /^E\s|^>\s|^\S+\.py:\d+:/.test(line) || /^\w*(?:Error|Exception)\b/.test(line);

function detectPytest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let inSection = false;
  let cur: Block | null = null;
  let capture: { label: string; lines: string[] } | null = null;
  let summaryCount: number | undefined;
  let summaryStart = -1;

  const flushCapture = (): void => {
    if (!cur || !capture) return;
    const shown = capture.lines.filter((l) => !isBlank(l)).slice(-8);
    const total = capture.lines.length;
    cur.body.push(`--- ${capture.label}${total > shown.length ? ` (${total} lines, last ${shown.length} shown)` : ''} ---`, ...shown);
    capture = null;
  };
  const close = (): void => {
    flushCapture();
    cur = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const c = line.charCodeAt(0);
    if (c === 61 /* = */) {
      const m = /^={3,} (.+?) ={3,}$/.exec(line);
      if (m) {
        close();
        const title = m[1];
        inSection = title === 'FAILURES' || title === 'ERRORS';
        if (title === 'short test summary info') summaryStart = i + 1;
        const count = pytestCount(title);
        if (count !== undefined) summaryCount = count;
        continue;
      }
    }
    if (!inSection) {
      // `-q` prints the totals without the `=` frame.
      if (c >= 48 && c <= 57 && / in [\d.]+s\b/.test(line)) {
        const count = pytestCount(line);
        if (count !== undefined) summaryCount = count;
      }
      continue;
    }
    if (c === 95 /* _ */) {
      const m = /^_{3,} (.+?) _{3,}$/.exec(line);
      if (m) {
        close();
        const title = m[1];
        let name = title;
        const files: string[] = [];
        const collecting = /^ERROR collecting (.+)$/.exec(title);
        if (collecting) {
          name = collecting[1];
          files.push(collecting[1]);
        } else {
          name = title.replace(/^ERROR at (?:setup|teardown) of /, '');
        }
        cur = block('pytest', { start: i, header: `__ ${title} __`, name, files, isKey: pytestKey });
        blocks.push(cur);
        continue;
      }
    }
    if (!cur) continue;
    const target: Block = cur;
    if (c === 45 /* - */) {
      const m = /^-{3,} (Captured .+?) -{3,}$/.exec(line);
      if (m) {
        flushCapture();
        capture = { label: m[1], lines: [] };
        continue;
      }
    }
    if (capture) capture.lines.push(line);
    else target.body.push(line);
  }
  close();

  // `FAILED path::Class::test - message`: the node id names the file.
  if (summaryStart >= 0) {
    for (let i = summaryStart; i < lines.length; i++) {
      if (/^(?:PASSED|SKIPPED|XFAIL|XPASS)\b/.test(lines[i])) continue;
      const m = /^(FAILED|ERROR) (\S+)(?: - (.*))?$/.exec(lines[i]);
      if (!m) break;
      const nodeId = m[2];
      const sep = nodeId.indexOf('::');
      const file = sep >= 0 ? nodeId.slice(0, sep) : nodeId;
      const name = sep >= 0 ? nodeId.slice(sep + 2).split('::').join('.') : nodeId;
      const owner = blocks.find((b) => b.name === name);
      if (owner) {
        if (!owner.files.includes(file)) owner.files.unshift(file);
      } else {
        blocks.push(block('pytest', { start: i, header: lines[i], name, files: [file], isKey: pytestKey }));
      }
    }
  }
  return { blocks, summaryCount };
}

function pytestCount(text: string): number | undefined {
  if (!/\b(?:failed|passed|errors?|skipped|deselected|no tests ran)\b/.test(text) || !/ in [\d.]+s\b/.test(text)) return undefined;
  const failed = /\b(\d+) failed\b/.exec(text);
  const errors = /\b(\d+) errors?\b/.exec(text);
  return (failed ? Number(failed[1]) : 0) + (errors ? Number(errors[1]) : 0);
}

// ---------------------------------------------------------------------------
// unittest (python -m unittest, Django's runner)
// ---------------------------------------------------------------------------

function detectUnittest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('FAILED (')) {
      const f = /failures=(\d+)/.exec(line);
      const e = /errors=(\d+)/.exec(line);
      summaryCount = (f ? Number(f[1]) : 0) + (e ? Number(e[1]) : 0);
      continue;
    }
    if (!(line.startsWith('FAIL: ') || line.startsWith('ERROR: ')) || i === 0 || !/^={20,}$/.test(lines[i - 1])) continue;
    const m = /^(?:FAIL|ERROR): (\S+)(?: \((.+?)\))?/.exec(line);
    if (!m) continue;
    // `test_add (test_calc.TestCalc.test_add)` (3.11+) or `test_add (test_calc.TestCalc)`.
    const qualified = m[2] ?? m[1];
    const parts = qualified.split('.');
    const method = m[1];
    const cls = parts.length >= 2 ? (parts[parts.length - 1] === method ? parts[parts.length - 2] : parts[parts.length - 1]) : '';
    const name = cls && /^[A-Z]/.test(cls) ? `${cls}.${method}` : method;
    const body: string[] = [];
    let j = i + 1;
    if (j < lines.length && /^-{20,}$/.test(lines[j])) j++;
    for (; j < lines.length && !/^(?:={20,}|-{20,})$/.test(lines[j]); j++) body.push(lines[j]);
    blocks.push(block('unittest', { start: i, header: line, name, body, isKey: pytestKey }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// jest
// ---------------------------------------------------------------------------

// ` FAIL ` / ` PASS ` are badges (inverse video) when coloured: a space on each side.
const JEST_SUITE_RE = /^ ?(?:PASS|FAIL) +(\S+)/;
const JEST_END_RE = /^ ?(?:PASS|FAIL) +\S|^(?:Test Suites:|Tests:|Snapshots:|Time:|Ran all test suites|Summary of all failing tests)/;
const JEST_CONSOLE_RE = /^\s*console\.(?:log|warn|error|info|debug|trace)$/;

function detectJest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let suite = '';
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const suiteLine = line.includes('PASS') || line.includes('FAIL') ? JEST_SUITE_RE.exec(line) : null;
    if (suiteLine) {
      suite = suiteLine[1];
      continue;
    }
    if (line.startsWith('Tests:')) {
      const m = /(\d+) failed/.exec(line);
      summaryCount = m ? Number(m[1]) : 0;
      continue;
    }
    if (!line.includes('●')) continue;
    const m = /^(\s*)● (.+)$/.exec(line);
    if (!m) continue;
    const indent = m[1].length;
    const title = m[2].trim();
    // `● Console` holds a suite's console output (printed when several suites run), not a failure.
    if (title === 'Console' || title.startsWith('Validation Warning')) continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j];
      if (JEST_END_RE.test(l) || JEST_CONSOLE_RE.test(l)) break;
      if (l.includes('●') && indentOf(l) <= indent && /^\s*● /.test(l)) break;
      if (/^\s*at\s/.test(l) && isJsNoiseFrame(l)) continue;
      body.push(l);
    }
    const suiteFailed = title === 'Test suite failed to run';
    const configError = title.startsWith('Validation Error');
    const name = configError ? '' : suiteFailed ? `${suite || 'test suite'} (failed to run)` : title;
    blocks.push(
      block('jest', { start: i, header: `● ${title}`, name, key: `jest\u0000${suite}\u0000${name || title}`, body, files: suite ? [suite] : [] }),
    );
    i = j - 1;
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// node:test (TAP reporter, spec reporter)
// ---------------------------------------------------------------------------

const TAP_DROP_KEYS_RE = /^(?:duration_ms|failureType|type|code):/;

function detectNodeTap({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('# fail ')) {
      summaryCount = Number(line.slice(7)) || 0;
      continue;
    }
    if (!line.includes('not ok ')) continue;
    const m = /^(\s*)not ok \d+(?: - (.*))?$/.exec(line);
    if (!m) continue;
    const rawName = m[2] ?? '';
    if (/#\s*(?:TODO|SKIP)\b/i.test(rawName)) continue;
    const name = rawName.replace(/\s+#.*$/, '').trim() || '(unnamed test)';
    // The YAML diagnostics: `---` … `...`, indented two more than the `not ok` line.
    const yaml: string[] = [];
    let j = i + 1;
    if (j < lines.length && /^\s*---\s*$/.test(lines[j])) {
      for (j++; j < lines.length && j < i + 2000; j++) {
        if (/^\s*\.\.\.\s*$/.test(lines[j])) {
          j++;
          break;
        }
        yaml.push(lines[j]);
      }
    }
    const yamlText = yaml.join('\n');
    // A suite whose children failed adds nothing but a count; a cancelled child repeats its parent.
    if (/failureType: '(?:subtestsFailed|cancelledByParent)'/.test(yamlText)) continue;
    const base = yaml.length ? Math.min(...yaml.filter((l) => !isBlank(l)).map(indentOf)) : 0;
    const body: string[] = [];
    const files: string[] = [];
    let location = '';
    for (const l of yaml) {
      const top = indentOf(l) === base ? l.slice(base) : null;
      if (top !== null && TAP_DROP_KEYS_RE.test(top)) continue;
      if (top !== null && top.startsWith('location:')) {
        location = top.slice('location:'.length).trim().replace(/^'|'$/g, '');
        const loc = /^(.*?):\d+(?::\d+)?$/.exec(location);
        if (loc) files.push(loc[1]);
      }
      if (indentOf(l) > base && isJsNoiseFrame(l)) continue;
      body.push(l);
    }
    blocks.push(block('node:test', { start: i, header: `not ok - ${name}`, name, key: `node:test\u0000${name}\u0000${location}`, body, files }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}

function detectNodeSpec({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  // Node 20+ repeats every failure after `✖ failing tests:`, with repo-relative locations: prefer those.
  let from = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('ℹ fail ')) summaryCount = Number(line.slice('ℹ fail '.length)) || 0;
    else if (line.includes('✖') && /^\s*✖ failing tests:\s*$/.test(line)) from = i + 1;
  }
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    if (!line.includes('✖')) continue;
    const m = /^(\s*)✖ (.+?)(?: \([\d.]+m?s\))?\s*$/.exec(line);
    if (!m || m[2] === 'failing tests:') continue;
    const indent = m[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j];
      if (!isBlank(l) && indentOf(l) <= indent) break;
      if (/^\s*at\s/.test(l) && isJsNoiseFrame(l)) continue;
      if (/^\s*generatedMessage:/.test(l)) continue;
      body.push(l);
    }
    while (body.length && isBlank(body[body.length - 1])) body.pop();
    if (body.length === 0) continue; // a suite line: its failures are listed on their own
    const files: string[] = [];
    const loc = i > 0 ? /^\s*test at (.+?):\d+(?::\d+)?\s*$/.exec(lines[i - 1]) : null;
    if (loc) files.push(loc[1]);
    blocks.push(block('node:test', { start: i, header: `✖ ${m[2]}`, name: m[2], key: `node:test-spec\u0000${m[2]}\u0000${loc?.[1] ?? ''}`, body, files }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// mocha
// ---------------------------------------------------------------------------

const MOCHA_END_RE = /^(?:npm (?:ERR!|error)|error Command failed|make(?:\[\d+\])?: \*\*\*|Test Suites:|=+ )/;

function detectMocha({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let from = -1;
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(\d+) failing\s*$/.exec(lines[i]);
    if (m) {
      from = i + 1;
      summaryCount = Number(m[1]);
      break;
    }
  }
  if (from < 0) return { blocks };
  let cur: Block | null = null;
  let titleOpen = false;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    if (MOCHA_END_RE.test(line)) break;
    const h = /^\s{1,4}(\d+)\) (.+)$/.exec(line);
    if (h) {
      // `  1) suite`, then the nested titles on their own lines, the last ending in `:`.
      const title = h[2].trim();
      cur = block('mocha', { start: i, header: `${h[1]}) ${title}`, name: title.replace(/:$/, ''), key: `mocha\u0000${h[1]}` });
      blocks.push(cur);
      titleOpen = !title.endsWith(':');
      continue;
    }
    if (!cur) continue;
    if (titleOpen && !isBlank(line)) {
      const t = line.trim();
      cur.name = `${cur.name} ${t.replace(/:$/, '')}`;
      cur.header = `${cur.header} ${t}`;
      if (t.endsWith(':')) titleOpen = false;
      continue;
    }
    titleOpen = false;
    if (/^\s*at\s/.test(line) && isJsNoiseFrame(line)) continue;
    cur.body.push(line);
  }
  for (const b of blocks) while (b.body.length && isBlank(b.body[b.body.length - 1])) b.body.pop();
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// go test
// ---------------------------------------------------------------------------

interface GoFrame {
  func: string;
  location: string;
}

function isGoLibrary(path: string, goroot: string): boolean {
  return (goroot !== '' && path.startsWith(goroot)) || /\/pkg\/mod\/|\/src\/(?:runtime|testing|reflect)\/\w+\.go$/.test(path);
}

/** `example.com/pkg.(*T).Method.func1(0x…)` -> `Method`. */
function goFuncName(func: string): string {
  const base = func.replace(/\(.*$/, '').split('/').pop() ?? '';
  const parts = base.split('.').filter((p) => /^[A-Za-z_]\w*$/.test(p) && !/^func\d+$/.test(p));
  return parts.length > 1 ? parts[parts.length - 1] : '';
}

function detectGo({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  const failBlocks: (Block & { end: number })[] = [];
  // `go test -v` prints t.Error output under `=== RUN`, before the `--- FAIL` line.
  const outputs = new Map<string, string[]>();
  let current = '';
  let collectIndent = -1;

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const t = line.trimStart();
    if (t.startsWith('=== ')) {
      const m = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)/.exec(t);
      if (m) current = m[1];
      collectIndent = -1;
      continue;
    }
    if (t.startsWith('--- FAIL: ')) {
      collectIndent = -1;
      const m = /^--- FAIL: (\S+)(?: \(([\d.]+s)\))?/.exec(t);
      if (!m) continue;
      const indent = indentOf(line);
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j];
        const lt = l.trimStart();
        if (isBlank(l) || indentOf(l) <= indent || lt.startsWith('--- ') || lt.startsWith('=== ')) break;
        body.push(l);
      }
      const b = { ...block('go', { start: i, header: t, name: m[1], key: `go\u0000${m[1]}`, body }), end: j };
      failBlocks.push(b);
      blocks.push(b);
      i = j - 1;
      continue;
    }
    if (current && collectIndent >= 0 && indentOf(line) > collectIndent && !isBlank(line)) {
      outputs.get(current)?.push(line);
      continue;
    }
    collectIndent = -1;
    if (current && /^\s+\S+\.go:\d+: /.test(line)) {
      const list = outputs.get(current) ?? [];
      list.push(line);
      outputs.set(current, list);
      collectIndent = indentOf(line);
      continue;
    }

    // panic: … goroutine N [running]: frames (function line, then `\tpath:line +0x…`).
    if (line.startsWith('panic: ')) {
      let j = i + 1;
      const head = [line];
      while (j < lines.length && j < i + 10 && !/^goroutine \d+ \[/.test(lines[j])) head.push(lines[j++]);
      if (j >= lines.length || !/^goroutine \d+ \[/.test(lines[j])) continue; // not a Go panic
      const goroutine = lines[j++];
      const frames: GoFrame[] = [];
      for (; j + 1 < lines.length; j += 2) {
        const fn = lines[j];
        const loc = lines[j + 1];
        if (isBlank(fn) || !/^\s+\S+\.go:\d+/.test(loc)) break;
        frames.push({ func: fn.trim(), location: loc.trim() });
      }
      // Skip the other goroutines' traces, up to the package verdict.
      let end = j;
      while (end < lines.length && end < j + 5000 && !/^(?:FAIL|ok)\b|^exit status \d+/.test(lines[end])) end++;
      let goroot = '';
      for (const f of frames) {
        const g = /^(.*\/src\/)(?:runtime|testing)\/\w+\.go:/.exec(f.location);
        if (g) goroot = g[1];
      }
      const kept = frames.filter((f) => !isGoLibrary(f.location.replace(/ \+0x[0-9a-f]+$/, ''), goroot) && !f.func.startsWith('created by testing.')).slice(0, 10);
      const body = [...head.slice(1), goroutine, ...kept.flatMap((f) => [f.func, `\t${f.location}`])];
      if (kept.length < frames.length) body.push(`\t… ${frames.length - kept.length} runtime frames omitted`);
      const symbols = kept.map((f) => goFuncName(f.func)).filter(Boolean);
      const prev = failBlocks[failBlocks.length - 1];
      if (prev && prev.end === i && prev.body.length === 0) {
        prev.body.push(line, ...body);
        prev.symbols.push(...symbols);
      } else {
        const name = current || '';
        blocks.push(block('go', { start: i, header: line, name, key: `go\u0000panic\u0000${name}\u0000${i}`, body, symbols, counts: name !== '' && !failBlocks.some((b) => b.name === name) }));
      }
      i = end - 1;
      continue;
    }

    // Build (or vet) failure: `# pkg` then `file.go:L:C: message` lines.
    if (line.startsWith('# ') && i + 1 < lines.length && /^\S+\.go:\d+(?::\d+)?: /.test(lines[i + 1])) {
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && (/^\S+\.go:\d+(?::\d+)?: /.test(lines[j]) || /^\s+\S/.test(lines[j])); j++) body.push(lines[j]);
      blocks.push(block('go', { start: i, header: `build failed: ${line.slice(2).trim()}`, key: `go\u0000build\u0000${line}`, body, counts: false }));
      i = j - 1;
    }
  }

  // Verbose output goes under the test; a parent whose only failure is a subtest is not shown.
  const names = new Set(failBlocks.map((b) => b.name));
  const result: Block[] = [];
  for (const b of blocks) {
    if (b.framework === 'go' && names.has(b.name) && b.body.length === 0) {
      const out = outputs.get(b.name);
      if (out?.length) b.body.push(...out);
      else if ([...names].some((n) => n.startsWith(`${b.name}/`))) continue;
    }
    result.push(b);
  }
  return { blocks: result };
}

// ---------------------------------------------------------------------------
// cargo test
// ---------------------------------------------------------------------------

const cargoKey = (line: string): boolean => /panicked|assertion|left|right|^error|-->/.test(line);

function isRustLibrary(path: string): boolean {
  return /^\/rustc\/|[\\/]\.cargo[\\/]registry[\\/]|[\\/]\.rustup[\\/]|[\\/]library[\\/](?:std|core|alloc|test)[\\/]/.test(path);
}

/** Trims a `stack backtrace:` to the project's frames (function line + `at path:L:C` line). */
function trimRustBody(body: string[], symbols: string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < body.length; k++) {
    const l = body[k];
    if (/^note: .*(?:RUST_BACKTRACE|backtrace)/.test(l)) continue;
    if (l.trim() !== 'stack backtrace:') {
      out.push(l);
      continue;
    }
    const kept: string[] = [];
    let omitted = 0;
    k++;
    for (; k < body.length; k++) {
      const fm = /^\s*\d+: (.+)$/.exec(body[k]);
      if (!fm) break;
      const at = k + 1 < body.length ? /^\s+at (.+?):\d+(?::\d+)?\s*$/.exec(body[k + 1]) : null;
      if (at) k++;
      if (at && !isRustLibrary(at[1])) {
        kept.push(body[k - 1], body[k]);
        const leaf = fm[1].split('::').filter((p) => /^[A-Za-z_]\w*$/.test(p)).pop();
        if (leaf) symbols.push(leaf);
      } else omitted++;
    }
    k--;
    if (kept.length) out.push('stack backtrace (project frames):', ...kept);
    if (omitted && kept.length) out.push(`   … ${omitted} library frames omitted`);
  }
  return out;
}

function detectCargo({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  const listed: { name: string; at: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('test result: ')) {
      const m = /(\d+) failed/.exec(line);
      if (m) summaryCount = (summaryCount ?? 0) + Number(m[1]);
      continue;
    }
    if (line === 'failures:') {
      // Either the header before the `---- … stdout ----` sections or the list of names after them.
      for (let j = i + 1; j < lines.length; j++) {
        const n = /^ {4}(\S.*)$/.exec(lines[j]);
        if (!n) {
          if (isBlank(lines[j]) && listed.length === 0 && j === i + 1) continue;
          break;
        }
        listed.push({ name: n[1].trim(), at: j });
      }
      continue;
    }
    if (line.startsWith('---- ') && line.endsWith(' ----')) {
      const m = /^---- (.+?) (?:stdout|stderr) ----$/.exec(line);
      if (!m) continue;
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j];
        if ((l.startsWith('---- ') && l.endsWith(' ----')) || l === 'failures:' || l.startsWith('test result: ')) break;
        raw.push(l);
      }
      const symbols: string[] = [];
      const body = trimRustBody(raw, symbols);
      while (body.length && isBlank(body[body.length - 1])) body.pop();
      while (body.length && isBlank(body[0])) body.shift();
      blocks.push(block('cargo', { start: i, header: line, name: m[1], key: `cargo\u0000${m[1]}`, body, symbols, isKey: cargoKey }));
      i = j - 1;
      continue;
    }
    // rustc errors: `error[E0308]: …` then ` --> src/lib.rs:3:5` and the snippet, up to a blank line.
    if (line.startsWith('error') && /^error(?:\[E\d+\])?: /.test(line) && i + 1 < lines.length && /^\s*--> /.test(lines[i + 1])) {
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && j < i + 60; j++) body.push(lines[j]);
      blocks.push(block('cargo', { start: i, header: line, key: `cargo\u0000${line}\u0000${lines[i + 1]}`, body, counts: false, isKey: cargoKey }));
      i = j - 1;
    }
  }
  // With --nocapture there are no sections: the panics are inline.
  if (!blocks.some((b) => b.counts)) {
    for (let i = 0; i < lines.length; i++) {
      const m = /^thread '([^']+)'(?: \(\d+\))? panicked at /.exec(lines[i]);
      if (!m || m[1] === 'main') continue;
      const raw = [lines[i]];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && !lines[j].startsWith('test ') && !lines[j].startsWith('thread '); j++) raw.push(lines[j]);
      const symbols: string[] = [];
      blocks.push(block('cargo', { start: i, header: `---- ${m[1]} ----`, name: m[1], key: `cargo\u0000${m[1]}`, body: trimRustBody(raw, symbols), symbols, isKey: cargoKey }));
      i = j - 1;
    }
  }
  for (const { name, at } of listed) {
    if (!blocks.some((b) => b.name === name)) blocks.push(block('cargo', { start: at, header: `failed: ${name}`, name, key: `cargo\u0000${name}`, isKey: cargoKey }));
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// JUnit: Maven Surefire, Gradle
// ---------------------------------------------------------------------------

const JAVA_LIBRARY_RE =
  /^(?:java|javax|jdk|sun|com\.sun|org\.junit|junit|org\.opentest4j|org\.apache\.maven|org\.gradle|worker\.org\.gradle|org\.assertj|org\.hamcrest|org\.mockito|kotlin|kotlinx|scala|org\.testng|org\.spockframework|org\.codehaus|net\.bytebuddy|org\.springframework\.test)\./;
const JAVA_FRAME_RE = /^\s*at\s+(?:[\w.-]*\/\/?)?([\w$.]+)\.([\w$<>-]+)\((.*)\)\s*$/;

function isJavaLibraryFrame(line: string): boolean {
  const m = JAVA_FRAME_RE.exec(line);
  return m !== null && JAVA_LIBRARY_RE.test(m[1]);
}

/** Exception lines and the project's frames; library frames and `... N more` dropped. */
function javaBody(raw: string[]): string[] {
  const out: string[] = [];
  let omitted = 0;
  let frames = 0;
  let pad = '\t';
  for (const l of raw) {
    if (/^\s*\.\.\. \d+ more\s*$/.test(l)) continue;
    if (JAVA_FRAME_RE.test(l)) {
      pad = /^\s*/.exec(l)?.[0] || '\t';
      if (isJavaLibraryFrame(l) || frames >= 8) {
        omitted++;
        continue;
      }
      frames++;
    }
    out.push(l);
  }
  if (omitted) out.push(`${pad}… ${omitted} library frames omitted`);
  return out;
}

function javaName(raw: string, currentClass: string): string {
  const paren = /^([\w$]+)\(([\w$.]+)\)$/.exec(raw); // testAdd(com.acme.FooTest)
  if (paren) return `${paren[2].split('.').pop()}.${paren[1]}`;
  const parts = raw.replace(/\(\)$/, '').split('.');
  if (parts.length >= 2 && /^[A-Z]/.test(parts[parts.length - 2])) return `${parts[parts.length - 2]}.${parts[parts.length - 1]}`;
  const cls = currentClass.split('.').pop();
  return cls ? `${cls}.${raw}` : raw;
}

function detectJunit({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let currentClass = '';
  let summaryCount: number | undefined;
  let gradleCount: number | undefined;
  const results: { name: string; line: string; at: number }[] = [];
  let inResults = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const plain = line.replace(/^\[(?:ERROR|INFO|WARNING)\]\s?/, '');
    if (plain.startsWith('Running ')) {
      currentClass = plain.slice('Running '.length).trim();
      continue;
    }
    if (plain.startsWith('Tests run:')) {
      const cls = /<<< (?:FAILURE|ERROR)!.*?\bin ([\w$.]+)/.exec(plain);
      if (cls) currentClass = cls[1];
      else if (!plain.includes('Time elapsed')) {
        const m = /Failures: (\d+), Errors: (\d+)/.exec(plain);
        if (m) summaryCount = Number(m[1]) + Number(m[2]);
      }
      continue;
    }
    if (line.includes('<<<')) {
      const m = /^(.+?)\s+(?:--\s+)?Time elapsed: [\d.,]+\s*s(?:ec)?\s+<<< (?:FAILURE|ERROR)!\s*$/.exec(plain);
      if (!m) continue;
      const name = javaName(m[1].trim(), currentClass);
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && !/^\[(?:INFO|ERROR|WARNING)\]/.test(lines[j]) && !lines[j].startsWith('Tests run:'); j++) raw.push(lines[j]);
      blocks.push(block('junit', { start: i, header: plain.trim(), name, key: `junit\u0000${name}`, body: javaBody(raw) }));
      i = j - 1;
      continue;
    }
    // Surefire's `Results:` section: `[ERROR]   FooTest.testAdd:12 expected:<5> but was:<4>`.
    if (/^\[ERROR\] (?:Failures|Errors):\s*$/.test(line)) {
      inResults = true;
      continue;
    }
    if (inResults) {
      const r = /^\[ERROR\]\s{2,}([\w$.]+?)(?::\d+)?\s+(.*)$/.exec(line);
      if (r && !/^Run \d+:/.test(r[2])) {
        results.push({ name: r[1], line: line.replace(/^\[ERROR\]\s+/, ''), at: i });
        continue;
      }
      if (!/^\[ERROR\]\s{2,}/.test(line)) inResults = false;
    }
    // Gradle: `FooTest > testAdd() FAILED`, then the indented exception.
    if (line.endsWith(' FAILED') && !line.startsWith('>') && line.includes(' > ')) {
      const g = /^(\S.*?) > (.+?) FAILED$/.exec(line);
      if (!g) continue;
      const name = `${g[1].split('.').pop()}.${g[2].replace(/\(\)$/, '')}`;
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length && /^\s+\S/.test(lines[j]); j++) raw.push(lines[j]);
      blocks.push(block('junit', { start: i, header: line, name, key: `junit\u0000${name}`, body: javaBody(raw) }));
      i = j - 1;
      continue;
    }
    const gc = /^(\d+) tests? completed, (\d+) failed/.exec(line);
    if (gc) gradleCount = (gradleCount ?? 0) + Number(gc[2]);
  }
  for (const r of results) {
    if (!blocks.some((b) => b.name === r.name)) blocks.push(block('junit', { start: r.at, header: r.line, name: r.name, key: `junit\u0000${r.name}` }));
  }
  return { blocks, summaryCount: summaryCount ?? gradleCount };
}

// ---------------------------------------------------------------------------
// Generic fallback
// ---------------------------------------------------------------------------

const GENERIC_RE = /error|fail|assert|exception|traceback|panic|✖|✗|✘/i;
const GENERIC_ZERO_RE = /\b0 (?:failed|failures?|errors?|failing)\b|\b(?:failures?|errors?|failed):? 0\b|\bno errors?\b/i;

function detectGeneric({ lines }: Ctx): Block[] {
  const windows: [number, number][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!GENERIC_RE.test(line) || GENERIC_ZERO_RE.test(line)) continue;
    let end = Math.min(lines.length, i + 4);
    if (/Traceback \(most recent call last\)/.test(line)) {
      // Through the frames to the exception line.
      let j = i + 1;
      while (j < lines.length && j < i + 300 && (/^\s/.test(lines[j]) || isBlank(lines[j]))) j++;
      end = Math.min(lines.length, j + 2);
    }
    const start = Math.max(0, i - 2);
    const last = windows[windows.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else windows.push([start, end]);
  }
  return windows.map(([s, e]) => {
    const chunk = lines.slice(s, e);
    return block('generic', { start: s, header: chunk[0], body: chunk.slice(1), key: `generic\u0000${s}`, counts: false });
  });
}

// ---------------------------------------------------------------------------
// Files and symbols
// ---------------------------------------------------------------------------

const SOURCE_EXT =
  'py|pyi|js|mjs|cjs|jsx|ts|tsx|mts|cts|go|rs|java|kt|kts|scala|groovy|rb|c|cc|cpp|cxx|h|hh|hpp|cs|fs|php|swift|m|mm|ex|exs|erl|hs|ml|lua|pl|sh|vue|svelte|dart|zig|clj|jl|r|R';
const FILE_TOKEN_RE = new RegExp(`^(?:file://)?((?:[A-Za-z]:)?[^\\s:]*?\\.(?:${SOURCE_EXT})):(\\d+)(?::\\d+)*:?$`);
const FILE_NAME_RE = new RegExp(`^[^\\s]*[\\\\/][^\\s]*\\.(?:${SOURCE_EXT})$`);
const TOKEN_SPLIT_RE = /[\s()'"`[\]<>{},;]+/;
const PY_FILE_RE = /File "([^"]+)", line \d+(?:, in ([\w<>.]+))?/;
const JS_FRAME_RE = /^\s*(?:at\s+)?(?:async\s+)?(?:new\s+)?([^\s(][^(]*?)\s+\((?:file:\/\/)?[^()]+?:\d+:\d+\)\s*\{?\s*$/;
const LIBRARY_PATH_RE =
  /(?:^|[\\/])node_modules[\\/]|site-packages[\\/]|dist-packages[\\/]|[\\/]lib[\\/]python\d[\d.]*[\\/]|^<|^\/usr\/(?:local\/)?(?:lib|share|include)\/|[\\/]_pytest[\\/]|[\\/]pluggy[\\/]|[\\/]\.m2[\\/]|[\\/]\.gradle[\\/]|^node:|^internal[\\/]/;
const NOISE_SYMBOLS = new Set([
  '<anonymous>', '<module>', '<lambda>', 'tests', 'Object', 'Context', 'TestContext', 'Test', 'Suite', 'it', 'test', 'describe', 'run', 'runTest',
  'call', 'apply', 'processTicksAndRejections', 'runInAsyncScope', 'invoke', 'invoke0', 'callFn', 'tryCatch', 'Promise', 'then',
]);

interface Found {
  files: string[];
  symbols: string[];
}

function addSymbol(found: Found, symbol: string): void {
  const s = symbol.trim();
  if (s.length < 2 || s.length > 160 || NOISE_SYMBOLS.has(s) || s.includes('<anonymous>')) return;
  if (/^to[A-Z]\w*$/.test(s)) return; // jest reports the matcher as the top frame's function
  found.symbols.push(s);
}

/** A test's name, then its identifier-like parts (`slug › joins words` -> `slug`; `tests::adds_two` -> `tests`, `adds_two`). */
function addTestName(found: Found, name: string): void {
  // A collection error is named by its file, which is no symbol.
  if (!name || FILE_NAME_RE.test(name)) return;
  // Parametrised ids (`test_x[1-2]`, `TestX/case_3`'s parts stay) collapse to the function.
  name = name.replace(/\[[^\]]*\]$/, '');
  addSymbol(found, name);
  for (const part of name.split(/\s*(?:›|::|\.|\/|\s>\s)\s*/)) {
    const id = part.replace(/\[.*\]$/, '').replace(/\(\)$/, '');
    if (id !== name && /^[A-Za-z_$][\w$]*$/.test(id)) addSymbol(found, id);
  }
}

function scanLine(full: string, found: Found, framework: string): void {
  const line = full.length > 1000 ? full.slice(0, 1000) : full;
  const java = JAVA_FRAME_RE.exec(line);
  if (java) {
    if (JAVA_LIBRARY_RE.test(java[1])) return;
    const file = /^([\w$]+\.(?:java|kt|scala|groovy|clj)):\d+$/.exec(java[3]);
    if (file) {
      const pkg = java[1].split('.').filter((p) => /^[a-z_]/.test(p));
      found.files.push([...pkg, file[1]].join('/'));
    }
    if (!/^(?:<init>|<clinit>|lambda\$.*)$/.test(java[2])) addSymbol(found, java[2]);
    return;
  }
  const py = PY_FILE_RE.exec(line);
  if (py) {
    if (!LIBRARY_PATH_RE.test(py[1])) {
      found.files.push(py[1]);
      if (py[2]) addSymbol(found, py[2]);
    }
    return;
  }
  if (framework !== 'go' && framework !== 'cargo' && line.includes('(')) {
    const js = JS_FRAME_RE.exec(line);
    if (js && !isJsNoiseFrame(line)) {
      const leaf = js[1].replace(/^(?:Object|Context|TestContext|Test|Suite)\./, '').split('.').pop() ?? '';
      addSymbol(found, leaf);
    }
  }
  for (const token of line.split(TOKEN_SPLIT_RE)) {
    if (token.length < 4 || !token.includes('.') || !token.includes(':')) continue;
    const m = FILE_TOKEN_RE.exec(token);
    if (m) found.files.push(m[1]);
  }
}

/** Pytest's long tracebacks: `def f(...)` lines belong to the frame whose `path.py:NN:` line follows. */
function scanPytestDefs(b: Block, found: Found): void {
  let pending: string[] = [];
  for (const l of b.body) {
    const d = /^\s*(?:async\s+)?def (\w+)\(/.exec(l);
    if (d) pending.push(d[1]);
    const loc = /^(\S+\.py):\d+:(?: in (\w+))?/.exec(l);
    if (loc) {
      if (!LIBRARY_PATH_RE.test(loc[1])) {
        for (const p of pending) addSymbol(found, p);
        if (loc[2]) addSymbol(found, loc[2]);
      }
      pending = [];
    }
  }
}

function normalisePath(path: string, roots: string[]): string {
  let p = path.replace(/^file:\/\//, '');
  if (/^[A-Za-z]:\\|\\/.test(p)) p = p.replace(/\\/g, '/');
  for (const root of roots) {
    if (root && p.startsWith(`${root}/`)) {
      p = p.slice(root.length + 1);
      break;
    }
  }
  while (p.startsWith('./')) p = p.slice(2);
  return p;
}

function collectFilesAndSymbols(blocks: Block[], lines: string[], opts: ExtractFailuresOptions): Found {
  const raw: Found = { files: [], symbols: [] };
  for (const b of blocks) {
    const found: Found = { files: [...b.files], symbols: [] };
    addTestName(found, b.name);
    for (const s of b.symbols) addSymbol(found, s);
    if (b.framework === 'pytest') scanPytestDefs(b, found);
    scanLine(b.header, found, b.framework);
    for (const l of b.body) scanLine(l, found, b.framework);
    raw.files.push(...found.files);
    raw.symbols.push(...found.symbols);
  }

  // Roots: the caller's, pytest's `rootdir:`, and any prefix that turns an absolute path into a
  // relative one also seen (node:test's spec reporter prints both spellings).
  const roots: string[] = [];
  if (opts.root) roots.push(opts.root.replace(/[\\/]+$/, ''));
  for (let i = 0; i < Math.min(lines.length, 200); i++) {
    if (lines[i].startsWith('rootdir: ')) roots.push(lines[i].slice('rootdir: '.length).split(',')[0].trim().replace(/\/+$/, ''));
  }
  const libraryFree = raw.files.filter((f) => !LIBRARY_PATH_RE.test(f.replace(/^file:\/\//, '')) && !isRustLibrary(f) && !/\/src\/(?:runtime|testing|reflect)\/\w+\.go$/.test(f));
  const absolute = libraryFree.filter((f) => f.startsWith('/')).slice(0, 100);
  const relative = libraryFree.filter((f) => !f.startsWith('/') && f.includes('/')).map((f) => f.replace(/^\.\//, '')).slice(0, 100);
  for (const a of absolute) {
    for (const r of relative) {
      if (a.endsWith(`/${r}`)) {
        const root = a.slice(0, a.length - r.length - 1);
        if (root && !roots.includes(root)) roots.push(root);
      }
    }
  }

  const files = dedupe(libraryFree.map((f) => normalisePath(f, roots)).filter((f) => f !== '')).slice(0, MAX_FILES);
  const symbols = dedupe(raw.symbols).slice(0, MAX_SYMBOLS);
  return { files, symbols };
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

function cutLine(line: string): string {
  return line.length > MAX_TEXT_LINE ? `${line.slice(0, MAX_TEXT_LINE)}…` : line;
}

/** Body lines dedented, blank runs collapsed, long lines cut. */
function tidyBody(body: string[]): string[] {
  const nonBlank = body.filter((l) => !isBlank(l));
  const min = nonBlank.length ? Math.min(...nonBlank.slice(0, 500).map(indentOf)) : 0;
  const out: string[] = [];
  for (const l of body) {
    if (isBlank(l)) {
      if (out.length && out[out.length - 1] !== '') out.push('');
      continue;
    }
    out.push(cutLine(`  ${l.slice(Math.min(min, indentOf(l))).trimEnd()}`));
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out;
}

/** The block within `cap` characters: whole if it fits, else its key lines (with context), else cut. */
function renderBlock(b: Block, cap: number): string {
  const header = cutLine(b.header.trim());
  const body = tidyBody(b.body);
  const whole = [header, ...body].join('\n');
  if (whole.length <= cap) return whole;

  const keys: number[] = [];
  for (let i = 0; i < body.length; i++) if (body[i] !== '' && b.isKey(body[i].trimStart())) keys.push(i);
  const pick = (context: number): string => {
    const keep = new Set<number>();
    for (let i = 0; i < Math.min(2, body.length); i++) keep.add(i);
    for (const k of keys) for (let d = -context; d <= context; d++) if (k + d >= 0 && k + d < body.length) keep.add(k + d);
    const out = [header];
    let last = -1;
    for (let i = 0; i < body.length; i++) {
      if (!keep.has(i)) continue;
      if (i > last + 1) out.push('  …');
      out.push(body[i]);
      last = i;
    }
    if (last < body.length - 1) out.push('  …');
    return out.join('\n');
  };
  for (const context of [2, 1, 0]) {
    const text = pick(context);
    if (text.length <= cap) return text;
  }
  const text = pick(0);
  return `${text.slice(0, Math.max(0, cap - 16)).replace(/\n[^\n]*$/, '')}\n  … (truncated)`;
}

function renderBlocks(blocks: Block[], maxChars: number): string {
  const SEP = '\n\n';
  const parts: string[] = [];
  let used = 0;
  let shown = 0;
  for (; shown < blocks.length && shown < MAX_WHOLE_BLOCKS; shown++) {
    const left = blocks.length - shown - 1;
    const reserve = left > 0 ? Math.min(Math.floor(maxChars / 5), 80 + left * 40) : 0;
    const room = maxChars - used - reserve - (parts.length ? SEP.length : 0);
    if (room < 160) break;
    const cap = parts.length === 0 ? room : Math.min(room, Math.max(600, Math.floor(maxChars / 3)));
    const text = renderBlock(blocks[shown], cap);
    parts.push(text);
    used += text.length + (parts.length > 1 ? SEP.length : 0);
  }
  const rest = blocks.slice(shown);
  if (rest.length) {
    const tests = rest.filter((b) => b.counts).length;
    const others = rest.length - tests;
    const what = [tests ? `${tests} more failing test${tests === 1 ? '' : 's'}` : '', others ? `${others} more error block${others === 1 ? '' : 's'}` : '']
      .filter(Boolean)
      .join(' and ');
    const lines = [`… ${what} omitted:`];
    let size = used + SEP.length + lines[0].length;
    let listed = 0;
    for (const b of rest) {
      const entry = `- ${cutLine(b.name || b.header.trim()).slice(0, 160)}`;
      if (size + entry.length + 40 > maxChars) break;
      lines.push(entry);
      size += entry.length + 1;
      listed++;
    }
    if (listed < rest.length) lines.push(`- (${rest.length - listed} more not listed)`);
    parts.push(lines.join('\n'));
  }
  const text = parts.join(SEP);
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

/** Generic windows: the last ones are kept first (the error that ended the run is usually near the end). */
function renderGeneric(windows: Block[], lines: string[], maxChars: number): string {
  if (windows.length === 0) {
    const tail: string[] = [];
    let size = 0;
    for (let i = lines.length - 1; i >= 0; i--) {
      const l = cutLine(lines[i].trimEnd());
      if (size + l.length + 1 > maxChars) break;
      tail.unshift(l);
      size += l.length + 1;
    }
    while (tail.length && tail[0] === '') tail.shift();
    return tail.join('\n').trim() === '' ? '' : tail.join('\n');
  }
  const rendered = windows.map((w) => [w.header, ...w.body].map((l) => cutLine(l.trimEnd())).join('\n'));
  const chosen: string[] = [];
  let size = 0;
  let first = rendered.length;
  for (let i = rendered.length - 1; i >= 0; i--) {
    const r = rendered[i];
    const budget = maxChars - size - (chosen.length ? 5 : 0) - (i > 0 ? 60 : 0);
    if (r.length > budget) {
      if (chosen.length === 0) {
        // One window larger than the budget: its last lines, whole.
        const ls = r.split('\n');
        const kept: string[] = [];
        let n = 0;
        for (let k = ls.length - 1; k >= 0 && n + ls[k].length + 1 <= budget - 40; k--) {
          kept.unshift(ls[k]);
          n += ls[k].length + 1;
        }
        chosen.unshift(`… ${ls.length - kept.length} earlier lines omitted\n${kept.join('\n')}`);
        first = i;
      }
      break;
    }
    chosen.unshift(r);
    size += r.length + 5;
    first = i;
  }
  const head = first > 0 ? [`… ${first} earlier matching section${first === 1 ? '' : 's'} omitted`] : [];
  const text = [...head, ...chosen].join('\n…\n');
  return text.length > maxChars ? text.slice(text.length - maxChars) : text;
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

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
