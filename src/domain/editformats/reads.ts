// What a READ request's line asks for (issue 16, item 2): a whole file (`src/a.py`), a range of
// its lines (`src/a.py:120-220`), a definition and its body (`src/a.py#Foo.bar`), or a bounded
// search of the tracked files (`grep: def parse in src/**/*.py`). Requests travel as their
// canonical strings in the FilesRequest's `needFiles` (and the workflow's `requestedFiles`), so
// the workflow is unchanged; the prompt builder parses them again with `parseReadRequest`.

export type ReadRequest =
  | { kind: 'file'; path: string }
  | { kind: 'range'; path: string; start: number; end: number }
  | { kind: 'symbol'; path: string; symbol: string }
  | { kind: 'grep'; pattern: string; glob?: string };

/** A grep pattern longer than this is refused (the model is told to shorten it). */
export const MAX_GREP_PATTERN = 200;
/** A range is capped here (its lines are cut to the prompt's budget as well). */
export const MAX_RANGE_LINES = 2000;

const MAX_LINE = 1000;
const RANGE_RE = /^(.+?):L?(\d+)(?:\s*(?:-|–|\.\.)\s*L?(\d+))?$/;
const SYMBOL_RE = /^(.+?)#([A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*)$/;
const GREP_RE = /^grep:(.*?)(?:\s+in\s+(\S+))?$/i;

/**
 * One READ line → its request, or why it is malformed (`error`, for the model). Lines that are
 * none of the special forms are whole paths, as before.
 */
export function parseReadRequest(line: string): ReadRequest | { error: string } {
  const s = line.trim();
  // Longer lines are not matched against the forms below (each a linear scan on short input).
  if (s.length > MAX_LINE) return /^grep:/i.test(s) ? { error: `\`grep:\` pattern longer than ${MAX_GREP_PATTERN} characters: search for a shorter one` } : { kind: 'file', path: s };
  const grep = GREP_RE.exec(s);
  if (grep) {
    let pattern = grep[1].trim();
    const wrapped = /^(["'`/])(.+)\1$/.exec(pattern);
    if (wrapped) pattern = wrapped[2];
    if (!pattern) return { error: `\`${s}\`: no pattern: write \`grep: <regex>\` or \`grep: <regex> in <glob>\`` };
    if (pattern.length > MAX_GREP_PATTERN) return { error: `\`grep:\` pattern longer than ${MAX_GREP_PATTERN} characters: search for a shorter one` };
    return grep[2] ? { kind: 'grep', pattern, glob: grep[2].replace(/^\.\//, '') } : { kind: 'grep', pattern };
  }
  const range = RANGE_RE.exec(s);
  if (range) {
    const start = Number(range[2]);
    const end = range[3] === undefined ? start : Number(range[3]);
    if (start < 1 || end < start) return { error: `\`${s}\`: a line range is \`path:FIRST-LAST\` with 1 ≤ FIRST ≤ LAST` };
    if (end - start + 1 > MAX_RANGE_LINES) return { error: `\`${s}\`: at most ${MAX_RANGE_LINES} lines per range: ask for a smaller one` };
    return { kind: 'range', path: range[1], start, end };
  }
  const symbol = SYMBOL_RE.exec(s);
  if (symbol) return { kind: 'symbol', path: symbol[1], symbol: symbol[2].replace(/::/g, '.') };
  if (/#$/.test(s)) return { error: `\`${s}\`: no symbol after \`#\`: write \`path#Name\` or \`path#Class.method\`` };
  return { kind: 'file', path: s };
}

/** The request as its canonical line (what `needFiles` carries). */
export function renderReadRequest(r: ReadRequest): string {
  switch (r.kind) {
    case 'file':
      return r.path;
    case 'range':
      return `${r.path}:${r.start}-${r.end}`;
    case 'symbol':
      return `${r.path}#${r.symbol}`;
    case 'grep':
      return r.glob ? `grep: ${r.pattern} in ${r.glob}` : `grep: ${r.pattern}`;
  }
}
