// Benchmark: what one process costs the spawn helper (its own CPU) and the worker's main thread,
// started the way git is (execFileVia: buffered in the helper), 4 at a time. No Temporal, no
// model: only the helper.
//
//   npx tsx scripts/bench-helper.ts        (BENCH_N processes per command, default 400)
//
// Prints, per command: the helper's own CPU per process (utime+stime from /proc, 10 ms ticks, so
// use a few hundred), this process's CPU per process (mostly its main thread), and wall time.
import { readFileSync } from 'node:fs';
import { execFileVia, spawnHelperPid, startSpawnHelper } from '../src/activities/spawner';
import { ticksPerSecond } from '../src/activities/processUsage';

const N = Math.max(4, Number(process.env.BENCH_N || 400));

function ownMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond();
}
const selfMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main(): Promise<void> {
  startSpawnHelper();
  const pid = spawnHelperPid()!;
  // An environment the size of gitEnv()'s.
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_COUNT: '0' };
  for (let i = 0; i < 50; i++) await execFileVia('git', ['--version'], { env }); // warm-up
  for (const [file, args] of [['true', []], ['git', ['rev-parse', 'HEAD']], ['git', ['log', '-3']]] as [string, string[]][]) {
    const [h0, s0, t0] = [ownMs(pid), selfMs(), Date.now()];
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < N / 4; i++) await execFileVia(file, args, { env, cwd: process.cwd() });
    }));
    const [h1, s1, t1] = [ownMs(pid), selfMs(), Date.now()];
    console.log(`${[file, ...args].join(' ').padEnd(18)} helper ${((h1 - h0) / N).toFixed(2)} ms, worker ${((s1 - s0) / N).toFixed(2)} ms, wall ${((t1 - t0) / N).toFixed(2)} ms per process`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
