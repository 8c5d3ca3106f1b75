// How a prompt shows text: in a fence the text cannot close, cut to a token budget, and parts
// of a large file as numbered spans (fileViews.ts chooses them for a file shown unasked).
import path from 'node:path';
import { REDACTED } from '../domain/redact';
import type { RankedDef } from './repomap';
import { countTokens } from './tokens';

export function fence(text: string, lang = ''): string {
  // A fence longer than any backtick run in the text, so the text can never close it.
  const longest = Math.max(2, ...[...text.matchAll(/`{3,}/g)].map((m) => m[0].length));
  const f = '`'.repeat(longest + 1);
  return `${f}${lang}\n${text}${text.endsWith('\n') || !text ? '' : '\n'}${f}`;
}

/**
 * How many masked values a partial rendering shows: markers added per line, over the lines
 * shown (`all` when masking changed the line count, e.g. a secret spanning lines).
 */
export function maskedInSpans(original: string, masked: string, spans: [number, number][], all: number): number {
  const before = original.split('\n');
  const after = masked.split('\n');
  if (before.length !== after.length) return all;
  const markers = (line: string) => line.split(REDACTED).length - 1;
  let n = 0;
  for (const [a, b] of spans) for (let i = a - 1; i < b && i < after.length; i++) n += markers(after[i]) - markers(before[i]);
  return n;
}

export function langOf(rel: string): string {
  const ext = path.extname(rel).slice(1).toLowerCase();
  return /^[a-z0-9+#]{1,10}$/.test(ext) ? ext : '';
}

/** The longest prefix of `text` (whole lines) within `tokens`. */
export function cutToTokens(text: string, tokens: number): string {
  if (countTokens(text) <= tokens) return text;
  const lines = text.split('\n');
  let lo = 0;
  let hi = lines.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (countTokens(lines.slice(0, mid).join('\n')) <= tokens) lo = mid;
    else hi = mid - 1;
  }
  return lines.slice(0, lo).join('\n') + '\n…';
}

/** `path:line` references in failure output, by path: the lines to show around. */
export function anchorLines(text: string): Map<string, Pick<RankedDef, 'line' | 'endLine'>[]> {
  const out = new Map<string, Pick<RankedDef, 'line' | 'endLine'>[]>();
  for (const m of text.matchAll(/([\w./-]+\.[A-Za-z0-9]+)(?:", line |:)(\d+)/g)) {
    const rel = m[1].replace(/^\.\//, '');
    const line = Number(m[2]);
    out.set(rel, [...(out.get(rel) ?? []), { line, endLine: line }]);
  }
  return out;
}

/**
 * Spans of a file's lines (merged, 1-based), numbered and marked partial; `what` says what was
 * asked, `leftOut` what the view left out.
 */
export function renderMerged(rel: string, lines: string[], merged: [number, number][], what = '', leftOut = ''): string {
  const more = leftOut ? `${leftOut}; use SEARCH/REPLACE for it, or READ ${rel}:START-END or ${rel}#Name to see more` : 'use SEARCH/REPLACE for it, or READ to see more';
  const header = `### ${rel} (partial${what}: ${lines.length} lines; shown: ${merged.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ')}; ${more})`;
  const body = merged.map(([a, b]) => `@@ lines ${a}-${b} @@\n${lines.slice(a - 1, b).join('\n')}`).join('\n⋮\n');
  return `${header}\n${fence(`${body}\n`, langOf(rel))}`;
}

/**
 * The lines a READ asked for (`path:120-220`, a definition's body): those spans, numbered, as
 * many of their lines as fit in `tokens` (a span too long is cut short, and says so in its
 * header); undefined when the file has none of them or nothing fits.
 */
export function renderRanges(
  rel: string,
  text: string,
  wanted: [number, number][],
  tokens: number,
  what: string,
): { text: string; spans: [number, number][]; cut: boolean } | undefined {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const n = lines.length;
  const clipped = mergeSpans(wanted.map(([a, b]): [number, number] => [Math.max(1, a), Math.min(n, b)]).filter(([a, b]) => a <= b));
  if (!clipped.length) return undefined;
  const render = (list: [number, number][]) => renderMerged(rel, lines, list, what);
  const full = render(clipped);
  if (countTokens(full) <= tokens) return { text: full, spans: clipped, cut: false };
  // Too long: keep the first spans whole and cut the last one kept, by binary search on its end.
  const total = clipped.reduce((k, [a, b]) => k + b - a + 1, 0);
  const upTo = (count: number): [number, number][] => {
    const out: [number, number][] = [];
    let left = count;
    for (const [a, b] of clipped) {
      if (left <= 0) break;
      const take = Math.min(left, b - a + 1);
      out.push([a, a + take - 1]);
      left -= take;
    }
    return out;
  };
  let lo = 0;
  let hi = total;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (countTokens(render(upTo(mid))) <= tokens) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0) return undefined;
  const spans = upTo(lo);
  return { text: render(spans), spans, cut: true };
}

export function mergeSpans(list: [number, number][]): [number, number][] {
  const sorted = [...list].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    // A gap of a line or two (blank lines between definitions) costs less shown than marked.
    if (last && a <= last[1] + 3) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}
