// The benchmarks count each side's CPU by cgroup (scripts/bench/cgroupCpu.ts) because /proc
// process trees miss what Weaver's sandbox runs: bwrap's init, pid 1 of the command's PID
// namespace, is never waited for by the bwrap that started it and is reaped outside the worker's
// tree, so the sandboxed command's CPU reaches no ancestor's cutime. This runs a command that
// burns CPU in Weaver's real sandbox and checks that the cgroup counts it where the tree does not
// (which is why the bench was changed).
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cpuGroups } from '../scripts/bench/cgroupCpu';
import { treeCpuMs } from '../scripts/bench/procStat';
import { runCommand } from '../src/activities/commands';
import { detectSandbox, sandboxed } from '../src/activities/sandbox';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { SandboxPolicySchema } from '../src/domain/schema';

jest.setTimeout(60_000);

const BURN_MS = 400;

test("a sandboxed command's CPU: counted by the bench's cgroup, missed by the /proc tree", async () => {
  const g = cpuGroups(['side']);
  if (typeof g === 'string') {
    // Not root (nor a delegated cgroup v2 subtree): no cgroup, the reason given, as the bench prints it.
    if (process.getuid?.() === 0) throw new Error(`root, yet no cgroup accounting: ${g}`);
    expect(g).toMatch(/cgroup/);
    return;
  }
  const root = sandboxableTempDir('weaver-bench-cg-');
  try {
    g.groups.side.adopt(process.pid);
    const dir = path.join(root, 'ws', 'repo');
    mkdirSync(path.join(dir, '.git'), { recursive: true });
    const setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')] });
    const policy = SandboxPolicySchema.parse({});
    // CPU time, not the clock: on a loaded machine a clock-timed burn gets less than it asks for.
    const command = `node -e "while (process.cpuUsage().user < ${BURN_MS * 1000}) {}"`;
    const [group0, tree0] = [g.groups.side.ms(), treeCpuMs(process.pid)];
    const box = await sandboxed({ setting, policy, phase: 'test', dir, command, env: process.env, scratchHome: path.join(root, 'home') });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log'), sampleUsageMs: box.sampleUsageMs });
    await box.finish(r);
    expect(r.exitCode).toBe(0);
    const [group, tree] = [g.groups.side.ms() - group0, treeCpuMs(process.pid) - tree0];
    // The burn (and node's start) is in the group's figure…
    expect(group).toBeGreaterThanOrEqual(BURN_MS * 0.8);
    // …and not in the tree's: all it holds is this process's own work and bwrap's outer process.
    expect(group - tree).toBeGreaterThanOrEqual(BURN_MS * 0.8);
  } finally {
    g.remove();
    rmSync(root, { recursive: true, force: true });
  }
});
