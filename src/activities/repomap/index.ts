// The repository map (issue 7, item 4): tree-sitter definitions and references of the tracked
// files, a file graph ranked by PageRank personalised by what the task names, rendered as an
// elided outline within a token budget. Tags are cached by git blob SHA under `cacheDir`
// (WEAVER_CACHE_DIR: one for every worker process on the host).
//
//   files.ts    which files (git ls-files -s, .weaverignore, vendored/minified paths out unless named)
//   noise.ts    generated, minified, stub and legacy-copy files out unless named
//   languages.ts extensions, grammars and tag queries
//   extract.ts  parsing + queries (in-process, or on the tagging threads for big cold builds)
//   pool.ts     the tagging threads, kept between builds
//   cache.ts    the content-addressed tag cache
//   rank.ts     the graph and personalised PageRank
//   lexical.ts  BM25 of the task's words over definition-level chunks; stubs.ts: stub bodies
//   render.ts   the outline and the token-budget fit
//   mentions.ts paths and identifiers named in free text
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { countTokens } from '../tokens';
import { TagCache } from './cache';
import { tagFiles, type FileTags } from './extract';
import { listMapFiles, type MapFile } from './files';
import { lexicalBoosts, lexicalScores, queryTerms, type LexicalScores } from './lexical';
import { findNoise } from './noise';
import { rankFiles } from './rank';
import { Outliner, type Pick } from './render';

export { extractMentions } from './mentions';
export { clearTagCacheMemory } from './cache';

export interface RepoMapRequest {
  /** A git checkout. */
  dir: string;
  /** Tag cache root, shared by every workspace and worker process on the host (content-addressed by git blob SHA). */
  cacheDir: string;
  /** Paths the task, the model or failing tests named (boost + personalisation). */
  mentionedFiles: string[];
  /** Identifiers named by the task, criteria or failing tests. */
  mentionedIdents: string[];
  /**
   * The task's own words (title, description, criteria): files and definitions they match (BM25)
   * and stubs among them rank higher. Absent: the map ranks by names only (and reads no text).
   */
  queryText?: string;
  /** Files already shown in full elsewhere in the prompt: ranked, but left out of the map text. */
  shownFiles?: string[];
  /** Token budget of the rendered map. */
  tokenBudget: number;
  /** The checkout's index listing (files.ts readIndex), when the caller has read it already. */
  index?: Promise<string>;
}
/** 1-based lines. lexical: BM25 of the definition's chunk against the task's words (if > 0); stub: its body is a placeholder. */
export interface RankedDef {
  name: string;
  kind: string;
  line: number;
  endLine: number;
  lexical?: number;
  stub?: true;
}
/** defs: this file's definitions, most relevant first. lexical: the file's BM25 score (if > 0). */
export interface RankedFile {
  path: string;
  rank: number;
  defs: RankedDef[];
  lexical?: number;
}
export interface RepoMap {
  /** The rendered outline ('' if nothing fits). */
  text: string;
  /** countTokens(text). */
  tokens: number;
  /** Every mapped file with ≥1 definition, highest rank first. */
  ranked: RankedFile[];
  /** The outline again, for another budget and other files left out (no re-ranking). */
  render(tokenBudget: number, shownFiles?: string[]): Promise<{ text: string; tokens: number }>;
  /**
   * files: source files considered; parsed: tagged by this build; fromCache: tags read from the
   * cache (files - parsed - fromCache failed to parse and were left out); tags: definitions +
   * references of all mapped files; ms: wall time of the build.
   */
  stats: { files: number; parsed: number; fromCache: number; ms: number; tags: number };
  /**
   * Files left out as vendored, generated, minified, stubs or legacy copies (the task named none
   * of them): their paths, and the reasons with how many files each ('vendor/', 'v1/', …),
   * most files first.
   */
  skipped: { files: string[]; reasons: { why: string; files: number }[] };
}

/** One line for the prompt: "map: skipped N vendored/generated/duplicate files (vendor/, v1/, …)" ('' if none). */
export function skippedLine(skipped: RepoMap['skipped'], maxReasons = 6): string {
  const n = skipped.files.length;
  if (!n) return '';
  const reasons = skipped.reasons.map((r) => r.why);
  const listed = reasons.slice(0, maxReasons).join(', ') + (reasons.length > maxReasons ? ', …' : '');
  return `map: skipped ${n} vendored/generated/duplicate file${n === 1 ? '' : 's'} (${listed})`;
}

