// The tag cache shared by every worker process on the host (issue 16, item 5): where it is
// (WEAVER_CACHE_DIR, the XDG default, the workspace root's when not writable), and two real
// processes building maps against it at once, each compacting it, without a wrong tag or a lost one.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { usableCacheDir } from '../src/cacheDir';
import { config } from '../src/config';
import { buildRepoMap, clearTagCacheMemory, type RepoMap } from '../src/activities/repomap';
import { TAGS_VERSION } from '../src/activities/repomap/languages';
import { addFiles, makeRepo } from './support/repos';

let base: string;
beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-tagcache-'));
});
afterEach(() => {
  clearTagCacheMemory();
  rmSync(base, { recursive: true, force: true });
});

describe('WEAVER_CACHE_DIR', () => {
  test('set, else $XDG_CACHE_HOME/weaver, else ~/.cache/weaver (a relative XDG_CACHE_HOME is ignored)', () => {
    expect(config({ WEAVER_CACHE_DIR: '/srv/weaver-cache' }).cacheDir).toBe('/srv/weaver-cache');
    expect(config({ XDG_CACHE_HOME: '/var/cache/u', HOME: '/home/u' }).cacheDir).toBe('/var/cache/u/weaver');
    expect(config({ XDG_CACHE_HOME: 'rel', HOME: '/home/u' }).cacheDir).toBe('/home/u/.cache/weaver');
    expect(config({ HOME: '/home/u' }).cacheDir).toBe('/home/u/.cache/weaver');
  });

  test('created when missing; the workspace root’s .cache when it cannot be written', async () => {
    const wanted = path.join(base, 'host', 'weaver');
    expect(await usableCacheDir(wanted, path.join(base, 'ws'))).toBe(wanted);
    expect(readdirSync(path.join(base, 'host'))).toEqual(['weaver']);
    writeFileSync(path.join(base, 'a-file'), '');
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(await usableCacheDir(path.join(base, 'a-file', 'weaver'), path.join(base, 'ws'))).toBe(path.join(base, 'ws', '.cache'));
      expect(warn.mock.calls.join('\n')).toMatch(/WEAVER_CACHE_DIR .*a-file\/weaver is not writable/);
    } finally {
      warn.mockRestore();
    }
  });
});

/** `n` Python modules calling each other (enough for the tagging threads), `salt` making every blob distinct. */
function modules(n: number, salt: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const j = (7 * i + 3) % n;
    files[`pkg/m${i}.py`] = `# ${salt} ${i}\nfrom pkg.m${j} import handler_${j}\n\n\nclass Widget${i}:\n    def run_${i}(self, x):\n        return handler_${j}(x)\n\n\ndef handler_${i}(x):\n    return Widget${i}().run_${i}(x) if x else ${i}\n`;
  }
  return files;
}

const run = promisify(execFile);
/** Builds the maps of `repos` in a new node process against `cacheDir`. */
async function mapInProcess(cacheDir: string, repos: string[]): Promise<{ dir: string; text: string; ranked: RepoMap['ranked']; parsed: number; fromCache: number; files: number }[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(__dirname, 'support', 'buildMapProcess.ts'), cacheDir, ...repos], { maxBuffer: 64 << 20 });
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

test('two processes building maps against one cache dir at once: both maps right, the cache consistent and complete', async () => {
  const shared = path.join(base, 'shared');
  // Twelve segments already there (one build each), so each process's write passes the limit and compacts.
  const small = await makeRepo(path.join(base, 'small'), { 'a.py': 'def a():\n    pass\n' });
  for (let k = 0; k < 12; k++) {
    await addFiles(small, { 'a.py': `def a_${k}():\n    pass\n` });
    expect((await buildRepoMap({ dir: small, cacheDir: shared, mentionedFiles: [], mentionedIdents: [], tokenBudget: 1024 })).stats.parsed).toBe(1);
  }
  const segments = () => readdirSync(path.join(shared, `tags-${TAGS_VERSION}`));
  expect(segments().filter((n) => n.startsWith('seg-'))).toHaveLength(12);
  // One repository both build, and one each of their own.
  const common = await makeRepo(path.join(base, 'common'), modules(240, 'common'));
  const onlyA = await makeRepo(path.join(base, 'only-a'), modules(60, 'a'));
  const onlyB = await makeRepo(path.join(base, 'only-b'), modules(60, 'b'));
  // The truth: each map built alone, with a cache of its own.
  const truth = new Map<string, RepoMap>();
  for (const dir of [common, onlyA, onlyB]) truth.set(dir, await buildRepoMap({ dir, cacheDir: path.join(base, `own-${path.basename(dir)}`), mentionedFiles: [], mentionedIdents: [], tokenBudget: 4096 }));

  const [a, b] = await Promise.all([mapInProcess(shared, [common, onlyA]), mapInProcess(shared, [common, onlyB])]);
  for (const m of [...a, ...b]) {
    const want = truth.get(m.dir)!;
    expect({ dir: m.dir, text: m.text, ranked: m.ranked }).toEqual({ dir: m.dir, text: want.text, ranked: want.ranked });
    expect(m.parsed + m.fromCache).toBe(m.files);
  }

  // No temporary file left; a process reading the cache afresh finds every file of the three
  // repositories (and the small one's last version) and builds the same maps without parsing.
  expect(segments().filter((n) => !n.startsWith('seg-'))).toEqual([]);
  const again = await mapInProcess(shared, [common, onlyA, onlyB, small]);
  for (const m of again) {
    expect({ dir: m.dir, parsed: m.parsed, fromCache: m.fromCache }).toEqual({ dir: m.dir, parsed: 0, fromCache: m.files });
    if (truth.has(m.dir)) expect({ text: m.text, ranked: m.ranked }).toEqual({ text: truth.get(m.dir)!.text, ranked: truth.get(m.dir)!.ranked });
  }
  // Compacted: the first process to write saw 13 segments; at most a merged one per process and one written after each is left.
  expect(segments().length).toBeLessThanOrEqual(4);
}, 120_000);
