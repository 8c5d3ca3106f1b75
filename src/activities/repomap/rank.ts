// The file graph and its ranking, after Aider's repomap.py: an edge from each file that
// references an identifier to each file that defines it, weighted by what the identifier says
// (named by the task ×10, a long snake/kebab/camel name ×10, a _private name ×0.1, defined in
// more than five files ×0.1) and by who references it (a file the task names ×50), √count;
// then PageRank personalised by what the task names and the files its words match (lexical.ts);
// a file's rank is then spread over the definitions its in-edges point at.
import type { FileTags } from './extract';

export interface RankInput {
  /** Sorted by path (node i = files[i]). */
  files: { path: string; tags: FileTags }[];
  mentionedFiles: ReadonlySet<string>;
  mentionedIdents: ReadonlySet<string>;
  /** What the task's words add (lexical.ts lexicalBoosts): personalisation, definitions' shares. */
  lexical?: { file: ArrayLike<number>; named: ArrayLike<number>; defs: Map<string, number>[] };
}

export interface RankOutput {
  /** PageRank of each file (sums to 1). */
  fileRank: Float64Array;
  /** Per file: identifier → rank of its definitions there. */
  defRank: Map<string, number>[];
}

/** A weighted directed graph in compressed rows: u's edges are dst/w[start[u] .. start[u+1]). */
export interface Csr {
  n: number;
  start: Int32Array;
  dst: Int32Array;
  w: Float64Array;
}

/** Builds compressed rows from an edge list (parallel edges are kept; PageRank adds them up). */
export function toCsr(n: number, edges: ReadonlyArray<readonly [number, number, number]>): Csr {
  const start = new Int32Array(n + 1);
  for (const [u] of edges) start[u + 1]++;
  for (let u = 0; u < n; u++) start[u + 1] += start[u];
  const fill = start.slice(0, n);
  const dst = new Int32Array(edges.length);
  const w = new Float64Array(edges.length);
  for (const [u, v, wt] of edges) {
    const e = fill[u]++;
    dst[e] = v;
    w[e] = wt;
  }
  return { n, start, dst, w };
}

/**
 * Personalised PageRank by power iteration (weights normalised per source). The mass of
 * dangling nodes (no out-weight) and the teleport go to `personal` (normalised; uniform when
 * absent or all zero), as networkx's pagerank with `personalization` and `dangling` set to the
 * same vector. Stops when the L1 change of an iteration is below `tolerance` (default 1e-6·n).
 */
export function personalizedPageRank(
  g: Csr,
  personal?: ArrayLike<number>,
  opts: { damping?: number; maxIterations?: number; tolerance?: number } = {},
): Float64Array {
  const { n, start, dst, w } = g;
  const damping = opts.damping ?? 0.85;
  const maxIterations = opts.maxIterations ?? 100;
  // networkx's default (what Aider uses): the L1 change per iteration below 1e-6 per node.
  const tolerance = opts.tolerance ?? 1e-6 * n;
  if (n === 0) return new Float64Array(0);
  const p = new Float64Array(n);
  let psum = 0;
  if (personal) for (let i = 0; i < n; i++) psum += p[i] = Math.max(0, personal[i] || 0);
  if (psum > 0) for (let i = 0; i < n; i++) p[i] /= psum;
  else p.fill(1 / n);

  const frac = new Float64Array(w.length);
  const dangling = new Uint8Array(n);
  for (let u = 0; u < n; u++) {
    let out = 0;
    for (let e = start[u]; e < start[u + 1]; e++) out += w[e];
    if (out <= 0) dangling[u] = 1;
    else for (let e = start[u]; e < start[u + 1]; e++) frac[e] = w[e] / out;
  }

  let x = Float64Array.from(p);
  let next = new Float64Array(n);
  for (let it = 0; it < maxIterations; it++) {
    next.fill(0);
    let lost = 0;
    for (let u = 0; u < n; u++) {
      const xu = x[u];
      if (dangling[u]) {
        lost += xu;
        continue;
      }
      const m = damping * xu;
      for (let e = start[u], end = start[u + 1]; e < end; e++) next[dst[e]] += m * frac[e];
    }
    const teleport = damping * lost + (1 - damping);
    let err = 0;
    for (let v = 0; v < n; v++) {
      next[v] += teleport * p[v];
      err += Math.abs(next[v] - x[v]);
    }
    [x, next] = [next, x];
    if (err < tolerance) break;
  }
  return x;
}