const cacheKey = (f: MapFile) => `${f.lang}:${f.sha}`;

function normalise(dir: string, p: string): string {
  let rel = p.replace(/\\/g, '/');
  if (path.isAbsolute(rel)) rel = path.relative(dir, rel).replace(/\\/g, '/');
  return rel.replace(/^(\.\/)+/, '');
}

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export async function buildRepoMap(req: RepoMapRequest): Promise<RepoMap> {
  const t0 = performance.now();
  const laps: string[] = [];
  let tLap = t0;
  const lap = (what: string) => {
    const now = performance.now();
    laps.push(`${what} ${Math.round(now - tLap)}`);
    tLap = now;
  };
  const dir = path.resolve(req.dir);
  const mentionedFiles = new Set(req.mentionedFiles.map((p) => normalise(dir, p)));
  const mentionedIdents = new Set(req.mentionedIdents.filter((s) => s.length > 0));
  const skippedPaths: { path: string; why: string }[] = [];
  const [files, cache] = await Promise.all([listMapFiles(dir, mentionedFiles, skippedPaths, req.index), TagCache.open(req.cacheDir)]);
  lap('list+cache');

  const { tags, parsed, fromCache, todo } = await tagsOf(dir, files, cache);
  lap(`parse(${todo})`);

  const tagged: { path: string; tags: FileTags }[] = [];
  files.forEach((f, i) => {
    const t = tags[i];
    if (t) tagged.push({ path: f.path, tags: t });
  });
  // Generated, minified, stubs and legacy copies: out of the map unless named.
  const noise = findNoise(tagged, mentionedFiles, mentionedIdents);
  const mapped: { path: string; tags: FileTags }[] = [];
  let tagCount = 0;
  tagged.forEach((f, i) => {
    const why = noise.get(i);
    if (why) {
      skippedPaths.push({ path: f.path, why });
      return;
    }
    mapped.push(f);
    tagCount += f.tags.d.length;
    for (const r of f.tags.r) tagCount += r[1];
  });
  const skipped = summariseSkipped(skippedPaths);
  lap('noise');
  // The task's words, and stubs: the files are read again, cold or cached (cheaper than caching
  // every chunk's terms; see README), and only when the task's text is given.
  let lex: LexicalScores | undefined;
  if (req.queryText !== undefined) lex = await lexicalScores(dir, mapped, queryTerms(req.queryText));
  lap(`lexical(${lex?.chunks ?? 0})`);
  const lexical = lex && lexicalBoosts(lex, mentionedIdents);
  const { fileRank, defRank } = rankFiles({ files: mapped, mentionedFiles, mentionedIdents, lexical });
  lap('rank');

  // Files with definitions, highest rank first; each file's definitions most relevant first.
  const order = mapped
    .map((_, i) => i)
    .filter((i) => mapped[i].tags.d.length > 0)
    .sort((a, b) => fileRank[b] - fileRank[a] || byPath(mapped[a].path, mapped[b].path));
  const ranked: RankedFile[] = order.map((i) => {
    const dr = defRank[i];
    const d = mapped[i].tags.d;
    const r = d.map((t) => dr.get(t[0]) ?? 0);
    const idx = d.map((_, k) => k).sort((a, b) => r[b] - r[a] || d[a][2] - d[b][2] || byPath(d[a][0], d[b][0]));
    const defs = idx.map((k): RankedDef => {
      const def: RankedDef = { name: d[k][0], kind: d[k][1], line: d[k][2], endLine: d[k][3] };
      const score = lex?.defs[i].get(def.name);
      if (score) def.lexical = score;
      if (lex?.stubs[i].has(def.name)) def.stub = true;
      return def;
    });
    const file: RankedFile = { path: mapped[i].path, rank: fileRank[i], defs };
    if (lex?.file[i]) file.lexical = lex.file[i];
    return file;
  });

  // The outline: every definition of the files not shown elsewhere, by definition rank, then
  // file rank; definitions no edge reaches follow, file by file.
  const rankPos = new Int32Array(mapped.length);
  order.forEach((i, k) => (rankPos[i] = k));
  const outliner = new Outliner(dir, mapped);
  const render = async (tokenBudget: number, shownFiles: string[] = []) => {
    const shown = new Set(shownFiles.map((p) => normalise(dir, p)));
    const positive: { file: number; line: number; r: number }[] = [];
    const rest: Pick[] = [];
    for (const i of order) {
      if (shown.has(mapped[i].path)) continue;
      const dr = defRank[i];
      for (const [name, , line] of mapped[i].tags.d) {
        const r = dr.get(name) ?? 0;
        if (r > 0) positive.push({ file: i, line, r });
        else rest.push({ file: i, line });
      }
    }
    positive.sort((a, b) => b.r - a.r || rankPos[a.file] - rankPos[b.file] || a.line - b.line);
    return outliner.fit([...positive, ...rest], Math.floor(tokenBudget), countTokens);
  };
  const { text, tokens } = await render(req.tokenBudget, req.shownFiles);
  lap('render');
  if (process.env.WEAVER_REPOMAP_PROFILE) console.error(`repomap: ${laps.join(', ')} ms`);

  return {
    text,
    tokens,
    ranked,
    render,
    stats: { files: files.length, parsed, fromCache, ms: Math.round(performance.now() - t0), tags: tagCount },
    skipped,
  };
}

