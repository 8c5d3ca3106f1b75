// Applies one search/replace edit to a file's text, line by line, tolerantly but never by
// guessing. Levels, in order; each must match exactly ONE place (more than one → ambiguous,
// refused with the candidates' line numbers; none → the next level):
//   1. exact;
//   2. ignoring trailing whitespace;
//   3. a uniform indentation shift (every non-blank search line off by the same leading
//      whitespace; the replacement is re-indented by the same delta);
//   4. line endings (CRLF/LF) and Unicode look-alikes (curly quotes, dashes, NBSP) normalised,
//      combined with 2 and 3.
// The result keeps the file's line endings and a missing final newline missing; a line the
// replacement copies unchanged from the search keeps the file's bytes, every other line is
// written as the replacement has it (blank and whitespace-only lines always are: at a tolerant
// level they match each other, so the file's would silently stand in for the model's). When
// nothing matches, it finds the closest lines of the file and where the replacement's lines
// already are, if they are (both for the model's feedback: a miss is never "already applied").
// Pure: no Node built-ins, no I/O (imported by workflow code).
// Over 300 lines because the levels and the closest-lines feedback share one line model
// (Prepared, keyed lines) and must agree on what matches; the consensus normalisation is its tail.

export type MatchLevel = 'exact' | 'trailing-whitespace' | 'indentation' | 'normalised';

export const MATCH_LEVELS: readonly MatchLevel[] = ['exact', 'trailing-whitespace', 'indentation', 'normalised'];

/** How each level reads in feedback ("matched ignoring trailing whitespace"). */
export const MATCH_LEVEL_DESCRIPTIONS: Record<MatchLevel, string> = {
  exact: 'exactly',
  'trailing-whitespace': 'ignoring trailing whitespace',
  indentation: 'with a uniform indentation shift',
  normalised: 'after normalising line endings, quotes, dashes and spaces',
};

export interface ClosestLines {
  /** 1-based, inclusive. */
  startLine: number;
  endLine: number;
  /** The file's lines there, numbered: `  120 | text`. */
  numbered: string;
  /** Mean per-line similarity, 0..1. */
  score: number;
}

export type EditOutcome =
  | {
      ok: true;
      content: string;
      level: MatchLevel;
      /** 1-based first and last line of the matched region in the original text. */
      startLine: number;
      endLine: number;
    }
  | { ok: false; reason: 'empty-search' }
  | {
      ok: false;
      reason: 'ambiguous';
      level: MatchLevel;
      /** 1-based first line of each place the search matched. */
      candidates: number[];
    }
  | {
      ok: false;
      reason: 'no-match';
      /**
       * Where the replacement (with lines of its own, not in the search) already is in the text,
       * 1-based and inclusive (its first place if several): a hint for the model, never a pass.
       */
      replaceFound?: { startLine: number; endLine: number };
      closest?: ClosestLines;
    };

type Eol = '' | '\n' | '\r\n';

interface Line {
  text: string;
  eol: Eol;
}

interface Delta {
  add: string;
  remove: string;
}

interface Candidate {
  start: number;
  delta: Delta;
}

interface Keyed {
  /** Leading spaces/tabs (after the level's normalisation). */
  lead: string;
  /** The rest of the line, trailing whitespace dropped at levels ≥ 2 (with a CR marker below level 4). */
  rest: string;
  blank: boolean;
}

const NO_DELTA: Delta = { add: '', remove: '' };

/** Splits text into lines with their endings: "a\r\nb" → [a,\r\n] [b,'']; "" → []. */
function splitLines(text: string): Line[] {
  const out: Line[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) {
      out.push({ text: text.slice(pos), eol: '' });
      break;
    }
    if (nl > pos && text.charCodeAt(nl - 1) === 13) out.push({ text: text.slice(pos, nl - 1), eol: '\r\n' });
    else out.push({ text: text.slice(pos, nl), eol: '\n' });
    pos = nl + 1;
  }
  return out;
}

