// A file too large to show whole, as a view built around its targets (the definitions the task
// names, stubs, lines a failure names): each target whole; the imports and the enclosing class's
// header; the lines that call it and the definitions it calls; its neighbours of the same kind
// (the template a person would copy) — then more definitions by rank, until the view's token
// share is used. Pure: the prompt builder (prompt.ts) reads the file and gives the share.
import type { RankedDef } from './repomap';
import { mergeSpans, renderMerged } from './promptSpans';
import { countTokens } from './tokens';

/** `stub`: the repository map found its body a placeholder (repomap/stubs.ts). */
type Def = Pick<RankedDef, 'name' | 'kind' | 'line' | 'endLine' | 'stub'>;
type Span = [number, number];
/**
 * A part of the view, most important first; `short` is tried when `span` does not fit; `cut`:
 * when neither fits, as many of its first lines as do.
 */
export interface Candidate {
  span: Span;
  short?: Span;
  cut?: boolean;
}

/** What a view offers of a file, in lines (but the last). */
const LIMIT = {
  /** A definition longer than this is offered by its head (`headLines`) first when it does not fit whole. */
  longDef: 80,
  headLines: 20,
  /** The module header (docstring, imports). */
  moduleHeader: 40,
  /** A class header: its line and up to this many after it (docstring, fields). */
  classHeader: 12,
  /** Lines that call a target, at most; the first `firstCallSites` before the code around it and its siblings. */
  callSites: 30,
  firstCallSites: 8,
  /** Without a named target, stubs are the targets: at most this many (a file of abstract methods is not all targets). */
  stubTargets: 3,
  /** Either side of a target, shown once its callers and callees are in. */
  context: 20,
  /** Tokens of rendering overhead per span: its `@@ lines a-b @@` line, the `⋮` between, its range in the header. */
  spanTokens: 15,
};
const CONSTRUCTOR = /^(__init__|constructor|initialize|new)$/;
/** A comment's line (or a block comment's, or one opening a docstring): a name there is no call. */
const COMMENT = /^\s*(#|\/\/|\/\*|\*|"{3}|'{3})/;

/** A definition's first line, taking in the decorators and comments right above it (up to 15 lines). */
export function leadingComments(lines: string[], line: number): number {
  let start = line;
  while (start > 1 && line - start < 15 && /^\s*(@|#(?!include|define|if|endif|else)|\/\/|\/\*|\*|"{3}|'{3})/.test(lines[start - 2] ?? '')) start--;
  return start;
}

/** Words of an identifier (snake_case, camelCase), lower case. */
const words = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().split(/[_\W]+/).filter((w) => w.length > 2);

const contains = (outer: Def, inner: Def) => outer !== inner && outer.line <= inner.line && inner.endLine <= outer.endLine && outer.endLine - outer.line > inner.endLine - inner.line;

/**
 * The parts of the view in the order they are worth showing. `defs` most relevant first (the
 * repository map's order); `names`: identifiers the task or the failures name; `anchors`:
 * lines the failures name.
 */
export function viewCandidates(lines: string[], defs: Def[], names: ReadonlySet<string>, anchors: Pick<Def, 'line' | 'endLine'>[]): Candidate[] {
  const n = lines.length;
  // Nothing to build around (data, a language without a tagger): its first lines, as many as fit.
  if (!defs.length) return [{ span: [1, n], cut: true }];
  const start = (d: Def) => leadingComments(lines, d.line);
  const whole = (d: Def): Candidate => {
    const span: Span = [start(d), Math.min(n, Math.max(d.line, d.endLine))];
    return span[1] - span[0] >= LIMIT.longDef ? { span, short: [span[0], Math.min(span[1], d.line + LIMIT.headLines)] } : { span };
  };
  const parents = parentsOf(defs);
  const parentOf = (d: Def) => parents.get(d);
  const leaf = (d: Def) => !parents.hasChildren.has(d);
  const stubs = new Set(defs.filter((d) => d.stub));
  const innermost = (line: number) => defs.filter((e) => e.line <= line && line <= e.endLine).sort((a, b) => a.endLine - a.line - (b.endLine - b.line))[0];

  // The targets: named definitions and what failures point at; else stubs; else the top-ranked.
  const targets: Def[] = defs.filter((d) => names.has(d.name));
  const out: Candidate[] = [];
  for (const a of anchors) {
    const d = innermost(a.line);
    if (d && d.endLine - d.line < LIMIT.longDef && leaf(d)) targets.push(d);
    else out.push({ span: [Math.max(1, a.line - 12), Math.min(n, a.endLine + 12)] });
  }
  // Stubs when nothing is named (beside a named target they are mostly abstract methods).
  if (!targets.length && !out.length) targets.push(...[...stubs].slice(0, LIMIT.stubTargets));
  if (!targets.length && !out.length) targets.push(...defs.filter(leaf).slice(0, 3));
  // A named class around a named method is the method's context (its header, its constructor),
  // not a target: whole, all its lines would count as the target's and all its methods as called.
  const unique = [...new Set(targets)].filter((t) => !targets.some((u) => contains(t, u)));
  out.unshift(...unique.map(whole));

  // The module's header (docstring, imports) and each target's enclosing definitions' headers.
  const firstDef = Math.min(n + 1, ...defs.map(start));
  out.push({ span: [1, Math.max(Math.min(n, 8), Math.min(firstDef - 1, LIMIT.moduleHeader))] });
  const containers = new Set<Def>();
  for (const t of unique) for (let p = parentOf(t); p; p = parentOf(p)) containers.add(p);
  for (const c of containers) {
    const firstChild = Math.min(c.endLine + 1, ...defs.filter((d) => contains(c, d)).map(start));
    out.push({ span: [start(c), Math.max(c.line, Math.min(firstChild - 1, c.line + LIMIT.classHeader))] });
  }
  // Its constructor says what the instance holds (the attributes a method body uses).
  const ctors = defs.filter((d) => CONSTRUCTOR.test(d.name) && [...containers].some((c) => parentOf(d) === c) && !unique.includes(d));
  out.push(...ctors.map(whole));

  // The lines that call a target, with their definition's signature: a call's shape (`name(`),
  // not in a comment nor a definition's own line (a same-named method elsewhere); the first few
  // now, the rest after the code around the target (a common name is called all over a file).
  const inTarget = (line: number) => unique.some((t) => t.line <= line && line <= t.endLine);
  const callers: Def[] = [];
  const laterSites: Candidate[] = [];
  const targetNames = [...new Set(unique.map((t) => t.name))].filter((name) => /^\w+$/.test(name));
  if (targetNames.length) {
    const call = new RegExp(`(?<![\\w$])(?:${targetNames.join('|')})\\s*\\(`);
    const defLines = new Set(defs.filter((d) => targetNames.includes(d.name)).map((d) => d.line));
    let sites = 0;
    for (let i = 1; i <= n && sites < LIMIT.callSites; i++) {
      const text = lines[i - 1];
      if (inTarget(i) || defLines.has(i) || COMMENT.test(text) || !call.test(text)) continue;
      const into = sites++ < LIMIT.firstCallSites ? out : laterSites;
      const caller = innermost(i);
      if (caller && !containers.has(caller)) {
        into.push({ span: [caller.line, caller.line] });
        callers.push(caller);
      }
      into.push({ span: [Math.max(1, i - 1), Math.min(n, i + 1)] });
    }
  }

  // The definitions a target calls (a name of this file in its body).
  const taken = new Set<Def>([...unique, ...containers, ...ctors]);
  const body = unique.map((t) => lines.slice(t.line, t.endLine).join('\n')).join('\n');
  for (const d of defs) {
    if (taken.has(d) || !/^\w+$/.test(d.name) || !leaf(d)) continue;
    if (new RegExp(`(?<![\\w$])${d.name}(?![\\w$])`).test(body)) {
      out.push(whole(d));
      taken.add(d);
    }
  }

  // The code right around each target.
  for (const t of unique) out.push({ span: [start(t) - LIMIT.context, t.endLine + LIMIT.context], short: [start(t) - 8, t.endLine + 8] });

  // Neighbours of the same kind under the same parent: the template a person would copy —
  // those sharing a word with the target's name first, then the nearest; not other stubs.
  const siblings: Def[] = [];
  for (const t of unique) {
    const parent = parentOf(t);
    const mine = words(t.name);
    const overlap = (d: Def) => mine.filter((w) => d.name.toLowerCase().includes(w)).length;
    siblings.push(
      ...defs
        .filter((d) => !taken.has(d) && d.kind === t.kind && parentOf(d) === parent && !stubs.has(d))
        .sort((a, b) => overlap(b) - overlap(a) || Math.abs(a.line - t.line) - Math.abs(b.line - t.line)),
    );
  }
  const near = [...new Set(siblings)];
  out.push(...near.slice(0, 2).map(whole));
  out.push(...laterSites);
  out.push(...[...new Set(callers)].filter((c) => !taken.has(c)).map(whole));
  out.push(...near.slice(2).map(whole));
  // Then the rest, by rank (leaf definitions: a class whole would crowd out everything else).
  out.push(...defs.filter((d) => !taken.has(d) && leaf(d)).map(whole));
  return out;
}

/** Each definition's innermost enclosing one (definitions nest: a sweep with a stack). */
function parentsOf(defs: Def[]): Map<Def, Def | undefined> & { hasChildren: Set<Def> } {
  const sorted = [...defs].sort((a, b) => a.line - b.line || b.endLine - a.endLine);
  const out = Object.assign(new Map<Def, Def | undefined>(), { hasChildren: new Set<Def>() });
  const stack: Def[] = [];
  for (const d of sorted) {
    while (stack.length && !contains(stack[stack.length - 1], d)) stack.pop();
    const p = stack[stack.length - 1];
    out.set(d, p);
    if (p) out.hasChildren.add(p);
    stack.push(d);
  }
  return out;
}

/**
 * The view: candidates taken in order while the estimate fits `tokens` (one that does not fit
 * is tried short, or cut, then skipped), rendered with line numbers; the header says what was
 * left out. Lines in `shownElsewhere` (a READ's part of the file) are not shown again.
 * Undefined when nothing fits.
 */
export function renderView(
  rel: string,
  text: string,
  defs: Def[],
  candidates: Candidate[],
  tokens: number,
  shownElsewhere: Span[] = [],
): { text: string; spans: Span[] } | undefined {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const n = lines.length;
  // Lines are counted when first needed: a view shows a few hundred of a file's many thousands.
  const cost = new Int32Array(n).fill(-1);
  const lineCost = (i: number) => (cost[i - 1] < 0 ? (cost[i - 1] = countTokens(lines[i - 1]) + 1) : cost[i - 1]);
  const chosen: Span[] = [];
  const estimate = (list: Span[]) => {
    const merged = mergeSpans(list);
    let total = LIMIT.spanTokens * merged.length;
    for (const [a, b] of merged) for (let i = a; i <= b && total <= tokens; i++) total += lineCost(i);
    return total;
  };
  const elsewhere = mergeSpans(shownElsewhere);
  /** In the file, and not the lines shown elsewhere: none, one or more pieces. */
  const clip = ([a, b]: Span): Span[] => {
    let pieces: Span[] = [[Math.max(1, a), Math.min(n, b)]];
    for (const [x, y] of elsewhere) pieces = pieces.flatMap(([p, q]): Span[] => (y < p || q < x ? [[p, q]] : [...(p < x ? [[p, x - 1] as Span] : []), ...(y < q ? [[y + 1, q] as Span] : [])]));
    return pieces.filter(([p, q]) => p <= q);
  };
  const fits = (span: Span) => {
    const total = estimate([...chosen, ...clip(span)]);
    return total <= room ? total : undefined;
  };
  // The header (path, counts, what was left out) is a few dozen tokens: room kept for it.
  const room = tokens - 80;
  let used = 0;
  for (const c of candidates) {
    // Full: not even a one-line span would fit.
    if (used > room - LIMIT.spanTokens - 2) break;
    let take = [c.span, c.short].find((span) => span && span[0] <= n && fits(span) !== undefined);
    if (!take && c.cut) {
      // The longest head of the span that fits: a binary search on its end.
      let [lo, hi] = [c.span[0] - 1, Math.min(n, c.span[1])];
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (fits([c.span[0], mid]) !== undefined) lo = mid;
        else hi = mid - 1;
      }
      if (lo >= c.span[0]) take = [c.span[0], lo];
    }
    if (take) {
      used = fits(take)!;
      chosen.push(...clip(take));
    }
  }
  // The estimate counts line by line: drop the last parts while the real count is over.
  while (chosen.length) {
    const view = render(rel, lines, defs, mergeSpans(chosen), elsewhere);
    if (countTokens(view) <= tokens) return { text: view, spans: mergeSpans(chosen) };
    chosen.pop();
  }
  return undefined;
}

function render(rel: string, lines: string[], defs: Def[], merged: Span[], elsewhere: Span[]): string {
  const all = mergeSpans([...merged, ...elsewhere].map(([a, b]): Span => [a, b]));
  const shownLines = all.reduce((k, [a, b]) => k + b - a + 1, 0);
  const unseen = defs.filter((d) => !all.some(([a, b]) => a <= d.line && d.line <= b));
  const listed = unseen.slice(0, 6).map((d) => `${d.name} at ${d.line}-${d.endLine}`);
  const leftOut = `left out: ${lines.length - shownLines} lines${unseen.length ? `, ${unseen.length} definitions such as ${listed.join(', ')}${unseen.length > listed.length ? ', …' : ''}` : ''}`;
  return renderMerged(rel, lines, merged, '', leftOut);
}

/**
 * A large file's view within `tokens`: built around the definitions `names` names, the lines
 * failures name (`anchors`) and its stubs; undefined when nothing fits.
 */
export function fileView(
  rel: string,
  text: string,
  defs: Def[],
  names: ReadonlySet<string>,
  anchors: Pick<Def, 'line' | 'endLine'>[],
  tokens: number,
  shownElsewhere: Span[] = [],
): { text: string; spans: Span[] } | undefined {
  const lines = text.split('\n');
  return renderView(rel, text, defs, viewCandidates(lines, defs, names, anchors), tokens, shownElsewhere);
}

/** The most of what is left one file may take, so the map and the other files keep some room. */
const MAX_SHARE = 0.8;

/**
 * A file's share of the prompt's room left, by relevance: its squared rank over its own and the
 * squared ranks of the files that may still follow it (the top of the ranking not shown yet),
 * never less than `floor` (what its place in the prompt gives it: 0.6 named, 0.5 defining a
 * named identifier, 0.4 ranked) nor more than MAX_SHARE. Squared: PageRank spreads its mass
 * over a long tail (in ESLint's lib the file defining the named function has 0.25, the next
 * eleven 0.33 together), and the room is worth most on the file the change is likely in: a file
 * ranked well above each of the others takes most of the room; files ranked alike keep their floor.
 */
export function rankShare(rank: number, following: number[], floor: number): number {
  const total = rank ** 2 + following.reduce((s, r) => s + r ** 2, 0);
  return Math.min(MAX_SHARE, Math.max(floor, total > 0 ? rank ** 2 / total : 0));
}
