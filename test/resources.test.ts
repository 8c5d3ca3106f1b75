// Resource accounting (issue 14, item 7): every command's outcome says what its whole process
// tree used — wall time, CPU time, peak memory — measured by the cgroup where the sandbox has
// one, else by sampling /proc; a command stopped by a memory or CPU limit says which. Real
// worker, real dev server, real bubblewrap, the scripted model over HTTP. Figures are compared
// with each other (a burner against a trivial command), never against the clock: the machine is
// shared and loaded.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatResult } from '../src/cli';
import type { CodingTaskInput, CodingTaskResult } from '../src/domain/schema';
import { workerSandbox } from '../src/worker';
import { wholeFile } from './support/answers';
import { startRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;

// Each runs as the test command (`sh -c …`): the work is done by a child of the shell, so only
// a measure of the whole tree sees it. Fixed work, not a fixed time: CPU time does not depend on load.
const COMMANDS = {
  trivial: 'true',
  // About a second of CPU on this machine; `; true` keeps sh from exec'ing node.
  cpu: `node -e "let x = 0; for (let i = 0; i < 2e8; i++) x += i; if (!x) process.exit(1)"; true`,
  // 100 MiB written (so resident), held long enough for a few /proc samples.
  memory: `node -e "const b = Buffer.alloc(100 << 20, 1); setTimeout(() => b[0], 800)"; true`,
  // At most 512 MiB whatever happens (never unbounded, even if no limit held it).
  overMemory: `node -e "const a = []; for (let i = 0; i < 32; i++) a.push(Buffer.alloc(1 << 24, 1)); console.log('ALLOCATED', a.length)"`,
  // About 6 s of CPU; the limit is 1 s.
  overCpu: `node -e "let x = 0; for (let i = 0; i < 1.2e9; i++) x += i; console.log('DONE', x > 0)"`,
};

let seq = 0;
async function run(rig: Rig, command: string, extra: Partial<CodingTaskInput> = {}): Promise<{ r: CodingTaskResult; model: string }> {
  const repo = await rig.newRepo();
  const model = `m-res-${++seq}`;
  rig.model.setDefault(model, () => ({ content: wholeFile('src/slugify.js', GOOD, 'fix slugify') }));
  const r = await rig.run(rig.task(repo, [rig.provider(model)], { testCommand: ['sh', '-c', command], limits: { maxAttempts: 1, testTimeoutSec: 120 }, ...extra }));
  return { r, model };
}

async function artifact(rig: Rig, ref: string | undefined): Promise<string> {
  if (!ref) return '';
  const hex = ref.slice('sha256:'.length);
  return readFile(path.join(rig.artifactDir, 'sha256', hex.slice(0, 2), hex), 'utf8');
}

/** The same checks on whichever path measures: `measuredBy` is what the sandbox setting implies. */
function accounting(name: string, setup: () => Promise<Rig>, measuredBy: RegExp, skip = false) {
  (skip ? describe.skip : describe)(name, () => {
    let rig: Rig;
    beforeAll(async () => {
      rig = await setup();
    });
    afterAll(() => rig?.close());

    test('CPU time and peak memory of the whole tree are in the attempt record, the CLI and the report', async () => {
      const [trivial, cpu, memory] = await Promise.all([COMMANDS.trivial, COMMANDS.cpu, COMMANDS.memory].map((c) => run(rig, c)));
      const used = (x: { r: CodingTaskResult }) => x.r.attempts[0].tests?.resources;
      for (const x of [trivial, cpu, memory]) {
        expect(x.r.attempts[0].tests?.exitCode).toBe(0);
        expect(used(x)).toEqual({ wallMs: expect.any(Number), cpuMs: expect.any(Number), peakMemoryMb: expect.any(Number), measuredBy: expect.stringMatching(measuredBy) });
      }
      // The burner's second of CPU in a child process counts; the trivial command has next to none.
      expect(used(cpu)!.cpuMs!).toBeGreaterThan(used(trivial)!.cpuMs! + 500);
      expect(used(cpu)!.cpuMs!).toBeGreaterThan(used(memory)!.cpuMs! + 300);
      // The child's 100 MiB count; neither other command comes near.
      expect(used(memory)!.peakMemoryMb!).toBeGreaterThanOrEqual(90);
      expect(used(trivial)!.peakMemoryMb!).toBeLessThan(50);
      expect(used(cpu)!.peakMemoryMb!).toBeLessThan(80);
      // A command cannot use more CPU than its wall time on the cores there are (a gross-error check on the units).
      expect(used(cpu)!.cpuMs!).toBeLessThanOrEqual(used(cpu)!.wallMs * os.availableParallelism() + 50);

      // People see it: the CLI's attempt lines and the stored report.
      expect(formatResult(memory.r)).toMatch(new RegExp(`tests used [\\d.]+ s wall, [\\d.]+ s CPU, ${used(memory)!.peakMemoryMb} MiB peak \\(${used(memory)!.measuredBy}\\)`));
      const report = await artifact(rig, memory.r.artifacts.find((a) => a.kind === 'report')?.ref);
      expect(report).toContain('| tests used |');
      expect(report).toContain(`${used(memory)!.peakMemoryMb} MiB peak`);
    }, 300_000);

    test('a test command that allocates past limits.memoryMb ends with a memory-limit outcome, said to the model and in the decision', async () => {
      const { r, model } = await run(rig, COMMANDS.overMemory, { sandbox: { limits: { memoryMb: 128 } } as CodingTaskInput['sandbox'], limits: { maxAttempts: 2, testTimeoutSec: 120 } });
      expect(r.status).toBe('failed');
      const [first, second] = r.attempts;
      expect(first.tests?.passed).toBe(false);
      expect(first.tests?.limit).toMatch(/memory limit 128 MiB/);
      expect(await artifact(rig, first.tests?.log?.ref)).not.toContain('ALLOCATED 32');
      // Its measure, too: whatever it got to before it was stopped, never far past the limit.
      expect(first.tests?.resources).toMatchObject({ measuredBy: expect.stringMatching(measuredBy) });
      expect(first.tests!.resources!.peakMemoryMb!).toBeLessThanOrEqual(140);
      expect(first.decision.why).toMatch(/^tests failed \(exit \d+\): .*memory limit 128 MiB.*retrying with feedback$/);
      // The second prompt tells the model which limit stopped its tests.
      const retryPrompt = JSON.stringify(rig.model.requestsFor(model)[1]?.messages ?? []);
      expect(retryPrompt).toContain('It hit a sandbox limit:');
      expect(retryPrompt).toMatch(/memory limit 128 MiB/);
      expect(second.decision.why).toMatch(/memory limit 128 MiB.*2 attempt\(s\) exhausted/);
      expect(formatResult(r)).toMatch(/stopped by a limit: .*memory limit 128 MiB/);
    }, 300_000);

    test('a test command that burns past limits.cpuSec is killed, naming the CPU limit; its CPU time says so', async () => {
      const { r } = await run(rig, COMMANDS.overCpu, { sandbox: { limits: { cpuSec: 1 } } as CodingTaskInput['sandbox'] });
      const tests = r.attempts[0].tests!;
      expect(tests.limit).toBe('killed: CPU time limit 1 s');
      expect(await artifact(rig, tests.log?.ref)).not.toContain('DONE');
      // Stopped near the limit, not after its ~6 s of work.
      expect(tests.resources!.cpuMs!).toBeGreaterThanOrEqual(500);
      expect(tests.resources!.cpuMs!).toBeLessThan(3000);
      expect(r.attempts[0].decision.why).toContain('CPU time limit 1 s');
    }, 300_000);
  });
}

// Where the worker can make cgroups (root with v1, or WEAVER_CGROUP_PARENT for v2): the worker's own setting.
const canCgroup = process.getuid?.() === 0 || !!process.env.WEAVER_CGROUP_PARENT;
accounting('measured by the cgroup', () => startRig({ sandbox: 'required' }), /^cgroup v[12]$/, !canCgroup);

// The same sandbox with its cgroup taken away: rlimits only, and the tree sampled from /proc.
accounting(
  'measured by sampling /proc (a sandbox without cgroups)',
  async () => {
    const setting = await workerSandbox({ workspaceRoot: os.tmpdir(), artifactDir: os.tmpdir() }, 'required');
    return startRig({ deps: { sandbox: { ...setting, cgroup: undefined } } });
  },
  /^\/proc sampling$/,
);

afterAll(async () => {
  const { closeTestConnections } = await import('./support/weaver');
  await closeTestConnections();
});
