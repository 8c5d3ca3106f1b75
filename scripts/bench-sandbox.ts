// What the sandbox costs per command: the same command run bare and in bubblewrap (with the
// root worker's hand-over of the workspace), N times each. Prints medians and the ratio.
//   npx tsx scripts/bench-sandbox.ts [runs=20] [files=2000]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand } from '../src/activities/commands';
import { detectSandbox, sandboxed } from '../src/activities/sandbox';
import { SandboxPolicySchema } from '../src/domain/schema';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const runs = Number(process.argv[2] ?? 20);
  const files = Number(process.argv[3] ?? 2000);
  const root = await mkdtemp(path.join(tmpdir(), 'weaver-bench-sandbox-'));
  const dir = path.join(root, 'ws', 'repo');
  await mkdir(path.join(dir, '.git'), { recursive: true });
  for (let i = 0; i < files; i++) {
    await mkdir(path.join(dir, `d${i % 50}`), { recursive: true });
    await writeFile(path.join(dir, `d${i % 50}`, `f${i}.txt`), 'x\n');
  }
  const setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')] });
  const policy = SandboxPolicySchema.parse({});
  const time = async (boxed: boolean, command: string) => {
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const box = await sandboxed({ setting: boxed ? setting : { ...setting, kind: 'none' }, policy, phase: 'test', dir, command, env: process.env, scratchHome: path.join(root, 'home') });
      await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log') });
      await box.finish({ exitCode: 0, signal: null, timedOut: false, cancelled: false, durationMs: 0, tail: '', outputBytes: 0 });
      out.push(performance.now() - t);
    }
    return median(out);
  };
  console.log(`sandbox: ${setting.version}, limits by ${setting.cgroup ? `cgroup v${setting.cgroup.version} + rlimit` : 'rlimit'}${setting.runAs !== undefined ? `, root worker → uid ${setting.runAs} (workspace of ${files} files handed over each run)` : ''}`);
  console.log('| command | bare (median ms) | sandboxed (median ms) | overhead |');
  console.log('|---|---|---|---|');
  for (const command of ['true', 'node -e 0']) {
    const bare = await time(false, command);
    const boxed = await time(true, command);
    console.log(`| \`${command}\` | ${bare.toFixed(1)} | ${boxed.toFixed(1)} | +${(boxed - bare).toFixed(1)} ms (×${(boxed / bare).toFixed(2)}) |`);
  }
  await rm(root, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
