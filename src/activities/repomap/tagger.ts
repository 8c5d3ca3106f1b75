// The tagger: tree-sitter parse + tag query per file, with the grammars loaded on first use.
//
// `createTagger` and `workerMain` are self-contained (they use only their parameters and
// globals): the worker pool runs their source text (`fn.toString()`) in `eval` workers, so the
// same code serves the main thread, tsx, jest and the compiled build without a separate JS file.
import path from 'node:path';
import type { LangSpec } from './languages';
import { LANGS } from './languages';

/** A definition: [name, kind, line, endLine] (1-based lines; line is the line of the name). */
export type DefTag = [string, string, number, number];
/** Tags of one file. `r`: referenced names with counts, first appearance first. */
export interface FileTags {
  d: DefTag[];
  r: [string, number][];
  /** Context-only blocks [line, endLine] (e.g. Rust `impl`), shown around their definitions. */
  s?: [number, number][];
  /** Why the file was not parsed (too large, binary, minified): cached like tags. */
  skip?: string;
}

/** One file's outcome: tags (cacheable) or an error (not cached: may work next time). */
export type TagResult = { tags: FileTags } | { error: string };

export interface TaggerOptions {
  /** Absolute path of web-tree-sitter's CommonJS entry. */
  wtsPath: string;
  /** Directory holding the grammar .wasm files. */
  wasmDir: string;
  langs: Record<string, LangSpec>;
  maxBytes: number;
  parseTimeoutMs: number;
}

export interface Tagger {
  tagFile(absPath: string, lang: string): Promise<TagResult>;
  tagSource(source: string, lang: string): Promise<TagResult>;
  /** Warnings (grammar failed to load, …) since the last call. */
  takeWarnings(): string[];
}