const HAS_ALPHA = /[A-Za-z]/;
const HAS_UPPER = /[A-Z]/;
const HAS_LOWER = /[a-z]/;

/** Aider's identifier weight (without the referencer's ×50). */
export function identWeight(ident: string, definers: number, mentioned: boolean): number {
  let mul = 1;
  const snake = ident.includes('_') && HAS_ALPHA.test(ident);
  const kebab = ident.includes('-') && HAS_ALPHA.test(ident);
  const camel = HAS_UPPER.test(ident) && HAS_LOWER.test(ident);
  if (mentioned) mul *= 10;
  if ((snake || kebab || camel) && ident.length >= 8) mul *= 10;
  if (ident.startsWith('_')) mul *= 0.1;
  if (definers > 5) mul *= 0.1;
  return mul;
}

/** Weight of a reference edge from a file the task names. */
const MENTIONED_REFERENCER = 50;
/** Self-edge of a definition nobody references (keeps it rankable). */
const UNREFERENCED = 0.1;
/**
 * An identifier defined in more files than this says little about any one of them (`get`,
 * `render`, `exports`): unless the task names it, it adds no edges. (Aider keeps such edges at
 * ×0.1 each, but one per definer: a single `get` reference in a large repository then carries
 * more weight than all the file's specific references, and costs millions of edges.)
 */
const MAX_DEFINERS = 25;
/** Share of the teleport going to what the task names (the rest: uniform, so all files rank). */
const PERSONAL_SHARE = 0.9;
/** The words' weight beside named files and identifiers (which say more than prose). */
const LEXICAL_WHEN_NAMED = 0.3;
/** Rank added to a file for what the task says of it (its personalisation share), beside its PageRank. */
const EVIDENCE = 0.5;

function pathParts(rel: string): string[] {
  const parts = rel.split('/');
  const base = parts[parts.length - 1];
  const dot = base.lastIndexOf('.');
  if (dot > 0) parts.push(base.slice(0, dot));
  return parts;
}

