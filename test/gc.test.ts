// Retention (issue 17 item 4): `weaver gc` run as a process against the real dev server, a real
// worker and real git. Ages are set with utimes, never waited for. A finished run's workspace and
// old artifacts go; an open run's workspace and every artifact its history names stay, and so do
// a closed run's unpushed commit (its bundle, named by its result or its record in the store);
// --dry-run removes nothing. The tag cache keeps the entries used within the retention.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { resultOf } from '../src/client';
import { workspaceDirFor } from '../src/activities/workspace';
import { clearTagCacheMemory, TagCache, tagCacheDir } from '../src/activities/repomap/cache';
import { pruneTagCache } from '../src/activities/repomap/cachePrune';
import type { FileTags } from '../src/activities/repomap/extract';
import { TAGS_VERSION } from '../src/activities/repomap/languages';
import type { Progress } from '../src/domain/schema';
import { config } from '../src/config';
import { runGc } from '../src/gc';
import { periodicGc } from '../src/gc/periodic';
import { collectRefs, type Keep } from '../src/gc/references';
import { wholeFile } from './support/answers';
import { waitUntil } from './support/processes';
import { testAddress, TEST_NAMESPACE } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

const ROOT = path.resolve(__dirname, '..');
const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const answer = (content: string) => ({ content: wholeFile('src/slugify.js', content, 'edit slugify') });
const DAY = 86_400_000;

let rig: Rig;
useRig((r) => (rig = r));

/** `weaver gc …` as a process, with the worker's settings. */
async function gc(...args: string[]): Promise<string> {
  const env = { ...process.env, TEMPORAL_ADDRESS: testAddress(), TEMPORAL_NAMESPACE: TEST_NAMESPACE, WEAVER_WORKSPACE_ROOT: rig.workspaceRoot, WEAVER_ARTIFACT_DIR: rig.artifactDir, WEAVER_CACHE_DIR: path.join(rig.tmp, 'cache') };
  const { stdout } = await promisify(execFile)(path.join(ROOT, 'bin', 'weaver.mjs'), ['gc', ...args], { cwd: ROOT, env, maxBuffer: 16 << 20 });
  return stdout;
}

/** The artifacts in the rig's store: hex → file. */
async function stored(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const top = path.join(rig.artifactDir, 'sha256');
  for (const two of await readdir(top)) for (const hex of await readdir(path.join(top, two))) out.set(hex, path.join(top, two, hex));
  return out;
}

async function refsOf(h: WorkflowHandle): Promise<Keep> {
  const keep: Keep = new Map();
  collectRefs(await h.fetchHistory(), h.workflowId, keep);
  return keep;
}

