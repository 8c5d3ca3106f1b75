// What free text names: repository paths and code identifiers. Used on the task's title,
// description and criteria, and on test output (Python tracebacks, jest/node stack frames,
// `path:line` references), to personalise the map and pick files to show.

const MAX_IDENTS = 300;
const MAX_PATHS = 100;
/** A basename naming more files than this is too ambiguous to count as a mention. */
const MAX_BASENAME_MATCHES = 3;

// English words that look like identifiers when capitalised or backticked, and words every
// test run or language prints (not worth a ×10).
const STOP = new Set(
  `a about above after again against all also am an and any are aren as at be because been before being below between both but by
can cannot could did didn do does doesn doing don down during each else even ever every few for from further get got had has hasn
have having he her here hers herself him himself his how however i if in into is isn it its itself just let like may me might more
most must my myself need no nor not now of off on once only or other ought our ours ourselves out over own per please same shall
she should so some such than that the their theirs them themselves then there these they this those through to too under until up
upon us use used using very via was wasn we were weren what when where which while who whom why will with without won would yet
you your yours yourself yourselves add added adds change changed changes fix fixed fixes make makes made new old instead should
implement implements implemented return returns returned value values test tests file files line lines function functions method
methods class classes error errors type types case cases call calls called code data list name names number string first last
true false null none nil undefined self this super def fn func var let const static public private protected async await import
from export default extends implements interface package struct enum impl trait mod pub use module require include
expect received expected tobe toequal tostrictequal tothrow tohavebeencalled tohavebeencalledwith tomatch tocontain tobetruthy
tobefalsy tobedefined tobeundefined tobenull tohavelength tomatchobject tohaveproperty describe it beforeeach aftereach beforeall
afterall assert assertequal assertequals asserttrue assertfalse assertionerror traceback most recent last object anonymous
promise node internal process processticksandrejections runmicrotasks modulejob asyncmodule todo fixme note see ok fail failed
failure pass passed passing skip skipped error exception warning debug info main init index src lib test spec tests`.split(/\s+/),
);

