// A sandbox that fails before its command runs (issue 17 item 3): told apart from the command's
// own exit by bwrap's status (--json-status-fd), retried inside the activity, never the
// command's outcome; and networked sandboxes under CPU load never fail in bwrap's own set-up
// (the egress listener is attached only once bwrap has set up the loopback). Real bubblewrap,
// real dev server, the scripted model server.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectSandbox, releaseUid, sandboxed, uidFor, type SandboxSetting } from '../src/activities/sandbox';
import { INJECTED_FAULT_DIR } from '../src/activities/sandbox/argv';
import { runCommand } from '../src/activities/commands';
import { SandboxPolicySchema } from '../src/domain/schema';
import { SANDBOX_TRIES } from '../src/activities/sandboxRetry';
import { wholeFile } from './support/answers';
import { activitiesOf } from './support/processes';
import { useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
/** Networked commands run at once in the race test, and busy loops beside them. */
const NETWORKED = 30;
const BUSY_LOOPS = 4;
/** The egress listener, 127.0.0.1:3128, as /proc/net/tcp spells it: the command checks its network is there. */
const HAS_LISTENER = 'grep -q "0100007F:0C38 " /proc/net/tcp';

let rig: Rig;
useRig((r) => (rig = r), { sandbox: 'required' });

let root: string;
let setting: SandboxSetting;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'weaver-sbsetup-'));
  // A root worker's sandbox uids must get through to the workspaces.
  await chmod(root, 0o711);
  setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')], env: { ...process.env, WEAVER_SANDBOX_MAX_LIMITS: '' } });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
/** One command in its own workspace, in the sandbox (setup phase: network through the egress proxy). */
async function boxed(command: string, opts: { timeoutSec?: number } = {}) {
  const dir = path.join(root, 'ws', `t${++seq}`, 'repo');
  await mkdir(dir, { recursive: true });
  const box = await sandboxed({ setting, policy: SandboxPolicySchema.parse({}), phase: 'setup', dir, command, env: process.env, scratchHome: path.join(dir, '..', 'home') });
  try {
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: opts.timeoutSec ?? 120, logFile: path.join(dir, '..', 'log') });
    return { r, ...(await box.finish(r)) };
  } finally {
    if (uidFor(setting, dir) !== undefined) releaseUid(setting, dir);
  }
}

test('a sandbox failing in set-up is told apart from a command exiting 1 and from a timeout', async () => {
  setting.failSetups = 1;
  const failed = await boxed(HAS_LISTENER);
  expect(setting.failSetups).toBe(0);
  expect(failed.sandboxFailed).toMatch(new RegExp(`the sandbox failed before the command started \\(exit 1: bwrap: Can't chdir to ${INJECTED_FAULT_DIR}`));
  // The same command again: its sandbox sets up, its network is there.
  const ran = await boxed(HAS_LISTENER);
  expect({ exit: ran.r.exitCode, failed: ran.sandboxFailed, tail: ran.r.tail }).toEqual({ exit: 0, failed: undefined, tail: '' });
  // A command's own failure, before any output, is its outcome.
  const own = await boxed('exit 1');
  expect({ exit: own.r.exitCode, failed: own.sandboxFailed }).toEqual({ exit: 1, failed: undefined });
  // A timeout kills bwrap itself (no status): still the command's.
  const slow = await boxed('sleep 30', { timeoutSec: 1 });
  expect({ timedOut: slow.r.timedOut, failed: slow.sandboxFailed }).toEqual({ timedOut: true, failed: undefined });
});

