// The sandbox's file system: a minimal root — the system directories, the few files of /etc a
// program needs, and the toolchains the worker names — instead of the whole host read-only; and
// what the worker owns (its registry and credentials files, its checkout, the artifact store,
// the workspace root) hidden even where one of those trees contains it: a file under /dev/null,
// a directory under an empty read-only tmpfs.
import { existsSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isInside } from '../paths';
import { FsReads, type ReadStamps } from './fsReads';
import { installRoot, pyenvRoot, resolveToolchains } from './toolchains';

/** Top-level system directories (or their merged-/usr symlinks), as the host has them. */
export const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * What of /etc a command sees: name service, certificates, the dynamic linker, time, MIME and
 * the alternatives and toolchain configs that /usr links into (Debian's JDK and Maven read
 * theirs from /etc). Not the rest: /etc also holds the host's secrets and settings (shadow,
 * ssh keys, gitconfig's credential helpers, npmrc and pip.conf tokens, a worker's own files).
 */
export const ETC_ENTRIES = [
  'alternatives', 'ssl', 'ca-certificates', 'ca-certificates.conf', 'pki', 'crypto-policies',
  'hosts', 'resolv.conf', 'nsswitch.conf', 'host.conf', 'gai.conf', 'passwd', 'group',
  'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'localtime', 'timezone', 'mime.types', 'protocols',
  'services', 'os-release', 'debian_version', 'lsb-release', 'shells', 'terminfo', 'inputrc',
  'magic', 'magic.mime', 'locale.alias', 'java-*', 'maven', 'python3*', 'perl',
];

/** Where toolchains live when the worker names none (WEAVER_SANDBOX_TOOLCHAINS unset), under its home. */
const HOME_TOOLCHAINS = ['.cargo/bin', '.rustup', '.pyenv', '.nvm', '.volta', '.sdkman', '.local/share/fnm', '.deno', '.bun'];

/**
 * Configuration that holds tokens, hidden wherever a lent tree has it: npm's global config
 * (`<prefix>/etc/npmrc`: /usr/local/etc, a node version's etc/), git's system config, cargo's
 * credentials, pip's and gem's. (~/.cargo is lent as its bin/ only, for the same reason.)
 */
const TOKEN_FILES = ['etc/npmrc', 'etc/gitconfig', 'credentials', 'credentials.toml', 'pip.conf', '.npmrc', '.gemrc', '.pypirc'];
const TOKEN_DIRS = ['/usr/local/etc'];

/** The token-holding files inside `tree` (its top, and one or three levels down: nvm's versions/node/vX/etc/npmrc). */
export function tokenFilesIn(tree: string, fs = new FsReads()): string[] {
  const out: string[] = [];
  const look = (dir: string, level: number) => {
    for (const f of TOKEN_FILES) if (fs.lstat(path.join(dir, f))?.isFile()) out.push(path.join(dir, f));
    if (level >= 3) return;
    let names: string[] = [];
    try {
      names = fs.readdir(dir);
    } catch {
      return;
    }
    // Only the trees toolchain managers make: versions/<lang>/<version>/…, not a whole home.
    for (const n of names) if (n === 'versions' || level > 0) {
      const child = path.join(dir, n);
      if (fs.lstat(child)?.isDirectory() && names.length < 200) look(child, level + 1);
    }
  };
  look(tree, 0);
  return out;
}

