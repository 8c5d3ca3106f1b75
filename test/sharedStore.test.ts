// Two hosts sharing only Temporal and an S3 bucket (issue 17 item 1): a decomposition whose
// parent works on host A and whose children run on host B, each with its own workspace root and
// its own local artifact directory, integrates the children's branches through the object store.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { simpleGit } from 'simple-git';
import type { StaticStep } from '../scripts/demo/scriptedModelServer';
import type { ActivityDeps } from '../src/activities/types';
import { resultOf } from '../src/client';
import type { Progress } from '../src/domain/schema';
import { createWorkers, workerSandbox, type WeaverWorkers } from '../src/worker';
import { byTitle, fix, multiRepo, parentTask, sub, titleOf } from './support/modules';
import { wholeFile } from './support/answers';
import { activitiesOf, waitUntil } from './support/processes';
import { GOOD } from './support/replayScenarios';
import { useS3Server, type S3Server } from './support/s3';
import { testNativeConnection, workflowBundle } from './support/temporal';
import { useRig, type Rig } from './support/weaver';

const BUCKET = 'weaver-shared';
let s3: S3Server;
// Filled once the server is up, before the rig starts (hooks run in declaration order).
const deps: Partial<ActivityDeps> = {};
useS3Server((s) => {
  s3 = s;
  Object.assign(deps, { artifacts: `s3://${BUCKET}/fleet`, env: { ...process.env, TEST_API_KEY: 'sk-test-secret-key-123456789', ...s.env } });
});
let rig: Rig;
useRig((r) => (rig = r), { deps });

/**
 * Another host: the rig's task queue, its own workspace queue, workspace root and artifact cache;
 * only Temporal and the bucket in common. (One process polls a queue once: the rig's own main
 * worker must have stopped first.)
 */
async function startHost(name: string, extra: Partial<ActivityDeps> = {}): Promise<{ host: WeaverWorkers; running: Promise<void>; root: string }> {
  const root = path.join(rig.tmp, `host-${name}`);
  const own = { workspaceRoot: path.join(root, 'workspaces'), artifactDir: path.join(root, 'artifacts') };
  const host = await createWorkers({
    connection: await testNativeConnection(),
    taskQueue: rig.taskQueue,
    workspaceQueue: `${rig.taskQueue}-ws-${name}`,
    workflowBundle: workflowBundle(),
    providers: rig.providers,
    deps: { ...deps, ...own, retryDelayScale: 0.01, heartbeatMs: 50, repoRoots: [rig.tmp], sandbox: await workerSandbox(own, 'auto'), ...extra },
  });
  return { host, running: host.run(), root };
}

/** The rig's own main worker stopped polling the shared queue (its workspace queue keeps running). */
async function stopRigMain(): Promise<void> {
  const main = rig.worker.workers[0];
  if (main.getState() === 'RUNNING') main.shutdown();
  await waitUntil('host A to stop polling the shared queue', () => main.getState() === 'STOPPED', 120_000);
}

const bundleKey = (ref: string) => `fleet/sha256/${ref.slice(7, 9)}/${ref.slice(7)}`;
const cached = (dir: string, ref: string) => existsSync(path.join(dir, 'sha256', ref.slice(7, 9), ref.slice(7)));

test('children on a second host hand their branches over through S3; the parent merges them on its own host', async () => {
  const repo = await multiRepo(rig, ['a', 'b']);
  let b: ReturnType<typeof startHost> | undefined;
  const split: StaticStep = { content: { summary: 'split', subtasks: [sub('fix a', 'a'), sub('fix b', 'b')] } };
  const answers = byTitle({ 'Finish every module': split, 'fix a': fix('a'), 'fix b': fix('b') });
  rig.model.setDefault('s3-fleet', (req) => {
    // The parent's plan, asked on host A: A stops taking new work from the shared queue (its
    // workspace queue stays: the parent's workspace is there) and, once it has (one process
    // polls a queue once), host B comes up. The children can only start, clone and commit on B.
    if (titleOf(req) === 'Finish every module' && !b) b = stopRigMain().then(() => startHost('b'));
    return answers(req);
  });
  try {
    const id = `s3-fleet-${Date.now()}`;
    const result = await rig.run(parentTask(rig, repo, 's3-fleet', { push: false }), id);
    expect(b).toBeDefined();
    const hostB = (await b!).host.workspaceQueue;
    const rootB = (await b!).root;
    expect(result.status).toBe('succeeded');
    expect(result.attempts[0]).toMatchObject({ outcome: 'subtasks_proposed' });

    const hostA = `${rig.taskQueue}-ws`;
    for (const c of result.children!) {
      expect(c.merged).toBe(true);
      const bundle = c.result!.bundle!;
      expect(bundle.kind).toBe('git-bundle');
      // Every workspace activity of the child ran on host B.
      const onWorkspace = (await activitiesOf(rig.client, c.workflowId)).filter((a) => a.taskQueue?.includes('-ws'));
      expect(onWorkspace.length).toBeGreaterThan(0);
      expect(new Set(onWorkspace.map((a) => a.taskQueue))).toEqual(new Set([hostB]));
      // Made on B, in the bucket, fetched by A into its own cache for the merge.
      expect((await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: bundleKey(bundle.ref) }))).ContentLength).toBe(bundle.bytes);
      expect(cached(path.join(rootB, 'artifacts'), bundle.ref)).toBe(true);
      expect(cached(rig.artifactDir, bundle.ref)).toBe(true);
    }
    // The merge and the parent's tests ran on host A, in A's workspace root.
    const merges = (await activitiesOf(rig.client, id)).filter((a) => a.type === 'mergeBranches');
    expect(merges.map((a) => a.taskQueue)).toEqual([hostA]);
    expect(result.workspace!.startsWith(rig.workspaceRoot)).toBe(true);
    const git = simpleGit(result.workspace!);
    for (const n of ['a', 'b']) expect(await git.show([`${result.branch}:src/${n}.js`])).toContain(`${n}-done`);
    // The parent's own unpushed commit is in the bucket too.
    expect((await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: bundleKey(result.bundle!.ref) }))).ContentLength).toBe(result.bundle!.bytes);
  } finally {
    const started = await b?.catch(() => undefined);
    started?.host.shutdown();
    await started?.running;
  }
}, 240_000);

