// The baselines Weaver's prompt is measured against, and the recall check.
//
// git grep: what a person would do. The description's words (3+ letters, not stopwords) are
// each searched with `git grep -c -i -w -F`; files rank by how many distinct words they hold,
// then by total hits; the top files go into the budget whole, and the first one that does not
// fit is cut to what is left (its first lines) and ends the prompt.
//
// BM25: chunks of 40 lines every 20 lines, tokens = identifiers split at camelCase and
// snake_case (lowercased; whole identifiers kept too), k1 = 1.2, b = 0.75, the description as
// the query. The top chunks, each widened by 20 lines either side and merged per file, go into
// the budget in score order until the next one does not fit.
import { execFileSync } from 'node:child_process';
import { cutToTokens } from '../../src/activities/promptSpans';
import { countTokens } from '../../src/activities/tokens';

const STOP = new Set(
  'a an and are as at be been but by can does for from has have if in into is it its not of on or that the their then there these this those to was were when which while will with without yet body stub function project implemented implement return returns given used use uses using'.split(
    ' ',
  ),
);

export const queryWords = (text: string) => [...new Set((text.toLowerCase().match(/[a-z_][a-z0-9_]{2,}/g) ?? []).filter((w) => !STOP.has(w)))];

function section(rel: string, text: string, what = ''): string {
  return `### ${rel}${what}\n\`\`\`\n${text}${text.endsWith('\n') ? '' : '\n'}\`\`\``;
}

export function gitGrepPrompt(dir: string, head: string, read: (rel: string) => string, tokens: number): string {
  const words = queryWords(head);
  const score = new Map<string, { words: number; hits: number }>();
  for (const w of words) {
    let out = '';
    try {
      out = execFileSync('git', ['-C', dir, 'grep', '-c', '-i', '-w', '-F', '-e', w], { encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch {
      continue; // exit 1: no match
    }
    for (const line of out.split('\n').filter(Boolean)) {
      const at = line.lastIndexOf(':');
      const s = score.get(line.slice(0, at)) ?? { words: 0, hits: 0 };
      s.words++;
      s.hits += Number(line.slice(at + 1));
      score.set(line.slice(0, at), s);
    }
  }
  const ranked = [...score].sort((x, y) => y[1].words - x[1].words || y[1].hits - x[1].hits || (x[0] < y[0] ? -1 : 1)).map(([f]) => f);
  const parts = [head];
  let left = tokens - countTokens(head);
  for (const rel of ranked.slice(0, 50)) {
    if (left < 100) break;
    const whole = section(rel, read(rel));
    const n = countTokens(whole);
    if (n <= left) {
      parts.push(whole);
      left -= n;
      continue;
    }
    parts.push(section(rel, cutToTokens(read(rel), left - 30), ' (cut)'));
    break;
  }
  return parts.join('\n\n');
}

const split = (text: string) =>
  (text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []).flatMap((id) => {
    const parts = id
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
      .split(/[\s_]+/)
      .map((p) => p.toLowerCase())
      .filter((p) => p.length > 1 && !STOP.has(p));
    const whole = id.toLowerCase();
    return parts.length > 1 && !STOP.has(whole) ? [whole, ...parts] : parts;
  });

interface Chunk {
  rel: string;
  start: number; // 0-based
  end: number; // exclusive
  tf: Map<string, number>;
  len: number;
}

const CHUNK = 40;
const STEP = 20;
const WIDEN = 20;

export class Bm25 {
  private chunks: Chunk[] = [];
  private df = new Map<string, number>();
  private avg = 1;

  constructor(files: Map<string, string>) {
    for (const [rel, text] of files) this.chunks.push(...this.chunksOf(rel, text));
    for (const c of this.chunks) for (const t of c.tf.keys()) this.df.set(t, (this.df.get(t) ?? 0) + 1);
    this.avg = this.chunks.reduce((s, c) => s + c.len, 0) / Math.max(1, this.chunks.length);
  }

  private chunksOf(rel: string, text: string): Chunk[] {
    const lines = text.split('\n');
    const out: Chunk[] = [];
    for (let start = 0; start < lines.length; start += STEP) {
      const end = Math.min(lines.length, start + CHUNK);
      const tf = new Map<string, number>();
      const toks = split(`${start === 0 ? rel : ''}\n${lines.slice(start, end).join('\n')}`);
      for (const t of toks) tf.set(t, (tf.get(t) ?? 0) + 1);
      out.push({ rel, start, end, tf, len: toks.length });
      if (end === lines.length) break;
    }
    return out;
  }

  /** The prompt: `head` then the top chunks (widened, merged per file) within `tokens`. */
  prompt(head: string, tokens: number, read: (rel: string) => string, changed: { rel: string; text: string }): string {
    const q = [...new Set(split(head))];
    const n = this.chunks.length;
    const score = (c: Chunk) =>
      q.reduce((s, t) => {
        const f = c.tf.get(t);
        if (!f) return s;
        const df = this.df.get(t) ?? 0;
        return s + Math.log(1 + (n - df + 0.5) / (df + 0.5)) * ((f * 2.2) / (f + 1.2 * (0.25 + (0.75 * c.len) / this.avg)));
      }, 0);
    // The stubbed file is scored as it is now (with the statistics of the original).
    const pool = [...this.chunks.filter((c) => c.rel !== changed.rel), ...this.chunksOf(changed.rel, changed.text)];
    const top = pool
      .map((c) => ({ c, s: score(c) }))
      .filter((x) => x.s > 0)
      .sort((x, y) => y.s - x.s)
      .slice(0, 60);
    const spans = new Map<string, [number, number][]>();
    const render = (rel: string) => {
      const lines = read(rel).split('\n');
      return spans
        .get(rel)!
        .map(([a, b]) => section(rel, lines.slice(a, b).join('\n'), ` (lines ${a + 1}-${b})`))
        .join('\n\n');
    };
    const order: string[] = [];
    const cost = new Map<string, number>();
    let left = tokens - countTokens(head);
    for (const { c } of top) {
      const lines = read(c.rel).split('\n').length;
      const before = spans.get(c.rel) ?? [];
      const next = merge([...before, [Math.max(0, c.start - WIDEN), Math.min(lines, c.end + WIDEN)]]);
      spans.set(c.rel, next);
      const n2 = countTokens(render(c.rel));
      const delta = n2 - (cost.get(c.rel) ?? 0);
      if (delta > left) {
        if (before.length) spans.set(c.rel, before);
        else spans.delete(c.rel);
        break;
      }
      if (!before.length) order.push(c.rel);
      cost.set(c.rel, n2);
      left -= delta;
    }
    return [head, ...order.map(render)].join('\n\n');
  }
}

function merge(list: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of [...list].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Prompt lines as compared: trimmed, line-number prefixes and fence/span markers dropped. */
function norm(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim().replace(/^\d+\s*[:|]\s?/, ''))
    .filter((l) => l && !/^(`{3,}|~{3,}|@@ lines \d+-\d+ @@$|⋮$|### )/.test(l));
}

export interface Target {
  /** The stubbed file's lines from 20 before F's definition to 20 after it. */
  window: string[];
}

/** Recall: the window's lines, in order and contiguous, somewhere in the prompt. */
export function holds(prompt: string, target: Target): boolean {
  const p = norm(prompt);
  const w = norm(target.window.join('\n'));
  if (!w.length) return false;
  for (let i = p.indexOf(w[0]); i !== -1 && i + w.length <= p.length; i = p.indexOf(w[0], i + 1)) {
    let k = 1;
    while (k < w.length && p[i + k] === w[k]) k++;
    if (k === w.length) return true;
  }
  return false;
}
