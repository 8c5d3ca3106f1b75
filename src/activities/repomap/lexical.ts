// Lexical ranking (issue 16, item 3): tasks that describe behaviour without naming the code.
// BM25 over definition-level chunks — a definition's own lines (nested definitions are their own
// chunks) with the comments and decorators just above it, its name once more, and its file's path;
// a file's lines outside any definition (module docstring, imports) are one more chunk. Words are
// split at camelCase and snake_case, lower-cased and Porter2-stemmed on both sides.
//
// Hand-written rather than a search library (minisearch was the candidate): the query is known
// before the index is built, so a chunk needs only its length and the counts of the query's
// terms — one pass over each file's text, no index of every term of every chunk (a 10k-file
// repository has ~10⁵ chunks and ~10⁶ distinct postings).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import stem from 'wink-porter2-stemmer';
import { langOf } from './languages';
import { isStub } from './stubs';
import type { FileTags } from './tagger';

// BM25's usual constants.
const K1 = 1.2;
const B = 0.75;
/** The most query terms used (a long description's first distinct words). */
const MAX_QUERY_TERMS = 64;
/** A stub definition's chunk score is multiplied by this (when the chunk matches at all). */
const STUB_MULTIPLIER = 2;
/** Leading comment lines looked at above a definition. */
const MAX_LEADING = 30;
const MAX_BYTES = 1024 * 1024;
/** Files read and scanned between two turns of the event loop (reads are synchronous: cheaper). */
const YIELD_EVERY = 32;

// English function words, and the words every task or program says about code ("a function in
// this project is not implemented yet (its body is a stub)"): never query terms.
const STOP_WORDS = `a about above after again all also an and any are as at be because been before being below between both but by can
could did do does doing down during each else even every few for from further had has have having here how however i if in into is
it its itself just may me might more most must my no nor not now of off on once only or other our out over own same should so some
such than that the their them then there these they this those through to too under until up upon very via was we were what when
where which while who whom why will with within without would yet you your
function functions method methods class classes body bodies stub stubs implement implementation implemented project repository
module modules code file files return returns returned given take takes taken make makes made use uses used using call calls called
new value values param params arg args argument arguments self this def fn func var let const todo fixme pass raise throw error
true false null none nil undefined str int string number bool boolean object type void public private static async await import
export default`.split(/\s+/);
const STOP = new Set(STOP_WORDS.map((w) => stem(w)));

/** Words' terms, kept across builds (a repository's words recur; stemming is most of a miss). */
const MEMO = new Map<string, string[]>();
/** Stems of identifier parts (far fewer than identifiers: `parseUrl`, `urlParse`, `url_of`). */
const STEMS = new Map<string, string>();
const MAX_MEMO = 200_000;

const WORD = /[A-Za-z][A-Za-z0-9]*/g;
// camelCase / PascalCase / ACRONYMWord parts (snake_case is split by WORD already).
const PART = /[A-Z]+(?![a-z])|[A-Z]?[a-z]+/g;

/** The terms of one identifier or word: its parts, lower-cased, stemmed, stop words out. */
function termsOfWord(word: string, memo: Map<string, string[]>): string[] {
  let terms = memo.get(word);
  if (terms) return terms;
  terms = [];
  for (const part of word.match(PART) ?? []) {
    if (part.length < 2) continue;
    const lower = part.toLowerCase();
    let t = STEMS.get(lower);
    if (t === undefined) STEMS.set(lower, (t = stem(lower)));
    if (t.length >= 2 && !STOP.has(t)) terms.push(t);
  }
  memo.set(word, terms);
  return terms;
}

function termsOf(text: string, memo: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(WORD)) for (const t of termsOfWord(m[0], memo)) out.push(t);
  return out;
}

/** The distinct terms of a task's text, in order of first appearance. */
export function queryTerms(text: string): string[] {
  return [...new Set(termsOf(text, new Map()))].slice(0, MAX_QUERY_TERMS);
}

export interface LexicalScores {
  /** Per file: BM25 of its best chunk plus half its second best (0: no query term). */
  file: Float64Array;
  /** Per file: definition name → its chunk's score (a stub's ×STUB_MULTIPLIER). */
  defs: Map<string, number>[];
  /** Per file: names of its stub definitions (empty bodies, `pass`, "not implemented"). */
  stubs: Set<string>[];
  /** Chunks indexed. */
  chunks: number;
}

