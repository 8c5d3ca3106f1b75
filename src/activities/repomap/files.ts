// The files a map covers: tracked files (`git ls-files -s`, which also gives each blob's SHA),
// minus `.weaverignore`, vendored/generated directories, minified files and languages without
// a grammar. Files changed in the work tree are addressed by the SHA of their current content.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ignore from 'ignore';
import { gitRun } from '../git';
import { langOf, type LangId } from './languages';

export interface MapFile {
  path: string;
  sha: string;
  lang: LangId;
}

/** Directories not mapped unless named (vendored or generated code), at any depth. */
const SKIP_DIRS = new Set(['node_modules', 'vendor', 'third_party', 'dist', 'build', 'bower_components', '.git']);
const MINIFIED = /[.-]min\.[cm]?js$/i;

/** Why a path is vendored or generated ('vendor/', 'minified', …), or undefined. */
export function noiseByPath(rel: string): string | undefined {
  const parts = rel.split('/');
  for (let i = 0; i < parts.length - 1; i++) if (SKIP_DIRS.has(parts[i])) return `${parts[i]}/`;
  if (MINIFIED.test(rel)) return 'minified';
  return undefined;
}

/** A path named directly, or under a named directory (`vendor/`, `third_party/x`). */
export function namedPath(named: ReadonlySet<string>, rel: string): boolean {
  if (named.has(rel)) return true;
  for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) {
    const d = rel.slice(0, i);
    if (named.has(d) || named.has(`${d}/`)) return true;
  }
  return false;
}

function git(dir: string, args: string[]): Promise<string> {
  return gitRun(undefined, ['-C', dir, '-c', 'core.quotepath=off', ...args], { env: { GIT_OPTIONAL_LOCKS: '0' } });
}

/**
 * `git ls-files -c -m -s -t -z` of the checkout: the index (paths and blob SHAs, tagged `H`), and
 * again each entry whose work-tree file differs from it or is gone (tagged `C`: what
 * `diff-files` lists), in one git read once per prompt — its paths are the prompt's tracked files
 * and its entries the map's (listMapFiles).
 */
export function readIndex(dir: string): Promise<string> {
  return git(dir, ['ls-files', '-c', '-m', '-s', '-t', '-z']);
}

/** The tracked paths in an index listing (readIndex), each once, in index order. */
export function indexPaths(index: string): string[] {
  const paths = new Set<string>();
  for (const rec of index.split('\0')) {
    const tab = rec.indexOf('\t');
    if (tab >= 0) paths.add(rec.slice(tab + 1));
  }
  return [...paths];
}

/** The git blob SHA-1 of `content` (what `git hash-object` prints). */
export function blobSha(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function isVendoredOrGenerated(rel: string): boolean {
  return noiseByPath(rel) !== undefined;
}

async function weaverIgnore(dir: string): Promise<((rel: string) => boolean) | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, '.weaverignore'), 'utf8');
  } catch {
    return undefined;
  }
  const ig = ignore().add(text);
  return (rel) => {
    try {
      return ig.ignores(rel);
    } catch {
      return false;
    }
  };
}

/**
 * Tracked source files of the checkout at `dir`, sorted by path. Vendored and minified paths are
 * left out unless `named` holds them (or a directory above them); those left out are added to
 * `skipped` with the reason (`vendor/`, `minified`, …). `.git/` is never mapped.
 */
export async function listMapFiles(dir: string, named?: ReadonlySet<string>, skipped?: { path: string; why: string }[], index?: Promise<string>): Promise<MapFile[]> {
  const [staged, ignored] = await Promise.all([index ?? readIndex(dir), weaverIgnore(dir)]);
  // Work-tree changes against the index (their content is hashed again below).
  const dirty = new Set<string>();
  const byPath = new Map<string, MapFile>();
  for (const rec of staged.split('\0')) {
    if (!rec) continue;
    // "<tag> <mode> <sha> <stage>\t<path>"
    const tab = rec.indexOf('\t');
    if (tab < 0) continue;
    const [tag, mode, sha, stage] = rec.slice(0, tab).split(' ');
    const rel = rec.slice(tab + 1);
    if (tag === 'C') {
      dirty.add(rel);
      continue;
    }
    if (!mode.startsWith('100')) continue; // symlinks (120000), submodules (160000)
    if (stage !== '0' && byPath.has(rel)) continue;
    const lang = langOf(rel);
    if (!lang || ignored?.(rel)) continue;
    const noise = noiseByPath(rel);
    if (noise && (noise === '.git/' || !named || !namedPath(named, rel))) {
      if (noise !== '.git/') skipped?.push({ path: rel, why: noise });
      continue;
    }
    byPath.set(rel, { path: rel, sha, lang });
  }
  const files = [...byPath.values()];
  await Promise.all(
    files.map(async (f) => {
      if (!dirty.has(f.path)) return;
      try {
        f.sha = blobSha(await readFile(path.join(dir, f.path)));
      } catch {
        f.sha = ''; // deleted in the work tree
      }
    }),
  );
  return files.filter((f) => f.sha).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
