// Repositories and remotes under the worker's policy (issue 8, item 4): local paths only under
// WEAVER_REPO_ROOTS (symlinks resolved, file:// URLs included), pushes only to the task's own
// repository or under WEAVER_PUSH_REMOTES, and credentials in URLs never recorded — git gets
// them from the worker's env through a credential helper. Real dev server, real worker, real
// git, and a real smart-HTTP git server (git http-backend) that demands Basic auth.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { simpleGit } from 'simple-git';
import { createActivities } from '../src/activities';
import { resolveCloneSource, resolvePushRemote } from '../src/activities/repoPolicy';
import type { ActivityDeps, WorkspaceHandle } from '../src/activities/types';
import { commitAndPush } from '../src/activities/workspace';
import { startCodingTask } from '../src/client';
import { createExampleRepo } from '../src/devtools/demo';
import { scrubEnv, secretsFromEnv } from '../src/domain/redact';
import { locateRepo, stripTaskCredentials, stripUrlCredentials } from '../src/domain/repoUrl';
import type { CodingTaskInput, CodingTaskResult } from '../src/domain/schema';
import { WeaverRepo } from '../src/domain/searchAttributes';
import { wholeFile } from './support/answers';
import { closeTestConnections, temporalCliPath, testAddress } from './support/temporal';
import { startRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const answer = () => ({ content: wholeFile('src/slugify.js', GOOD, 'edit slugify') });

const GIT_USER = 'weaver-bot';
const GIT_TOKEN = 'gt-s3cret-Token-9f4a7c21e';

// ---- a smart-HTTP git server with Basic auth -------------------------------------------------

interface SeenRequest {
  method: string;
  url: string;
  authorized: boolean;
  user?: string;
}

interface GitHttpServer {
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

/** `git http-backend` (CGI) behind node's http server: every request must carry user:token. */
async function startGitHttp(root: string): Promise<GitHttpServer> {
  const seen: SeenRequest[] = [];
  const expected = `Basic ${Buffer.from(`${GIT_USER}:${GIT_TOKEN}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    const auth = req.headers.authorization;
    const user = auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':')[0] : undefined;
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorized: auth === expected, user });
    if (auth !== expected) {
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="weaver-test"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const u = new URL(req.url ?? '/', 'http://localhost');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REMOTE_USER: GIT_USER,
        REMOTE_ADDR: '127.0.0.1',
        REQUEST_METHOD: req.method,
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
      },
    });
    req.pipe(cgi.stdin);
    let head: Buffer | undefined = Buffer.alloc(0);
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (!head) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const m = /\r?\n\r?\n/.exec(text);
      if (!m) return;
      let status = 200;
      for (const line of text.slice(0, m.index).split(/\r?\n/)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(Buffer.byteLength(text.slice(0, m.index + m[0].length), 'latin1')));
      head = undefined;
    });
    cgi.stdout.on('end', () => res.end());
    cgi.stderr.resume();
    cgi.on('error', () => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A bare copy of the example repository at `dir`. */
async function bareExample(dir: string, scratch: string): Promise<string> {
  const work = await createExampleRepo(path.join(scratch, `${path.basename(dir)}-work`));
  await simpleGit().raw(['clone', '-q', '--bare', work, dir]);
  return dir;
}

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * `temporal workflow show --output json` of a run, with the official CLI: its events, each as
 * its JSON text plus every payload in it decoded (the CLI prints payload data base64-encoded).
 */
async function showHistory(workflowId: string): Promise<{ type: string; text: string }[]> {
  const r = await run(temporalCliPath(), ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', testAddress(), '--namespace', 'default']);
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  const decoded = (node: unknown): string[] => {
    if (Array.isArray(node)) return node.flatMap(decoded);
    if (!node || typeof node !== 'object') return [];
    return Object.entries(node).flatMap(([k, v]) => (k === 'data' && typeof v === 'string' ? [Buffer.from(v, 'base64').toString('utf8')] : decoded(v)));
  };
  const { events } = JSON.parse(r.stdout) as { events: { eventType: string }[] };
  expect(events.length).toBeGreaterThan(5);
  return events.map((e) => ({ type: e.eventType, text: [JSON.stringify(e), ...decoded(e)].join('\n') }));
}

/** Every file's text under `dir` (the artifact store), concatenated. */
async function allText(dir: string): Promise<string> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(path.join(e.parentPath, e.name), 'latin1'));
  }
  return out.join('\n');
}

