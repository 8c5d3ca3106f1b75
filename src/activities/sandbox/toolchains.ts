// Warm, visible toolchains (issue 18 item 5): the worker's own `python3`, `go`, `cargo`, … found
// at start (their real installation, a pyenv shim followed to its version), and per-repository
// caches (Go's build and module caches, cargo's registry, Maven's and Gradle's repositories,
// npm/pnpm/yarn and pip caches) that persist across a repository's commands and tasks on a host.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The commands whose toolchains the worker lends and names in its start-up log. */
export const TOOLCHAIN_COMMANDS = ['python3', 'go', 'cargo', 'node', 'java', 'mvn'];

export interface ResolvedToolchain {
  name: string;
  /** Where PATH finds it (a pyenv shim, a rustup proxy, /usr/bin's alternatives link). */
  found: string;
  /** What really runs: the shim's current version, the link's target. */
  real: string;
}

export function findOnPath(name: string, PATH = '', fallback = ['/usr/bin', '/usr/local/bin', '/bin']): string | undefined {
  for (const dir of PATH.split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return fallback.map((d) => path.join(d, name)).find((p) => existsSync(p));
}

/** pyenv's root: PYENV_ROOT, else ~/.pyenv. */
export const pyenvRoot = (env: NodeJS.ProcessEnv) => env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv');

/** A pyenv shim's program in the global version (`<root>/version`'s first line), when it is installed there. */
function throughPyenv(name: string, found: string, env: NodeJS.ProcessEnv): string | undefined {
  const root = pyenvRoot(env);
  if (path.dirname(found) !== path.join(root, 'shims')) return undefined;
  const version = (() => {
    try {
      return readFileSync(path.join(root, 'version'), 'utf8').split('\n')[0].trim();
    } catch {
      return env.PYENV_VERSION;
    }
  })();
  const program = version && path.join(root, 'versions', version, 'bin', name);
  return program && existsSync(program) ? realpathSync(program) : undefined;
}

/** The worker's own toolchains, as its PATH resolves them (none of the fallback directories). */
export function resolveToolchains(env: NodeJS.ProcessEnv): ResolvedToolchain[] {
  const out: ResolvedToolchain[] = [];
  for (const name of TOOLCHAIN_COMMANDS) {
    const found = findOnPath(name, env.PATH, []);
    if (!found) continue;
    out.push({ name, found, real: throughPyenv(name, found, env) ?? realpathSync(found) });
  }
  return out;
}

/** Where a resolved program's installation is: the directory above its `bin/` (the program's own directory otherwise). */
export function installRoot(real: string): string {
  const dir = path.dirname(real);
  return path.basename(dir) === 'bin' ? path.dirname(dir) : dir;
}

/** For the start-up log: `python3 /root/.pyenv/shims/python3 → /root/.pyenv/versions/3.12.3/bin/python3.12`. */
export function describeToolchains(found: ResolvedToolchain[]): string {
  return found.map((t) => (t.found === t.real ? `${t.name} ${t.found}` : `${t.name} ${t.found} → ${t.real}`)).join(', ') || 'none on PATH';
}

/**
 * A repository's own cache directory under the worker's: keyed by a hash of the repository (as
 * the task named it, without credentials), so tasks of one repository share it and tasks of
 * another never see it.
 */
export function repoCacheDir(workspaceRoot: string, repo: string): string {
  return path.join(workspaceRoot, '.cache', 'toolchains', createHash('sha256').update(repo).digest('hex').slice(0, 16));
}

/** The variables that point each stack's tools at a repository's cache directory. */
export function cacheEnv(dir: string): Record<string, string> {
  return {
    GOCACHE: path.join(dir, 'go-build'),
    GOMODCACHE: path.join(dir, 'go-mod'),
    // Cargo's registry and git checkouts (the binaries stay rustup's, found through RUSTUP_HOME).
    CARGO_HOME: path.join(dir, 'cargo'),
    npm_config_cache: path.join(dir, 'npm'),
    npm_config_store_dir: path.join(dir, 'pnpm-store'),
    YARN_CACHE_FOLDER: path.join(dir, 'yarn'),
    PIP_CACHE_DIR: path.join(dir, 'pip'),
    MAVEN_OPTS: `-Dmaven.repo.local=${path.join(dir, 'm2')}`,
    GRADLE_USER_HOME: path.join(dir, 'gradle'),
  };
}