const CR_MARK = '\r';

const LOOKALIKES: Record<string, string> = {
  '\u2018': "'", '\u2019': "'", '\u201a': "'", '\u201b': "'", '\u2032': "'",
  '\u201c': '"', '\u201d': '"', '\u201e': '"', '\u201f': '"', '\u2033': '"',
  '\u2010': '-', '\u2011': '-', '\u2012': '-', '\u2013': '-', '\u2014': '-', '\u2015': '-', '\u2212': '-',
  '\u00a0': ' ', '\u2007': ' ', '\u202f': ' ', '\u2009': ' ', '\u200a': ' ',
};
const LOOKALIKE_RE = /[\u2018\u2019\u201a\u201b\u2032\u201c\u201d\u201e\u201f\u2033\u2010-\u2015\u2212\u00a0\u2007\u202f\u2009\u200a]/g;

/** Curly quotes → straight, dashes → '-', non-breaking and thin spaces → ' ', NFC. */
export function normaliseUnicode(s: string): string {
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(s);
  return ascii ? s : s.normalize('NFC').replace(LOOKALIKE_RE, (c) => LOOKALIKES[c] ?? c);
}

const TRAILING_SPACE = /[ \t\f\v]+$/;

function keyed(line: Line, level: MatchLevel): Keyed {
  if (level === 'exact') {
    const lead = /^[ \t]*/.exec(line.text)![0];
    const rest = line.text.slice(lead.length) + (line.eol === '\r\n' ? CR_MARK : '');
    return { lead, rest, blank: line.text === '' };
  }
  let body: string;
  let cr = '';
  if (level === 'normalised') {
    body = normaliseUnicode(line.text).replace(/\r+$/, '').trimEnd();
  } else {
    body = line.text.replace(TRAILING_SPACE, '');
    cr = line.eol === '\r\n' ? CR_MARK : '';
  }
  const lead = /^[ \t]*/.exec(body)![0];
  return { lead, rest: body.slice(lead.length) + cr, blank: body === '' };
}

/** The delta turning `searchLead` into `fileLead`, or null when neither extends the other. */
function deltaBetween(fileLead: string, searchLead: string): Delta | null {
  if (fileLead === searchLead) return NO_DELTA;
  if (fileLead.startsWith(searchLead)) return { add: fileLead.slice(searchLead.length), remove: '' };
  if (searchLead.startsWith(fileLead)) return { add: '', remove: searchLead.slice(fileLead.length) };
  return null;
}

function shift(lead: string, d: Delta): string | null {
  if (d.remove) return lead.startsWith(d.remove) ? lead.slice(d.remove.length) : null;
  return d.add + lead;
}

/** Re-indents a replacement line by the delta (a line indented less than the delta loses what it has). */
function reindent(text: string, d: Delta): string {
  if (text.trim() === '') return text;
  if (d.add) return d.add + text;
  if (d.remove) {
    let i = 0;
    while (i < d.remove.length && i < text.length && text[i] === d.remove[i]) i++;
    return text.slice(i);
  }
  return text;
}

/** At most this many candidates of an ambiguous match are reported. */
export const MAX_CANDIDATES = 50;

/** Every place `search` matches `file` at `level` (stops early after `limit` candidates). */
function candidatesAt(file: Keyed[], search: Keyed[], level: MatchLevel, limit = MAX_CANDIDATES): Candidate[] {
  const n = search.length;
  const out: Candidate[] = [];
  if (n === 0 || n > file.length) return out;
  const flexible = level === 'indentation' || level === 'normalised';
  const anchor = search.findIndex((s) => !s.blank);
  for (let i = 0; i + n <= file.length && out.length < limit; i++) {
    if (!flexible || anchor < 0) {
      let ok = true;
      for (let j = 0; j < n && ok; j++) {
        const f = file[i + j];
        const s = search[j];
        ok = flexible ? f.blank && s.blank : f.lead === s.lead && f.rest === s.rest;
      }
      if (ok) out.push({ start: i, delta: NO_DELTA });
      continue;
    }
    const fa = file[i + anchor];
    const sa = search[anchor];
    if (fa.blank || fa.rest !== sa.rest) continue;
    const delta = deltaBetween(fa.lead, sa.lead);
    if (!delta) continue;
    let ok = true;
    for (let j = 0; j < n && ok; j++) {
      const f = file[i + j];
      const s = search[j];
      if (s.blank || f.blank) {
        ok = s.blank && f.blank;
        continue;
      }
      ok = f.rest === s.rest && shift(s.lead, delta) === f.lead;
    }
    if (ok) out.push({ start: i, delta });
  }
  return out;
}