type Host = Awaited<ReturnType<typeof startHost>>;

/**
 * A task whose commit awaits approval on host `lost`, which is then lost (its worker stops, its
 * disk — workspaces and artifact cache — is gone); `then` goes on from there with host `next`
 * (its settings: `extra`). Both hosts are stopped whatever happens.
 */
async function approvalOnLostHost(
  model: string,
  lost: string,
  next: { name: string; extra?: Partial<ActivityDeps> },
  then: (run: { repo: string; h: Awaited<ReturnType<Rig['start']>>; saved?: string; d: Host }) => Promise<void>,
): Promise<void> {
  await stopRigMain();
  const repo = await rig.newRepo();
  rig.model.script(model, [{ content: wholeFile('src/slugify.js', GOOD, 'slugify') }]);
  // The hosts notice a lost queue within 2 s (WEAVER_QUEUE_CHECK_SEC), so the tests wait little.
  const c = await startHost(lost, { queueCheckSec: 2 });
  let d: Host | undefined;
  try {
    const h = await rig.start(rig.task(repo, [rig.provider(model)], { push: true, requireApproval: true }), `${model}-${Date.now()}`);
    await waitUntil('the commit awaiting approval', async () => (await h.query<Progress>('progress')).phase === 'awaiting_approval', 120_000, 200);
    const saved = (await h.query<Progress>('progress')).commit;
    c.host.shutdown();
    await c.running;
    await rm(c.root, { recursive: true, force: true });
    d = await startHost(next.name, { queueCheckSec: 2, ...next.extra });
    await then({ repo, h, saved, d });
  } finally {
    c.host.shutdown();
    await c.running;
    d?.host.shutdown();
    await d?.running;
  }
}

test('a commit awaiting approval on a host that is then lost (worker gone, disk wiped) is restored from S3 on another host and pushed', async () => {
  await approvalOnLostHost('s3-restore', 'c', { name: 'd' }, async ({ repo, h, saved, d }) => {
    await h.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana' }] });
    const result = await resultOf(h);
    expect(result).toMatchObject({ status: 'succeeded', pushed: true });
    expect(rig.model.count('s3-restore')).toBe(1);
    // The very commit made on C, pushed from D: restored from the bundle D downloaded from S3.
    expect((await simpleGit(repo).revparse([result.branch])).trim()).toBe(result.commit);
    expect(saved).toBe(result.commit);
    // Prepared twice: on C, then on D from the bundle, which D's own cache now holds (from S3: C's disk is gone).
    expect((await activitiesOf(rig.client, h.workflowId)).filter((a) => a.type === 'prepareWorkspace')).toHaveLength(2);
    const cache = path.join(d.root, 'artifacts', 'sha256');
    const files = (await readdir(cache, { recursive: true })).map(String).filter((f) => /[0-9a-f]{64}$/.test(f));
    const heads = files.map((f) => {
      try {
        return execFileSync('git', ['bundle', 'list-heads', path.join(cache, f)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return '';
      }
    });
    expect(heads.some((x) => x.includes(result.commit!))).toBe(true);
  });
}, 240_000);

test('cancelled while the approved commit is restored on another host: ends cancelled, nothing pushed, no clone left there', async () => {
  // D beats every 8 s (under the 10 s heartbeat timeout): its restore, well under that, completes
  // before the cancel can reach it (a cancel comes back with a beat), so the workflow gets a
  // restored clone though it is cancelled — the path under test.
  await approvalOnLostHost('s3-restore-cancel', 'rc', { name: 'rd', extra: { heartbeatMs: 8000 } }, async ({ repo, h, d }) => {
    await h.executeUpdate('approvePush', { args: [{ approved: true, by: 'ana' }] });
    // The rebuild: a second workspace preparation, restoring the branch from its bundle on D. Cancelled as it starts.
    await waitUntil('the restore on host D', async () => (await activitiesOf(rig.client, h.workflowId)).filter((a) => a.type === 'prepareWorkspace').length === 2, 120_000, 50);
    await h.cancel();
    const result = await resultOf(h);
    expect(result.status).toBe('cancelled');
    expect(result.pushed).toBeFalsy();
    // Nothing reached the repository, and D keeps no clone of it (removed before the result, whichever way the restore ended).
    expect((await simpleGit(repo).branch(['--list', result.branch])).all).toEqual([]);
    const wsRoot = path.join(d.root, 'workspaces');
    const left = existsSync(wsRoot) ? (await readdir(wsRoot)).filter((n) => !n.startsWith('.')) : [];
    expect(left).toEqual([]);
    // Every activity the run scheduled has ended.
    const acts = await activitiesOf(rig.client, h.workflowId);
    expect(acts.filter((a) => !a.closed)).toEqual([]);
    expect(acts.filter((a) => a.type === 'prepareWorkspace')[1]).toMatchObject({ closed: 'completed' });
  });
}, 240_000);
