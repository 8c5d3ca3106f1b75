// prepareWorkspace as an activity (MockActivityEnvironment: real Context, heartbeats and
// cancellation, no server) against real git: heartbeats while git works, cancellation kills
// git, git never asks for credentials; workspace directory names never collide.
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { simpleGit } from 'simple-git';
import { createActivities } from '../src/activities';
import type { ActivityDeps, CommitResult, WorkspaceHandle } from '../src/activities/types';
import { workspaceDirFor } from '../src/activities/workspace';
import { createExampleRepo } from '../scripts/demo/example';

let base: string;
let deps: ActivityDeps;
const savedEnv: Record<string, string | undefined> = {};

function setEnv(name: string, value: string | undefined): void {
  if (!(name in savedEnv)) savedEnv[name] = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-ws-'));
  deps = {
    artifactDir: path.join(base, 'artifacts'),
    workspaceRoot: path.join(base, 'workspaces'),
    workspaceQueue: 'ws-queue',
    env: process.env,
    heartbeatMs: 20,
    repoRoots: [base],
  };
});

afterEach(() => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
    delete savedEnv[name];
  }
  rmSync(base, { recursive: true, force: true });
});

const mockEnv = () => new MockActivityEnvironment({ activityType: 'prepareWorkspace' }, { logger: new DefaultLogger('ERROR') });

