// Retention that outlives Temporal's memory (issue 17 item 4): the commit activity records each
// unpushed commit's bundle in the artifact store itself, and `weaver gc` (the CLI, as a process)
// keeps every bundle a record names even when the run's history is gone; `weaver discard` lets it
// go. Real worker, real moto S3, real dev server (a run's history deleted through its API), real
// git; ages are set with utimes or by `--older-than 1s`, never waited for beyond a second. And the
// host caches' size cap: least recently used first across the S3 copies, the tag cache and the
// toolchain caches, never a leased toolchain cache.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { openArtifactStore, type S3ArtifactStore } from '../src/activities/s3Artifacts';
import { tagCacheDir } from '../src/activities/repomap/cache';
import { TAGS_VERSION } from '../src/activities/repomap/languages';
import { leaseCache } from '../src/activities/sandbox/cacheLease';
import { recordUnpushed, settleUnpushed, unpushedKey, unpushedPrefix } from '../src/activities/unpushed';
import { workspaceDirFor } from '../src/activities/workspace';
import { resultOf } from '../src/client';
import { sweepWorkspaces } from '../src/workspaceSweep';
import type { Progress } from '../src/domain/schema';
import { addFiles, makeRepo } from './support/repos';
import { GOOD } from './support/replayScenarios';
import { wholeFile } from './support/answers';
import { waitUntil } from './support/processes';
import { useS3Server, type S3Server } from './support/s3';
import { testAddress, TEST_NAMESPACE } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

const ROOT = path.resolve(__dirname, '..');
const BUCKET = 'weaver-retention';
const PREFIX = 'fleet/';
const DAY = 86_400_000;
const git = (cwd: string, ...args: string[]) => promisify(execFile)('git', args, { cwd }).then((r) => r.stdout.trim());

