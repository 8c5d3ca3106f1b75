// Noise (issue 16, item 4): files the map leaves out unless the task names them — generated
// (by header) and minified files, `.pyi`/`.d.ts` stubs beside their source, and legacy copies
// (a `v1/`, `legacy/`, `compat/`, `_vendor/` directory whose definition names mostly repeat the
// rest of its parent directory's). Vendored paths (`vendor/`, `third_party/`, `node_modules/`, …)
// are left out earlier, when the files are listed (files.ts), as they are not even parsed.
import { namedPath } from './files';
import type { FileTags } from './tagger';

/** A legacy copy's directory name. */
const LEGACY_DIR = /^(?:v\d+|legacy|compat|_compat|_vendor|_vendored|old|deprecated)$/i;
/** The share of a legacy directory's definition names also defined in the rest of its parent. */
export const LEGACY_OVERLAP = 0.6;
/** Sources a stub may sit beside: `x.pyi` → `x.py`; `x.d.ts` → `x.ts`, `x.js`, …. */
const STUB_OF: [RegExp, string[]][] = [
  [/\.pyi$/, ['.py']],
  [/\.d\.ts$/, ['.ts', '.tsx', '.js', '.jsx', '.mjs', '.cjs']],
  [/\.d\.mts$/, ['.mts', '.mjs']],
  [/\.d\.cts$/, ['.cts', '.cjs']],
];

/**
 * Which of `files` are noise, by index → reason ('generated', 'minified', '.d.ts stubs', 'v1/',
 * …). A file named in `named` (or under a named directory) is kept, and so is one defining a
 * mentioned identifier that no file kept defines.
 */
export function findNoise(
  files: { path: string; tags: FileTags }[],
  named: ReadonlySet<string>,
  mentionedIdents: ReadonlySet<string>,
): Map<number, string> {
  const noise = new Map<number, string>();
  const paths = new Set(files.map((f) => f.path));

  files.forEach((f, i) => {
    if (f.tags.gen === 'header') noise.set(i, 'generated');
    else if (f.tags.gen === 'minified' || f.tags.skip === 'generated') noise.set(i, 'minified');
    else {
      for (const [re, exts] of STUB_OF) {
        const m = re.exec(f.path);
        if (!m) continue;
        const stem = f.path.slice(0, m.index);
        if (exts.some((e) => paths.has(stem + e))) noise.set(i, `${m[0]} stubs`);
        break;
      }
    }
  });

  // Legacy copies: for each directory with a legacy name, its definition names against those of
  // the rest of its parent directory (older `vN` siblings left out: `v2/` is not a copy of `v1/`).
  const legacyDirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let k = 0; k < parts.length - 1; k++) if (LEGACY_DIR.test(parts[k])) legacyDirs.add(parts.slice(0, k + 1).join('/'));
  }
  // Files by path, to visit only a directory's (a binary search for its first file).
  const sorted = files.map((_, i) => i).sort((a, b) => (files[a].path < files[b].path ? -1 : files[a].path > files[b].path ? 1 : 0));
  const firstUnder = (d: string) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (files[sorted[mid]].path < d) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const under = (p: string, d: string) => (d === '' ? true : p.startsWith(`${d}/`));
  const inDir = function* (d: string) {
    for (let k = d === '' ? 0 : firstUnder(`${d}/`); k < sorted.length && under(files[sorted[k]].path, d); k++) yield sorted[k];
  };
  const namesUnder = (d: string, pred: (p: string) => boolean) => {
    const out = new Set<string>();
    for (const i of inDir(d)) if (pred(files[i].path)) for (const t of files[i].tags.d) out.add(t[0]);
    return out;
  };
  const version = (name: string) => (/^v\d+$/i.test(name) ? Number(name.slice(1)) : undefined);
  for (const d of [...legacyDirs].sort()) {
    const slash = d.lastIndexOf('/');
    const parent = slash < 0 ? '' : d.slice(0, slash);
    const base = d.slice(slash + 1);
    const v = version(base);
    const own = namesUnder(d, () => true);
    if (own.size === 0) continue;
    const rest = namesUnder(parent, (p) => {
      if (under(p, d)) return false;
      if (v === undefined) return true;
      // Leave out older versions: `pkg/v1/` is a copy, `pkg/v2/` beside it is not.
      const first = p.slice(parent ? parent.length + 1 : 0).split('/')[0];
      const w = p.slice(parent ? parent.length + 1 : 0).includes('/') ? version(first) : undefined;
      return w === undefined || w > v;
    });
    let shared = 0;
    for (const n of own) if (rest.has(n)) shared++;
    if (shared / own.size < LEGACY_OVERLAP) continue;
    for (const i of inDir(d)) if (!noise.has(i)) noise.set(i, `${base}/`);
  }

  // Named: kept.
  if (noise.size) {
    const keptDefs = new Set<string>();
    files.forEach((f, i) => {
      if (!noise.has(i)) for (const d of f.tags.d) if (mentionedIdents.has(d[0])) keptDefs.add(d[0]);
    });
    for (const i of [...noise.keys()]) {
      const f = files[i];
      if (namedPath(named, f.path) || f.tags.d.some((d) => mentionedIdents.has(d[0]) && !keptDefs.has(d[0]))) noise.delete(i);
    }
  }
  return noise;
}
