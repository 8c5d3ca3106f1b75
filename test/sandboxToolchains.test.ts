// Warm, visible toolchains (issue 18 item 5): a repository's second task on a host finds Go's
// build cache its first one filled; the worker's own Python, under a pyenv home, runs tests in
// the sandbox with no operator setting; one repository's caches are out of another's sight.
// Real bubblewrap, real dev server, real git repositories, the scripted model server.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { detectSandbox, describeToolchains, releaseUid, repoCacheDir, sandboxed, uidFor, type SandboxSetting } from '../src/activities/sandbox';
import { runCommand } from '../src/activities/commands';
import { pyenvRoot } from '../src/activities/sandbox/toolchains';
import { SandboxPolicySchema } from '../src/domain/schema';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { wholeFile } from './support/answers';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r), { sandbox: 'required' });

const GO_MOD = 'module example.com/slug\n\ngo 1.21\n';
const SLUG_TEST = 'package slug\n\nimport "testing"\n\nfunc TestSlug(t *testing.T) {\n\tif got := Slug("Hello World"); got != "hello-world" {\n\t\tt.Fatalf("Slug = %q", got)\n\t}\n}\n';
const BROKEN = 'package slug\n\nfunc Slug(s string) string { return s }\n';
const FIXED = 'package slug\n\nimport "strings"\n\nfunc Slug(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") }\n';

test("a Go repository's second task on the same host runs `go test` on the build cache its first task filled", async () => {
  const repo = await makeRepo(path.join(rig.tmp, 'goslug'), { 'go.mod': GO_MOD, 'slug.go': BROKEN, 'slug_test.go': SLUG_TEST });
  rig.model.setDefault('m-gocache', () => ({ content: wholeFile('slug.go', FIXED, 'lowercase and dash') }));
  // -trimpath: each task's checkout is at its own path, which otherwise keys the package's own
  // build (the standard library's, the bulk of a cold build, hits the cache either way).
  const task = () => rig.task(repo, [rig.provider('m-gocache')], { testCommand: ['sh', '-c', 'go env GOCACHE && go test -trimpath ./...'], limits: { maxAttempts: 1, testTimeoutSec: 600 } });
  const first = await rig.run(task());
  const second = await rig.run(task());
  const tails = [first, second].map((r) => r.attempts.at(-1)?.tests?.tail ?? '');
  expect([first.status, second.status]).toEqual(['succeeded', 'succeeded']);
  // Both tasks' GOCACHE: the repository's own directory under the worker's workspace root.
  const gocache = path.join(repoCacheDir(rig.workspaceRoot, repo), 'go-build');
  for (const tail of tails) expect(tail).toContain(gocache);
  expect(tails[0]).not.toMatch(/\(cached\)/);
  expect(tails[1]).toMatch(/ok\s+example\.com\/slug\s+\(cached\)/);
  expect((await readdir(gocache)).length).toBeGreaterThan(1);
}, 900_000);

