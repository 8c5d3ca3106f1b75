// The worker's side of the sandbox policy (issue 8): caps on a task's limits, a uid per
// workspace, the `sandbox.env` allowlist, and what happens without the egress proxy (nsenter). Real bwrap,
// the real egress proxy, a real worker on the dev server; tasks see the worker's caps as notes on
// the workspace handle (read back from the workflow's history).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { runCommand } from '../src/activities/commands';
import { detectSandbox, effectiveLimits, releaseUid, sandboxed, sandboxNotes, uidFor, type SandboxSetting } from '../src/activities/sandbox';
import type { WorkspaceHandle } from '../src/activities/types';
import { SANDBOX_LIMIT_CAPS, sandboxEnvAllowlist, sandboxMaxLimits, sandboxUids } from '../src/config';
import { SandboxPolicySchema, type CodingTaskInput, type CodingTaskResult } from '../src/domain/schema';
import { wholeFile } from './support/answers';
import { startRig, useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;

// The rig's worker reads these at start (detectSandbox): a memory cap of 512 MiB, an allowlist
// of WEAVER_T_OK*, and two variables a task will ask for by name.
const WORKER_ENV = {
  WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb=512',
  WEAVER_SANDBOX_ENV: 'WEAVER_T_OK*',
  WEAVER_T_OK_NAME: 'visible-value',
  DATABASE_URL: 'postgres://app:hunter2@db.internal:5432/prod',
};
const saved = Object.fromEntries(Object.keys(WORKER_ENV).map((k) => [k, process.env[k]]));
Object.assign(process.env, WORKER_ENV);
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

let rig: Rig;
useRig((r) => (rig = r), { sandbox: 'required' });

const policy = (p: unknown) => p as CodingTaskInput['sandbox'];
let seq = 0;
/** One task whose model writes the fix; `command` is its test command. */
async function start(command: string, extra: Partial<CodingTaskInput> = {}, on: Rig = rig) {
  const repo = await on.newRepo();
  const id = `m-limits-${++seq}`;
  // The same answer however often the workflow asks.
  on.model.setDefault(id, () => ({ content: wholeFile('src/slugify.js', GOOD, 'fix slugify') }));
  return on.start(on.task(repo, [on.provider(id)], { testCommand: ['sh', '-c', command], limits: { maxAttempts: 1, testTimeoutSec: 60 }, ...extra }));
}

async function testLog(r: CodingTaskResult, on: Rig = rig): Promise<string> {
  const ref = r.attempts[0].tests?.log?.ref;
  if (!ref) return '';
  const hex = ref.slice('sha256:'.length);
  return readFile(path.join(on.artifactDir, 'sha256', hex.slice(0, 2), hex), 'utf8');
}

/** The workspace handle prepareWorkspace returned, as the workflow's history holds it. */
async function preparedHandle(workflowId: string, on: Rig = rig): Promise<WorkspaceHandle> {
  const events = (await on.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const scheduled = new Set(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareWorkspace').map((e) => String(e.eventId)),
  );
  const done = events.find((e) => scheduled.has(String(e.activityTaskCompletedEventAttributes?.scheduledEventId)));
  const payload = done?.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
  if (!payload) throw new Error(`no completed prepareWorkspace in ${workflowId}'s history`);
  return defaultPayloadConverter.fromPayload<WorkspaceHandle>(payload);
}

/** Live processes per uid (host view), for uids in the sandbox range. */
function processesByUid(): Map<number, number> {
  const count = new Map<number, number>();
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      if (uid >= 200000) count.set(uid, (count.get(uid) ?? 0) + 1);
    } catch {
      // exited meanwhile
    }
  }
  return count;
}

