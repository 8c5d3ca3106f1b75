// Rendering: the top definitions as an elided outline, Aider-style, with line numbers:
//
//   pkg/config.py:
//   ⋮
//     10│class Config:
//   ⋮
//     42│    def parse_config(path):
//   ⋮
//
// Each definition comes with the header lines of the definitions (and scopes) enclosing it.
// The number of definitions shown is the largest that fits the token budget (binary search).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileTags } from './extract';

export interface OutlineFile {
  path: string;
  /** Every definition of the file (their ranges give the enclosing headers), and scopes. */
  tags: Pick2<FileTags, 'd' | 's'>;
}
type Pick2<T, K extends keyof T> = { [P in K]: T[P] };
/** One ranked entry: file index + the definition's line. */
export interface Pick {
  file: number;
  line: number;
}

const MAX_LINE_CHARS = 100;
const ELIDED = '⋮';

export class Outliner {
  private readonly lines = new Map<number, Promise<string[] | undefined>>();

  constructor(
    private readonly dir: string,
    private readonly files: OutlineFile[],
  ) {}

  private source(file: number): Promise<string[] | undefined> {
    let p = this.lines.get(file);
    if (!p) {
      p = readFile(path.join(this.dir, this.files[file].path), 'utf8').then(
        (t) => t.split(/\r?\n/),
        () => undefined,
      );
      this.lines.set(file, p);
    }
    return p;
  }

  /** The outline of the first `count` picks. Files appear in order of their best pick. */
  async render(picks: readonly Pick[], count: number): Promise<string> {
    const order: number[] = [];
    const byFile = new Map<number, Set<number>>();
    for (let k = 0; k < count && k < picks.length; k++) {
      const { file, line } = picks[k];
      let set = byFile.get(file);
      if (!set) {
        byFile.set(file, (set = new Set()));
        order.push(file);
      }
      set.add(line);
    }
    const out: string[] = [];
    for (const file of order) {
      const src = await this.source(file);
      if (!src) continue;
      const f = this.files[file];
      const wanted = new Set<number>();
      for (const line of byFile.get(file)!) {
        wanted.add(line);
        // Headers of what encloses it: classes around methods, impl blocks, outer functions.
        for (const d of f.tags.d) if (d[2] < line && d[3] >= line) wanted.add(d[2]);
        for (const [s, e] of f.tags.s ?? []) if (s < line && e >= line) wanted.add(s);
      }
      const shown = [...wanted].filter((l) => l >= 1 && l <= src.length).sort((a, b) => a - b);
      if (!shown.length) continue;
      const width = Math.max(4, String(shown[shown.length - 1]).length);
      const body: string[] = [`${f.path}:`];
      let prev = 0;
      for (const l of shown) {
        if (l > prev + 1) body.push(ELIDED);
        let text = src[l - 1].replace(/\s+$/, '');
        if (text.length > MAX_LINE_CHARS) text = `${text.slice(0, MAX_LINE_CHARS)}…`;
        body.push(`${String(l).padStart(width)}│${text}`);
        prev = l;
      }
      const last = src.length - (src[src.length - 1] === '' ? 1 : 0);
      if (prev < last) body.push(ELIDED);
      out.push(body.join('\n'));
    }
    return out.length ? `${out.join('\n\n')}\n` : '';
  }

  /** The longest prefix of `picks` whose outline fits `budget` tokens. */
  async fit(picks: readonly Pick[], budget: number, count: (text: string) => number): Promise<{ text: string; tokens: number }> {
    let best = { text: '', tokens: 0 };
    if (!(budget > 0) || picks.length === 0) return best;
    const tryCount = async (n: number) => {
      const text = await this.render(picks, n);
      const tokens = count(text);
      if (tokens <= budget && tokens >= best.tokens) best = { text, tokens };
      return tokens <= budget;
    };
    // Gallop up from a small prefix (a definition line is rarely under 8 tokens), then bisect:
    // renders stay near the answer's size instead of starting from budget / 2 definitions.
    let lo = 0; // fits (0: trivially)
    let hi = picks.length + 1; // does not fit (picks.length + 1: sentinel)
    let n = Math.min(picks.length, Math.max(1, Math.floor(budget / 16)));
    while (n < hi) {
      if (!(await tryCount(n))) {
        hi = n;
        break;
      }
      lo = n;
      if (n === picks.length) break;
      n = Math.min(picks.length, n * 2);
    }
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (await tryCount(mid)) lo = mid;
      else hi = mid;
    }
    return best;
  }
}