// ---- the rig: a worker whose roots are its temp dir, allowed pushes under ALLOWED and the git server

/** Outside every root: a private repository a task must not be able to copy off the worker. */
const OUTSIDE = mkdtempSync(path.join(tmpdir(), 'weaver-outside-'));
/** Allowed push targets (WEAVER_PUSH_REMOTES), local. */
const ALLOWED = mkdtempSync(path.join(tmpdir(), 'weaver-allowed-'));
const GIT_ROOT = mkdtempSync(path.join(tmpdir(), 'weaver-githttp-'));

let rig: Rig;
let git: GitHttpServer;
let outsideRepo: string;
let seq = 0;

beforeAll(async () => {
  outsideRepo = await createExampleRepo(path.join(OUTSIDE, 'private'));
  await bareExample(path.join(GIT_ROOT, 'private.git'), OUTSIDE);
  await simpleGit().raw(['init', '-q', '--bare', path.join(GIT_ROOT, 'mirror.git')]);
  await simpleGit().raw(['init', '-q', '--bare', path.join(ALLOWED, 'mirror.git')]);
  git = await startGitHttp(GIT_ROOT);
  rig = await startRig({
    deps: {
      // The rig's own env (its provider key) plus the worker's git credentials for the server.
      env: {
        ...process.env,
        TEST_API_KEY: 'sk-test-secret-key-123456789',
        [`WEAVER_GIT_TOKEN_127_0_0_1_${git.port}`]: GIT_TOKEN,
        [`WEAVER_GIT_USER_127_0_0_1_${git.port}`]: GIT_USER,
      },
      pushRemotes: [ALLOWED, `${git.url}/`],
    },
  });
});

afterAll(async () => {
  await rig?.close();
  await git?.close();
  await closeTestConnections();
  for (const d of [OUTSIDE, ALLOWED, GIT_ROOT]) await rm(d, { recursive: true, force: true });
});

const id = (label: string) => `repo-policy-${label}-${rig.taskQueue}-${++seq}`;

