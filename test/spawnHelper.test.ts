// The spawn helper (src/activities/spawner): a task's processes — its test command and its git —
// are children of the helper, never of the worker: the worker's main thread starts no process
// while a task runs, sandboxed or not (every way Node starts one is counted), so no process start
// can block its event loop; a helper killed under a running command takes the command's whole
// group with it, and the worker carries on with a new helper (the check is retried, the task
// succeeds).
import childProcess, { ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { helperProcessCount, setSpawnHelperLog, spawnHelperPid } from '../src/activities/spawner';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { wholeFile } from './support/answers';
import { processesWith, waitUntil } from './support/processes';
import { startRig, useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;

// A `git` first on PATH that records its parent's pid, then runs the real git. Set before the
// rig starts: git's environment (gitEnv) and the commands' take PATH from here.
const bin = sandboxableTempDir('weaver-spawn-bin-');
const gitParents = path.join(bin, 'git-parents');
const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
mkdirSync(bin, { recursive: true });
writeFileSync(path.join(bin, 'git'), `#!/bin/sh\necho "$PPID" >> '${gitParents}'\nexec '${realGit}' "$@"\n`);
chmodSync(path.join(bin, 'git'), 0o755);
process.env.PATH = `${bin}:${process.env.PATH}`;

const said: string[] = [];
setSpawnHelperLog((m) => said.push(m));

let rig: Rig;
// No sandbox: `$PPID` of the command is then its real parent (in bwrap's PID namespace it is not).
useRig((r) => (rig = r), { sandbox: 'off' });

const answer = { content: wholeFile('src/slugify.js', GOOD, 'edit slugify') };

/**
 * Runs `fn` counting the processes this thread starts itself: every asynchronous start
 * (spawn, exec, execFile, fork) goes through ChildProcess#spawn, the synchronous ones through the
 * module's spawnSync/execSync/execFileSync (what src calls at call time); and those asked of the
 * spawn helper.
 */
async function countingStarts<T>(fn: () => Promise<T>): Promise<{ value: T; here: string[]; viaHelper: number }> {
  const here: string[] = [];
  type Fn = (...args: unknown[]) => unknown;
  const proto = ChildProcess.prototype as unknown as { spawn: Fn };
  const module = childProcess as unknown as Record<'spawnSync' | 'execSync' | 'execFileSync', Fn>;
  const originals = { spawn: proto.spawn, spawnSync: module.spawnSync, execSync: module.execSync, execFileSync: module.execFileSync };
  proto.spawn = function counted(this: unknown, ...args: unknown[]) {
    here.push(`spawn ${(args[0] as { file?: string } | undefined)?.file}`);
    return originals.spawn.apply(this, args);
  };
  for (const name of ['spawnSync', 'execSync', 'execFileSync'] as const) {
    module[name] = (...args: unknown[]) => {
      here.push(`${name} ${String(args[0])}`);
      return originals[name](...args);
    };
  }
  const before = helperProcessCount();
  try {
    const value = await fn();
    return { value, here, viaHelper: helperProcessCount() - before };
  } finally {
    proto.spawn = originals.spawn;
    for (const name of ['spawnSync', 'execSync', 'execFileSync'] as const) module[name] = originals[name];
  }
}

test("a task's test command and its git processes are children of the spawn helper, not of the worker", async () => {
  const repo = await rig.newRepo();
  writeFileSync(gitParents, ''); // the repository's own set-up ran git from this process
  const commandParents = path.join(bin, 'command-parents');
  rig.model.script('m-parents', [answer]);
  const { value: result, here, viaHelper } = await countingStarts(() =>
    rig.run(rig.task(repo, [rig.provider('m-parents')], { testCommand: ['sh', '-c', `echo "$PPID" >> '${commandParents}'; node --test test/`] })),
  );
  expect(result.status).toBe('succeeded');
  // Not one process started by the worker's main thread; all of them through the helper.
  expect(here).toEqual([]);
  expect(viaHelper).toBeGreaterThan(5);

  const helper = spawnHelperPid();
  expect(helper).toBeDefined();
  expect(helper).not.toBe(process.pid);
  const gits = readFileSync(gitParents, 'utf8').split('\n').filter(Boolean).map(Number);
  const commands = readFileSync(commandParents, 'utf8').split('\n').filter(Boolean).map(Number);
  process.stderr.write(`[spawnHelper] one task: ${gits.length} git processes, ${commands.length} test command run(s), all children of the helper (pid ${helper})\n`);
  // The clone, the branch, the map's index, the staging, the commit: all of them through the helper.
  expect(gits.length).toBeGreaterThan(5);
  expect(new Set(gits)).toEqual(new Set([helper]));
  expect(commands).toEqual([helper]);
});

test("the spawn helper killed mid-command: the command's whole group dies, the worker starts a new helper and the retried check passes", async () => {
  const repo = await rig.newRepo();
  const flag = path.join(bin, 'second-run');
  // The first run leaves a background sleep in its group and waits on another: only a kill ends them.
  const marker = `${700 + Math.floor(Math.random() * 99)}.${Date.now() % 1_000_000}`;
  const testCommand = ['sh', '-c', `[ -e '${flag}' ] || { touch '${flag}'; sleep ${marker}1 & sleep ${marker}2; }; node --test test/`];
  rig.model.script('m-helper-dies', [answer]);
  const handle = await rig.start(rig.task(repo, [rig.provider('m-helper-dies')], { testCommand }));

  // The `sleep`s themselves (the shell's argv names them too).
  const sleeps = () => processesWith(`sleep ${marker}`).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\0'));
  await waitUntil('the test command to run', () => sleeps().length === 2, 60_000);
  const first = spawnHelperPid()!;
  process.kill(first, 'SIGKILL');
  // The group went with it: the background sleep as well as the one the shell waited on.
  await waitUntil('the command group to be gone', () => processesWith(`sleep ${marker}`).length === 0, 30_000, 50);

  const result = await handle.result();
  expect(result.status).toBe('succeeded');
  expect(existsSync(flag)).toBe(true);
  // A new helper ran the retried check, and the worker said what happened.
  const second = spawnHelperPid();
  expect(second).toBeDefined();
  expect(second).not.toBe(first);
  expect(said.join('\n')).toMatch(new RegExp(`spawn helper \\(pid ${first}\\) died \\(SIGKILL\\); \\d+ process\\(es\\) it ran were killed`));
  expect(said.join('\n')).toMatch(/spawn helper restarted \(pid \d+; restart 1\)/);
  expect(processesWith(`sleep ${marker}`)).toEqual([]);
});

test("a sandboxed task: the worker's main thread starts no process either (git, hand-over, disk watch, bwrap all through the helper)", async () => {
  const boxed = await startRig({ sandbox: 'required' });
  try {
    const repo = await boxed.newRepo();
    boxed.model.script('m-boxed', [answer]);
    const { value: result, here, viaHelper } = await countingStarts(() => boxed.run(boxed.task(repo, [boxed.provider('m-boxed')])));
    expect(result.status).toBe('succeeded');
    expect(boxed.sandbox.kind).toBe('bubblewrap');
    process.stderr.write(`[spawnHelper] one sandboxed task: ${viaHelper} processes through the helper, ${here.length} from the worker's main thread\n`);
    expect(here).toEqual([]);
    // The clone, the staging, the test command in bwrap, the commit at least.
    expect(viaHelper).toBeGreaterThanOrEqual(4);
  } finally {
    await boxed.close();
  }
});
