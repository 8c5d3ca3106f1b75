// The files and symbols (test names, frames' functions) the failures name, with library paths
// left out and absolute paths made relative to the run's root where one is known.
import { isJsNoiseFrame, type Block } from './blocks';
import { isRustLibrary } from './cargo';
import type { ExtractFailuresOptions } from './index';
import { JAVA_FRAME_RE, JAVA_LIBRARY_RE } from './junit';

const MAX_FILES = 40;
const MAX_SYMBOLS = 60;

const SOURCE_EXT =
  'py|pyi|js|mjs|cjs|jsx|ts|tsx|mts|cts|go|rs|java|kt|kts|scala|groovy|rb|c|cc|cpp|cxx|h|hh|hpp|cs|fs|php|swift|m|mm|ex|exs|erl|hs|ml|lua|pl|sh|vue|svelte|dart|zig|clj|jl|r|R';
const FILE_TOKEN_RE = new RegExp(`^(?:file://)?((?:[A-Za-z]:)?[^\\s:]*?\\.(?:${SOURCE_EXT})):(\\d+)(?::\\d+)*:?$`);
const FILE_NAME_RE = new RegExp(`^[^\\s]*[\\\\/][^\\s]*\\.(?:${SOURCE_EXT})$`);
const TOKEN_SPLIT_RE = /[\s()'"`[\]<>{},;]+/;
const PY_FILE_RE = /File "([^"]+)", line \d+(?:, in ([\w<>.]+))?/;
const JS_FRAME_RE = /^\s*(?:at\s+)?(?:async\s+)?(?:new\s+)?([^\s(][^(]*?)\s+\((?:file:\/\/)?[^()]+?:\d+:\d+\)\s*\{?\s*$/;
const LIBRARY_PATH_RE =
  /(?:^|[\\/])node_modules[\\/]|site-packages[\\/]|dist-packages[\\/]|[\\/]lib[\\/]python\d[\d.]*[\\/]|^<|^\/usr\/(?:local\/)?(?:lib|share|include)\/|[\\/]_pytest[\\/]|[\\/]pluggy[\\/]|[\\/]\.m2[\\/]|[\\/]\.gradle[\\/]|^node:|^internal[\\/]/;
const NOISE_SYMBOLS = new Set([
  '<anonymous>', '<module>', '<lambda>', 'tests', 'Object', 'Context', 'TestContext', 'Test', 'Suite', 'it', 'test', 'describe', 'run', 'runTest',
  'call', 'apply', 'processTicksAndRejections', 'runInAsyncScope', 'invoke', 'invoke0', 'callFn', 'tryCatch', 'Promise', 'then',
]);

interface Found {
  files: string[];
  symbols: string[];
}

function addSymbol(found: Found, symbol: string): void {
  const s = symbol.trim();
  if (s.length < 2 || s.length > 160 || NOISE_SYMBOLS.has(s) || s.includes('<anonymous>')) return;
  if (/^to[A-Z]\w*$/.test(s)) return; // jest reports the matcher as the top frame's function
  found.symbols.push(s);
}

/** A test's name, then its identifier-like parts (`slug › joins words` -> `slug`; `tests::adds_two` -> `tests`, `adds_two`). */
function addTestName(found: Found, name: string): void {
  // A collection error is named by its file, which is no symbol.
  if (!name || FILE_NAME_RE.test(name)) return;
  // Parametrised ids (`test_x[1-2]`, `TestX/case_3`'s parts stay) collapse to the function.
  name = name.replace(/\[[^\]]*\]$/, '');
  addSymbol(found, name);
  for (const part of name.split(/\s*(?:›|::|\.|\/|\s>\s)\s*/)) {
    const id = part.replace(/\[.*\]$/, '').replace(/\(\)$/, '');
    if (id !== name && /^[A-Za-z_$][\w$]*$/.test(id)) addSymbol(found, id);
  }
}

function scanLine(full: string, found: Found, framework: string): void {
  const line = full.length > 1000 ? full.slice(0, 1000) : full;
  const java = JAVA_FRAME_RE.exec(line);
  if (java) {
    if (JAVA_LIBRARY_RE.test(java[1])) return;
    const file = /^([\w$]+\.(?:java|kt|scala|groovy|clj)):\d+$/.exec(java[3]);
    if (file) {
      const pkg = java[1].split('.').filter((p) => /^[a-z_]/.test(p));
      found.files.push([...pkg, file[1]].join('/'));
    }
    if (!/^(?:<init>|<clinit>|lambda\$.*)$/.test(java[2])) addSymbol(found, java[2]);
    return;
  }
  const py = PY_FILE_RE.exec(line);
  if (py) {
    if (!LIBRARY_PATH_RE.test(py[1])) {
      found.files.push(py[1]);
      if (py[2]) addSymbol(found, py[2]);
    }
    return;
  }
  if (framework !== 'go' && framework !== 'cargo' && line.includes('(')) {
    const js = JS_FRAME_RE.exec(line);
    if (js && !isJsNoiseFrame(line)) {
      const leaf = js[1].replace(/^(?:Object|Context|TestContext|Test|Suite)\./, '').split('.').pop() ?? '';
      addSymbol(found, leaf);
    }
  }
  for (const token of line.split(TOKEN_SPLIT_RE)) {
    if (token.length < 4 || !token.includes('.') || !token.includes(':')) continue;
    const m = FILE_TOKEN_RE.exec(token);
    if (m) found.files.push(m[1]);
  }
}

/** Pytest's long tracebacks: `def f(...)` lines belong to the frame whose `path.py:NN:` line follows. */
function scanPytestDefs(b: Block, found: Found): void {
  let pending: string[] = [];
  for (const l of b.body) {
    const d = /^\s*(?:async\s+)?def (\w+)\(/.exec(l);
    if (d) pending.push(d[1]);
    const loc = /^(\S+\.py):\d+:(?: in (\w+))?/.exec(l);
    if (loc) {
      if (!LIBRARY_PATH_RE.test(loc[1])) {
        for (const p of pending) addSymbol(found, p);
        if (loc[2]) addSymbol(found, loc[2]);
      }
      pending = [];
    }
  }
}

function normalisePath(path: string, roots: string[]): string {
  let p = path.replace(/^file:\/\//, '');
  if (/^[A-Za-z]:\\|\\/.test(p)) p = p.replace(/\\/g, '/');
  for (const root of roots) {
    if (root && p.startsWith(`${root}/`)) {
      p = p.slice(root.length + 1);
      break;
    }
  }
  while (p.startsWith('./')) p = p.slice(2);
  return p;
}

export function collectFilesAndSymbols(blocks: Block[], lines: string[], opts: ExtractFailuresOptions): Found {
  const raw: Found = { files: [], symbols: [] };
  for (const b of blocks) {
    const found: Found = { files: [...b.files], symbols: [] };
    addTestName(found, b.name);
    for (const s of b.symbols) addSymbol(found, s);
    if (b.framework === 'pytest') scanPytestDefs(b, found);
    scanLine(b.header, found, b.framework);
    for (const l of b.body) scanLine(l, found, b.framework);
    raw.files.push(...found.files);
    raw.symbols.push(...found.symbols);
  }

  // Roots: the caller's, pytest's `rootdir:`, and any prefix that turns an absolute path into a
  // relative one also seen (node:test's spec reporter prints both spellings).
  const roots: string[] = [];
  if (opts.root) roots.push(opts.root.replace(/[\\/]+$/, ''));
  for (let i = 0; i < Math.min(lines.length, 200); i++) {
    if (lines[i].startsWith('rootdir: ')) roots.push(lines[i].slice('rootdir: '.length).split(',')[0].trim().replace(/\/+$/, ''));
  }
  const libraryFree = raw.files.filter((f) => !LIBRARY_PATH_RE.test(f.replace(/^file:\/\//, '')) && !isRustLibrary(f) && !/\/src\/(?:runtime|testing|reflect)\/\w+\.go$/.test(f));
  const absolute = libraryFree.filter((f) => f.startsWith('/')).slice(0, 100);
  const relative = libraryFree.filter((f) => !f.startsWith('/') && f.includes('/')).map((f) => f.replace(/^\.\//, '')).slice(0, 100);
  for (const a of absolute) {
    for (const r of relative) {
      if (a.endsWith(`/${r}`)) {
        const root = a.slice(0, a.length - r.length - 1);
        if (root && !roots.includes(root)) roots.push(root);
      }
    }
  }

  const files = dedupe(libraryFree.map((f) => normalisePath(f, roots)).filter((f) => f !== '')).slice(0, MAX_FILES);
  const symbols = dedupe(raw.symbols).slice(0, MAX_SYMBOLS);
  return { files, symbols };
}

export function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}