interface Prepared {
  bom: string;
  lines: Line[];
  keys: Map<MatchLevel, Keyed[]>;
}

function prepare(text: string): Prepared {
  const bom = text.startsWith('\ufeff') ? '\ufeff' : '';
  const lines = splitLines(bom ? text.slice(1) : text);
  return { bom, lines, keys: new Map() };
}

function keysOf(p: Prepared, level: MatchLevel): Keyed[] {
  let k = p.keys.get(level);
  if (!k) {
    k = p.lines.map((l) => keyed(l, level));
    p.keys.set(level, k);
  }
  return k;
}

/** The first level at which `search` matches, with its candidates (empty when none matches). */
function locate(file: Prepared, search: Prepared): { level: MatchLevel; candidates: Candidate[] } | null {
  for (const level of MATCH_LEVELS) {
    const c = candidatesAt(keysOf(file, level), keysOf(search, level), level);
    if (c.length > 0) return { level, candidates: c };
  }
  return null;
}

/** Whether `needle` (a line-based snippet) occurs anywhere in `text`, at any level. */
export function containsLines(text: string, needle: string): boolean {
  const n = prepare(needle);
  if (n.lines.every((l) => l.text.trim() === '')) return false;
  return locate(prepare(text), n) !== null;
}

function dominantEol(lines: Line[]): '\n' | '\r\n' {
  let crlf = 0;
  let lf = 0;
  for (const l of lines) {
    if (l.eol === '\r\n') crlf++;
    else if (l.eol === '\n') lf++;
  }
  return crlf > lf ? '\r\n' : '\n';
}