test('weaver gc removes a finished run\'s workspace and old artifacts; keeps an open run\'s, its artifacts and an unpushed commit; --dry-run removes nothing', async () => {
  const repo = await rig.newRepo();
  rig.model.script('gc-fail', [answer('module.exports = { slugify: (t) => t };\n')]);
  rig.model.script('gc-wait', [answer(GOOD)]);
  rig.model.script('gc-local', [answer(GOOD)]);
  rig.model.script('gc-held', [answer(GOOD)]);
  // Finished: failed, its workspace left for a person to look at (no commit in it).
  const failed = await rig.start(rig.task(repo, [rig.provider('gc-fail')], { limits: { maxAttempts: 1 }, decomposition: 'never' }));
  // Open: a commit awaiting approval.
  const open = await rig.start(rig.task(repo, [rig.provider('gc-wait')], { push: true, requireApproval: true, decomposition: 'never' }));
  // Closed with a commit that was never pushed.
  const local = await rig.start(rig.task(repo, [rig.provider('gc-local')], { push: false, decomposition: 'never' }));
  // Ended (its host lost, say) while its commit awaited approval: the commit is in its workspace only.
  const held = await rig.start(rig.task(repo, [rig.provider('gc-held')], { push: true, requireApproval: true, decomposition: 'never' }));
  const [failedResult, localResult] = await Promise.all([resultOf(failed), resultOf(local)]);
  expect(failedResult).toMatchObject({ status: 'failed', workspace: expect.any(String) });
  expect(localResult).toMatchObject({ status: 'succeeded', pushed: false, bundle: { ref: expect.any(String) } });
  for (const h of [open, held]) await waitUntil('the run awaits approval', async () => (await h.query<Progress>('progress')).phase === 'awaiting_approval', 60_000);
  await held.terminate('test: its host was lost');
  const heldWs = workspaceDirFor(rig.workspaceRoot, held.workflowId);
  const failedWs = workspaceDirFor(rig.workspaceRoot, failed.workflowId);
  const openWs = workspaceDirFor(rig.workspaceRoot, open.workflowId);
  expect([existsSync(failedWs), existsSync(openWs)]).toEqual([true, true]);

  // Everything stored so far is 8 days old; one artifact is written after the gc's cutoff.
  const old = new Date(Date.now() - 8 * DAY);
  const before = await stored();
  for (const file of before.values()) await utimes(file, old, old);
  const young = await new LocalArtifactStore(rig.artifactDir).put('note', `written just now ${Date.now()}`);
  const soon = new Date(Date.now() + DAY);
  await utimes(path.join(rig.artifactDir, 'sha256', young.ref.slice(7, 9), young.ref.slice(7)), soon, soon);
  const scratch = path.join(rig.artifactDir, 'tmp', 'crashed-writer.log');
  await mkdir(path.dirname(scratch), { recursive: true });
  await writeFile(scratch, 'left by a writer that died\n');
  await utimes(scratch, old, old);

  const openRefs = await refsOf(open);
  const failedOnly = [...(await refsOf(failed)).keys()].filter((r) => !openRefs.has(r) && r !== localResult.bundle?.ref);
  expect(openRefs.size).toBeGreaterThan(0);
  expect(failedOnly.length).toBeGreaterThan(0);
  for (const r of openRefs.keys()) expect(before.has(r.slice(7))).toBe(true);

  // The runs below are judged by `--older-than 1s` from their close: let the failed one be
  // closed for longer than that (on a fast machine the gc could otherwise start within it).
  const closedAt = (await failed.describe()).closeTime?.getTime() ?? Date.now();
  await waitUntil('the failed run to be closed for over 1 s', async () => Date.now() - closedAt > 1500, 30_000);
  // A dry run: says what would go, removes nothing.
  const dry = await gc('--dry-run', '--older-than', '1s');
  expect(dry).toContain('(dry run: nothing removed)');
  expect(dry).toMatch(/artifacts: would remove [1-9]\d* /);
  expect(dry).toContain(`- ${failedOnly[0]}`);
  expect(dry).toContain(`run ${failed.workflowId} failed`);
  expect([...(await stored()).keys()].sort()).toEqual([...before.keys(), young.ref.slice(7)].sort());
  expect([existsSync(failedWs), existsSync(scratch)]).toEqual([true, true]);

  // Within a 7-day retention the failed run's workspace (closed just now) stays.
  expect(await gc('--older-than', '7d')).toMatch(new RegExp(`= [^\\n]*: run ${failed.workflowId} is failed, closed 0h ago: within the retention period`));
  expect(existsSync(failedWs)).toBe(true);

  const out = await gc('--older-than', '1s');
  const after = await stored();
  // The finished run's workspace and what only it referred to are gone; so is the old scratch file.
  expect(existsSync(failedWs)).toBe(false);
  for (const r of failedOnly) expect(after.has(r.slice(7))).toBe(false);
  expect(existsSync(scratch)).toBe(false);
  // The open run keeps its workspace and every artifact its history names, however old.
  expect(existsSync(openWs)).toBe(true);
  for (const r of openRefs.keys()) expect(after.has(r.slice(7))).toBe(true);
  expect(out).toContain(`: open run ${open.workflowId}`);
  // The worker's tag cache (WEAVER_CACHE_DIR), filled by the runs' repository maps a few seconds ago.
  expect(out).toMatch(/tag cache: removed [1-9]\d* entries not used within the retention/);
  // Younger than the cutoff: kept though nothing refers to it.
  expect(after.has(young.ref.slice(7))).toBe(true);
  // Unpushed commits survive: a finished run's in its bundle (its workspace may go), and a
  // terminated run's too: its commit was bundled and recorded in the store when it was made, so
  // its workspace is no longer the only copy and goes, while the record keeps the bundle.
  expect(after.has(localResult.bundle!.ref.slice(7))).toBe(true);
  expect(out).toContain(`= ${localResult.bundle!.ref} `);
  expect(out).toContain(`unpushed commit of ${local.workflowId} (its bundle)`);
  const heldBundle = new RegExp(`kept: unpushed commit [0-9a-f]{40} of ${held.workflowId} \\(bundle sha256:([0-9a-f]{64})`).exec(out);
  expect(heldBundle).not.toBeNull();
  expect(after.has(heldBundle![1])).toBe(true);
  expect(existsSync(heldWs)).toBe(false);
  await open.terminate('test: done');
}, 300_000);