/** The failure prepareWorkspace recorded in the run's history (type, non-retryable, attempt). */
async function prepareFailure(workflowId: string) {
  const events = (await rig.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareWorkspace').map((e) => String(e.eventId));
  const started = events.filter((e) => scheduled.includes(String(e.activityTaskStartedEventAttributes?.scheduledEventId)));
  const failed = events.filter((e) => scheduled.includes(String(e.activityTaskFailedEventAttributes?.scheduledEventId)));
  const info = failed[0]?.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo;
  return { count: failed.length, type: info?.type, nonRetryable: info?.nonRetryable, attempts: started.map((e) => e.activityTaskStartedEventAttributes?.attempt) };
}

describe('local repositories only under WEAVER_REPO_ROOTS', () => {
  test('a repository outside the roots is refused before any model call, non-retryable, naming the setting', async () => {
    rig.model.script('m-outside', [answer()]);
    const wf = id('outside');
    const r = await rig.run(rig.task(outsideRepo, [rig.provider('m-outside')]), wf);
    expect(r.status).toBe('failed');
    expect(r.reason).toMatch(/^preparing failed: local repository .*private is outside WEAVER_REPO_ROOTS/);
    expect(r.reason).toContain('Add its directory to WEAVER_REPO_ROOTS on the worker');
    expect(rig.model.count('m-outside')).toBe(0);
    expect(await prepareFailure(wf)).toMatchObject({ count: 1, type: 'RepoNotAllowed', nonRetryable: true, attempts: [1] });
  });

  test('a symlink under a root that points out of it is refused (the real path counts)', async () => {
    const link = path.join(rig.tmp, 'looks-inside');
    await symlink(outsideRepo, link);
    rig.model.script('m-link', [answer()]);
    const r = await rig.run(rig.task(link, [rig.provider('m-link')]));
    expect(r.status).toBe('failed');
    expect(r.reason).toMatch(/looks-inside \(resolves to .*weaver-outside-.*private\) is outside WEAVER_REPO_ROOTS/);
    expect(rig.model.count('m-link')).toBe(0);
  });

  test('file:// URLs are local paths: one outside the roots is refused too', async () => {
    rig.model.script('m-fileurl', [answer()]);
    const r = await rig.run(rig.task(`file://${outsideRepo}`, [rig.provider('m-fileurl')]));
    expect(r.status).toBe('failed');
    expect(r.reason).toMatch(/is outside WEAVER_REPO_ROOTS/);
    expect(rig.model.count('m-fileurl')).toBe(0);
  });

  test('a repository under a root works, as a path or a file:// URL, and pushes to its origin', async () => {
    const repo = await rig.newRepo();
    rig.model.script('m-inside', [answer(), answer()]);
    const byPath = await rig.run(rig.task(repo, [rig.provider('m-inside')], { push: true }));
    expect(byPath).toMatchObject({ status: 'succeeded', pushed: true });
    expect((await simpleGit(repo).revparse([byPath.branch])).trim()).toBe(byPath.commit);
    const byUrl = await rig.run(rig.task(`file://${repo}`, [rig.provider('m-inside')], { push: { remote: repo } }));
    expect(byUrl).toMatchObject({ status: 'succeeded', pushed: true });
    expect((await simpleGit(repo).revparse([byUrl.branch])).trim()).toBe(byUrl.commit);
  });
});

describe('pushes only to the repository itself or under WEAVER_PUSH_REMOTES', () => {
  test('a push remote that is not allowed is refused before any model call; nothing reaches it', async () => {
    const repo = await rig.newRepo();
    const elsewhere = path.join(rig.tmp, 'elsewhere.git');
    await simpleGit().raw(['init', '-q', '--bare', elsewhere]);
    rig.model.script('m-nopush', [answer()]);
    const wf = id('nopush');
    const r = await rig.run(rig.task(repo, [rig.provider('m-nopush')], { push: { remote: elsewhere } }), wf);
    expect(r.status).toBe('failed');
    expect(r.reason).toMatch(/^preparing failed: push remote .*elsewhere\.git refused: it is neither the task's repository nor under WEAVER_PUSH_REMOTES/);
    expect(rig.model.count('m-nopush')).toBe(0);
    expect(await prepareFailure(wf)).toMatchObject({ type: 'PushRemoteNotAllowed', nonRetryable: true, attempts: [1] });
    expect((await simpleGit(elsewhere).raw(['for-each-ref'])).trim()).toBe('');
  });

  test('a remote under WEAVER_PUSH_REMOTES is pushed to', async () => {
    const repo = await rig.newRepo();
    const mirror = path.join(ALLOWED, 'mirror.git');
    rig.model.script('m-allowed', [answer()]);
    const r = await rig.run(rig.task(repo, [rig.provider('m-allowed')], { push: { remote: mirror } }));
    expect(r).toMatchObject({ status: 'succeeded', pushed: true });
    expect((await simpleGit(mirror).revparse([r.branch])).trim()).toBe(r.commit);
  });

  test('checked again at push time: a workspace asked to push elsewhere reports it, pushes nothing', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-pushcheck-'));
    try {
      const repo = await createExampleRepo(path.join(base, 'origin'));
      const elsewhere = path.join(base, 'elsewhere.git');
      await simpleGit().raw(['init', '-q', '--bare', elsewhere]);
      const deps = activityDeps(base, { repoRoots: [base] });
      const ws = (await mockEnv().run(createActivities(deps).prepareWorkspace, { workflowId: 'wf-pushcheck', repo, baseBranch: 'main', branch: 'weaver/pushcheck' })) as WorkspaceHandle;
      const r = await commitAndPush({ workspace: ws, message: 'x\n\nWeaver-Workflow: wf-pushcheck', workflowId: 'wf-pushcheck', pushRemote: elsewhere }, [], deps);
      expect(r.pushed).toBe(false);
      expect(r.pushError).toMatch(/push remote .*elsewhere\.git refused/);
      expect((await simpleGit(elsewhere).raw(['for-each-ref'])).trim()).toBe('');
      const ok = await commitAndPush({ workspace: ws, message: 'x\n\nWeaver-Workflow: wf-pushcheck', workflowId: 'wf-pushcheck', pushRemote: repo }, [], deps);
      expect(ok.pushed).toBe(true);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('credentials in URLs are never recorded; git gets them from the worker', () => {
  const credentialed = (repo: string) => `http://${GIT_USER}:${GIT_TOKEN}@127.0.0.1:${git.port}/${repo}`;

  test('started by the client: stripped (and said so), cloned and pushed through the credential helper, absent from the history', async () => {
    rig.model.script('m-cred', [answer()]);
    const warnings: string[] = [];
    const workflowId = id('cred-client');
    const input: CodingTaskInput = rig.task(credentialed('private.git'), [rig.provider('m-cred')], { push: { remote: credentialed('mirror.git') } });
    const before = git.seen.length;
    const handle = await startCodingTask(input, { client: rig.client, taskQueue: rig.taskQueue, workflowId, onWarning: (m) => warnings.push(m) });
    const r: CodingTaskResult = await handle.result();

    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/credentials were removed from repo and push\.remote .*WEAVER_GIT_TOKEN_<HOST>/);
    expect(r).toMatchObject({ status: 'succeeded', pushed: true });
    // The branch is on the protected server: the clone and the push authenticated.
    expect((await simpleGit(path.join(GIT_ROOT, 'mirror.git')).revparse([r.branch])).trim()).toBe(r.commit);
    const requests = git.seen.slice(before);
    expect(requests.some((q) => !q.authorized)).toBe(true); // git was challenged…
    expect(requests.filter((q) => q.authorized).map((q) => q.url)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^\/private\.git\/info\/refs\?service=git-upload-pack/), expect.stringMatching(/^\/mirror\.git\/git-receive-pack/)]),
    ); // …and answered by the helper with the worker's credentials.
    expect(requests.every((q) => q.authorized || q.user === undefined)).toBe(true); // never a wrong guess

    // Nowhere in what Temporal recorded: the history (official CLI), the search attribute, the result.
    const shown = (await showHistory(workflowId)).map((e) => e.text).join('\n');
    expect(shown).toContain(`"repo":"http://127.0.0.1:${git.port}/private.git"`);
    expect(shown).not.toContain(GIT_TOKEN);
    expect(shown).not.toContain(`${GIT_USER}:`);
    const { typedSearchAttributes } = await handle.describe();
    expect(typedSearchAttributes.get(WeaverRepo)).toBe(`http://127.0.0.1:${git.port}/private.git`);
    expect(JSON.stringify(r)).not.toContain(GIT_TOKEN);
    expect(await allText(rig.artifactDir)).not.toContain(GIT_TOKEN);
  });

  test('started around the client: the workflow strips them at entry; .git/config and search attributes stay clean', async () => {
    rig.model.script('m-cred-raw', [answer()]);
    const workflowId = id('cred-raw');
    const input = rig.task(credentialed('private.git'), [rig.provider('m-cred-raw')], { push: false });
    const handle = await rig.client.workflow.start('codingTask', { taskQueue: rig.taskQueue, workflowId, args: [input] });
    const r = (await handle.result()) as CodingTaskResult;
    expect(r.status).toBe('succeeded');
    expect(r.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^credentials were removed from repo /)]));

    // The workspace's .git/config names the clean URL and holds no credential (nor a helper).
    const config = await readFile(path.join(r.workspace!, '.git', 'config'), 'utf8');
    expect(config).toContain(`url = http://127.0.0.1:${git.port}/private.git`);
    expect(config).not.toContain(GIT_TOKEN);
    expect(config).not.toContain('credential');
    const { typedSearchAttributes } = await handle.describe();
    expect(typedSearchAttributes.get(WeaverRepo)).toBe(`http://127.0.0.1:${git.port}/private.git`);

    // Only the start event (the input as sent) holds it; nothing the workflow recorded after.
    const holding = (await showHistory(workflowId)).filter((e) => e.text.includes(GIT_TOKEN)).map((e) => e.type);
    expect(holding).toEqual(['EVENT_TYPE_WORKFLOW_EXECUTION_STARTED']);
    expect(JSON.stringify(r)).not.toContain(GIT_TOKEN);
  });
});

