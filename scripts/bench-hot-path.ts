// Benchmark (not a test) of the per-attempt hot path (issue 18 items 3 and 4):
//  1. a sandboxed command's overhead over the bare command, median ms: a workspace's first
//     command (whole-tree hand-over, new cgroup, `du` at the start — what every command paid
//     before) vs its next ones (after the worker wrote a file, as applyChange does: that file
//     handed over, the cgroup reused, the disk baseline from the last end measurement);
//  2. the tokenizer's ms per task building the prompt (buildPrompt) of one task on this
//     repository: the first task (every count new) and the next ones (counts remembered);
//  3. applyChange's write + stage + diff, median ms: the diff by `git diff --cached` vs in-process.
//
//   npx tsx scripts/bench-hot-path.ts [runs=15] [files=2000] [parts=sandbox,tokens,apply]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { applyChangeSet } from '../src/activities/apply';
import { LocalArtifactStore } from '../src/activities/artifacts';
import type { WrittenFile } from '../src/activities/changeDiff';
import { runCommand } from '../src/activities/commands';
import { buildPrompt } from '../src/activities/prompt';
import { detectSandbox, forgetWorkspace, releaseSandbox, sandboxed, startCounts, trackWrites, type SandboxSetting } from '../src/activities/sandbox';
import { recordSetupState } from '../src/activities/setupState';
import { stageChange } from '../src/activities/testedTree';
import { tokenCache } from '../src/activities/tokens';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { SandboxPolicySchema, type ChangeSet } from '../src/domain/schema';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** CPU ms of this process and its reaped children (du, find, chown, bwrap, the command): less at the mercy of the load than wall time. */
function cpuMs(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  // utime, stime, cutime, cstime: fields 14-17 (1-based, from pid), in clock ticks (100 per s).
  return [11, 12, 13, 14].reduce((n, i) => n + Number(f[i]), 0) * 10;
}
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function main() {
  const runs = Number(process.argv[2] ?? 15);
  const files = Number(process.argv[3] ?? 2000);
  const root = sandboxableTempDir('weaver-bench-hot-');
  try {
    const parts = (process.argv[4] ?? 'sandbox,tokens,apply').split(',');
    if (parts.includes('sandbox')) await sandboxOverhead(root, runs, files);
    if (parts.includes('tokens')) await tokenizer(root);
    if (parts.includes('apply')) await applying(root, runs);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function sandboxOverhead(root: string, runs: number, files: number) {
  const dir = path.join(root, 'ws', 'b', 'repo');
  for (let i = 0; i < files; i++) {
    await mkdir(path.join(dir, `d${i % 50}`), { recursive: true });
    await writeFile(path.join(dir, `d${i % 50}`, `f${i}.txt`), 'x\n');
  }
  git(dir, 'init', '-q');
  const setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')], workspaceRoot: path.join(root, 'ws'), env: { ...process.env, WEAVER_SANDBOX_NETWORK: 'none' } });
  const policy = SandboxPolicySchema.parse({});
  const once = async (s: SandboxSetting, command: string) => {
    // What applyChange does between two commands: the worker writes a file.
    await trackWrites(dir, ['src/changed.js'], async () => {
      await mkdir(path.join(dir, 'src'), { recursive: true });
      await writeFile(path.join(dir, 'src', 'changed.js'), `module.exports = ${Math.random()};\n`);
    });
    const [t, cpu] = [performance.now(), cpuMs()];
    const box = await sandboxed({ setting: s, policy, phase: 'test', dir, command, env: process.env, scratchHome: path.join(root, 'home') });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log') });
    await box.finish(r);
    if (r.exitCode !== 0) throw new Error(`bench command failed: ${r.tail}`);
    return { ms: performance.now() - t, cpu: cpuMs() - cpu };
  };
  const bare = { ...setting, kind: 'none' as const };
  console.log(`sandbox ${setting.version}, ${setting.cgroup ? `cgroup v${setting.cgroup.version}` : 'no cgroup'}${setting.uids ? ', a uid per workspace (root worker)' : ''}; workspace of ${files} files; ${runs} runs per case, alternated`);
  console.log('| command | bare: wall / CPU ms | first command of a workspace (as every command before) | next commands | overhead first → next (wall; CPU) |');
  console.log('|---|---|---|---|---|');
  for (const command of ['true', 'node -e 0']) {
    const t = { bare: [] as { ms: number; cpu: number }[], first: [] as { ms: number; cpu: number }[], next: [] as { ms: number; cpu: number }[] };
    const before = { ...startCounts };
    for (let i = 0; i < runs; i++) {
      t.bare.push(await once(bare, command));
      // The workspace forgotten and its cgroup removed: the next command starts as a first one.
      await releaseSandbox(setting, dir);
      t.first.push(await once(setting, command));
      t.next.push(await once(setting, command));
    }
    const wall = (xs: { ms: number }[]) => median(xs.map((x) => x.ms));
    const cpu = (xs: { cpu: number }[]) => xs.reduce((n, x) => n + x.cpu, 0) / xs.length;
    const [b, f, n] = [wall(t.bare), wall(t.first), wall(t.next)];
    const [bc, fc, nc] = [cpu(t.bare), cpu(t.first), cpu(t.next)];
    const cell = (ms: number, c: number) => `${ms.toFixed(1)} / ${c.toFixed(0)}`;
    console.log(`| \`${command}\` | ${cell(b, bc)} | ${cell(f, fc)} | ${cell(n, nc)} | +${(f - b).toFixed(1)} → +${(n - b).toFixed(1)} ms; +${(fc - bc).toFixed(0)} → +${(nc - bc).toFixed(0)} ms CPU |`);
    console.log(`|  | | whole-tree hand-overs ${startCounts.wholeTree - before.wholeTree} | disk baselines reused ${startCounts.diskFromBaseline - before.diskFromBaseline}, paths handed over ${startCounts.paths - before.paths} | |`);
  }
  await releaseSandbox(setting, dir);
  forgetWorkspace(dir);
}

async function tokenizer(root: string) {
  const dir = path.join(root, 'prompt', 'repo');
  execFileSync('git', ['clone', '-q', path.resolve(__dirname, '..'), dir]);
  const head = git(dir, 'rev-parse', 'HEAD').trim();
  const store = new LocalArtifactStore(path.join(root, 'artifacts'));
  console.log('\ntokenizer per task (buildPrompt of one task on this repository, 16k budget):');
  console.log('| task | tokenizer ms | counts remembered / made | buildPrompt ms |');
  console.log('|---|---|---|---|');
  for (let task = 1; task <= 4; task++) {
    const before = { ...tokenCache };
    const t = performance.now();
    await buildPrompt(
      store,
      {
        workspace: { id: `t${task}`, dir, taskQueue: 'q', branch: 'main', baseCommit: head },
        task: { title: 'Implement costOf', description: `costOf in src/domain/pricing.ts: handle cached input tokens (task ${task}).` },
        attempt: 1,
        tokenBudget: 16_000,
        allowSubtasks: false,
      },
      { cacheDir: path.join(root, 'cache') },
    );
    const ms = performance.now() - t;
    console.log(`| ${task === 1 ? '1st (nothing counted yet)' : `${task}th`} | ${(tokenCache.ms - before.ms).toFixed(1)} | ${tokenCache.hits - before.hits} / ${tokenCache.misses - before.misses} | ${ms.toFixed(0)} |`);
  }
}

async function applying(root: string, runs: number) {
  const id = 'apply';
  const dir = path.join(root, id, 'repo');
  execFileSync('git', ['clone', '-q', path.resolve(__dirname, '..'), dir]);
  const ws = { dir, id };
  await recordSetupState(ws);
  const rel = 'src/domain/pricing.ts';
  const original = await readFile(path.join(dir, rel), 'utf8');
  const change = (n: number): ChangeSet => ({
    summary: 'bench',
    files: [
      { path: rel, action: 'write', content: original.replace('export function costOf', `// attempt ${n}\nexport function costOf`) },
      { path: `src/added${n % 2}.ts`, action: 'write', content: `export const n = ${n};\n` },
    ],
  });
  const once = async (n: number, inProcess: boolean) => {
    git(dir, 'checkout', '-q', '--', '.');
    git(dir, 'clean', '-qfd', 'src');
    const [t, cpu] = [performance.now(), cpuMs()];
    const written: WrittenFile[] = [];
    const r = await applyChangeSet(dir, change(n), {}, inProcess ? written : undefined);
    await stageChange(ws, r.files, inProcess ? written : undefined);
    return { ms: performance.now() - t, cpu: cpuMs() - cpu };
  };
  const t = { git: [] as { ms: number; cpu: number }[], mine: [] as { ms: number; cpu: number }[] };
  for (let i = 0; i < runs; i++) {
    t.git.push(await once(i, false));
    t.mine.push(await once(i, true));
  }
  const show = (xs: { ms: number; cpu: number }[]) => `${median(xs.map((x) => x.ms)).toFixed(1)} ms wall, ${(xs.reduce((n, x) => n + x.cpu, 0) / xs.length).toFixed(1)} ms CPU (worker + git)`;
  console.log('\napplyChange (write 2 files, stage them onto HEAD, record the tree, diff against the setup state): median wall, mean CPU:');
  console.log(`| diff by \`git diff --cached\` | ${show(t.git)} |\n| diff in-process | ${show(t.mine)} |`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