const IDENT = /[A-Za-z_$][A-Za-z0-9_$]*/g;
const SNAKE = /^_*[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)+_*$/;
const CAMEL = /^[a-z$][a-z0-9$]*[A-Z][A-Za-z0-9$]*$/;
// PascalCase with at least two capitals (`ConfigError`, `HTTPServer`; not `The`, not `JSON`).
const PASCAL = /^(?=(?:[^A-Z]*[A-Z]){2})[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$/;
const CONSTANT = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/;

function codeLike(word: string): boolean {
  return SNAKE.test(word) || CAMEL.test(word) || PASCAL.test(word) || CONSTANT.test(word);
}

function keep(word: string): boolean {
  return word.length >= 3 && word.length <= 80 && !STOP.has(word.toLowerCase()) && /[A-Za-z]/.test(word);
}

/** Paths: index every suffix of every known file at a `/` boundary. */
class PathIndex {
  private readonly bySuffix = new Map<string, string[]>();
  private readonly byModule = new Map<string, string[]>();

  constructor(known: string[]) {
    for (const file of known) {
      const parts = file.split('/');
      for (let k = 0; k < parts.length; k++) {
        const suffix = parts.slice(k).join('/');
        push(this.bySuffix, suffix, file);
        // Module paths without extension (`pkg/mod` for pkg/mod.py, pkg/mod for pkg/mod/__init__.py).
        const dot = suffix.lastIndexOf('.');
        if (dot > suffix.lastIndexOf('/') + 1) {
          let mod = suffix.slice(0, dot);
          if (mod.endsWith('/__init__')) mod = mod.slice(0, -'/__init__'.length);
          if (mod) push(this.byModule, mod, file);
        }
      }
    }
  }

  /** Known files a path-like token names: the longest suffix of it that is a known file suffix. */
  lookup(token: string): string[] {
    const parts = token.split('/').filter((p) => p && p !== '.');
    for (let k = 0; k < parts.length; k++) {
      const hit = this.bySuffix.get(parts.slice(k).join('/'));
      if (!hit) continue;
      if (k === parts.length - 1 && hit.length > MAX_BASENAME_MATCHES) return [];
      return hit;
    }
    return [];
  }

  /** Known files a dotted module name (`pkg.sub.mod`) names. */
  lookupModule(dotted: string): string[] {
    const hit = this.byModule.get(dotted.replace(/\./g, '/'));
    return hit && hit.length <= MAX_BASENAME_MATCHES && dotted.includes('.') ? hit : [];
  }
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (!list) map.set(key, [value]);
  else if (list[list.length - 1] !== value) list.push(value);
}

// A path-ish token: letters, digits, _ . - / \ @ + and an extension; optional :line[:col].
const PATH_TOKEN = /(?:[A-Za-z]:)?[\w@+.~/\\-]*[\w@+-]\.[A-Za-z][\w+-]{0,9}(?::\d+)*/g;
// A dotted name (module or attribute path).
const DOTTED = /[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+/g;
const BACKTICKED = /`([^`\n]{1,200})`/g;
// Function names in stack traces: Python `, in name`; JS `at name (` / `at Class.name (`; Go/Rust
// `pkg.Name(` frames are covered by the call pattern.
const PY_FRAME = /\bline \d+, in ([A-Za-z_][\w]*)/g;
const JS_FRAME = /\bat (?:async )?(?:new )?([A-Za-z_$][\w$.<>]*) \(/g;
// `name(` (no space: prose puts one before a parenthesis, code does not).
const CALL = /([A-Za-z_$][\w$]*)\(/g;
// Definitions spelled out in prose or code: `def name`, `function name`, `fn name`, `func name`;
// `class Name`, `interface Name`, … (capitalised: "the class handles" is prose).
const DEFINED_FN = /\b(?:def|function|fn|func)\s+([A-Za-z_$][\w$]*)/g;
const DEFINED_TYPE = /\b(?:class|interface|struct|enum|trait|type)\s+([A-Z][\w$]*)/g;

export function extractMentions(text: string, knownFiles: string[]): { paths: string[]; idents: string[] } {
  const index = new PathIndex(knownFiles);
  const paths: string[] = [];
  const seenPath = new Set<string>();
  const addPaths = (files: string[]) => {
    for (const f of files) {
      if (seenPath.has(f) || paths.length >= MAX_PATHS) continue;
      seenPath.add(f);
      paths.push(f);
    }
  };

  const idents: string[] = [];
  const seenIdent = new Set<string>();
  const addIdent = (word: string, strong: boolean) => {
    if (idents.length >= MAX_IDENTS || seenIdent.has(word)) return;
    if (!keep(word)) return;
    if (!strong && !codeLike(word)) return;
    seenIdent.add(word);
    idents.push(word);
  };

  const tried = new Set<string>();
  for (const m of text.matchAll(PATH_TOKEN)) {
    if (paths.length >= MAX_PATHS) break;
    const token = m[0].replace(/(?::\d+)+$/, '').replace(/\\/g, '/');
    if (tried.has(token)) continue;
    tried.add(token);
    addPaths(index.lookup(token));
  }
  const triedModules = new Set<string>();
  for (const m of text.matchAll(DOTTED)) {
    if (paths.length >= MAX_PATHS) break;
    if (triedModules.has(m[0])) continue;
    triedModules.add(m[0]);
    addPaths(index.lookupModule(m[0]));
  }

  // Identifiers, strongest evidence first: frames of stack traces, definitions and calls,
  // backticked code, then code-shaped words anywhere.
  for (const m of text.matchAll(PY_FRAME)) addIdent(m[1], true);
  for (const m of text.matchAll(JS_FRAME)) {
    const parts = m[1].split('.').filter((p) => !p.startsWith('<'));
    if (parts.length) addIdent(parts[parts.length - 1], true);
  }
  for (const m of text.matchAll(DEFINED_FN)) addIdent(m[1], true);
  for (const m of text.matchAll(DEFINED_TYPE)) addIdent(m[1], true);
  for (const m of text.matchAll(BACKTICKED)) for (const w of m[1].match(IDENT) ?? []) addIdent(w, true);
  for (const m of text.matchAll(CALL)) addIdent(m[1], true);
  for (const m of text.matchAll(IDENT)) {
    if (idents.length >= MAX_IDENTS) break;
    addIdent(m[0], false);
  }
  return { paths, idents };
}