const glob = (pattern: string) => new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`);

/** The host's /etc entries a command sees (names matching ETC_ENTRIES that exist). */
function etcEntries(fs: FsReads): string[] {
  let names: string[];
  try {
    names = fs.readdir('/etc');
  } catch {
    return [];
  }
  const res = ETC_ENTRIES.map(glob);
  return names.filter((n) => res.some((re) => re.test(n))).map((n) => path.join('/etc', n));
}

/**
 * The toolchains a worker lends its sandbox when it names none: its PATH's directories outside
 * the system ones (each as its toolchain's root: the first directory under the home, or the
 * parent of a `bin`), the usual places under its home, and rustup's home when cargo is one
 * of rustup's proxies. None inside what the worker hides.
 */
export function defaultToolchains(env: NodeJS.ProcessEnv, hide: string[]): string[] {
  const home = os.homedir();
  const found = new Set<string>();
  const add = (p: string | undefined) => {
    if (!p || !path.isAbsolute(p) || !existsSync(p)) return;
    const real = realpathSync(p);
    if (SYSTEM_DIRS.some((d) => isInside(real, d)) || real === '/' || real === home) return;
    found.add(path.resolve(p));
  };
  for (const dir of (env.PATH ?? '').split(':').filter((d) => path.isAbsolute(d))) {
    // Under the home, the PATH directory itself (~/.local/bin, ~/.cargo/bin), never its parent
    // (~/.local or ~/.cargo hold configs and tokens); elsewhere the toolchain's root above bin/.
    if (isInside(dir, home) && dir !== home) add(dir);
    else add(path.basename(dir) === 'bin' ? path.dirname(dir) : dir);
  }
  for (const rel of HOME_TOOLCHAINS) add(path.join(home, rel));
  // Where the worker's own python3, go, cargo, … really are (a pyenv version, a JDK an
  // alternatives link leads to): their installations, wherever PATH's directory was.
  for (const t of resolveToolchains(env)) {
    const root = installRoot(t.real);
    // Never a folder right under the home (~/.cargo, ~/.local hold configs and tokens): its bin/ only.
    add(path.dirname(root) === home ? path.dirname(t.real) : root);
  }
  for (const v of ['RUSTUP_HOME', 'PYENV_ROOT', 'JAVA_HOME', 'GOROOT', 'NVM_DIR', 'SDKMAN_DIR', 'VOLTA_HOME']) add(env[v]);
  // A toolchain inside what the worker hides (its checkout's node_modules/.bin) is never lent;
  // a hidden path inside a toolchain is covered when the sandbox is built.
  return [...found].filter((t) => !hide.some((h) => isInside(t, h)));
}

/**
 * Env a toolchain needs once HOME is the sandbox's own: rustup's proxies (cargo, rustc) find
 * their toolchains through RUSTUP_HOME, pyenv's shims their versions through PYENV_ROOT; both
 * default to a place under HOME.
 */
export function toolchainEnv(env: NodeJS.ProcessEnv, toolchains: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const homes = { RUSTUP_HOME: env.RUSTUP_HOME ?? path.join(os.homedir(), '.rustup'), PYENV_ROOT: pyenvRoot(env) };
  for (const [name, dir] of Object.entries(homes)) if (toolchains.some((t) => isInside(dir, t))) out[name] = dir;
  return out;
}

/**
 * The first directory above `p` that does not let others through (no o+x), if any: a sandbox
 * uid's bwrap must reach `p`. One not made yet does not count (the worker makes it 0755).
 */
export function untraversableAbove(p: string): string | undefined {
  for (let d = path.dirname(path.resolve(p)); ; d = path.dirname(d)) {
    const st = (() => {
      try {
        return statSync(d);
      } catch {
        return undefined;
      }
    })();
    if (st && !(st.mode & 0o001)) return d;
    if (d === path.dirname(d)) return undefined;
  }
}

/** Each path, and where it really is when a symlink leads there: both get hidden. */
function withRealPaths(paths: string[], fs: FsReads): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    out.add(path.resolve(p));
    const real = fs.realpath(p);
    if (real) out.add(real); // else gone: nothing to hide
  }
  return [...out];
}

const depth = (p: string) => p.split('/').length;

/** The root's mounts but the scratch tmpfs (sized per command), and what they were computed from. */
interface RootPlan {
  /** /dev, /proc, the system directories and /etc's entries: before the scratch tmpfs. */
  system: string[];
  /** The toolchains, then what is hidden in any lent tree: after them. */
  lent: string[];
  remountRo: string[];
  stamps?: ReadStamps;
}

/**
 * The last plans, by setting (hide, toolchains, scratch directories): a worker has one, tests a
 * few. Each is reused while what it read is unchanged (./fsReads.ts): a token file made in a
 * lent tree, a toolchain installed, /etc or a symlink changed all make it computed again.
 */
const plans = new Map<string, RootPlan>();
const MAX_PLANS = 8;
let computed = 0;

/** How many times the root has been computed rather than reused (for tests of the cache). */
export function rootPlansComputed(): number {
  return computed;
}

/**
 * The mounts of the sandbox's root, before the workspace's: /dev, a fresh /proc (its own PID
 * namespace: no host process, so no host command line), the system directories, /etc's
 * entries, sized scratch tmpfs (`scratch`), the toolchains read-only, then whatever the worker
 * hides that lies inside one of those. `remountRo`: the hiding tmpfs, made read-only last.
 */
export function rootMounts(opts: { hide: string[]; toolchains: string[]; scratch: Record<string, number> }): { mounts: string[]; remountRo: string[] } {
  const scratchDirs = Object.keys(opts.scratch);
  const key = JSON.stringify([opts.hide, opts.toolchains, scratchDirs]);
  let plan = plans.get(key);
  if (!plan?.stamps?.unchanged()) {
    plan = planRoot(opts.hide, opts.toolchains, scratchDirs);
    plans.delete(key);
    if (plans.size >= MAX_PLANS) plans.delete(plans.keys().next().value!);
    plans.set(key, plan);
  }
  const scratch = Object.entries(opts.scratch).flatMap(([dir, bytes]) => ['--size', String(bytes), '--tmpfs', dir]);
  return { mounts: [...plan.system, ...scratch, ...plan.lent], remountRo: [...plan.remountRo] };
}

function planRoot(hide: string[], toolchains: string[], scratchDirs: string[]): RootPlan {
  computed++;
  const fs = new FsReads();
  const mounts = ['--dev', '/dev', '--proc', '/proc'];
  const sources: string[] = [];
  /** A host path at the same place: a symlink stays one (its target bound too when it points outside what is bound). */
  const lend = (p: string) => {
    const st = fs.lstat(p);
    if (!st) return;
    if (st.isSymbolicLink()) {
      const target = fs.readlink(p);
      mounts.push('--symlink', target, p);
      const real = fs.realpath(p);
      // /etc/resolv.conf → /run/…: the file it names, at its own path.
      if (real && !sources.some((s) => isInside(real, s))) lend(real);
      return;
    }
    mounts.push('--ro-bind', p, p);
    sources.push(p);
  };
  for (const d of SYSTEM_DIRS) lend(d);
  for (const e of etcEntries(fs)) lend(e);
  const system = mounts.splice(0);
  for (const t of [...toolchains].sort((a, b) => depth(a) - depth(b))) {
    // Already lent (under /usr), or under a scratch tmpfs, where nothing of the host is.
    if (!sources.some((s) => isInside(t, s)) && !scratchDirs.some((s) => isInside(t, s))) lend(t);
  }
  const remountRo: string[] = [];
  const tokens = [...TOKEN_DIRS, ...sources.filter((src) => !SYSTEM_DIRS.includes(src) && !src.startsWith('/etc/')).flatMap((src) => tokenFilesIn(src, fs))];
  const hidden = withRealPaths([...hide, ...tokens], fs).sort((a, b) => depth(a) - depth(b));
  for (const h of hidden) {
    // Only what a lent tree holds is there to hide; the rest of the host is not in the sandbox.
    if (!sources.some((s) => isInside(h, s)) || hidden.some((o) => o !== h && isInside(h, o) && sources.some((s) => isInside(o, s)))) continue;
    const st = fs.lstat(h);
    if (!st || st.isSymbolicLink()) continue; // its real path is in the list
    if (st.isDirectory()) {
      mounts.push('--tmpfs', h);
      remountRo.push(h);
    } else {
      mounts.push('--ro-bind', '/dev/null', h);
    }
  }
  return { system, lent: mounts, remountRo, stamps: fs.stamps() };
}
