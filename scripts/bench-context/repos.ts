// The benchmark's repositories: JS/TS sources already in node_modules, Python sdists from PyPI
// (`pip download`) and Go modules from the Go proxy (`go mod download`). Downloads are cached
// under .bench-cache/ (gitignored), so a rerun is offline. Each is copied into a temp git repo.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { makeRepo } from '../../test/support/repos';

const ROOT = path.resolve(__dirname, '../..');
const NM = path.join(ROOT, 'node_modules');
export const CACHE = path.join(ROOT, '.bench-cache');

export type RepoSpec =
  | { name: string; kind: 'node'; sources: string[] }
  /** `under`: the directory inside the unpacked sdist that is copied (the package, not its tests). */
  | { name: string; kind: 'pypi'; pkg: string; version: string; under: string }
  | { name: string; kind: 'go'; module: string; version: string; under?: string };

export const REPOS: RepoSpec[] = [
  { name: 'webpack', kind: 'node', sources: ['webpack/lib', 'webpack/hot'] },
  { name: 'eslint+typescript-eslint', kind: 'node', sources: ['eslint/lib', '@typescript-eslint/eslint-plugin/dist', '@typescript-eslint/typescript-estree/dist'] },
  { name: 'django', kind: 'pypi', pkg: 'django', version: '5.0.6', under: 'Django-5.0.6/django' },
  { name: 'sympy', kind: 'pypi', pkg: 'sympy', version: '1.12', under: 'sympy-1.12/sympy' },
  { name: 'prometheus', kind: 'go', module: 'github.com/prometheus/prometheus', version: 'v0.54.1' },
  { name: 'terraform', kind: 'go', module: 'github.com/hashicorp/terraform', version: 'v1.9.5', under: 'internal' },
];

/** Source and text files worth copying (no binaries, no locale catalogues, no test data blobs). */
const KEEP = /\.(py|pyi|go|js|mjs|cjs|ts|tsx|jsx|json|md|rst|txt|toml|yaml|yml|cfg|ini|html|sh)$/;
const MAX_FILE_BYTES = 512 * 1024;

function walk(root: string, rel = '', out: string[] = []): string[] {
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (e.name !== 'locale' && e.name !== 'testdata' && e.name !== '__pycache__') walk(root, r, out);
    } else if (e.isFile() && KEEP.test(e.name) && !/\.d\.ts$|\.map$/.test(e.name) && statSync(path.join(root, r)).size <= MAX_FILE_BYTES) out.push(r);
  }
  return out;
}

/** The directory holding the repository's sources, downloading it into the cache if needed. */
function sourceDirs(spec: RepoSpec): { from: string; as: string }[] {
  if (spec.kind === 'node') return spec.sources.map((s) => ({ from: path.join(NM, s), as: s.replace(/\//g, '_') }));
  if (spec.kind === 'pypi') {
    const dlDir = path.join(CACHE, 'pypi');
    const unpacked = path.join(CACHE, 'pypi-src', spec.under);
    if (!existsSync(unpacked)) {
      mkdirSync(dlDir, { recursive: true });
      const sdist = (d: string) => readdirSync(d).find((f) => f.toLowerCase().startsWith(`${spec.pkg.toLowerCase()}-${spec.version}.`) && /\.(tar\.gz|zip)$/.test(f));
      if (!sdist(dlDir)) run('pip', ['download', '--no-deps', '--no-binary', ':all:', '-d', dlDir, `${spec.pkg}==${spec.version}`], CACHE);
      const file = sdist(dlDir);
      if (!file) throw new Error(`pip download left no sdist of ${spec.pkg} ${spec.version}`);
      mkdirSync(path.join(CACHE, 'pypi-src'), { recursive: true });
      run('tar', ['-xf', path.join(dlDir, file), '-C', path.join(CACHE, 'pypi-src')], CACHE);
    }
    return [{ from: unpacked, as: path.basename(spec.under) }];
  }
  // The module cache is read-only (go's choice): `go clean -modcache` with GOMODCACHE set removes it.
  const modcache = path.join(CACHE, 'gomod');
  const dir = path.join(modcache, `${spec.module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`)}@${spec.version}`);
  if (!existsSync(dir)) {
    mkdirSync(path.join(CACHE, 'go-empty'), { recursive: true });
    run('go', ['mod', 'download', '-json', `${spec.module}@${spec.version}`], path.join(CACHE, 'go-empty'), { GOMODCACHE: modcache, GOFLAGS: '-mod=mod' });
  }
  return [{ from: spec.under ? path.join(dir, spec.under) : dir, as: spec.under ?? '' }];
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): void {
  mkdirSync(cwd, { recursive: true });
  execFileSync(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
}

/** The repository as a temp git repo at `into` (one commit on main); its tracked files. */
export async function materialize(spec: RepoSpec, into: string): Promise<string[]> {
  const files: Record<string, Buffer> = {};
  for (const { from, as } of sourceDirs(spec)) {
    if (!existsSync(from)) throw new Error(`${from} does not exist`);
    for (const rel of walk(from)) files[as ? `${as}/${rel}` : rel] = readFileSync(path.join(from, rel));
  }
  await makeRepo(into, files);
  return Object.keys(files).sort();
}