let s3: S3Server;
const deps: Record<string, unknown> = {};
useS3Server((s) => {
  s3 = s;
  Object.assign(deps, { artifacts: `s3://${BUCKET}/${PREFIX}`, env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789', ...s.env } });
});
let rig: Rig;
useRig((r) => (rig = r), { deps });

/** `weaver gc|discard …` as a process; `env` on top of the rig's settings. */
async function weaver(env: Record<string, string>, ...args: string[]): Promise<string> {
  const all = { ...process.env, TEMPORAL_ADDRESS: testAddress(), TEMPORAL_NAMESPACE: TEST_NAMESPACE, WEAVER_WORKSPACE_ROOT: rig.workspaceRoot, WEAVER_ARTIFACT_DIR: rig.artifactDir, WEAVER_CACHE_DIR: path.join(rig.tmp, 'cache'), ...env };
  const { stdout } = await promisify(execFile)(path.join(ROOT, 'bin', 'weaver.mjs'), args, { cwd: ROOT, env: all, maxBuffer: 16 << 20 });
  return stdout;
}
const onS3 = () => ({ ...s3.env, WEAVER_ARTIFACTS: `s3://${BUCKET}/${PREFIX}` });

async function inBucket(key: string): Promise<boolean> {
  return s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(
    () => true,
    () => false,
  );
}
const bundleKey = (ref: string) => `${PREFIX}sha256/${ref.slice(7, 9)}/${ref.slice(7)}`;
async function recordKeys(): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}unpushed/` }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

test('S3: an unpushed commit\'s bundle survives gc after Temporal forgot its run, while its record exists; a pushed one leaves no record; discard lets it go', async () => {
  const repo = await rig.newRepo();
  rig.model.script('dur-local', [{ content: wholeFile('src/slugify.js', GOOD, 'edit slugify') }]);
  rig.model.script('dur-approve', [{ content: wholeFile('src/slugify.js', GOOD, 'edit slugify') }]);
  const local = await rig.start(rig.task(repo, [rig.provider('dur-local')], { push: false, decomposition: 'never' }));
  const approved = await rig.start(rig.task(repo, [rig.provider('dur-approve')], { push: true, requireApproval: true, decomposition: 'never' }));
  const localResult = await resultOf(local);
  expect(localResult).toMatchObject({ status: 'succeeded', pushed: false, bundle: { ref: expect.any(String) } });
  const localRun = (await local.describe()).runId;
  // Recorded where the bundle is, by the commit activity: its key, the branch, the commit.
  const key = `${PREFIX}${unpushedKey(local.workflowId, localRun)}`;
  expect(await recordKeys()).toContain(key);
  const body = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  expect(JSON.parse(await body.Body!.transformToString())).toMatchObject({ workflowId: local.workflowId, runId: localRun, bundle: localResult.bundle!.ref, commit: localResult.commit, branch: localResult.branch, repo });

  // Awaiting approval: committed and bundled, so recorded; approved and pushed: the record goes.
  await waitUntil('the run awaits approval', async () => (await approved.query<Progress>('progress')).phase === 'awaiting_approval', 60_000);
  const approvedRun = (await approved.describe()).runId;
  expect(await recordKeys()).toContain(`${PREFIX}${unpushedKey(approved.workflowId, approvedRun)}`);
  await approved.executeUpdate('approvePush', { args: [{ approved: true, by: 'test' }] });
  expect(await resultOf(approved)).toMatchObject({ status: 'succeeded', pushed: true });
  expect((await recordKeys()).filter((k) => k.startsWith(`${PREFIX}${unpushedPrefix(approved.workflowId)}`))).toEqual([]);

  // Temporal forgets the run (as after the namespace's retention): its history is deleted.
  await rig.client.workflowService.deleteWorkflowExecution({ namespace: TEST_NAMESPACE, workflowExecution: { workflowId: local.workflowId, runId: localRun } });
  await waitUntil('the run is forgotten', () => local.describe().then(() => false, (e: Error) => e.name === 'WorkflowNotFoundError'), 60_000);
  const ws = workspaceDirFor(rig.workspaceRoot, local.workflowId);
  expect(existsSync(ws)).toBe(true);
  // Everything in the bucket is over a second old: only references keep it.
  await new Promise((r) => setTimeout(r, 1500));

  const dry = await weaver(onS3(), 'gc', '--dry-run', '--older-than', '1s');
  expect(dry).toContain(`kept: unpushed commit ${localResult.commit} of ${local.workflowId}`);
  const out = await weaver(onS3(), 'gc', '--older-than', '1s');
  expect(out).toMatch(/artifacts: removed [1-9]\d* /); // the runs' prompts and answers: nothing refers to them now
  expect(out).toContain(`= ${localResult.bundle!.ref} `);
  expect(out).toContain(`unpushed commit ${localResult.commit} of ${local.workflowId} (its record)`);
  expect(await inBucket(bundleKey(localResult.bundle!.ref))).toBe(true);
  // Its workspace went: Temporal cannot say, but the folder's commit is the recorded bundle's.
  expect(existsSync(ws)).toBe(false);

  expect(await weaver(onS3(), 'discard', local.workflowId)).toContain(`discarded unpushed commit ${localResult.commit} of ${local.workflowId}`);
  expect(await recordKeys()).not.toContain(key);
  const after = await weaver(onS3(), 'gc', '--older-than', '1s');
  expect(after).toContain(`- ${localResult.bundle!.ref} `);
  expect(await inBucket(bundleKey(localResult.bundle!.ref))).toBe(false);
}, 300_000);

test('local store: a bundle recorded for a run the namespace never had is kept however old until its record goes; a parent\'s push drops the records of the children it contains', async () => {
  const dir = path.join(rig.tmp, 'local-store');
  const store = new LocalArtifactStore(dir);
  const repo = await makeRepo(path.join(rig.tmp, 'local-origin'), { 'a.txt': 'a\n' });
  await git(repo, 'checkout', '-q', '-b', 'weaver/child');
  await addFiles(repo, { 'b.txt': 'b\n' }, 'a child\'s commit');
  const child = await git(repo, 'rev-parse', 'HEAD');
  const file = await store.scratchPath('branch.bundle');
  await git(repo, 'bundle', 'create', file, 'weaver/child', '^main');
  const bundle = await store.adoptFile('git-bundle', file);
  const wf = `never-ran-${Date.now()}/1-child`;
  await recordUnpushed(store, { workflowId: wf, runId: 'r1', bundle: bundle.ref, branch: 'weaver/child', commit: child, at: new Date().toISOString() });
  const stray = await store.put('log', 'an old log nobody refers to');
  const old = new Date(Date.now() - 30 * DAY);
  for (const ref of [bundle, stray]) await utimes(store.pathOf(ref), old, old);
  const env = { WEAVER_ARTIFACT_DIR: dir, WEAVER_WORKSPACE_ROOT: path.join(rig.tmp, 'local-ws') };

  const out = await weaver(env, 'gc', '--older-than', '7d');
  expect(out).toContain(`kept: unpushed commit ${child} of ${wf} (bundle ${bundle.ref}, branch weaver/child)`);
  expect([existsSync(store.pathOf(bundle)), existsSync(store.pathOf(stray))]).toEqual([true, false]);

  // The parent (id `<root>`) merges the child and pushes: its commit holds the child's, so the
  // child's record goes; a sibling's record whose commit it does not hold stays.
  const root = wf.split('/')[0];
  await recordUnpushed(store, { workflowId: `${root}/2-other`, runId: 'r1', bundle: bundle.ref, branch: 'weaver/other', commit: 'f'.repeat(40), at: new Date().toISOString() });
  await git(repo, 'checkout', '-q', 'main');
  await git(repo, 'merge', '-q', '--no-ff', '-m', 'integrate', 'weaver/child');
  const parent = await git(repo, 'rev-parse', 'HEAD');
  await settleUnpushed(store, { workflowId: root, runId: 'p1', dir: repo, branch: 'main' }, { commit: parent, pushed: true }, (m) => {
    throw new Error(m);
  });
  expect(await store.listRecords('unpushed/')).toEqual([unpushedKey(`${root}/2-other`, 'r1')]);

  await weaver(env, 'discard', `${root}/2-other`);
  expect(await weaver(env, 'gc', '--older-than', '7d')).toContain(`- ${bundle.ref} `);
  expect(existsSync(store.pathOf(bundle))).toBe(false);
}, 120_000);

test('the host caches over WEAVER_CACHE_MAX_MB are trimmed least recently used first across the S3 copies, the tag cache and toolchain caches; a leased toolchain cache is kept', async () => {
  const root = path.join(rig.tmp, 'cap-ws');
  const cacheDir = path.join(rig.tmp, 'cap-cache');
  const ago = (days: number) => new Date(Date.now() - days * DAY);
  // A toolchain cache of 400 KiB last used `days` ago (its folder and what is in it).
  const toolchain = async (name: string, days: number) => {
    const dir = path.join(root, '.cache', 'toolchains', name);
    await mkdir(path.join(dir, 'go-build'), { recursive: true });
    await writeFile(path.join(dir, 'go-build', 'obj'), Buffer.alloc(400 * 1024, 7));
    for (const p of [path.join(dir, 'go-build'), dir]) await utimes(p, ago(days), ago(days));
    return dir;
  };
  const leased = await toolchain('aaaaaaaaaaaaaaaa', 4);
  const oldest = await toolchain('bbbbbbbbbbbbbbbb', 3);
  const recent = await toolchain('cccccccccccccccc', 2);
  // Held by a command (this process, alive) since 4 days ago: the oldest, and still not evicted.
  const { release } = leaseCache(leased, process.getuid?.() ?? 0)!;
  await utimes(`${leased}.users`, ago(4), ago(4));
  // A tag cache of ~300 KiB whose entries were last used 5 days ago: older than all of them.
  const tdir = tagCacheDir(path.join(cacheDir, 'repomap'));
  await mkdir(tdir, { recursive: true });
  const e: Record<string, unknown> = {};
  const t: Record<string, number> = {};
  for (let i = 0; i < 3000; i++) {
    e[`ts:${i.toString(16).padStart(40, '0')}`] = { d: [[`fn${i}`, 'function', i, i + 3]], r: [] };
    t[`ts:${i.toString(16).padStart(40, '0')}`] = ago(5).getTime();
  }
  await writeFile(path.join(tdir, 'seg-a.json'), JSON.stringify({ v: TAGS_VERSION, e, t }));
  // With the S3 store, this host's copy of an artifact (300 KiB) last read 6 days ago: the oldest of all.
  const copies = path.join(rig.tmp, 'cap-artifacts');
  const s3store = openArtifactStore({ artifacts: `s3://${BUCKET}/${PREFIX}`, dir: copies, env: s3.env }) as S3ArtifactStore;
  const copy = await s3store.put('log', Buffer.alloc(300 * 1024, 3));
  const copyFile = path.join(copies, 'sha256', copy.ref.slice(7, 9), copy.ref.slice(7));
  await utimes(copyFile, ago(6), ago(6));
  const env = { ...onS3(), WEAVER_WORKSPACE_ROOT: root, WEAVER_CACHE_DIR: cacheDir, WEAVER_ARTIFACT_DIR: copies, WEAVER_CACHE_MAX_MB: '1' };
  try {
    const dry = await weaver(env, 'gc', '--dry-run');
    expect(dry).toMatch(/^caches: \d\.\d MiB of the 1 MiB cap \(tag cache \d+ KiB, toolchain caches 1\.\d MiB, artifact cache 300 KiB\): would evict 3 /m);
    expect([existsSync(oldest), existsSync(tdir + '/seg-a.json'), existsSync(copyFile)]).toEqual([true, true, true]);

    const out = await weaver(env, 'gc');
    // Least recently used first: the artifact copy (6 days), the tag cache's entries (5 days), the
    // leased cache (4 days: kept), then the oldest free toolchain cache (3 days); under the cap
    // then, so the 2-day one stays.
    expect(out).toMatch(/^caches: \d\.\d MiB of the 1 MiB cap .*: evicted 3 \(1\.\d MiB freed\), least recently used first$/m);
    expect(out).toContain(`  - artifact cache ${copy.ref} (300 KiB, last used 6.0d ago)`);
    // Only this host's copy: the bucket keeps the artifact.
    expect([existsSync(copyFile), await inBucket(bundleKey(copy.ref))]).toEqual([false, true]);
    expect(out).toMatch(/^ {2}- tag cache 3000 entries \(\d+ KiB, last used 5\.0d ago\)$/m);
    expect(out).toMatch(new RegExp(`^  - toolchain cache ${oldest} \\(4\\d\\d KiB, last used 3\\.0d ago\\)$`, 'm'));
    expect(out).toContain(`  = toolchain cache ${leased} (`);
    expect(out).toContain(`: kept, in use: leased by pid ${process.pid}`);
    expect([existsSync(leased), existsSync(oldest), existsSync(recent)]).toEqual([true, false, true]);
    expect(existsSync(path.join(root, '.cache', 'toolchains', '.evicted'))).toBe(false);
  } finally {
    release();
  }
}, 120_000);

