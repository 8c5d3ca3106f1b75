// A lighter sandbox start (issue 18 item 3): a workspace's second command reuses the cgroup its
// first one made and does not walk the tree again — what the worker wrote in between (a change,
// a rollback's rewritten files) is handed over path by path and counted into the disk baseline
// — while every limit is still told per
// command; a released workspace's cgroup goes, and a dead worker's leftovers go at the sweep.
// A small tree's disk use, file-at-limit check and hand-over are done in the worker, with the
// answers du, find and chown give. Real bubblewrap and cgroups (a root worker), real files.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { detectSandbox, keptCgroup, noteWritten, releaseSandbox, sandboxed, startCounts, sweepCgroups, trackWrites, uidFor, type SandboxSetting } from '../src/activities/sandbox';
import { recordSetupState, restoreSetupState } from '../src/activities/setupState';
import { runCommand } from '../src/activities/commands';
import { walkSmallTree } from '../src/activities/sandbox/diskWalk';
import { atLimitQuery, diskUse, fileAtLimit } from '../src/activities/sandbox/limits';
import { handOver } from '../src/activities/sandbox/uids';
import { execFileVia } from '../src/activities/spawner';
import { SandboxPolicySchema, type SandboxLimits } from '../src/domain/schema';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { makeRepo } from './support/repos';

const asRoot = process.getuid?.() === 0;
const rootOnly = asRoot ? describe : describe.skip;