/** Rejects if `p` has not settled after `ms` (so a hang fails the test instead of timing it out). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('prepareWorkspace (activity)', () => {
  test('clones a local repo on the task branch, with the worker env kept usable for git (EDITOR, GIT_SSH_COMMAND set)', async () => {
    const repo = await createExampleRepo(path.join(base, 'origin'));
    // simple-git refuses some env vars unless told the env is trusted: a worker with these set
    // must still be able to run git.
    setEnv('EDITOR', 'vi');
    setEnv('GIT_SSH_COMMAND', 'ssh -o BatchMode=yes');
    const env = mockEnv();
    const handle = (await env.run(createActivities(deps).prepareWorkspace, {
      workflowId: 'wf/local',
      repo,
      baseBranch: 'main',
      branch: 'weaver/wf--local',
    })) as WorkspaceHandle;
    // <root>/<unique id>/<repository name>, as `git clone` would name the folder.
    expect(path.dirname(handle.dir)).toBe(workspaceDirFor(deps.workspaceRoot, 'wf/local'));
    expect(path.basename(handle.dir)).toBe(path.basename(repo));
    expect(handle.taskQueue).toBe('ws-queue');
    expect((await simpleGit(handle.dir).revparse(['--abbrev-ref', 'HEAD'])).trim()).toBe('weaver/wf--local');
    expect(handle.baseCommit).toBe((await simpleGit(repo).revparse(['main'])).trim());
  });

  test('heartbeats while a clone hangs, and a cancellation kills git promptly (CancelledFailure)', async () => {
    // An "HTTP server" that accepts the connection and never answers: git waits forever.
    const sockets = new Set<net.Socket>();
    const closed = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('data', () => undefined); // read the request (and so see the end of it)
      s.on('close', () => closed.add(s));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as net.AddressInfo;
    try {
      const env = mockEnv();
      let beats = 0;
      env.on('heartbeat', () => beats++);
      const running = env.run(createActivities(deps).prepareWorkspace, {
        workflowId: 'wf-hang',
        repo: `http://127.0.0.1:${port}/repo.git`,
        branch: 'weaver/wf-hang',
      });
      running.catch(() => undefined);
      await waitUntil(() => sockets.size > 0, 10_000, 'git to connect');
      // Several heartbeats while git is stuck (heartbeatMs 20): the heartbeat timeout never fires.
      // This clone never ends by itself, so the waits below are only hang guards, generous for a
      // loaded machine: ending at all after the cancel is the cancellation at work.
      const seen = beats;
      await waitUntil(() => beats >= seen + 5, 20_000, 'heartbeats during the clone');

      env.cancel();
      const err = await within(running, 20_000, 'prepareWorkspace after cancel').then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CancelledFailure);
      // git is gone: it closed its connection to the server.
      await waitUntil(() => closed.size === sockets.size, 20_000, 'git to close its connection');
      expect(existsSync(workspaceDirFor(deps.workspaceRoot, 'wf-hang'))).toBe(false);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  // Seen in the crash campaign: a restarted worker's start-up sweep removed a lost host's leftover
  // folder while a retried prepareWorkspace was cloning into it, and the task failed (CloneFailed).
  test('a clone whose workspace folder is removed under it is retried (CloneUnavailable); the same refusal otherwise is final', async () => {
    // Holds each request until told, then says the repository does not exist.
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests += 1;
      void released.then(() => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as net.AddressInfo;
    const clone = (workflowId: string) =>
      within(mockEnv().run(createActivities(deps).prepareWorkspace, { workflowId, repo: `http://127.0.0.1:${port}/gone.git`, branch: `weaver/${workflowId}` }), 60_000, `clone ${workflowId}`).then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
    try {
      const wiped = clone('wf-wiped');
      await waitUntil(() => requests > 0, 20_000, 'git to ask the server');
      rmSync(workspaceDirFor(deps.workspaceRoot, 'wf-wiped'), { recursive: true, force: true });
      release();
      const err = await wiped;
      expect(err).toMatchObject({ type: 'CloneUnavailable', nonRetryable: false });
      expect((err as Error).message).toMatch(/the workspace folder was removed during the clone/);
      // Its folder left alone, the same answer from the server is the repository's: final.
      expect(await clone('wf-kept')).toMatchObject({ type: 'CloneFailed', nonRetryable: true });
    } finally {
      release();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('a clone that needs credentials fails at once (CloneFailed): no terminal prompt, no askpass helper', async () => {
    // Every request asks for HTTP Basic auth: git would prompt for a username.
    const server = http.createServer((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="weaver-test"', 'Content-Type': 'text/plain' });
      res.end('auth required\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as net.AddressInfo;
    // A worker started from an IDE terminal often has GIT_ASKPASS set: it must not be run.
    const marker = path.join(base, 'askpass-was-run');
    const askpass = path.join(base, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\ntouch '${marker}'\necho someone\n`);
    chmodSync(askpass, 0o755);
    setEnv('GIT_ASKPASS', askpass);
    setEnv('SSH_ASKPASS', askpass);
    setEnv('GIT_TERMINAL_PROMPT', undefined);
    try {
      // A prompt would wait forever: failing at all (with git's own "terminal prompts disabled",
      // the helper never run) is the answer; the wait is a hang guard, not a speed bound.
      const err = await within(
        mockEnv().run(createActivities(deps).prepareWorkspace, { workflowId: 'wf-auth', repo: `http://127.0.0.1:${port}/private.git`, branch: 'weaver/wf-auth' }),
        60_000,
        'clone of a repo needing credentials',
      ).then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: 'CloneFailed', nonRetryable: true });
      expect((err as Error).message).toMatch(/terminal prompts disabled/);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('commitAndPush with release (activity)', () => {
  test('a retry after the clone was pushed and removed returns the result the first try could not report', async () => {
    const repo = await createExampleRepo(path.join(base, 'origin'));
    const acts = createActivities(deps);
    const ws = (await mockEnv().run(acts.prepareWorkspace, { workflowId: 'wf-release', repo, baseBranch: 'main', branch: 'weaver/wf-release' })) as WorkspaceHandle;
    writeFileSync(path.join(ws.dir, 'NOTES.md'), 'released\n');
    const req = { workspace: ws, message: 'x\n\nWeaver-Workflow: wf-release', workflowId: 'wf-release', pushRemote: 'origin', release: 'pushed' as const };
    const first = (await mockEnv().run(acts.commitAndPush, req)) as CommitResult;
    expect(first).toMatchObject({ pushed: true, released: true });
    expect(existsSync(ws.dir)).toBe(false);
    // The worker died before Temporal heard of it: the retry finds no clone and answers from the record.
    const retry = await mockEnv().run(acts.commitAndPush, req);
    expect(retry).toMatchObject({ commit: first.commit, pushed: true, released: true });
    expect((await simpleGit(repo).revparse(['weaver/wf-release'])).trim()).toBe(first.commit);
  });
});

describe('workspaceDirFor', () => {
  test('IDs that differ only in characters replaced for the file name get different directories', () => {
    const root = '/srv/weaver/workspaces';
    const ids = ['a/b', 'a_b', 'a:b', 'a b', 'a//b', 'batch-1/1-fix-bug', 'batch-1_1-fix-bug'];
    const dirs = ids.map((id) => workspaceDirFor(root, id));
    expect(new Set(dirs).size).toBe(ids.length);
    for (const d of dirs) expect(path.dirname(d)).toBe(root);
    // Readable prefix, 8-hex suffix, stable across calls.
    expect(path.basename(dirs[0])).toMatch(/^a_b-[0-9a-f]{8}$/);
    expect(workspaceDirFor(root, 'a/b')).toBe(dirs[0]);
  });

  test('stays one directory under the root for dot-only and very long IDs', () => {
    const root = '/srv/w';
    for (const id of ['.', '..', '../../etc', 'x'.repeat(1000)]) {
      const d = workspaceDirFor(root, id);
      expect(path.dirname(d)).toBe(root);
      expect(path.basename(d).length).toBeLessThanOrEqual(120);
      expect(path.basename(d).startsWith('.')).toBe(false);
    }
  });
});
