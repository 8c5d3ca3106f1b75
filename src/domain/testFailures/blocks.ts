// What every detector produces (a Block: one failure, compile error or generic window) and the
// text helpers they share. Pure (no Node built-ins, no I/O), like the whole folder.
/** Lines are cut to this many characters before any parsing (keeps every regex cheap). */
const MAX_SCAN_LINE = 4000;

export interface Block {
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

export interface DetectorResult {
  blocks: Block[];
  /** Failing-test count from the runner's own summary, when it prints one. */
  summaryCount?: number;
}

export interface Ctx {
  lines: string[];
}

const KEY_RE =
  /assert|expect|receiv|error|exception|panic|fail|\bleft\b|\bright\b|actual|!==|===|==|\bwant\b|\bgot\b|\bbut was\b|^\s*at\s.*:\d+|\.(?:py|js|mjs|cjs|ts|tsx|go|rs|java|kt):\d+/i;
const defaultKey = (line: string): boolean => KEY_RE.test(line);

export function block(framework: string, fields: Partial<Block> & Pick<Block, 'start' | 'header'>): Block {
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

// CSI sequences (colours, cursor moves), OSC sequences (hyperlinks, titles), charset switches.
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]/g;

export function stripAnsi(text: string): string {
  return text.includes('\x1b') ? text.replace(ANSI_RE, '') : text;
}

export function splitLines(text: string): string[] {
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

export function indentOf(line: string): number {
  let i = 0;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++;
  return i;
}

export const isBlank = (line: string): boolean => line.trim() === '';

/** JS stack frames that are not the project's code: Node internals, node_modules, native. */
const JS_NOISE_FRAME_RE = /\(node:|^\s*(?:at\s+)?node:|node_modules[\\/]|\(<anonymous>\)|\(native\)|^\s*(?:at\s+)?async Promise\.all/;
export function isJsNoiseFrame(line: string): boolean {
  return JS_NOISE_FRAME_RE.test(line);
}
