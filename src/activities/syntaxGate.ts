// The syntax gate (design rule 9: changed files are parsed before any command runs): each
// changed file is parsed with the tree-sitter grammar the repository map uses; ERROR and
// MISSING nodes in a file that parsed cleanly before the change are the change's fault and end
// the attempt as `invalid_syntax`, fed back with the lines around each error. A file that
// already had parse errors (or a grammar tree-sitter reads differently) is not held against it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Language, Parser, type Node } from 'web-tree-sitter';
import { langOf, LANGS, type LangId } from './repomap/languages';
import { taggerOptions } from './repomap/tagger';
import type { SyntaxProblem } from './types';

/** Files larger than this are not gated (a generated file, a bundle): the parse is synchronous. */
export const MAX_GATED_BYTES = 256 * 1024;
/** A parse that takes longer is given up (no gate for that file): it runs on the worker's event loop. */
const PARSE_DEADLINE_MS = 300;
const MAX_PROBLEMS_PER_FILE = 3;
const CONTEXT_LINES = 2;

let init: Promise<void> | undefined;
const parsers = new Map<LangId, Promise<Parser | undefined>>();

function parserFor(lang: LangId): Promise<Parser | undefined> {
  let p = parsers.get(lang);
  if (!p) {
    p = (async () => {
      init ??= Parser.init();
      await init;
      try {
        const language = await Language.load(readFileSync(path.join(taggerOptions().wasmDir, LANGS[lang].wasm)));
        const parser = new Parser();
        parser.setLanguage(language);
        return parser;
      } catch {
        // No grammar, no gate: the checks still run.
        return undefined;
      }
    })();
    parsers.set(lang, p);
  }
  return p;
}

/** The parse errors in `source` (empty: it parses, or it is not a language the gate knows). */
export async function parseErrors(relPath: string, source: string): Promise<SyntaxProblem[]> {
  const lang = langOf(relPath);
  if (!lang || Buffer.byteLength(source) > MAX_GATED_BYTES) return [];
  const parser = await parserFor(lang);
  if (!parser) return [];
  let tree: ReturnType<Parser['parse']>;
  try {
    const deadline = Date.now() + PARSE_DEADLINE_MS;
    tree = parser.parse(source, null, { progressCallback: () => Date.now() > deadline });
  } catch {
    // A trapped parser is dropped (the next file gets a fresh one); this file is not gated.
    parsers.delete(lang);
    return [];
  }
  if (!tree) {
    parser.reset(); // a parse given up would otherwise resume on the next file
    return [];
  }
  try {
    if (!tree.rootNode.hasError) return [];
    const found: Node[] = [];
    const visit = (n: Node) => {
      if (found.length >= MAX_PROBLEMS_PER_FILE) return;
      if (n.isError || n.isMissing) {
        found.push(n);
        return;
      }
      if (n.hasError) for (const c of n.children) if (c) visit(c);
    };
    visit(tree.rootNode);
    const lines = source.split('\n');
    return found.map((n) => {
      const line = n.startPosition.row + 1;
      return {
        path: relPath,
        line,
        column: n.startPosition.column + 1,
        kind: n.isMissing ? ('MISSING' as const) : ('ERROR' as const),
        excerpt: excerpt(lines, line, n.isMissing ? `missing ${n.type}` : 'syntax error'),
      };
    });
  } finally {
    tree.delete();
  }
}

/**
 * The errors the change brought in: `before` holds each changed file's content before the
 * change (null: it did not exist), `after` after it (null: deleted).
 */
export async function introducedErrors(files: { path: string; before: string | null; after: string | null }[]): Promise<SyntaxProblem[]> {
  const out: SyntaxProblem[] = [];
  for (const f of files) {
    if (f.after === null) continue;
    const now = await parseErrors(f.path, f.after);
    if (!now.length) continue;
    if (f.before !== null && (await parseErrors(f.path, f.before)).length) continue;
    out.push(...now);
  }
  return out;
}

function excerpt(lines: string[], line: number, what: string): string {
  const from = Math.max(1, line - CONTEXT_LINES);
  const to = Math.min(lines.length, line + CONTEXT_LINES);
  const width = String(to).length;
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    const text = lines[n - 1].length > 200 ? `${lines[n - 1].slice(0, 200)}…` : lines[n - 1];
    out.push(`${n === line ? '>' : ' '}${String(n).padStart(width)} | ${text}${n === line ? `   <- ${what}` : ''}`);
  }
  return out.join('\n');
}