/**
 * Parses under way in this process, by cache key: a build that needs a file another build is
 * parsing (two tasks on one repository at once) waits for that parse instead of repeating it.
 */
const parsing = new Map<string, Promise<FileTags | undefined>>();

/** Each file's tags: from the cache, from a parse under way, else parsed here (and cached). undefined: failed to parse. */
async function tagsOf(dir: string, files: MapFile[], cache: TagCache): Promise<{ tags: (FileTags | undefined)[]; parsed: number; fromCache: number; todo: number }> {
  const tags: (FileTags | undefined)[] = new Array(files.length);
  const todo: number[] = [];
  const borrowed: Promise<void>[] = [];
  let fromCache = 0;
  files.forEach((f, i) => {
    const key = cacheKey(f);
    const hit = cache.get(key);
    const elsewhere = hit ? undefined : parsing.get(key);
    if (hit) {
      tags[i] = hit;
      fromCache++;
    } else if (elsewhere) {
      borrowed.push(
        elsewhere.then((t) => {
          if (!t) return; // failed there: left out here too
          tags[i] = t;
          fromCache++;
          if (!cache.get(key)) cache.put(key, t); // another cache directory
        }),
      );
    } else todo.push(i);
  });
  const settle = new Map<string, (t: FileTags | undefined) => void>();
  for (const i of todo) {
    const key = cacheKey(files[i]);
    parsing.set(key, new Promise((resolve) => settle.set(key, resolve)));
  }
  let parsed = 0;
  try {
    if (todo.length) {
      const results = await tagFiles(todo.map((i) => ({ abs: path.join(dir, files[i].path), lang: files[i].lang })));
      results.forEach((r, k) => {
        if (!r || !('tags' in r)) return; // failed to parse: left out of this map, tried again next time
        const i = todo[k];
        tags[i] = r.tags;
        cache.put(cacheKey(files[i]), r.tags);
        parsed++;
      });
    }
  } finally {
    todo.forEach((i) => {
      const key = cacheKey(files[i]);
      settle.get(key)?.(tags[i]);
      parsing.delete(key);
    });
  }
  await Promise.all(borrowed);
  await cache.flush();
  return { tags, parsed, fromCache, todo: todo.length };
}

function summariseSkipped(list: { path: string; why: string }[]): RepoMap['skipped'] {
  const paths = new Set<string>();
  const counts = new Map<string, number>();
  for (const { path: p, why } of list) {
    if (paths.has(p)) continue;
    paths.add(p);
    counts.set(why, (counts.get(why) ?? 0) + 1);
  }
  const reasons = [...counts].map(([why, files]) => ({ why, files })).sort((a, b) => b.files - a.files || byPath(a.why, b.why));
  return { files: [...paths].sort(byPath), reasons };
}