rootOnly('a workspace’s commands after its first', () => {
  let root: string;
  let setting: SandboxSetting;
  beforeAll(async () => {
    root = sandboxableTempDir('weaver-reuse-');
    setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')], workspaceRoot: path.join(root, 'ws'), env: { ...process.env, WEAVER_SANDBOX_NETWORK: 'none', WEAVER_SANDBOX_MAX_LIMITS: '' } });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  let seq = 0;
  async function workspace(files: Record<string, string>): Promise<string> {
    const dir = path.join(root, 'ws', `t${++seq}`, 'repo');
    await mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    return dir;
  }
  async function boxed(dir: string, command: string, limits: Partial<SandboxLimits> = {}) {
    const box = await sandboxed({ setting, policy: SandboxPolicySchema.parse({ limits }), phase: 'test', dir, command, env: process.env, scratchHome: path.join(dir, '..', 'home') });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 120, logFile: path.join(dir, '..', 'log') });
    return { ...r, ...(await box.finish(r)) };
  }

  test('reuse the cgroup, walk nothing, and can read and write what the worker wrote in between', async () => {
    expect(setting.cgroup).toBeDefined();
    const dir = await workspace({ 'a.txt': 'from the clone\n' });
    const uid = uidFor(setting, dir)!;
    const walks = startCounts.wholeTree;
    const first = await boxed(dir, 'cat a.txt && echo mine > made-in-sandbox');
    expect({ exit: first.exitCode, tail: first.tail.trim(), limit: first.limit }).toEqual({ exit: 0, tail: 'from the clone', limit: undefined });
    expect(startCounts.wholeTree).toBe(walks + 1);
    const cgroup = keptCgroup(dir);
    expect(cgroup && existsSync(cgroup)).toBe(true);

    // The worker (root) writes a file in folders that did not exist, as applyChange does.
    const handed = startCounts.paths;
    await trackWrites(dir, ['new/deep/b.txt'], async () => {
      await mkdir(path.join(dir, 'new', 'deep'), { recursive: true });
      await writeFile(path.join(dir, 'new', 'deep', 'b.txt'), 'written by the change\n');
    });
    expect((await stat(path.join(dir, 'new', 'deep', 'b.txt'))).uid).toBe(0);

    const baselines = startCounts.diskFromBaseline;
    const second = await boxed(dir, 'cat new/deep/b.txt && echo tested >> new/deep/b.txt && touch new/deep/c && cat made-in-sandbox');
    expect({ exit: second.exitCode, tail: second.tail.trim(), limit: second.limit }).toEqual({ exit: 0, tail: 'written by the change\nmine', limit: undefined });
    // Not walked again: only the file and the two folders made for it were handed over.
    expect(startCounts.wholeTree).toBe(walks + 1);
    expect(startCounts.paths - handed).toBe(3);
    expect(startCounts.diskFromBaseline).toBe(baselines + 1);
    for (const p of ['new', 'new/deep', 'new/deep/b.txt', 'new/deep/c']) expect((await stat(path.join(dir, p))).uid).toBe(uid);
    expect(await readFile(path.join(dir, 'new', 'deep', 'b.txt'), 'utf8')).toBe('written by the change\ntested\n');
    // The same cgroup, and measured by it.
    expect(keptCgroup(dir)).toBe(cgroup);
    expect(second.resources.measuredBy).toBe(setting.cgroup!.version === 2 ? 'cgroup v2' : 'cgroup v1');

    // Released: its cgroup is gone, and the next command there would walk the tree again.
    await releaseSandbox(setting, dir);
    expect(existsSync(cgroup!)).toBe(false);
    expect(keptCgroup(dir)).toBeUndefined();
  }, 120_000);

  test('after a rollback to the setup state, only what was written back is handed over, and the command can write it', async () => {
    const dir = path.join(root, 'ws', 'rb1', 'repo');
    await makeRepo(dir, { 'a.txt': 'as committed\n', 'lib/b.txt': 'b\n' });
    const ws = { dir, id: 'rb1' };
    await recordSetupState(ws);
    const walks = startCounts.wholeTree;
    // The attempt's command changes a tracked file and leaves debris.
    const dirty = await boxed(dir, 'echo changed > a.txt && rm lib/b.txt && echo debris > debris.txt');
    expect(dirty.exitCode).toBe(0);
    let wrote: string[] = [];
    expect(await restoreSetupState(ws, (p) => (wrote = p))).toBe(true);
    noteWritten(dir, wrote);
    expect(wrote.sort()).toEqual(['a.txt', 'lib/b.txt']);
    expect((await stat(path.join(dir, 'a.txt'))).uid).toBe(0);
    const next = await boxed(dir, 'cat a.txt && echo again >> a.txt && echo more >> lib/b.txt && ls');
    expect({ exit: next.exitCode, tail: next.tail }).toEqual({ exit: 0, tail: 'as committed\na.txt\nlib\n' });
    expect(startCounts.wholeTree).toBe(walks + 1);
    await releaseSandbox(setting, dir);
  }, 120_000);

  test('a path handed over is never followed through a symlink the command planted, nor into .git', async () => {
    const dir = await workspace({ 'a.txt': 'x\n' });
    await mkdir(path.join(dir, '.git'));
    await writeFile(path.join(dir, '.git', 'config'), '[core]\n');
    const outside = path.join(root, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, 'secret.txt'), 'the worker\'s\n');
    const planted = await boxed(dir, `ln -s ${outside} evil`);
    expect(planted.exitCode).toBe(0);
    // A change naming paths through the link and into .git (applyChange refuses both; the worker still noted them).
    await trackWrites(dir, ['evil/secret.txt', '.git/config'], async () => undefined);
    expect((await boxed(dir, 'true')).exitCode).toBe(0);
    expect((await stat(path.join(outside, 'secret.txt'))).uid).toBe(0);
    expect((await stat(path.join(dir, '.git', 'config'))).uid).toBe(0);
    await releaseSandbox(setting, dir);
  }, 120_000);

  test('the disk baseline counts what the worker wrote: a big file written between commands is not the command’s growth, a big file the command writes is', async () => {
    const dir = await workspace({ 'a.txt': 'x\n' });
    const limits = { diskMb: 16 };
    expect((await boxed(dir, 'true', limits)).limit).toBeUndefined();
    // 32 MiB written by the worker: over the command's limit if it were counted as the command's.
    await trackWrites(dir, ['vendor/blob.bin'], async () => {
      await mkdir(path.join(dir, 'vendor'));
      await writeFile(path.join(dir, 'vendor', 'blob.bin'), Buffer.alloc(32 << 20, 1));
    });
    const baselines = startCounts.diskFromBaseline;
    const quiet = await boxed(dir, 'cat vendor/blob.bin > /dev/null', limits);
    expect({ exit: quiet.exitCode, limit: quiet.limit }).toEqual({ exit: 0, limit: undefined });
    expect(startCounts.diskFromBaseline).toBe(baselines + 1);
    const grows = await boxed(dir, 'head -c 40000000 /dev/zero > grown.bin; sleep 3', limits);
    expect(grows.limit).toMatch(/disk limit 16 MiB/);
    await releaseSandbox(setting, dir);
  }, 120_000);

  test('a reused cgroup tells each command its own limits: an OOM kill in one is not the next one’s', async () => {
    const dir = await workspace({});
    const limits = { memoryMb: 64 };
    const oom = await boxed(dir, `node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"`, limits);
    expect(oom.limit).toMatch(/^killed: memory limit 64 MiB/);
    const cgroup = keptCgroup(dir);
    const next = await boxed(dir, 'echo fine', limits);
    expect({ exit: next.exitCode, limit: next.limit }).toEqual({ exit: 0, limit: undefined });
    expect(keptCgroup(dir)).toBe(cgroup);
    // Another limit for the same workspace's next command: the kept cgroup takes it.
    const forks = await boxed(dir, 'for i in $(seq 1 40); do sleep 2 & done; wait', { processes: 16 });
    expect(forks.limit).toMatch(/process limit 16 reached/);
    expect(keptCgroup(dir)).toBe(cgroup);
    // The memory limit raised, then lowered again: the kept cgroup's limits follow, swap never above memory.
    const limitsOf = async () =>
      Promise.all(['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'].map((f) => readFile(path.join(cgroup!, f), 'utf8').then((t) => Number(t) / (1 << 20), () => undefined)));
    for (const memoryMb of [128, 64]) {
      expect((await boxed(dir, 'true', { memoryMb })).exitCode).toBe(0);
      const [memory, memsw] = await limitsOf();
      expect(memory).toBe(memoryMb);
      if (memsw !== undefined) expect(memsw).toBe(memoryMb);
    }
    await releaseSandbox(setting, dir);
  }, 120_000);

  test('the sweep removes the cgroup a dead worker left, and no live one', async () => {
    const support = setting.cgroup!;
    const parent = support.version === 2 ? support.parent : (support.memory ?? support.pids)!;
    // A pid that was a process and is no more.
    const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    const leftover = path.join(parent, `weaver-${dead}-deadbeef`);
    const live = path.join(parent, `weaver-${process.pid}-livelive`);
    await mkdir(leftover);
    await mkdir(live);
    try {
      const gone = await sweepCgroups(support);
      expect(gone).toContain(leftover);
      expect(existsSync(leftover)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      // cgroup directories go with rmdir (their control files cannot be removed one by one).
      spawnSync('rmdir', [live, leftover]);
    }
  }, 60_000);
});