// ---- the policy functions and the activity without a rig ---------------------------------------

const mockEnv = () => new MockActivityEnvironment({ activityType: 'prepareWorkspace' }, { logger: new DefaultLogger('ERROR') });

function activityDeps(base: string, extra: Partial<ActivityDeps> = {}): ActivityDeps {
  return { artifactDir: path.join(base, 'artifacts'), workspaceRoot: path.join(base, 'workspaces'), workspaceQueue: 'ws', env: process.env, heartbeatMs: 20, ...extra };
}

describe('without WEAVER_REPO_ROOTS', () => {
  test('local paths are refused unless the worker is in dev mode (WEAVER_DEV=1)', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-noroots-'));
    try {
      const repo = await createExampleRepo(path.join(base, 'origin'));
      const req = { workflowId: 'wf-noroots', repo, baseBranch: 'main', branch: 'weaver/noroots' };
      const err = await mockEnv()
        .run(createActivities(activityDeps(base)).prepareWorkspace, req)
        .then(
          () => new Error('resolved'),
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: 'RepoNotAllowed', nonRetryable: true });
      expect((err as Error).message).toMatch(/WEAVER_REPO_ROOTS is not set\). Set WEAVER_REPO_ROOTS .* or WEAVER_DEV=1 on a development machine/);
      const handle = (await mockEnv().run(createActivities(activityDeps(base, { dev: true })).prepareWorkspace, req)) as WorkspaceHandle;
      expect(handle.branch).toBe('weaver/noroots');
      // Cloned with --no-local from the real path: origin is that path.
      expect((await simpleGit(handle.dir).raw(['remote', 'get-url', 'origin'])).trim()).toBe(repo);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('reading repo and remote names', () => {
  test('local, remote and refused forms, as git reads them', () => {
    expect(locateRepo('/srv/r')).toEqual({ kind: 'local', path: '/srv/r' });
    expect(locateRepo('./r')).toEqual({ kind: 'local', path: './r' });
    expect(locateRepo('./a:b')).toEqual({ kind: 'local', path: './a:b' });
    expect(locateRepo('file:///srv/r%20x')).toEqual({ kind: 'local', path: '/srv/r x' });
    expect(locateRepo('file://user:secret@/srv/r')).toEqual({ kind: 'local', path: '/srv/r' });
    expect(locateRepo('file:/srv/r')).toEqual({ kind: 'local', path: '/srv/r' });
    expect(locateRepo('git@github.com:acme/r.git')).toEqual({ kind: 'scp' });
    expect(locateRepo('host:path/r')).toEqual({ kind: 'scp' });
    expect(locateRepo('HTTPS://github.com/acme/r')).toEqual({ kind: 'url', scheme: 'https' });
    expect(locateRepo('ext::sh -c touch% /tmp/pwned')).toMatchObject({ kind: 'unsupported' });
    expect(locateRepo('s3://bucket/r')).toMatchObject({ kind: 'unsupported' });
  });

  test('credentials are stripped from http(s), file and ssh URLs; an ssh login user stays', () => {
    expect(stripUrlCredentials('https://u:tok@github.com/a/b.git')).toBe('https://github.com/a/b.git');
    expect(stripUrlCredentials('https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/a')).toBe('https://github.com/a');
    expect(stripUrlCredentials('https://u:p@ss@host/x')).toBe('https://host/x');
    expect(stripUrlCredentials('https://host/a@b')).toBe('https://host/a@b');
    expect(stripUrlCredentials('ssh://git:pw@host/x')).toBe('ssh://git@host/x');
    expect(stripUrlCredentials('git@github.com:a/b')).toBe('git@github.com:a/b');
    expect(stripUrlCredentials('file://u:s@/srv/r')).toBe('file:///srv/r');
    const { input, stripped } = stripTaskCredentials({ repo: 'https://a:b@h/x', push: { remote: 'https://c:d@h/y' } });
    expect(input).toEqual({ repo: 'https://h/x', push: { remote: 'https://h/y' } });
    expect(stripped).toEqual(['repo', 'push.remote']);
    expect(stripTaskCredentials({ repo: '/srv/r', push: true }).stripped).toEqual([]);
  });

  test('push remotes: origin, the repository itself, or under a prefix at a path boundary; no dot segments', async () => {
    const policy = { env: {}, pushRemotes: ['https://github.com/acme/', 'git@github.com:acme/', 'https://git.example.org/team'] };
    const origin = 'https://github.com/someone/app.git';
    await expect(resolvePushRemote(policy, 'origin', origin)).resolves.toMatchObject({ remote: 'origin' });
    await expect(resolvePushRemote(policy, 'https://tok@github.com/someone/app', origin)).resolves.toMatchObject({ remote: 'origin' });
    await expect(resolvePushRemote(policy, 'https://github.com/acme/fork.git', origin)).resolves.toMatchObject({ remote: 'https://github.com/acme/fork.git' });
    await expect(resolvePushRemote(policy, 'git@github.com:acme/fork.git', origin)).resolves.toMatchObject({ remote: 'git@github.com:acme/fork.git' });
    await expect(resolvePushRemote(policy, 'https://git.example.org/team/r', origin)).resolves.toBeDefined();
    for (const bad of [
      'https://git.example.org/team-evil/r',
      'https://github.com.evil.net/acme/r',
      'https://github.com/acme/../other/r',
      'https://github.com/acme/%2e%2e/other/r',
      'https://evil.net/r.git',
      'upstream',
      'ext::sh -c x',
    ]) {
      await expect(resolvePushRemote(policy, bad, origin)).rejects.toMatchObject({ type: 'PushRemoteNotAllowed' });
    }
  });

  test('clone sources: URLs pass with credentials removed; unsupported forms are refused', async () => {
    const policy = { env: {} };
    await expect(resolveCloneSource(policy, 'https://u:tok@github.com/a/b.git')).resolves.toMatchObject({ source: 'https://github.com/a/b.git', local: false });
    await expect(resolveCloneSource(policy, 'ext::sh -c id')).rejects.toMatchObject({ type: 'RepoNotAllowed' });
    await expect(resolveCloneSource(policy, '/anything')).rejects.toMatchObject({ type: 'RepoNotAllowed' });
  });

  test('WEAVER_GIT_TOKEN_<HOST> values are secrets: redacted, and kept out of commands', async () => {
    const env = { WEAVER_GIT_TOKEN_GITHUB_COM: 'tok-abcdef123', PATH: '/bin' };
    expect(secretsFromEnv(env)).toContain('tok-abcdef123');
    expect(scrubEnv(env)).toEqual({ PATH: '/bin' });
  });
});