describe('sandbox commands with no toolchain setting', () => {
  let root: string;
  let setting: SandboxSetting;
  beforeAll(async () => {
    root = sandboxableTempDir('weaver-toolchains-');
    // No WEAVER_SANDBOX_TOOLCHAINS, RO_PATHS or ENV: what the worker finds on its own PATH.
    const { WEAVER_SANDBOX_TOOLCHAINS: _t, WEAVER_SANDBOX_RO_PATHS: _r, WEAVER_SANDBOX_ENV: _e, ...env } = process.env;
    setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')], workspaceRoot: path.join(root, 'ws'), env: { ...env, WEAVER_SANDBOX_NETWORK: 'none' } });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  let seq = 0;
  async function boxed(command: string, files: Record<string, string>, cacheDir?: string, dir = path.join(root, 'ws', `t${++seq}`, 'repo'), limits = {}) {
    await mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    const box = await sandboxed({ setting, policy: SandboxPolicySchema.parse({ limits }), phase: 'test', dir, command, env: process.env, scratchHome: path.join(dir, '..', 'home'), cacheDir });
    try {
      const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 300, logFile: path.join(dir, '..', 'log') });
      return { ...r, ...(await box.finish(r)) };
    } finally {
      if (uidFor(setting, dir) !== undefined) releaseUid(setting, dir);
    }
  }

  test("Python tests run in the sandbox when the worker's python3 lives under a pyenv home", async () => {
    const python = setting.toolchains?.find((t) => t.name === 'python3');
    // This machine's python3 is pyenv's (the premise of the test): its shim, followed to a version.
    expect(python?.found).toBe(path.join(pyenvRoot(process.env), 'shims', 'python3'));
    expect(python?.real.startsWith(path.join(pyenvRoot(process.env), 'versions') + path.sep)).toBe(true);
    expect(describeToolchains(setting.toolchains ?? [])).toContain(`python3 ${python!.found} → ${python!.real}`);
    const test = 'import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(1 + 1, 2)\n';
    const r = await boxed('python3 -c "import sys; print(sys.prefix)" && python3 -m unittest -v test_add.py 2>&1', { 'test_add.py': test });
    expect({ exit: r.exitCode, prefix: r.tail.split('\n')[0] }).toEqual({ exit: 0, prefix: path.dirname(path.dirname(python!.real)) });
    expect(r.tail).toMatch(/test_add .* ok/);
  }, 300_000);

  test("one repository's caches are writable by its commands and out of another repository's sight", async () => {
    const a = repoCacheDir(path.join(root, 'ws'), 'https://example.com/a.git');
    const b = repoCacheDir(path.join(root, 'ws'), 'https://example.com/b.git');
    const wrote = await boxed('mkdir -p "$PIP_CACHE_DIR" && echo a > "$PIP_CACHE_DIR/mark" && echo "$GOCACHE"', {}, a);
    expect({ exit: wrote.exitCode, gocache: wrote.tail.trim() }).toEqual({ exit: 0, gocache: path.join(a, 'go-build') });
    // Another repository's command: its own cache, and nothing of the first one's there.
    const other = await boxed(`[ -e ${path.join(a, 'pip', 'mark')} ] && echo SEEN; ls -a ${path.dirname(a)}; echo "$PIP_CACHE_DIR"`, {}, b);
    expect(other.exitCode).toBe(0);
    expect(other.tail).not.toContain('SEEN');
    expect(other.tail.trim().split('\n')).toEqual(['.', '..', path.basename(b), path.join(b, 'pip')]);
  }, 300_000);

  test("a root worker's command finding its repository's cache in use by another uid's gets its workspace's own, and the first keeps writing", async () => {
    if (!setting.uids || setting.uids.first === setting.uids.last) return; // one uid for all: nothing to take over
    const cache = repoCacheDir(path.join(root, 'ws'), 'https://example.com/busy.git');
    const first = path.join(root, 'ws', 'busy-1', 'repo');
    // The first command holds the cache until the test lets it go (a file in its workspace), then writes into it.
    const running = boxed('mkdir -p "$PIP_CACHE_DIR/d" && touch started && while [ ! -e go ]; do sleep 0.05; done; touch "$PIP_CACHE_DIR/d/after" && echo wrote', {}, cache, first);
    while (!existsSync(path.join(first, 'started'))) await new Promise((r) => setTimeout(r, 50));
    const second = await boxed('echo "$PIP_CACHE_DIR"', {}, cache);
    await writeFile(path.join(first, 'go'), '');
    const held = await running;
    expect(second.tail.trim()).toBe(path.join(root, 'ws', `t${seq}`, '.toolchain-cache', 'pip'));
    expect({ exit: held.exitCode, tail: held.tail.trim() }).toEqual({ exit: 0, tail: 'wrote' });
    // Free again: the next command of another uid gets the repository's cache.
    const third = await boxed('echo "$PIP_CACHE_DIR"', {}, cache);
    expect(third.tail.trim()).toBe(path.join(cache, 'pip'));
  }, 300_000);

  test("what a command writes into its repository's cache counts against its disk limit", async () => {
    const cache = repoCacheDir(path.join(root, 'ws'), 'https://example.com/filler.git');
    const fill = 'mkdir -p "$PIP_CACHE_DIR"; i=0; while [ $i -lt 1000 ]; do head -c 1000000 /dev/zero > "$PIP_CACHE_DIR/f$i"; i=$((i+1)); sleep 0.01; done; echo WROTE-ALL';
    const r = await boxed(fill, {}, cache, undefined, { diskMb: 32 });
    expect(r.limit).toMatch(/^killed: disk limit 32 MiB/);
    expect(r.tail).not.toContain('WROTE-ALL');
  }, 300_000);
});