/** A file named `name` in some workspace under `root` (three levels: task, repo, file). */
function findFile(root: string, name: string): string | undefined {
  try {
    for (const task of readdirSync(root)) {
      for (const repo of readdirSync(path.join(root, task))) {
        const file = path.join(root, task, repo, name);
        if (existsSync(file)) return file;
      }
    }
  } catch {
    // not there yet
  }
  return undefined;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  for (const t = Date.now(); Date.now() - t < timeoutMs; await new Promise((r) => setTimeout(r, 100))) {
    const v = probe();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('worker configuration', () => {
  test('caps, the uid range and the env allowlist parse; a bad value names its variable', () => {
    expect(sandboxMaxLimits({})).toEqual(SANDBOX_LIMIT_CAPS);
    expect(sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb=4096, processes=1024' })).toEqual({ ...SANDBOX_LIMIT_CAPS, memoryMb: 4096, processes: 1024 });
    expect(() => sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb=lots' })).toThrow(/^WEAVER_SANDBOX_MAX_LIMITS: memoryMb=lots: not a whole number/);
    expect(() => sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb=32' })).toThrow(/^WEAVER_SANDBOX_MAX_LIMITS: memoryMb=32: .*64/);
    expect(() => sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'swapMb=1' })).toThrow(/^WEAVER_SANDBOX_MAX_LIMITS: unknown limit "swapMb"/);
    expect(() => sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb' })).toThrow(/^WEAVER_SANDBOX_MAX_LIMITS: "memoryMb" is not name=integer/);
    expect(sandboxUids({})).toEqual({ first: 200000, last: 299999 });
    expect(sandboxUids({ WEAVER_SANDBOX_UID_RANGE: '300000-300009' })).toEqual({ first: 300000, last: 300009 });
    expect(sandboxUids({ WEAVER_SANDBOX_UID: '65534' })).toEqual({ first: 65534, last: 65534 });
    expect(() => sandboxUids({ WEAVER_SANDBOX_UID_RANGE: '0-10' })).toThrow(/^WEAVER_SANDBOX_UID_RANGE must be/);
    expect(() => sandboxUids({ WEAVER_SANDBOX_UID_RANGE: '20-10' })).toThrow(/^WEAVER_SANDBOX_UID_RANGE must be/);
    expect(() => sandboxUids({ WEAVER_SANDBOX_UID: 'nobody' })).toThrow(/^WEAVER_SANDBOX_UID must be/);
    expect(sandboxEnvAllowlist({})).toEqual([]);
    expect(sandboxEnvAllowlist({ WEAVER_DEV: '1' })).toEqual(['*']);
    expect(sandboxEnvAllowlist({ WEAVER_SANDBOX_ENV: 'JAVA_HOME, NODE_*' })).toEqual(['JAVA_HOME', 'NODE_*']);
    expect(() => sandboxEnvAllowlist({ WEAVER_SANDBOX_ENV: 'JAVA_HOME,a-b' })).toThrow(/^WEAVER_SANDBOX_ENV: "a-b"/);
  });

  test('the effective limit is the smaller of the task\'s and the cap, and each lowered one is said', async () => {
    const setting = { mode: 'required' as const, kind: 'bubblewrap' as const, hide: [], readOnly: [], maxLimits: { ...SANDBOX_LIMIT_CAPS, memoryMb: 1024, diskMb: 100 } };
    const asked = SandboxPolicySchema.parse({ limits: { memoryMb: 4096, processes: 64 } });
    expect(effectiveLimits(setting, asked.limits)).toEqual({
      limits: { ...asked.limits, memoryMb: 1024, processes: 64, diskMb: 100 },
      lowered: [
        'sandbox.limits.memoryMb 4096 lowered to 1024, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)',
        'sandbox.limits.diskMb 10240 lowered to 100, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)',
      ],
    });
    // A policy recorded before diskMb existed gets its default.
    const { diskMb: _d, ...old } = asked.limits;
    expect(effectiveLimits({ ...setting, maxLimits: SANDBOX_LIMIT_CAPS }, old).limits.diskMb).toBe(10240);
  });

  test('maxOutputMb: 16 by default (a policy recorded before it existed too), at most the worker\'s cap, within 1..1024', () => {
    const setting = { mode: 'required' as const, kind: 'bubblewrap' as const, hide: [], readOnly: [], maxLimits: sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'maxOutputMb=8' }) };
    expect(setting.maxLimits.maxOutputMb).toBe(8);
    expect(SANDBOX_LIMIT_CAPS.maxOutputMb).toBe(64);
    const { maxOutputMb: _m, ...old } = SandboxPolicySchema.parse({}).limits;
    expect(effectiveLimits({ ...setting, maxLimits: SANDBOX_LIMIT_CAPS }, old).limits.maxOutputMb).toBe(16);
    expect(effectiveLimits(setting, SandboxPolicySchema.parse({ limits: { maxOutputMb: 4 } }).limits)).toEqual({ limits: expect.objectContaining({ maxOutputMb: 4 }), lowered: [] });
    expect(effectiveLimits(setting, old)).toEqual({
      limits: expect.objectContaining({ maxOutputMb: 8 }),
      lowered: ['sandbox.limits.maxOutputMb 16 lowered to 8, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)'],
    });
    expect(SandboxPolicySchema.safeParse({ limits: { maxOutputMb: 0 } }).success).toBe(false);
    expect(SandboxPolicySchema.safeParse({ limits: { maxOutputMb: 2048 } }).success).toBe(false);
    expect(() => sandboxMaxLimits({ WEAVER_SANDBOX_MAX_LIMITS: 'maxOutputMb=2048' })).toThrow(/^WEAVER_SANDBOX_MAX_LIMITS: maxOutputMb=2048: /);
  });

  test('a bad cap stops the worker at start, naming WEAVER_SANDBOX_MAX_LIMITS', async () => {
    const out = await startWorker({ WEAVER_SANDBOX_MAX_LIMITS: 'memoryMb=lots' });
    expect(out.code).not.toBe(0);
    expect(out.text).toMatch(/WEAVER_SANDBOX_MAX_LIMITS: memoryMb=lots: not a whole number/);
  });
});

/** Runs the worker's entry point until it exits (it never connects: TEMPORAL_ADDRESS is closed). */
async function startWorker(env: Record<string, string>): Promise<{ code: number | null; text: string }> {
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, '..', 'src', 'worker.ts')], {
    env: { ...process.env, WEAVER_SANDBOX: 'required', TEMPORAL_ADDRESS: '127.0.0.1:1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return { code, text };
}

describe('without the egress proxy (no nsenter)', () => {
  let listener: Server;
  let port = 0;
  beforeAll(async () => {
    listener = createServer((s) => {
      s.on('error', () => undefined);
      s.end('hello\n');
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    port = (listener.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => listener.close(() => r())));

  test('WEAVER_SANDBOX=required refuses to start, naming apt-get install util-linux; with WEAVER_SANDBOX_NETWORK=none it starts', async () => {
    const out = await startWorker({ WEAVER_NSENTER: '/nonexistent/nsenter' });
    expect(out.code).not.toBe(0);
    expect(out.text).toMatch(/WEAVER_SANDBOX=required, but nsenter is not installed[\s\S]*without the egress allowlist[\s\S]*apt-get install util-linux[\s\S]*WEAVER_SANDBOX_NETWORK=none/);
    const none = await detectSandbox({ mode: 'required', hide: [], env: { ...process.env, WEAVER_NSENTER: '/nonexistent/nsenter', WEAVER_SANDBOX_NETWORK: 'none' } });
    expect(none).toMatchObject({ kind: 'bubblewrap', maxNetwork: 'none' });
    expect(none.nsenter).toBeUndefined();
  });

  test('WEAVER_DEV_EGRESS_ADDRESSES without WEAVER_DEV stops the start: a production worker never exempts private addresses by accident', async () => {
    const out = await startWorker({ WEAVER_DEV_EGRESS_ADDRESSES: '192.0.2.2', WEAVER_DEV: '' });
    expect(out.code).not.toBe(0);
    expect(out.text).toMatch(/WEAVER_DEV_EGRESS_ADDRESSES is a test setting[\s\S]*needs WEAVER_DEV=1/);
  });

  test('auto shares the host network with a warning, said in the handle\'s notes', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'weaver-noslirp-'));
    // A root worker's sandbox uid must get through to the workspace (the worker opens up only below it).
    await chmod(root, 0o711);
    try {
      const dir = path.join(root, 'ws', 'task', 'repo');
      await mkdir(dir, { recursive: true });
      const setting = await detectSandbox({ mode: 'auto', hide: [path.join(root, 'ws')], env: { ...process.env, WEAVER_SANDBOX_MAX_LIMITS: '', WEAVER_NSENTER: '/nonexistent/nsenter' } });
      expect(setting).toMatchObject({ kind: 'bubblewrap', networkWarning: expect.stringMatching(/share the worker's own \(nsenter is not installed.*127\.0\.0\.1/) });
      const p = SandboxPolicySchema.parse({});
      expect(sandboxNotes(setting, p)).toContain(setting.networkWarning);
      expect(sandboxNotes(setting, SandboxPolicySchema.parse({ network: 'none' }))).toEqual([]);
      const box = await sandboxed({ setting, policy: p, phase: 'setup', dir, command: `node -e "require('net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('CONNECTED'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(3) })"`, env: process.env, scratchHome: path.join(root, 'home') });
      const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log') });
      await box.finish(r);
      expect(r.tail).toContain('CONNECTED');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

test('a task asking for more than the worker\'s cap gets the cap, and is told', async () => {
  const handle = await start(`node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 26, 1))"`, { sandbox: policy({ limits: { memoryMb: 4096 } }) });
  const r = await handle.result();
  expect(r.status).toBe('failed');
  expect(r.attempts[0].tests?.limit).toMatch(/^killed: memory limit 512 MiB/);
  expect((await preparedHandle(r.workflowId)).sandboxNotes).toEqual(['sandbox.limits.memoryMb 4096 lowered to 512, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)']);
});

test('sandbox.env passes only the names the worker allows; the rest are dropped and noted', async () => {
  // Within the memory cap (512 MiB, below the 2 GiB default): only the env note.
  const limits = { memoryMb: 512 };
  const r = await (await start('echo "ok=[$WEAVER_T_OK_NAME] db=[$DATABASE_URL]"; node --test test/', { sandbox: policy({ env: ['WEAVER_T_OK_NAME', 'DATABASE_URL'], limits }) })).result();
  expect(r.status).toBe('succeeded');
  const log = await testLog(r);
  expect(log).toContain('ok=[visible-value] db=[]');
  expect(log).not.toContain('hunter2');
  expect((await preparedHandle(r.workflowId)).sandboxNotes).toEqual(['sandbox.env: DATABASE_URL not passed: this worker does not allow it (WEAVER_SANDBOX_ENV)']);
  // A task within the caps and the allowlist gets no notes.
  const plain = await (await start('node --test test/', { sandbox: policy({ env: ['WEAVER_T_OK_NAME'], limits }) })).result();
  expect(plain.status).toBe('succeeded');
  expect((await preparedHandle(plain.workflowId)).sandboxNotes).toBeUndefined();
});

/**
 * Task A fills its process limit (a fork bomb that keeps 64 processes alive, retrying forks);
 * while it does, task B on the same worker starts 30 background processes under the same limit.
 * RLIMIT_NPROC counts a uid's processes across sandboxes: B forks only if its uid is not A's.
 */
async function bombAndNeighbour(on: Rig): Promise<{ a: CodingTaskResult; b: CodingTaskResult; bLog: string; uidA: number; aRunningWhenBDone: boolean }> {
  const limits = { maxAttempts: 1, testTimeoutSec: 40 };
  const sandbox = policy({ network: 'none', limits: { processes: 64, memoryMb: 512 } });
  const mark = `uid-${++seq}.txt`;
  const bomb = await start(`id -u > ${mark}; bash -c 'while :; do sleep 120 & done'`, { sandbox, limits }, on);
  let aDone = false;
  const aResult = bomb.result().finally(() => (aDone = true));
  // The worker's side sees A's workspace: its uid, then that uid holding (nearly) 64 processes.
  const uidA = await until('task A to write its uid', () => {
    const file = findFile(on.workspaceRoot, mark);
    return file ? Number(readFileSync(file, 'utf8')) || undefined : undefined;
  });
  await until('the fork bomb to fill its process limit', () => ((processesByUid().get(uidA) ?? 0) >= 60 ? true : undefined));
  const neighbour = await start('echo "uid=$(id -u)"; i=0; while [ $i -lt 30 ]; do sleep 3 & i=$((i+1)); done; wait && echo FORKS-OK', { sandbox, limits }, on);
  const b = await neighbour.result();
  const aRunningWhenBDone = !aDone;
  return { a: await aResult, b, bLog: await testLog(b, on), uidA, aRunningWhenBDone };
}

test('each workspace\'s sandbox runs as its own uid: a fork bomb in one task does not stop another\'s forks', async () => {
  const { a, b, bLog, uidA, aRunningWhenBDone } = await bombAndNeighbour(rig);
  expect(aRunningWhenBDone).toBe(true);
  expect(a.attempts[0].tests?.limit).toBe('process limit 64 reached: new processes were refused');
  const uidB = Number(/uid=(\d+)/.exec(bLog)?.[1]);
  expect(uidA).toBeGreaterThanOrEqual(200000);
  expect(uidA).toBeLessThanOrEqual(299999);
  expect(uidB).toBeGreaterThanOrEqual(200000);
  expect(uidB).toBeLessThanOrEqual(299999);
  expect(uidB).not.toBe(uidA);
  expect(bLog).toContain('FORKS-OK');
  expect(bLog).not.toMatch(/Cannot fork|Resource temporarily unavailable/);
  expect(b.status).toBe('succeeded');
}, 240_000);

test('control: with one uid for every sandbox (WEAVER_SANDBOX_UID), the same fork bomb does stop the other task', async () => {
  process.env.WEAVER_SANDBOX_UID = '250000';
  let shared: Rig;
  try {
    shared = await startRig({ sandbox: 'required' });
  } finally {
    delete process.env.WEAVER_SANDBOX_UID;
  }
  try {
    const { b, bLog, uidA, aRunningWhenBDone } = await bombAndNeighbour(shared);
    expect(aRunningWhenBDone).toBe(true);
    expect(uidA).toBe(250000);
    // B cannot even start its sandbox (bwrap's clone is refused), let alone its 30 processes.
    expect(bLog).toMatch(/Cannot fork|Resource temporarily unavailable/);
    expect(bLog).not.toContain('FORKS-OK');
    expect(b.status).toBe('failed');
  } finally {
    await shared.close();
  }
}, 240_000);

describe('uids across worker processes', () => {
  /**
   * Two worker processes with their own state (this module's maps are per process) allocate
   * uids for workspaces of their own from one small range at the same time, and keep them (a
   * lock is held while its process lives). Hashing alone puts 8 workspaces on 8 uids with
   * collisions nearly always (1 - 8!/8^8 ≈ 99.8%).
   */
  async function allocator(locks: string, dirs: string[], range: { first: number; last: number }) {
    const script = path.join(locks, '..', `alloc-${Math.random().toString(36).slice(2)}.ts`);
    await writeFile(
      script,
      `import { uidFor } from ${JSON.stringify(path.join(__dirname, '..', 'src', 'activities', 'sandbox', 'uids'))};\n` +
        `const setting = { mode: 'required', kind: 'bubblewrap', hide: [], readOnly: [], uids: ${JSON.stringify(range)}, uidLocks: ${JSON.stringify(locks)} } as const;\n` +
        `const out: Record<string, number | string> = {};\n` +
        `for (const d of ${JSON.stringify(dirs)}) { try { out[d] = uidFor(setting as never, d)!; } catch (e) { out[d] = (e as Error).message; } }\n` +
        `console.log(JSON.stringify(out));\n` +
        // Held until the test is done: the locks of a live process.
        `process.stdin.resume(); process.stdin.on('end', () => process.exit(0));\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: path.join(__dirname, '..'), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const result = new Promise<Record<string, number | string>>((resolve, reject) => {
      child.stdout!.on('data', () => out.includes('\n') && resolve(JSON.parse(out.split('\n')[0])));
      child.on('exit', (code) => reject(new Error(`allocator exited ${code}: ${err}`)));
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    return { result, end: () => child.stdin!.end(), exited };
  }

  test('a released workspace gives its uid back: a long-lived worker does not keep one per workspace it ever made', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-uids-release-'));
    try {
      const setting = { mode: 'required', kind: 'bubblewrap', hide: [], readOnly: [], uids: { first: 320000, last: 320001 }, uidLocks: path.join(base, 'locks') } as unknown as SandboxSetting;
      const a = uidFor(setting, path.join(base, 'ws-a'))!;
      const b = uidFor(setting, path.join(base, 'ws-b'))!;
      expect(new Set([a, b]).size).toBe(2);
      expect(() => uidFor(setting, path.join(base, 'ws-c'))).toThrow(/every sandbox uid in 320000-320001 is held/);
      releaseUid(setting, path.join(base, 'ws-a'));
      expect(readdirSync(path.join(base, 'locks')).filter((f) => /^\d+$/.test(f))).toEqual([String(b)]);
      expect(uidFor(setting, path.join(base, 'ws-c'))).toBe(a);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  test('two worker processes never hand out the same uid; a full range is refused, naming the setting', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'weaver-uids-'));
    const locks = path.join(base, 'locks');
    const range = { first: 310000, last: 310007 };
    const a = await allocator(locks, [0, 1, 2, 3].map((i) => path.join(base, 'host-a', `ws${i}`)), range);
    const b = await allocator(locks, [0, 1, 2, 3, 4].map((i) => path.join(base, 'host-b', `ws${i}`)), range);
    try {
      const [ua, ub] = await Promise.all([a.result, b.result]);
      const all = [...Object.values(ua), ...Object.values(ub)];
      const uids = all.filter((u): u is number => typeof u === 'number');
      // Nine workspaces, eight uids: eight distinct ones, the ninth refused.
      expect(uids).toHaveLength(8);
      expect(new Set(uids).size).toBe(8);
      expect(uids.every((u) => u >= range.first && u <= range.last)).toBe(true);
      expect(all.filter((u) => typeof u === 'string')).toEqual([expect.stringMatching(/every sandbox uid in 310000-310007 is held .*WEAVER_SANDBOX_UID_RANGE/)]);
      // A lock file per uid, naming its holder's workspace.
      expect(readdirSync(locks).filter((f) => /^\d+$/.test(f)).sort()).toEqual(uids.map(String).sort());
      // Once a holder is gone its uids are free again: a third process gets one of A's.
      a.end();
      await a.exited;
      const c = await allocator(locks, [path.join(base, 'host-c', 'ws0')], range);
      const uc = Object.values(await c.result)[0];
      c.end();
      expect(Object.values(ua)).toContain(uc);
    } finally {
      a.end();
      b.end();
      await b.exited;
      await rm(base, { recursive: true, force: true });
    }
  }, 120_000);
});