test('the sweep judged by folder only (a host reusing the root path a closed run\'s result names) keeps the folder while it holds a commit its run never pushed or bundled', async () => {
  rig.model.script('dur-folder', [{ content: wholeFile('src/slugify.js', GOOD, 'edit slugify') }]);
  const h = await rig.start(rig.task(await rig.newRepo(), [rig.provider('dur-folder')], { push: false, decomposition: 'never' }));
  const r = await resultOf(h);
  expect(r).toMatchObject({ status: 'succeeded', pushed: false, bundle: { ref: expect.any(String) }, workspace: expect.any(String) });
  // The folder at the path the result names holds one commit more than the bundled one: made on
  // the host that used this root before (the result cannot say which host it meant).
  await addFiles(r.workspace!, { 'later.txt': 'made here, never bundled\n' }, 'a commit only this folder has');
  const sweep = () => sweepWorkspaces({ root: rig.workspaceRoot, connection: rig.client.connection, namespace: TEST_NAMESPACE, log: () => undefined });
  const kept = await sweep();
  expect(kept.kept).toContainEqual({ name: path.basename(path.dirname(r.workspace!)), why: expect.stringMatching(new RegExp(`run ${h.workflowId} is completed, but a commit of it lives only here`)) });
  expect(existsSync(r.workspace!)).toBe(true);
  // Back at the bundled commit: nothing lives only here, so the folder goes.
  await git(r.workspace!, 'reset', '-q', '--hard', 'HEAD~1');
  expect((await sweep()).removed.map((x) => x.workflowId)).toContain(h.workflowId);
  expect(existsSync(r.workspace!)).toBe(false);
}, 120_000);