const isLetter = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90);

const LEADING = /^\s*(?:\/\/|\/\*|\*|#|@)/;

interface Matched {
  file: number;
  /** Definition index in the file's tags, or -1: the lines outside any definition. */
  def: number;
  len: number;
  tf: Uint16Array;
}

/** Counts of one file's chunks: the chunks holding a query term go to `matched`. */
function scanFile(
  text: string,
  file: { path: string; tags: FileTags },
  fi: number,
  q: Map<string, number>,
  memo: Map<string, string[]>,
  matched: Matched[],
  stubs: Set<string>,
): { chunks: number; len: number } {
  const d = file.tags.d;
  const Q = q.size;
  const lang = langOf(file.path);
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  const lineText = (l: number) => text.slice(starts[l - 1], l < starts.length ? starts[l] - 1 : text.length);
  // Each line's innermost definition (chunk D: outside all definitions), leading comments included.
  const D = d.length;
  const owner = new Int32Array(starts.length + 2).fill(D);
  const bySpan = d.map((_, k) => k).sort((a, b) => d[b][3] - d[b][2] - (d[a][3] - d[a][2]) || d[a][2] - d[b][2]);
  for (const k of bySpan) {
    const [name, kind, line, endLine] = d[k];
    let first = line;
    while (first > 1 && line - first < MAX_LEADING && LEADING.test(lineText(first - 1))) first--;
    for (let l = first; l <= Math.min(endLine, starts.length); l++) owner[l] = k;
    if (lang && isStub(lang, kind, line, Math.min(endLine, starts.length), lineText)) stubs.add(name);
  }
  const len = new Float64Array(D + 1);
  const tf = new Uint16Array((D + 1) * Q);
  const count = (c: number, terms: string[]) => {
    len[c] += terms.length;
    for (const t of terms) {
      const qi = q.get(t);
      if (qi !== undefined && tf[c * Q + qi] < 65535) tf[c * Q + qi]++;
    }
  };
  // Words by hand (a regex's match objects cost more than the scan): [A-Za-z][A-Za-z0-9]*.
  let line = 1;
  const end = text.length;
  for (let i = 0; i < end; ) {
    const c = text.charCodeAt(i);
    if (!isLetter(c)) {
      if (c === 10) line++;
      i++;
      continue;
    }
    let j = i + 1;
    for (let k = text.charCodeAt(j); j < end && (isLetter(k) || (k >= 48 && k <= 57)); k = text.charCodeAt(++j));
    if (j - i > 1) count(owner[line], termsOfWord(text.slice(i, j), memo)); // one letter: no term
    i = j;
  }
  const pathTerms = termsOf(file.path.replace(/\.[^./]+$/, ''), memo);
  let chunks = 0;
  let total = 0;
  for (let c = 0; c <= D; c++) {
    if (c < D) count(c, termsOfWord(d[c][0], memo));
    if (len[c] === 0) continue;
    count(c, pathTerms);
    chunks++;
    total += len[c];
    const row = tf.subarray(c * Q, c * Q + Q);
    if (row.some((x) => x > 0)) matched.push({ file: fi, def: c < D ? c : -1, len: len[c], tf: row });
  }
  return { chunks, len: total };
}

/** BM25 of every definition-level chunk of `files` (read from `dir`) against `terms`. */
export async function lexicalScores(dir: string, files: { path: string; tags: FileTags }[], terms: string[]): Promise<LexicalScores> {
  const n = files.length;
  const out: LexicalScores = { file: new Float64Array(n), defs: files.map(() => new Map()), stubs: files.map(() => new Set()), chunks: 0 };
  const q = new Map(terms.map((t, k) => [t, k]));
  if (MEMO.size > MAX_MEMO) MEMO.clear();
  if (STEMS.size > MAX_MEMO) STEMS.clear();
  const memo = MEMO;
  const matched: Matched[] = [];
  let totalLen = 0;
  for (let i = 0; i < n; i++) {
    // Scanning is synchronous: let the event loop breathe (activity heartbeats, timers).
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    const f = files[i];
    if (f.tags.d.length === 0 || f.tags.skip) continue;
    let text: string;
    try {
      // latin1: one byte a character, no decoding (words are ASCII; other bytes only separate them).
      text = readFileSync(path.join(dir, f.path), 'latin1');
      if (text.length > MAX_BYTES) continue;
    } catch {
      continue; // gone since it was listed: no lexical evidence
    }
    const s = scanFile(text, f, i, q, memo, matched, out.stubs[i]);
    out.chunks += s.chunks;
    totalLen += s.len;
  }
  if (!matched.length) return out;

  const Q = q.size;
  const df = new Float64Array(Q);
  for (const m of matched) for (let k = 0; k < Q; k++) if (m.tf[k] > 0) df[k]++;
  const N = out.chunks;
  const idf = Array.from(df, (x) => Math.log(1 + (N - x + 0.5) / (x + 0.5)));
  const avg = totalLen / N;
  const best = new Float64Array(n);
  const second = new Float64Array(n);
  for (const m of matched) {
    let s = 0;
    const norm = K1 * (1 - B + (B * m.len) / avg);
    for (let k = 0; k < Q; k++) {
      const t = m.tf[k];
      if (t > 0) s += (idf[k] * t * (K1 + 1)) / (t + norm);
    }
    if (m.def >= 0) {
      const name = files[m.file].tags.d[m.def][0];
      if (out.stubs[m.file].has(name)) s *= STUB_MULTIPLIER;
      const defs = out.defs[m.file];
      defs.set(name, Math.max(defs.get(name) ?? 0, s));
    }
    if (s > best[m.file]) [best[m.file], second[m.file]] = [s, best[m.file]];
    else if (s > second[m.file]) second[m.file] = s;
  }
  for (let i = 0; i < n; i++) out.file[i] = best[i] + 0.5 * second[i];
  return out;
}

/** Files below this share of the best file's score get no lexical boost (BM25's long tail). */
const MIN_SHARE = 0.25;
/** The personalisation weight of a stub a failing test names, as of a named file (the words' best file: 1). */
const NAMED_STUB = 3;
/** The most files boosted by the description's words. */
const MAX_BOOSTED = 10;

/**
 * What the words add to the ranking: per file, a personalisation weight ((score/best)² for the
 * best few files) and one as named (a stub a failing test names: NAMED_STUB); per file, definition name → a share of the file's
 * rank added to the definition's (a matching stub ≥ 0.5, first; others by their match, < 0.5).
 */
export function lexicalBoosts(lex: LexicalScores, mentionedIdents: ReadonlySet<string>): { file: Float64Array; named: Float64Array; defs: Map<string, number>[] } {
  const n = lex.file.length;
  const file = new Float64Array(n);
  const named = new Float64Array(n);
  const defs = lex.defs.map(() => new Map<string, number>());
  let top = 0;
  for (let i = 0; i < n; i++) top = Math.max(top, lex.file[i]);
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => top > 0 && lex.file[i] >= MIN_SHARE * top)
    .sort((a, b) => lex.file[b] - lex.file[a] || a - b)
    .slice(0, MAX_BOOSTED);
  for (const i of order) {
    file[i] = (lex.file[i] / top) ** 2;
    let best = 0;
    for (const s of lex.defs[i].values()) best = Math.max(best, s);
    for (const [name, s] of lex.defs[i]) defs[i].set(name, lex.stubs[i].has(name) ? 0.5 + 0.45 * (s / best) : 0.45 * (s / best));
    for (const name of lex.stubs[i]) if (!defs[i].has(name)) defs[i].set(name, 0.5);
  }
  // A stub a failing test or the task names (`f`, or its test `test_f`, `testF`, `TestF`):
  // strong evidence, whatever the words say.
  const isNamed = (f: string) => {
    const cap = f.charAt(0).toUpperCase() + f.slice(1);
    return mentionedIdents.has(f) || mentionedIdents.has(`test_${f}`) || mentionedIdents.has(`test${cap}`) || mentionedIdents.has(`Test${cap}`);
  };
  for (let i = 0; i < n; i++) {
    for (const name of lex.stubs[i]) {
      if (!isNamed(name)) continue;
      named[i] += NAMED_STUB;
      defs[i].set(name, 0.95);
    }
  }
  return { file, named, defs };
}