test('the tag cache prune drops entries unused within the retention and keeps recent and recently used ones (lock-free rewrites)', async () => {
  const cacheDir = path.join(rig.tmp, 'tag-cache');
  const dir = tagCacheDir(cacheDir);
  const tags = (name: string): FileTags => ({ d: [[name, 'function', 1, 3]], r: [] });
  await mkdir(dir, { recursive: true });
  // A segment written 8 days ago, before entries had use times: its mtime dates them.
  const legacy = path.join(dir, 'seg-legacy.json');
  await writeFile(legacy, JSON.stringify({ v: TAGS_VERSION, e: { 'js:used': tags('used'), 'js:unused': tags('unused') } }));
  const old = new Date(Date.now() - 8 * DAY);
  await utimes(legacy, old, old);
  // A merged segment mixing an entry unused for 9 days and one used an hour ago.
  await writeFile(
    path.join(dir, 'seg-mixed.json'),
    JSON.stringify({ v: TAGS_VERSION, e: { 'js:stale': tags('stale'), 'js:fresh': tags('fresh') }, t: { 'js:stale': Date.now() - 9 * DAY, 'js:fresh': Date.now() - 3_600_000 } }),
  );

  // A build uses one old entry and adds a new one: the use is recorded in its new segment.
  clearTagCacheMemory();
  const build = await TagCache.open(cacheDir);
  expect(build.get('js:used')).toEqual(tags('used'));
  build.put('js:new', tags('new'));
  await build.flush();

  const segments = async () => (await readdir(dir)).filter((n) => n.startsWith('seg-')).sort();
  const beforeNames = await segments();
  const dry = await pruneTagCache(cacheDir, Date.now() - 7 * DAY, true);
  expect(dry).toMatchObject({ entriesRemoved: 3, segmentsRemoved: 2 });
  expect(await segments()).toEqual(beforeNames);

  const pruned = await pruneTagCache(cacheDir, Date.now() - 7 * DAY);
  // Unused: the legacy copy of js:used (its use lives in the new segment), js:unused, js:stale.
  expect(pruned).toMatchObject({ entriesRemoved: 3, segmentsRemoved: 2 });
  expect(await segments()).not.toContain('seg-legacy.json');
  expect(await segments()).not.toContain('seg-mixed.json');
  clearTagCacheMemory();
  const after = await TagCache.open(cacheDir);
  expect(['js:used', 'js:new', 'js:fresh', 'js:unused', 'js:stale'].map((k) => after.get(k) !== undefined)).toEqual([true, true, true, false, false]);
});

test('a worker\'s periodic gc (WEAVER_GC_INTERVAL, daily by default, 0 off) runs the real gc and logs what it removed', async () => {
  expect(config({}).gcIntervalMs).toBe(DAY);
  expect(config({ WEAVER_GC_INTERVAL: '0', WEAVER_RETENTION: '2w' })).toMatchObject({ gcIntervalMs: 0, retentionMs: 14 * DAY });
  expect(() => config({ WEAVER_RETENTION: 'a week' })).toThrow(/WEAVER_RETENTION must be a duration/);

  const store = new LocalArtifactStore(path.join(rig.tmp, 'periodic-artifacts'));
  const ref = await store.put('log', 'an old log nobody refers to');
  const old = new Date(Date.now() - 8 * DAY);
  await utimes(store.pathOf(ref), old, old);
  const lines: string[] = [];
  const stop = periodicGc(50, () => runGc({ connection: rig.client.connection, namespace: TEST_NAMESPACE, workspaceRoot: path.join(rig.tmp, 'periodic-ws'), store, retentionMs: 7 * DAY }), (l) => lines.push(l));
  try {
    await waitUntil('a periodic gc ran', () => lines.length > 0, 60_000);
  } finally {
    stop();
  }
  expect(lines[0]).toMatch(/^weaver worker: gc removed 0 workspace\(s\) \(0 bytes\), 1 artifact\(s\) \(27 bytes\), 0 tag-cache entries/);
  expect(existsSync(store.pathOf(ref))).toBe(false);
  expect(periodicGc(0, () => Promise.reject(new Error('never called')))).toBeInstanceOf(Function);
});
