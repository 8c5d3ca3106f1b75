// Repositories and remotes under the worker's policy (issue 8, item 4): local paths only under
// WEAVER_REPO_ROOTS (symlinks resolved, file:// URLs included), pushes only to the task's own
// repository or under WEAVER_PUSH_REMOTES, and credentials in URLs never recorded — git gets
// them from the worker's env through a credential helper. Real dev server, real worker, real
// git, and a real smart-HTTP git server (git http-backend) that demands Basic auth.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { simpleGit } from 'simple-git';
import { createActivities } from '../src/activities';
import { checkGitCredentials, chooseGitCredential, gitAuth, GitCredentialsError, loadGitCredentialsFile, resolveCloneSource, resolvePushRemote } from '../src/activities/repoPolicy';
import type { ActivityDeps, WorkspaceHandle } from '../src/activities/types';
import { commitAndPush } from '../src/activities/workspace';
import { startCodingTask } from '../src/client';
import { createExampleRepo } from '../scripts/demo/example';
import { scrubEnv, secretsFromEnv } from '../src/domain/redact';
import { locateRepo, stripTaskCredentials, stripUrlCredentials } from '../src/domain/repoUrl';
import type { CodingTaskInput, CodingTaskResult } from '../src/domain/schema';
import { WeaverRepo } from '../src/domain/searchAttributes';
import { wholeFile } from './support/answers';
import { createWorkers } from '../src/worker';
import { closeTestConnections, temporalCliPath, testAddress, testNativeConnection } from './support/temporal';
import { startRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const answer = () => ({ content: wholeFile('src/slugify.js', GOOD, 'edit slugify') });

const GIT_USER = 'weaver-bot';
const GIT_TOKEN = 'gt-s3cret-Token-9f4a7c21e';
/** The tokens of scoped-a.git and scoped-b.git. */
const TOKEN_A = 'gt-repo-A-token-5d1e88';
const TOKEN_B = 'gt-repo-B-token-0a7f3c';

// ---- a smart-HTTP git server with Basic auth -------------------------------------------------

interface SeenRequest {
  method: string;
  url: string;
  authorized: boolean;
  user?: string;
  /** The password (token) the request carried, if any: which token reached which repository. */
  password?: string;
}

interface GitHttpServer {
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

/**
 * `git http-backend` (CGI) behind node's http server: every request must carry user:token —
 * GIT_TOKEN, or the token `tokens` gives the repository (its first path segment).
 */
async function startGitHttp(root: string, tokens: Record<string, string> = {}): Promise<GitHttpServer> {
  const seen: SeenRequest[] = [];
  const basic = (token: string) => `Basic ${Buffer.from(`${GIT_USER}:${token}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    const auth = req.headers.authorization;
    const [user, password] = auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':') : [];
    const expected = basic(tokens[(req.url ?? '').split('/')[1]] ?? GIT_TOKEN);
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorized: auth === expected, user, password });
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
  // Two repositories with tokens of their own, for the scoping tests.
  await bareExample(path.join(GIT_ROOT, 'scoped-a.git'), OUTSIDE);
  await bareExample(path.join(GIT_ROOT, 'scoped-b.git'), OUTSIDE);
  git = await startGitHttp(GIT_ROOT, { 'scoped-a.git': TOKEN_A, 'scoped-b.git': TOKEN_B });
  rig = await startRig({
    deps: {
      // The rig's own env (its provider key) plus the worker's git credentials for the server.
      env: {
        ...process.env,
        TEST_API_KEY: 'sk-test-secret-key-123456789',
        [`WEAVER_GIT_TOKEN_127_0_0_1_${git.port}`]: GIT_TOKEN,
        [`WEAVER_GIT_USER_127_0_0_1_${git.port}`]: GIT_USER,
        // Not in dev mode: the token is scoped to the two repositories the workflows use.
        [`WEAVER_GIT_SCOPE_127_0_0_1_${git.port}`]: `${git.url}/private.git,${git.url}/mirror.git`,
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

// ---- git tokens scoped per repository, not per host ------------------------------------------
// scoped-a.git and scoped-b.git live on the same server (one host) and each accepts only its own
// token. A token scoped to A must never reach B; B's clone and a push to B fail saying which
// setting would give it one.

describe('git tokens are scoped per repository', () => {
  const hostKey = () => `127_0_0_1_${git.port}`;
  const urlOf = (repo: string) => `${git.url}/${repo}`;
  /** The requests to `repo` since `from`, with the token each carried. */
  const sentTo = (repo: string, from: number) => git.seen.slice(from).filter((q) => q.url.startsWith(`/${repo}/`));

  async function clone(base: string, env: Record<string, string | undefined>, repo: string, label: string): Promise<WorkspaceHandle> {
    const deps = activityDeps(base, { env });
    return (await mockEnv().run(createActivities(deps).prepareWorkspace, { workflowId: `wf-scope-${label}`, repo: urlOf(repo), baseBranch: 'main', branch: `weaver/${label}` })) as WorkspaceHandle;
  }

  async function cloneError(base: string, env: Record<string, string | undefined>, repo: string, label: string): Promise<ApplicationFailure> {
    const err = await clone(base, env, repo, label).then(
      () => new Error('cloned'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }

  test('WEAVER_GIT_SCOPE_<HOST>: the token is sent for repository A, never for B on the same host; B fails naming the setting', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-scope-env-'));
    const env = {
      ...process.env,
      [`WEAVER_GIT_TOKEN_${hostKey()}`]: TOKEN_A,
      [`WEAVER_GIT_USER_${hostKey()}`]: GIT_USER,
      [`WEAVER_GIT_SCOPE_${hostKey()}`]: urlOf('scoped-a.git'),
    };
    try {
      expect(checkGitCredentials(env)).toBe(`${urlOf('scoped-a.git')} → WEAVER_GIT_TOKEN_${hostKey()}`);
      const from = git.seen.length;
      const ws = await clone(base, env, 'scoped-a.git', 'a');
      expect((await simpleGit(ws.dir).raw(['rev-parse', 'HEAD'])).trim()).toBe(ws.baseCommit);
      expect(sentTo('scoped-a.git', from).filter((q) => q.authorized).length).toBeGreaterThan(0);
      expect(new Set(sentTo('scoped-a.git', from).map((q) => q.password))).toEqual(new Set([undefined, TOKEN_A]));

      const fromB = git.seen.length;
      const err = await cloneError(base, env, 'scoped-b.git', 'b');
      expect(err).toMatchObject({ type: 'CloneFailed', nonRetryable: true });
      expect(err.message).toMatch(new RegExp(`^cannot clone ${urlOf('scoped-b.git').replace(/[.]/g, '\\.')} \\(branch main\\): `));
      // git's own last word is the failure to authenticate; the line before it says why and what to set.
      expect(err.message).toMatch(/\nfatal: could not read Username for 'http:\/\/127\.0\.0\.1:\d+': terminal prompts disabled$/);
      expect(err.message).toContain(
        `\nweaver: no git credentials for ${urlOf('scoped-b.git')}: it is outside the scopes of this ` +
          `worker's tokens for 127.0.0.1:${git.port} (WEAVER_GIT_SCOPE_${hostKey()}: ${urlOf('scoped-a.git')}); to give it one, add a prefix ` +
          `covering it to WEAVER_GIT_SCOPE_${hostKey()} or to the WEAVER_GIT_CREDENTIALS file on the worker`,
      );
      expect(err.message).not.toContain(TOKEN_A);
      // B was asked (and challenged) but never sent a token: not A's, not any.
      const toB = sentTo('scoped-b.git', fromB);
      expect(toB.length).toBeGreaterThan(0);
      expect(toB.every((q) => q.password === undefined && !q.authorized)).toBe(true);

      // Pushing from A's workspace to B (an allowed remote) fails the same way; B stays empty, A still takes a push.
      const fromPush = git.seen.length;
      const policy = { env, pushRemotes: [`${git.url}/`] };
      const pushB = await commitAndPush({ workspace: ws, message: 'x\n\nWeaver-Workflow: wf-scope-a', workflowId: 'wf-scope-a', pushRemote: urlOf('scoped-b.git') }, [], policy);
      expect(pushB.pushed).toBe(false);
      expect(pushB.pushError).toContain(`no git credentials for ${urlOf('scoped-b.git')}: it is outside the scopes`);
      expect(pushB.pushError).toContain(`WEAVER_GIT_SCOPE_${hostKey()}`);
      expect(sentTo('scoped-b.git', fromPush).every((q) => q.password === undefined)).toBe(true);
      expect((await simpleGit(path.join(GIT_ROOT, 'scoped-b.git')).raw(['for-each-ref', 'refs/heads/weaver'])).trim()).toBe('');
      const pushA = await commitAndPush({ workspace: ws, message: 'x\n\nWeaver-Workflow: wf-scope-a', workflowId: 'wf-scope-a', pushRemote: 'origin' }, [], policy);
      expect(pushA).toMatchObject({ pushed: true });
      expect((await simpleGit(path.join(GIT_ROOT, 'scoped-a.git')).revparse(['weaver/a'])).trim()).toBe(pushA.commit);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test('WEAVER_GIT_CREDENTIALS: the longest prefix wins — A gets its own token, the rest of the host the broader one', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-scope-file-'));
    const file = path.join(base, 'git-credentials.yaml');
    await writeFile(
      file,
      [
        '# URL prefix → the env var holding its token',
        'credentials:',
        `  ${git.url}/:`,
        '    tokenEnv: HOST_WIDE_TOKEN',
        `    username: ${GIT_USER}`,
        `  ${git.url}/scoped-a.git:`,
        '    tokenEnv: REPO_A_TOKEN',
        `    username: ${GIT_USER}`,
        '',
      ].join('\n'),
    );
    const env = { ...process.env, WEAVER_GIT_CREDENTIALS: file, HOST_WIDE_TOKEN: TOKEN_B, REPO_A_TOKEN: TOKEN_A };
    try {
      expect(checkGitCredentials(env)).toBe(`${git.url}/ → HOST_WIDE_TOKEN, ${urlOf('scoped-a.git')} → REPO_A_TOKEN`);
      const from = git.seen.length;
      await clone(base, env, 'scoped-a.git', 'file-a');
      await clone(base, env, 'scoped-b.git', 'file-b');
      // Each repository saw only its own token (and the unauthenticated first request).
      expect(new Set(sentTo('scoped-a.git', from).map((q) => q.password))).toEqual(new Set([undefined, TOKEN_A]));
      expect(new Set(sentTo('scoped-b.git', from).map((q) => q.password))).toEqual(new Set([undefined, TOKEN_B]));
      // The file is read once, at start: its scopes are what the banner showed.
      expect(loadGitCredentialsFile(file).map((c) => [c.prefix, c.tokenEnv, c.username])).toEqual([
        [`${git.url}/`, 'HOST_WIDE_TOKEN', GIT_USER],
        [urlOf('scoped-a.git'), 'REPO_A_TOKEN', GIT_USER],
      ]);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test('a repository under no scope in the file gets no token, the message naming the file setting', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-scope-none-'));
    const file = path.join(base, 'git-credentials.json');
    await writeFile(file, JSON.stringify({ credentials: { [urlOf('scoped-a.git')]: 'REPO_A_TOKEN' } }));
    const env = { ...process.env, WEAVER_GIT_CREDENTIALS: file, REPO_A_TOKEN: TOKEN_A };
    try {
      const from = git.seen.length;
      const err = await cloneError(base, env, 'scoped-b.git', 'json-b');
      expect(err.message).toContain(`outside the scopes of this worker's tokens for 127.0.0.1:${git.port} (WEAVER_GIT_CREDENTIALS: ${urlOf('scoped-a.git')})`);
      expect(sentTo('scoped-b.git', from).every((q) => q.password === undefined)).toBe(true);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('which token a URL gets (chooseGitCredential)', () => {
  const env = {
    WEAVER_GIT_TOKEN_GITHUB_COM: 'tok-acme-org-000001',
    WEAVER_GIT_SCOPE_GITHUB_COM: 'https://github.com/acme/, https://github.com/solo/app.git',
  };
  const tokenFor = (url: string, e: Record<string, string | undefined> = env) => {
    const c = chooseGitCredential(url, e);
    return c.kind === 'token' ? c.password : undefined;
  };

  test('prefixes match at a "/" boundary, ".git" and a trailing "/" aside; host and scheme case-insensitive', () => {
    for (const yes of ['https://github.com/acme/app.git', 'https://github.com/acme/app', 'https://GitHub.com/acme/x/y', 'HTTPS://github.com/acme/a', 'https://github.com/solo/app', 'https://github.com/solo/app.git/']) {
      expect([yes, tokenFor(yes)]).toEqual([yes, 'tok-acme-org-000001']);
    }
    for (const no of ['https://github.com/acme-evil/app', 'https://github.com/solo/app-two', 'https://github.com/solo/other', 'https://github.com/other/acme/x', 'https://github.com.evil.net/acme/x', 'https://github.com:8443/acme/x']) {
      expect([no, tokenFor(no)]).toEqual([no, undefined]);
    }
  });

  test('"." / ".." segments or an encoded "/" get no token: a server could resolve them out of the prefix', () => {
    for (const url of ['https://github.com/acme/../other/x', 'https://github.com/acme/%2e%2e/other/x', 'https://github.com/acme%2F..%2Fother/x', 'https://github.com/acme/./x']) {
      const c = chooseGitCredential(url, env);
      expect([url, c.kind]).toEqual([url, 'none']);
    }
  });

  test('the longest prefix wins, across the file and the host scopes; its variable unset means no token (not a broader one)', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-scope-unit-'));
    try {
      const file = path.join(base, 'creds.yaml');
      await writeFile(file, 'credentials:\n  https://github.com/acme/app: APP_DEPLOY_TOKEN\n  https://github.com/acme/: ACME_FILE_TOKEN\n');
      const e = { ...env, WEAVER_GIT_CREDENTIALS: file, APP_DEPLOY_TOKEN: 'tok-app-deploy-1', ACME_FILE_TOKEN: 'tok-acme-file-2' };
      expect(tokenFor('https://github.com/acme/app.git', e)).toBe('tok-app-deploy-1');
      // Same length as the host scope: the file's entry first.
      expect(tokenFor('https://github.com/acme/lib', e)).toBe('tok-acme-file-2');
      expect(tokenFor('https://github.com/solo/app', e)).toBe('tok-acme-org-000001');
      const unset = chooseGitCredential('https://github.com/acme/app', { ...e, APP_DEPLOY_TOKEN: undefined });
      expect(unset).toEqual({ kind: 'none', note: expect.stringContaining('https://github.com/acme/app is mapped to APP_DEPLOY_TOKEN (WEAVER_GIT_CREDENTIALS), which is not set on this worker') });
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test('an unscoped host token: the whole host in dev mode only; otherwise none, naming WEAVER_GIT_SCOPE_<HOST>', () => {
    const unscoped = { WEAVER_GIT_TOKEN_GIT_EXAMPLE_ORG: 'tok-unscoped-3' };
    expect(tokenFor('https://git.example.org/any/repo', { ...unscoped, WEAVER_DEV: '1' })).toBe('tok-unscoped-3');
    expect(tokenFor('https://git.example.org/any/repo', unscoped)).toBeUndefined();
    expect(chooseGitCredential('https://git.example.org/any/repo', unscoped)).toMatchObject({
      note: expect.stringMatching(/WEAVER_GIT_TOKEN_GIT_EXAMPLE_ORG has no scope: outside dev mode \(WEAVER_DEV=1\) a host token is sent only to the repositories under WEAVER_GIT_SCOPE_GIT_EXAMPLE_ORG/),
    });
    // A host without any token: the note says what to set.
    expect(chooseGitCredential('https://gitlab.com/a/b', env)).toMatchObject({ note: expect.stringContaining('this worker has no token for gitlab.com; set WEAVER_GIT_TOKEN_GITLAB_COM with WEAVER_GIT_SCOPE_GITLAB_COM') });
  });

  test('gitAuth: a token only through the helper; without one, a note and no password; never over plain http', () => {
    const yes = gitAuth('https://github.com/acme/app.git', env);
    expect(yes?.env).toMatchObject({ WEAVER_GIT_CRED_HOST: 'github.com', WEAVER_GIT_CRED_PASSWORD: 'tok-acme-org-000001' });
    expect(yes?.config[0]).toBe('credential.helper=');
    const no = gitAuth('https://github.com/other/app.git', env);
    expect(no?.env.WEAVER_GIT_CRED_PASSWORD).toBe('');
    expect(no?.env.WEAVER_GIT_CRED_NOTE).toContain('outside the scopes');
    expect(JSON.stringify(no)).not.toContain('tok-acme-org-000001');
    expect(gitAuth('http://github.com/acme/app.git', env)?.env).toMatchObject({ WEAVER_GIT_CRED_PASSWORD: '', WEAVER_GIT_CRED_NOTE: expect.stringContaining('plain http') });
    expect(gitAuth('git@github.com:acme/app.git', env)).toBeUndefined();
  });
});

describe('git credential settings are checked at worker start', () => {
  test('a bad WEAVER_GIT_CREDENTIALS file: every problem, each naming its field', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-creds-bad-'));
    try {
      const file = path.join(base, 'git.yaml');
      await writeFile(
        file,
        [
          'credentials:',
          '  https://u:p@github.com/acme/: ACME_TOKEN',
          '  https://github.com/x/: MY_PAT',
          '  ftp://example.org/r: X_TOKEN',
          '  http://git.example.org/r: X_TOKEN',
          '  https://github.com/y/:',
          '    tokenEnv: Y_TOKEN',
          '    user: bot',
          'extra: 1',
          '',
        ].join('\n'),
      );
      let err: unknown;
      try {
        checkGitCredentials({ WEAVER_GIT_CREDENTIALS: file });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GitCredentialsError);
      const issues = (err as GitCredentialsError).issues;
      expect((err as Error).message).toContain(`invalid git credentials (WEAVER_GIT_CREDENTIALS=${file}`);
      expect(issues).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^credentials\.https:\/\/github\.com\/x\/: must be a name the worker treats as a secret — ending in _TOKEN/),
          expect.stringMatching(/^credentials\.https:\/\/github\.com\/y\/: Unrecognized key: "user"/),
          expect.stringMatching(/^\(root\): Unrecognized key: "extra"|^extra: /),
          'credentials.https://u:p@github.com/acme/: the prefix must not hold credentials (the token comes from the env var it names)',
          expect.stringMatching(/^credentials\.ftp:\/\/example\.org\/r: the prefix must be an http\(s\) URL/),
          expect.stringMatching(/^credentials\.http:\/\/git\.example\.org\/r: the prefix is plain http, allowed only to localhost/),
        ]),
      );
      expect(() => checkGitCredentials({ WEAVER_GIT_CREDENTIALS: path.join(base, 'missing.yaml') })).toThrow(/cannot read the file/);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test('a host token without a scope stops a production worker (naming WEAVER_GIT_SCOPE_<HOST>), not a dev one; a scope on another host is refused', async () => {
    const unscoped = { WEAVER_GIT_TOKEN_GITHUB_COM: 'tok-unscoped-4' };
    expect(() => checkGitCredentials(unscoped)).toThrow(/WEAVER_GIT_TOKEN_GITHUB_COM has no scope: .*WEAVER_GIT_SCOPE_GITHUB_COM/);
    expect(checkGitCredentials({ ...unscoped, WEAVER_DEV: '1' })).toBe('its whole host (unscoped, dev mode only) → WEAVER_GIT_TOKEN_GITHUB_COM');
    expect(checkGitCredentials({ ...unscoped, WEAVER_GIT_SCOPE_GITHUB_COM: 'https://github.com/' })).toBe('https://github.com/ → WEAVER_GIT_TOKEN_GITHUB_COM');
    expect(() => checkGitCredentials({ ...unscoped, WEAVER_GIT_SCOPE_GITHUB_COM: 'https://gitlab.com/acme/' })).toThrow(
      'WEAVER_GIT_SCOPE_GITHUB_COM: https://gitlab.com/acme/ is on gitlab.com, not on the host WEAVER_GIT_TOKEN_GITHUB_COM is for',
    );
    expect(checkGitCredentials({})).toMatch(/^none /);
    // The value never appears in what the banner prints.
    expect(checkGitCredentials({ ...unscoped, WEAVER_DEV: '1' })).not.toContain('tok-unscoped-4');

    // createWorkers (what `npm run worker` and the rigs use) refuses before any worker polls.
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-creds-start-'));
    try {
      await expect(
        createWorkers({
          connection: await testNativeConnection(),
          taskQueue: `creds-start-${Date.now()}`,
          deps: { artifactDir: path.join(base, 'a'), workspaceRoot: path.join(base, 'w'), env: unscoped, sandbox: { mode: 'off', kind: 'none', hide: [], readOnly: [] } },
        }),
      ).rejects.toThrow(/WEAVER_GIT_TOKEN_GITHUB_COM has no scope/);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
