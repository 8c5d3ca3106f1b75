// The sandbox's root is computed once per setting and reused while what it read is unchanged
// (src/activities/sandbox/fsReads.ts): a token file that appears in a lent tree, or a hidden
// symlink pointed elsewhere, is hidden from the next command on, as it was before the cache.
// Real directories; no bwrap needed (the mounts are checked as bwrap's options).
import { mkdirSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { rootMounts, rootPlansComputed } from '../src/activities/sandbox/root';
import { sandboxableTempDir } from '../src/devtools/tempDir';

let base: string;
let tree: string;
// Not /tmp: the test's trees are under it, and nothing of the host is lent under a scratch tmpfs.
const scratch = { '/var/tmp': 1 << 20 };

/** Every directory of the test's own older than the racy window, as a quiet host's are. */
function settle(...dirs: string[]) {
  const past = new Date(Date.now() - 3600_000);
  for (const d of dirs) utimesSync(d, past, past);
}

/** The mounts hiding `p` (a file under /dev/null), if any. */
const hides = (mounts: string[], p: string) => mounts.some((m, i) => m === p && mounts[i - 1] === '/dev/null' && mounts[i - 2] === '--ro-bind');

beforeEach(() => {
  base = sandboxableTempDir('weaver-root-');
  tree = path.join(base, 'toolchain');
  mkdirSync(path.join(tree, 'versions', 'node', 'v20'), { recursive: true });
  mkdirSync(path.join(tree, 'bin'));
  settle(base, tree, path.join(tree, 'bin'), path.join(tree, 'versions'), path.join(tree, 'versions', 'node'), path.join(tree, 'versions', 'node', 'v20'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

test('a setting whose lent trees are unchanged reuses its root; the same root as computed afresh', () => {
  const opts = { hide: [path.join(base, 'ws')], toolchains: [tree], scratch };
  const first = rootMounts(opts);
  const computed = rootPlansComputed();
  const again = rootMounts({ ...opts, scratch: { '/var/tmp': 2 << 20 } });
  expect(rootPlansComputed()).toBe(computed);
  // Only the scratch size differs; a setting never seen (one more hidden path, outside every lent tree) computes the same mounts.
  expect(again.mounts.join(' ')).toBe(first.mounts.join(' ').replace(String(1 << 20), String(2 << 20)));
  const fresh = rootMounts({ ...opts, hide: [...opts.hide, path.join(base, 'elsewhere')] });
  expect(rootPlansComputed()).toBe(computed + 1);
  expect(fresh).toEqual(first);
  expect(first.mounts).toContain(tree);
});

test('a token file made in a lent tree after its root was computed is hidden from the next command on', () => {
  const opts = { hide: [], toolchains: [tree], scratch };
  const top = path.join(tree, 'credentials.toml');
  const deep = path.join(tree, 'versions', 'node', 'v20', 'etc', 'npmrc');
  const before = rootMounts(opts).mounts;
  expect(hides(before, top) || hides(before, deep)).toBe(false);
  // Three levels down, in an etc/ that was not there: only its parent's entries change.
  mkdirSync(path.dirname(deep));
  writeFileSync(deep, '//registry.npmjs.org/:_authToken=npm_secret\n');
  expect(hides(rootMounts(opts).mounts, deep)).toBe(true);
  writeFileSync(top, '[registry]\ntoken = "secret"\n');
  const after = rootMounts(opts).mounts;
  expect(hides(after, top) && hides(after, deep)).toBe(true);
  unlinkSync(deep);
  expect(hides(rootMounts(opts).mounts, deep)).toBe(false);
});

test('a token file appearing where a dangling etc/ symlink in a lent tree leads is hidden too', () => {
  const target = path.join(base, 'elsewhere');
  mkdirSync(target);
  const v20 = path.join(tree, 'versions', 'node', 'v20');
  symlinkSync(path.join(target, 'etc'), path.join(v20, 'etc'));
  settle(base, v20, target);
  const opts = { hide: [], toolchains: [tree], scratch };
  const deep = path.join(v20, 'etc', 'npmrc');
  expect(hides(rootMounts(opts).mounts, deep)).toBe(false);
  const computed = rootPlansComputed();
  rootMounts(opts);
  expect(rootPlansComputed()).toBe(computed);
  // Nothing changes in the lent tree: only where its symlink leads.
  mkdirSync(path.join(target, 'etc'));
  writeFileSync(path.join(target, 'etc', 'npmrc'), '//registry.npmjs.org/:_authToken=npm_secret\n');
  expect(hides(rootMounts(opts).mounts, deep)).toBe(true);
});

test('a hidden symlink pointed at another path in a lent tree hides that one instead', () => {
  const a = path.join(tree, 'bin', 'a.yaml');
  const b = path.join(tree, 'bin', 'b.yaml');
  writeFileSync(a, 'x');
  writeFileSync(b, 'y');
  // The link's directory is outside every lent tree: only where it leads is read.
  mkdirSync(path.join(base, 'links'));
  const link = path.join(base, 'links', 'registry.yaml');
  symlinkSync(a, link);
  settle(base, path.join(tree, 'bin'));
  const opts = { hide: [link], toolchains: [tree], scratch };
  const first = rootMounts(opts).mounts;
  const computed = rootPlansComputed();
  expect(rootMounts(opts).mounts).toEqual(first);
  expect(rootPlansComputed()).toBe(computed);
  expect(hides(first, a) && !hides(first, b)).toBe(true);
  unlinkSync(link);
  symlinkSync(b, link);
  const second = rootMounts(opts).mounts;
  expect(hides(second, b) && !hides(second, a)).toBe(true);
});

test('a root read from a directory changed just before is computed again next time (its mtime could not tell a change in the same clock tick)', () => {
  writeFileSync(path.join(tree, 'README'), '');
  const opts = { hide: [], toolchains: [tree], scratch };
  rootMounts(opts);
  const computed = rootPlansComputed();
  rootMounts(opts);
  expect(rootPlansComputed()).toBe(computed + 1);
});