if (!asRoot) test.skip('a root worker’s sandbox (cgroups, uids): not this test run', () => undefined);

describe('a small tree walked in the worker instead of du/find/chown', () => {
  let root: string;
  beforeAll(async () => {
    root = sandboxableTempDir('weaver-walk-');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const du = async (dirs: string[], exclude: string[]) => {
    const out = (await execFileVia('du', ['-s', '-x', '-c', '-B1', ...exclude.map((p) => `--exclude=${p}`), '--', ...dirs])).stdout;
    const lines = out.trim().split('\n');
    return { bytes: Number(/^(\d+)\ttotal$/m.exec(out)?.[1]), each: dirs.map((d) => Number(lines.find((l) => l.endsWith(`\t${d}`))?.split('\t')[0])) };
  };

  test('measures what du measures (hard links once, sparse files by their blocks, symlinks not followed, .git left out) and finds the file at the size limit find finds', async () => {
    const ws = path.join(root, 'ws');
    const cache = path.join(root, 'cache');
    await mkdir(path.join(ws, '.git', 'objects'), { recursive: true });
    await mkdir(path.join(ws, 'src', 'deep', 'er'), { recursive: true });
    await mkdir(path.join(ws, 'empty'), { recursive: true });
    await mkdir(cache, { recursive: true });
    await writeFile(path.join(ws, '.git', 'objects', 'big'), Buffer.alloc(300_000, 1));
    await writeFile(path.join(ws, 'src', 'a.js'), 'x'.repeat(5000));
    await writeFile(path.join(ws, 'src', 'deep', 'er', 'b.bin'), Buffer.alloc(70_000, 2));
    await link(path.join(ws, 'src', 'a.js'), path.join(ws, 'src', 'deep', 'a-again.js'));
    await link(path.join(ws, 'src', 'a.js'), path.join(cache, 'a-in-cache.js'));
    await symlink('/usr', path.join(ws, 'usr-link'));
    // Sparse: 1 MiB long, a few blocks allocated — and exactly the size limit asked below.
    const limit = 1024 * 1024;
    const sparse = await open(path.join(ws, 'src', 'at-limit.dat'), 'w');
    await sparse.write(Buffer.from('z'), 0, 1, limit - 1);
    await sparse.close();
    await writeFile(path.join(cache, 'c.txt'), 'cache');
    const exclude = [path.join(ws, '.git')];
    const since = Date.now() - 5000;

    const small = await walkSmallTree([ws, cache], exclude, atLimitQuery(ws, limit, since));
    expect(small).toBeDefined();
    expect({ bytes: small!.bytes, each: small!.each }).toEqual(await du([ws, cache], exclude));
    expect(await du([ws], exclude)).toEqual({ bytes: (await walkSmallTree([ws], exclude))!.bytes, each: (await walkSmallTree([ws], exclude))!.each });
    expect(small!.atLimit).toBe(await fileAtLimit(ws, limit, since));
    expect(small!.atLimit).toBe(path.join(ws, 'src', 'at-limit.dat'));
    // One byte off, or older than the command: neither finds it.
    expect((await walkSmallTree([ws], exclude, atLimitQuery(ws, limit - 1, since)))!.atLimit).toBeNull();
    expect(await fileAtLimit(ws, limit - 1, since)).toBeUndefined();
    expect((await walkSmallTree([ws], exclude, atLimitQuery(ws, limit, Date.now() + 5000)))!.atLimit).toBeNull();
    expect(await fileAtLimit(ws, limit, Date.now() + 5000)).toBeUndefined();
    // diskUse answers the same either way.
    expect(await diskUse([ws, cache], exclude, atLimitQuery(ws, limit, since))).toEqual(small);
  });

  test('a tree past a few hundred entries is left to du', async () => {
    const wide = path.join(root, 'wide');
    await mkdir(wide, { recursive: true });
    await Promise.all(Array.from({ length: 300 }, (_, i) => writeFile(path.join(wide, `f${i}`), 'x'.repeat(i))));
    expect(await walkSmallTree([wide], [])).toBeUndefined();
    expect(await diskUse([wide], [])).toEqual(await du([wide], []));
  });

  (asRoot ? test : test.skip)('a small tree is handed over here exactly as find/chown would (the root too, .git never, symlinks not followed)', async () => {
    const ws = path.join(root, 'handed', 'repo');
    await mkdir(path.join(ws, '.git'), { recursive: true });
    await mkdir(path.join(ws, 'src'), { recursive: true });
    await writeFile(path.join(ws, 'src', 'a.js'), 'a');
    await writeFile(path.join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    await symlink('/etc/hostname', path.join(ws, 'host'));
    await handOver(ws, 54321);
    for (const p of [ws, path.join(ws, 'src'), path.join(ws, 'src', 'a.js'), path.join(ws, 'host')]) expect((await lstat(p)).uid).toBe(54321);
    expect((await lstat(path.join(ws, '.git'))).uid).toBe(0);
    expect((await lstat(path.join(ws, '.git', 'HEAD'))).uid).toBe(0);
    expect((await stat('/etc/hostname')).uid).toBe(0);
  });
});