/** Longest common subsequence of two key lists: for each index of `a`, its partner in `b` or -1. */
function align(a: string[], b: string[]): number[] {
  const out = new Array<number>(a.length).fill(-1);
  if (a.length === 0 || b.length === 0) return out;
  if (a.length * b.length > 1_000_000) {
    // Too large for the table: pair equal keys greedily, in order.
    let j = 0;
    for (let i = 0; i < a.length && j < b.length; i++) {
      const k = b.indexOf(a[i], j);
      if (k >= 0 && k - j < 50) {
        out[i] = k;
        j = k + 1;
      }
    }
    return out;
  }
  const m = b.length;
  const t = new Uint32Array((a.length + 1) * (m + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      t[i * (m + 1) + j] = a[i] === b[j] ? t[(i + 1) * (m + 1) + j + 1] + 1 : Math.max(t[(i + 1) * (m + 1) + j], t[i * (m + 1) + j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length && j < m) {
    if (a[i] === b[j]) {
      out[i] = j;
      i++;
      j++;
    } else if (t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1]) i++;
    else j++;
  }
  return out;
}

/**
 * Whether the replacement has a line of its own (not in the search, not blank, not bare
 * punctuation): only such a replacement is reported as already in the file — a `}` or a
 * deletion is found anywhere and proves nothing.
 */
function bringsNewLines(search: string, replace: string): boolean {
  const key = (l: Line) => normaliseUnicode(l.text).trim().replace(/\s+/g, ' ');
  const old = new Set(splitLines(search).map(key));
  return splitLines(replace).some((l) => {
    const k = key(l);
    return /[\p{L}\p{N}]/u.test(k) && !old.has(k);
  });
}

/**
 * Applies `search` → `replace` to `text`. `search` and `replace` are whole lines (a missing
 * final newline is tolerated). An empty `search` is not an edit (`empty-search`): creating or
 * refusing is the caller's decision.
 */
export function applyEdit(text: string, search: string, replace: string): EditOutcome {
  const s = prepare(search);
  if (s.lines.length === 0) return { ok: false, reason: 'empty-search' };
  const f = prepare(text);
  const found = locate(f, s);
  if (!found) {
    const r = prepare(replace);
    const there = bringsNewLines(search, replace) ? locate(f, r) : null;
    const replaceFound = there ? { startLine: there.candidates[0].start + 1, endLine: there.candidates[0].start + r.lines.length } : undefined;
    return { ok: false, reason: 'no-match', ...(replaceFound ? { replaceFound } : {}), closest: closestWindow(f, s) };
  }
  const { level, candidates } = found;
  if (candidates.length > 1) return { ok: false, reason: 'ambiguous', level, candidates: candidates.map((c) => c.start + 1) };
  const { start, delta } = candidates[0];
  const n = s.lines.length;
  const eol = dominantEol(f.lines);
  // A replacement line the model copied unchanged from its search (paired by a longest common
  // subsequence, so context stays put) keeps the bytes of the file line that search line
  // matched: tolerance finds the place, it does not rewrite the context. A line the model
  // changed, even in whitespace only, is written as given; so is any blank or whitespace-only
  // line, which the tolerant levels cannot tell apart.
  const own = (l: Line) => l.text.replace(/\r+$/, '');
  const repText = splitLines(replace).map(own);
  const pairs = align(repText, s.lines.map(own));

  const region: Line[] = repText.map((text, i) => {
    const k = pairs[i];
    const orig = k >= 0 ? f.lines[start + k] : undefined;
    // Line endings stay the file's either way.
    const lineEol = orig && orig.eol !== '' ? orig.eol : eol;
    if (orig && text.trim() !== '' && orig.text.trim() !== '') return { text: orig.text, eol: lineEol };
    return { text: reindent(text, delta), eol: lineEol };
  });

  const before = f.lines.slice(0, start).map((l) => ({ ...l }));
  const after = f.lines.slice(start + n);
  const coversEnd = start + n === f.lines.length;
  if (coversEnd && f.lines[f.lines.length - 1].eol === '') {
    if (region.length > 0) region[region.length - 1].eol = '';
    else if (before.length > 0) before[before.length - 1].eol = '';
  }
  const join = (ls: Line[]) => ls.map((l) => l.text + l.eol).join('');
  return {
    ok: true,
    content: f.bom + join(before) + join(region) + join(after),
    level,
    startLine: start + 1,
    endLine: start + n,
  };
}

// ---- Closest lines, for the feedback of a block that did not match ----------------------------

const TOKEN_RE = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;
const ASCII_TOKEN_RE = /\w+|[^\s\w]/g;

/** A line's distinct tokens (words and single punctuation characters) as ids. */
function tokenIds(line: string, ids: Map<string, number>, add: boolean): number[] {
  // eslint-disable-next-line no-control-regex
  const found = /^[\x00-\x7f]*$/.test(line) ? line.match(ASCII_TOKEN_RE) : normaliseUnicode(line).match(TOKEN_RE);
  const out: number[] = [];
  if (!found) return out;
  for (const t of new Set(found)) {
    let id = ids.get(t);
    if (id === undefined) {
      // A token the search does not have: it only counts in the line's size.
      if (!add) {
        out.push(-1);
        continue;
      }
      id = ids.size;
      ids.set(t, id);
    }
    out.push(id);
  }
  return out;
}

/** Numbers lines for feedback: `  120 | text` (1-based `first`). */
export function numberLines(lines: readonly string[], first: number): string {
  const width = Math.max(5, String(first + lines.length - 1).length + 2);
  return lines.map((l, i) => `${String(first + i).padStart(width)} | ${l}`).join('\n');
}

/** At most this many lines of a closest window are shown. */
const MAX_SHOWN = 40;

/**
 * The window of the file (as many lines as the search) most similar to the search: the sum over
 * its lines of the Dice similarity of their token sets with the search's lines. The sum is
 * accumulated token by token, only for tokens the search has: linear in the file's size.
 */
function closestWindow(file: Prepared, search: Prepared): ClosestLines | undefined {
  const N = file.lines.length;
  const n = search.lines.length;
  if (N === 0 || n === 0) return undefined;
  const w = Math.min(n, N);
  const windows = N - w + 1;
  const ids = new Map<string, number>();
  const sTokens = search.lines.slice(0, w).map((l) => tokenIds(l.text, ids, true));
  /** For each token id, the search lines that have it. */
  const occurs: number[][] = Array.from({ length: ids.size }, () => []);
  sTokens.forEach((ts, j) => ts.forEach((t) => occurs[t].push(j)));
  const blankSearch = sTokens.flatMap((ts, j) => (ts.length === 0 ? [j] : []));
  const score = new Float64Array(windows);
  for (let i = 0; i < N; i++) {
    const ts = tokenIds(file.lines[i].text, ids, false);
    if (ts.length === 0) {
      for (const j of blankSearch) if (i - j >= 0 && i - j < windows) score[i - j] += 0.25;
      continue;
    }
    for (const t of ts) {
      if (t < 0) continue;
      for (const j of occurs[t]) {
        const at = i - j;
        if (at >= 0 && at < windows) score[at] += 2 / (ts.length + sTokens[j].length);
      }
    }
  }
  let best = -1;
  let bestScore = 0;
  for (let i = 0; i < windows; i++) {
    if (score[i] > bestScore + 1e-9) {
      bestScore = score[i];
      best = i;
    }
  }
  if (best < 0) return undefined;
  const shown = file.lines.slice(best, best + Math.min(w, MAX_SHOWN)).map((l) => l.text);
  let numbered = numberLines(shown, best + 1);
  if (w > MAX_SHOWN) numbered += `\n  … (${w - MAX_SHOWN} more lines)`;
  return { startLine: best + 1, endLine: best + w, numbered, score: bestScore / w };
}

/** The closest window of `text` to `search` (exported for tools and tests). */
export function closestLines(text: string, search: string): ClosestLines | undefined {
  return closestWindow(prepare(text), prepare(search));
}

// ---- Comparing resulting files (consensus) ----------------------------------------------------

const INDENT_SIGNIFICANT = /\.(py|pyi|pyx|pxd|ya?ml|nim|nims|hs|lhs|coffee|pug|jade|sass|fs|fsx|fsi|mk|haml|slim|styl)$/i;
const INDENT_SIGNIFICANT_NAMES = /(^|\/)(GNUmakefile|[Mm]akefile|Snakefile|Tiltfile)$/;

/** Whether leading whitespace changes the meaning of the file (Python, YAML, Makefiles…). */
export function indentationSignificant(path: string): boolean {
  return INDENT_SIGNIFICANT.test(path) || INDENT_SIGNIFICANT_NAMES.test(path);
}

/**
 * A file's content reduced to what matters for "do these two candidates write the same file":
 * CRLF → LF, trailing whitespace and trailing blank lines dropped, runs of inner whitespace
 * collapsed; leading indentation kept for indentation-significant files (so two Python programs
 * that indent differently never compare equal) and dropped for the others.
 */
export function normaliseForComparison(path: string, content: string): string {
  const keepIndent = indentationSignificant(path);
  const lines = content.replace(/\r\n?/g, '\n').split('\n');
  const out = lines.map((line) => {
    const trimmed = line.replace(/\s+$/, '');
    const lead = keepIndent ? /^[ \t]*/.exec(trimmed)![0] : '';
    return lead + trimmed.slice(lead.length).trim().replace(/\s+/g, ' ');
  });
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}