export function rankFiles(input: RankInput): RankOutput {
  const { files, mentionedFiles, mentionedIdents } = input;
  const n = files.length;

  // Identifiers defined anywhere, interned; each with its definers (each file once).
  const identOf = new Map<string, number>();
  const names: string[] = [];
  const definersOf: number[][] = [];
  for (let i = 0; i < n; i++) {
    for (const def of files[i].tags.d) {
      const name = def[0];
      let id = identOf.get(name);
      if (id === undefined) {
        identOf.set(name, (id = names.length));
        names.push(name);
        definersOf.push([i]);
      } else {
        const list = definersOf[id];
        if (list[list.length - 1] !== i) list.push(i);
      }
    }
  }
  const idents = names.length;
  const mentioned = new Uint8Array(idents);
  for (const name of mentionedIdents) {
    const id = identOf.get(name);
    if (id !== undefined) mentioned[id] = 1;
  }
  const mul = new Float64Array(idents);
  for (let id = 0; id < idents; id++) mul[id] = identWeight(names[id], definersOf[id].length, mentioned[id] === 1);

  // Edges (src, dst, identifier, weight), in a deterministic order: file order, then the file's
  // references in order of first appearance; then self-edges of unreferenced definitions.
  const eSrc: number[] = [];
  const eIdent: number[] = [];
  const eW: number[] = [];
  const referenced = new Uint8Array(idents);
  for (let i = 0; i < n; i++) {
    const boost = mentionedFiles.has(files[i].path) ? MENTIONED_REFERENCER : 1;
    for (const [name, count] of files[i].tags.r) {
      const id = identOf.get(name);
      if (id === undefined) continue;
      referenced[id] = 1;
      if (definersOf[id].length > MAX_DEFINERS && !mentioned[id]) continue;
      eSrc.push(i);
      eIdent.push(id);
      eW.push(mul[id] * boost * Math.sqrt(count));
    }
  }
  // A self-edge (src = -1: each definer to itself) for definitions nobody references.
  for (let id = 0; id < idents; id++) {
    if (referenced[id]) continue;
    eSrc.push(-1);
    eIdent.push(id);
    eW.push(UNREFERENCED * (mentioned[id] ? 10 : 1));
  }

  // The graph: rows merged per (src, dst) through a dense scratch row (a self-edge of an
  // unreferenced definition goes into its definer's row).
  const selfW = new Float64Array(n);
  let firstSelf = eSrc.length;
  for (let e = 0; e < eSrc.length; e++) {
    if (eSrc[e] >= 0) continue;
    firstSelf = Math.min(firstSelf, e);
    for (const d of definersOf[eIdent[e]]) selfW[d] += eW[e];
  }
  let room = 0;
  for (let e = 0; e < firstSelf; e++) room += definersOf[eIdent[e]].length;
  const start = new Int32Array(n + 1);
  const dst = new Int32Array(room + n);
  const wt = new Float64Array(room + n);
  let used = 0;
  const scratch = new Float64Array(n);
  const touched: number[] = [];
  for (let i = 0, e = 0; i < n; i++) {
    for (; e < firstSelf && eSrc[e] === i; e++) {
      for (const d of definersOf[eIdent[e]]) {
        if (scratch[d] === 0) touched.push(d);
        scratch[d] += eW[e];
      }
    }
    if (selfW[i] > 0) {
      if (scratch[i] === 0) touched.push(i);
      scratch[i] += selfW[i];
    }
    for (const d of touched) {
      dst[used] = d;
      wt[used++] = scratch[d];
      scratch[d] = 0;
    }
    touched.length = 0;
    start[i + 1] = used;
  }
  const graph: Csr = { n, start, dst: dst.subarray(0, used), w: wt.subarray(0, used) };
  const outW = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let e = start[i]; e < start[i + 1]; e++) outW[i] += wt[e];

  // Personalisation: files the task names; files whose path parts are named identifiers
  // (Aider); files defining a named identifier (each identifier's weight shared by its definers).
  const boost = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const rel = files[i].path;
    if (mentionedFiles.has(rel)) boost[i] += 1;
    if (mentionedIdents.size && pathParts(rel).some((p) => mentionedIdents.has(p))) boost[i] += 1;
  }
  for (let id = 0; id < idents; id++) {
    if (!mentioned[id]) continue;
    const defs = definersOf[id];
    for (const d of defs) boost[d] += 1 / defs.length;
  }
  let boosted = 0;
  for (let i = 0; i < n; i++) {
    boost[i] += input.lexical?.named[i] ?? 0; // a stub a failing test names
    boosted += boost[i];
  }
  if (input.lexical) {
    const w = boosted > 0 ? LEXICAL_WHEN_NAMED : 1;
    for (let i = 0; i < n; i++) {
      boost[i] += w * input.lexical.file[i];
      boosted += w * input.lexical.file[i];
    }
  }
  let personal: Float64Array | undefined;
  if (boosted > 0) {
    personal = new Float64Array(n);
    for (let i = 0; i < n; i++) personal[i] = (1 - PERSONAL_SHARE) / n + (PERSONAL_SHARE * boost[i]) / boosted;
  }

  const fileRank = personalizedPageRank(graph, personal);
  // The evidence counts for the file itself too: a personalised file hands most of its rank on
  // to what it references (a helper every file imports would otherwise outrank it).
  if (input.lexical && personal) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += fileRank[i] += (EVIDENCE * PERSONAL_SHARE * boost[i]) / boosted;
    for (let i = 0; i < n; i++) fileRank[i] /= sum;
  }

  // Spread each file's rank over its out-edges, onto (definer, identifier) slots; a named
  // identifier's definitions rank at least as high as their file.
  const slotBase = new Int32Array(idents + 1);
  for (let id = 0; id < idents; id++) slotBase[id + 1] = slotBase[id] + definersOf[id].length;
  const slots = new Float64Array(slotBase[idents]);
  for (let e = 0; e < eSrc.length; e++) {
    const id = eIdent[e];
    const src = eSrc[e];
    const defs = definersOf[id];
    const base = slotBase[id];
    if (src >= 0) {
      const share = (fileRank[src] * eW[e]) / outW[src];
      for (let k = 0; k < defs.length; k++) slots[base + k] += share;
    } else for (let k = 0; k < defs.length; k++) slots[base + k] += (fileRank[defs[k]] * eW[e]) / outW[defs[k]];
  }
  const defRank = files.map(() => new Map<string, number>());
  for (let id = 0; id < idents; id++) {
    const defs = definersOf[id];
    const base = slotBase[id];
    for (let k = 0; k < defs.length; k++) {
      const share = (mentioned[id] ? 1 : 0) + (input.lexical?.defs[defs[k]].get(names[id]) ?? 0);
      const r = slots[base + k] + share * fileRank[defs[k]];
      if (r > 0) defRank[defs[k]].set(names[id], r);
    }
  }
  return { fileRank, defRank };
}