/* eslint-disable @typescript-eslint/no-require-imports -- self-contained: runs in eval workers too */
/** Self-contained (see the file comment): `require` is the only free name it uses. */
export function createTagger(opts: TaggerOptions): Tagger {
  const fs = require('node:fs') as typeof import('node:fs');
  const path = require('node:path') as typeof import('node:path');
  const TS = require(opts.wtsPath) as typeof import('web-tree-sitter');
  type State = {
    language: import('web-tree-sitter').Language;
    parser: import('web-tree-sitter').Parser;
    query: import('web-tree-sitter').Query;
  } | null;
  let init: Promise<void> | undefined;
  const states = new Map<string, Promise<State>>();
  const warnings: string[] = [];

  const load = (lang: string): Promise<State> => {
    let st = states.get(lang);
    if (!st) {
      st = (async (): Promise<State> => {
        const spec = opts.langs[lang];
        if (!spec) return null;
        try {
          if (!init) init = TS.Parser.init();
          await init;
          const language = await TS.Language.load(fs.readFileSync(path.join(opts.wasmDir, spec.wasm)));
          const query = new TS.Query(language, spec.query);
          const parser = new TS.Parser();
          parser.setLanguage(language);
          return { language, parser, query };
        } catch (e) {
          warnings.push(`repomap: grammar for ${lang} unavailable, its files are left out of the map: ${String((e as Error)?.message ?? e)}`);
          return null;
        }
      })();
      states.set(lang, st);
    }
    return st;
  };

  const looksGenerated = (src: string): boolean => {
    if (src.length < 20000) return false;
    let lines = 1;
    for (let i = src.indexOf('\n'); i !== -1; i = src.indexOf('\n', i + 1)) lines++;
    return src.length / lines > 400;
  };

  const PRIORITY: Record<string, number> = { method: 3, class: 3, interface: 3, struct: 3, enum: 3, type: 2, function: 2, module: 2, macro: 2 };
  const NAME_OK = /^[^\s]{1,100}$/;
  const WORD = /[\p{L}\p{N}_$]{1,100}/uy;

  const tagSource = async (source: string, lang: string): Promise<TagResult> => {
    const st = await load(lang);
    if (!st) return { error: `no grammar for ${lang}` };
    if (looksGenerated(source)) return { tags: { d: [], r: [], skip: 'generated' } };
    let tree: import('web-tree-sitter').Tree | null = null;
    try {
      const deadline = Date.now() + opts.parseTimeoutMs;
      tree = st.parser.parse(source, null, { progressCallback: () => Date.now() > deadline });
      if (!tree) {
        st.parser.reset(); // a cancelled parse would otherwise resume on the next file
        return { error: 'parse timed out' };
      }
      const matches = st.query.matches(tree.rootNode, { timeoutMicros: opts.parseTimeoutMs * 1000 });
      if (Date.now() > deadline + opts.parseTimeoutMs) return { error: 'query timed out' };
      const defs = new Map<string, DefTag>();
      const defStarts = new Set<number>();
      const refs: [number, string][] = [];
      const scopes: [number, number][] = [];
      for (const m of matches) {
        let nameNode: import('web-tree-sitter').Node | undefined;
        let defNode: import('web-tree-sitter').Node | undefined;
        let kind = '';
        let ref = false;
        for (const c of m.captures) {
          const n = c.name;
          if (n.startsWith('name.definition.')) {
            nameNode = c.node;
            kind = n.slice(16);
          } else if (n.startsWith('name.reference.')) {
            nameNode = c.node;
            ref = true;
          } else if (n.startsWith('definition.')) {
            defNode = c.node;
          } else if (n === 'scope') {
            const e = c.node.endPosition;
            const s = c.node.startPosition.row;
            scopes.push([s + 1, (e.column === 0 && e.row > s ? e.row - 1 : e.row) + 1]);
          }
        }
        if (!nameNode) continue;
        if (ref) {
          // A referenced name is an identifier: read it from the source (Node.endIndex is a
          // call into wasm, and references are most captures).
          WORD.lastIndex = nameNode.startIndex;
          const word = WORD.exec(source);
          if (word) refs.push([nameNode.startIndex, word[0]]);
          continue;
        }
        const name = source.slice(nameNode.startIndex, nameNode.endIndex);
        if (!NAME_OK.test(name)) continue;
        const line = nameNode.startPosition.row + 1;
        const whole = defNode ?? nameNode;
        const e = whole.endPosition;
        const s = whole.startPosition.row;
        const endLine = Math.max(line, (e.column === 0 && e.row > s ? e.row - 1 : e.row) + 1);
        const key = `${line}\u0000${name}`;
        const prev = defs.get(key);
        if (!prev || (PRIORITY[kind] ?? 1) > (PRIORITY[prev[1]] ?? 1)) defs.set(key, [name, kind, line, endLine]);
        defStarts.add(nameNode.startIndex);
      }
      const counts = new Map<string, number>();
      for (const [start, name] of refs) {
        if (defStarts.has(start)) continue;
        counts.set(name, (counts.get(name) ?? 0) + 1);
      }
      const d = [...defs.values()].sort((a, b) => a[2] - b[2] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const tags: FileTags = { d, r: [...counts] };
      if (scopes.length) tags.s = scopes;
      return { tags };
    } catch (e) {
      // A wasm trap can leave the parser unusable: use a fresh one for the next file.
      try {
        st.parser.delete();
      } catch {
        // already unusable
      }
      try {
        st.parser = new TS.Parser();
        st.parser.setLanguage(st.language);
      } catch (again) {
        states.set(lang, Promise.resolve(null));
        warnings.push(`repomap: tree-sitter failed for ${lang}, its files are left out of the map: ${String((again as Error)?.message ?? again)}`);
      }
      return { error: String((e as Error)?.message ?? e) };
    } finally {
      tree?.delete();
    }
  };

  return {
    tagSource,
    async tagFile(absPath: string, lang: string): Promise<TagResult> {
      let buf: Buffer;
      try {
        const st = fs.statSync(absPath);
        if (!st.isFile()) return { error: 'not a file' };
        if (st.size > opts.maxBytes) return { tags: { d: [], r: [], skip: 'large' } };
        buf = fs.readFileSync(absPath);
      } catch (e) {
        return { error: String((e as Error)?.message ?? e) };
      }
      if (buf.subarray(0, 8000).includes(0)) return { tags: { d: [], r: [], skip: 'binary' } };
      return tagSource(buf.toString('utf8'), lang);
    },
    takeWarnings(): string[] {
      return warnings.splice(0);
    },
  };
}

/** Worker entry (self-contained): answers `{ id, jobs: [{ i, abs, lang }] }` with `{ id, out, warnings }`. */
export function workerMain(make: typeof createTagger): void {
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const tagger = make(wt.workerData as TaggerOptions);
  let chain: Promise<void> = Promise.resolve();
  wt.parentPort!.on('message', (msg: { id: number; jobs: { i: number; abs: string; lang: string }[] }) => {
    chain = chain.then(async () => {
      const out: { i: number; r: TagResult }[] = [];
      for (const job of msg.jobs) {
        let r: TagResult;
        try {
          r = await tagger.tagFile(job.abs, job.lang);
        } catch (e) {
          r = { error: String((e as Error)?.message ?? e) };
        }
        out.push({ i: job.i, r });
      }
      wt.parentPort!.postMessage({ id: msg.id, out, warnings: tagger.takeWarnings() });
    });
  });
}
/* eslint-enable @typescript-eslint/no-require-imports */

export function taggerOptions(): TaggerOptions {
  return {
    wtsPath: require.resolve('web-tree-sitter'),
    wasmDir: path.dirname(require.resolve('tree-sitter-wasms/out/tree-sitter-python.wasm')),
    langs: LANGS,
    maxBytes: 1024 * 1024,
    parseTimeoutMs: 5000,
  };
}