test('a sandbox probe failing once at start is tried again: the worker starts with bubblewrap', async () => {
  // A bwrap that fails its first sandbox as bubblewrap's own set-up failed under load, then is bwrap.
  const wrapper = path.join(root, 'flaky-bwrap');
  // Written by the probe's unprivileged uid (a root worker probes as the sandbox's first uid).
  await mkdir(path.join(root, 'flaky'), { mode: 0o1777 });
  await chmod(path.join(root, 'flaky'), 0o1777);
  const count = path.join(root, 'flaky', 'count');
  await writeFile(wrapper, `#!/bin/sh\n[ "$1" = --version ] && exec bwrap "$@"\necho x >> ${count}\nif [ "$(wc -l < ${count})" -eq 1 ]; then echo 'bwrap: loopback: Failed RTM_NEWADDR: No child processes' >&2; exit 1; fi\nexec bwrap "$@"\n`);
  await chmod(wrapper, 0o755);
  const lines: string[] = [];
  const warn = jest.spyOn(console, 'warn').mockImplementation((l: string) => void lines.push(l));
  try {
    const flaky = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')], env: { ...process.env, WEAVER_BWRAP: wrapper, WEAVER_SANDBOX_NETWORK: 'none' } });
    expect(flaky.kind).toBe('bubblewrap');
  } finally {
    warn.mockRestore();
  }
  expect((await readFile(count, 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);
  expect(lines).toEqual([expect.stringMatching(/sandbox probe 1\/3 failed \(bwrap: loopback: Failed RTM_NEWADDR: No child processes\); trying again/)]);
});

test(`${NETWORKED} networked commands at once under CPU load: none fails in the sandbox's set-up`, async () => {
  const busy: ChildProcess[] = Array.from({ length: BUSY_LOOPS }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  try {
    const runs = await Promise.all(Array.from({ length: NETWORKED }, () => boxed(HAS_LISTENER)));
    const bad = runs.filter((x) => x.sandboxFailed || x.r.exitCode !== 0).map((x) => x.sandboxFailed ?? `exit ${x.r.exitCode}: ${x.r.tail}`);
    process.stdout.write(`\nnetwork attach under load: ${NETWORKED - bad.length}/${NETWORKED} networked commands ran with their egress listener\n`);
    expect(bad).toEqual([]);
  } finally {
    for (const b of busy) b.kill('SIGKILL');
  }
}, 600_000);

test('a task whose sandbox fails in set-up once succeeds in its first attempt: the run is retried, not failed', async () => {
  const repo = await rig.newRepo();
  rig.model.setDefault('m-sbsetup', () => ({ content: wholeFile('src/slugify.js', GOOD, 'fix slugify') }));
  rig.sandbox.failSetups = 1;
  const r = await rig.run(rig.task(repo, [rig.provider('m-sbsetup')], { limits: { maxAttempts: 2, testTimeoutSec: 120 } }));
  // The fault was spent (the first sandbox of the task), yet nothing failed.
  expect(rig.sandbox.failSetups).toBe(0);
  expect({ status: r.status, attempts: r.attempts.length, passed: r.attempts[0].tests?.passed }).toEqual({ status: 'succeeded', attempts: 1, passed: true });
}, 300_000);

test(`a sandbox failing in set-up ${SANDBOX_TRIES} times in a row fails its activity retryably; Temporal's retry runs it, still in the first attempt`, async () => {
  const repo = await rig.newRepo();
  rig.model.setDefault('m-sbsetup-2', () => ({ content: wholeFile('src/slugify.js', GOOD, 'fix slugify') }));
  rig.sandbox.failSetups = SANDBOX_TRIES;
  const workflowId = `sbsetup-retry-${Date.now()}`;
  const r = await rig.run(rig.task(repo, [rig.provider('m-sbsetup-2')], { limits: { maxAttempts: 2, testTimeoutSec: 120 } }), workflowId);
  expect(rig.sandbox.failSetups).toBe(0);
  expect({ status: r.status, attempts: r.attempts.length }).toEqual({ status: 'succeeded', attempts: 1 });
  // The activity whose sandbox failed: its second try ran, after a SandboxFailed one.
  const retried = (await activitiesOf(rig.client, workflowId)).filter((a) => (a.attempt ?? 1) > 1);
  expect(retried).toEqual([expect.objectContaining({ attempt: 2, lastFailure: expect.stringMatching(/the sandbox failed before the command started.*3 times/), closed: 'completed' })]);
}, 300_000);
