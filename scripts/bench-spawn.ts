// Benchmark: what starting child processes costs the worker's main thread (issue 18 item 2).
//
//   npx tsx scripts/bench-spawn.ts        (BENCH_TASKS tasks, default 12, BENCH_CONCURRENCY at once, default 4)
//
// Self-contained (scripts/benchRig.ts): its own Temporal dev server, the scripted model server
// (BENCH_MODEL_DELAY_MS, default 200) and an in-process worker, on the example repository (one
// attempt, push on). A `git` first on PATH records every git process and its parent. Prints, over
// the batch (after one warm-up task):
//   - git processes per task, by subcommand, and how many the worker forked itself;
//   - the time the worker's main thread spent inside ChildProcess#spawn (timed around it), and
//     the number of such calls;
//   - the worker's event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution): max, p99.
// Asserts nothing. Runs against any revision that has createWorkers (to compare before/after).
import { ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startCodingTask } from '../src/client';
import { createExampleRepo, exampleTask } from './demo/example';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { editFormat } from '../src/domain/editformats';
import { startBenchRig } from './benchRig';

const TASKS = Math.max(1, Number(process.env.BENCH_TASKS || 12));
const CONCURRENCY = Math.max(1, Number(process.env.BENCH_CONCURRENCY || 4));
const MODEL_DELAY_MS = Number(process.env.BENCH_MODEL_DELAY_MS || 200);
const GOOD = `function slugify(text) {\n  return String(text)\n    .normalize('NFKD')\n    .replace(/[\\u0300-\\u036f]/g, '')\n    .toLowerCase()\n    .replace(/[^a-z0-9]+/g, '-')\n    .replace(/^-+|-+$/g, '');\n}\n\nmodule.exports = { slugify };\n`;

// Time spent by this thread inside ChildProcess#spawn (the fork of this process happens there).
const spawnMs: number[] = [];
// Not in the typings: the method of ChildProcess that child_process.spawn calls.
type Spawnable = { spawn(...args: unknown[]): unknown };
const proto = ChildProcess.prototype as unknown as Spawnable;
const originalSpawn = proto.spawn;
proto.spawn = function timedSpawn(this: Spawnable, ...args: unknown[]) {
  const t = performance.now();
  try {
    return originalSpawn.apply(this, args);
  } finally {
    spawnMs.push(performance.now() - t);
  }
};

async function main(): Promise<void> {
  const tmp = sandboxableTempDir('weaver-bench-spawn-');
  const bin = path.join(tmp, 'bin');
  const gitLog = path.join(tmp, 'git.log');
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  mkdirSync(bin, { recursive: true });
  // Its parent and its subcommand (past `-c x`/`-C x`), with shell builtins only.
  const wrapper = `#!/bin/sh
sub=; skip=
for a in "$@"; do if [ -n "$skip" ]; then skip=; continue; fi; case "$a" in -c|-C) skip=1;; -*) ;; *) sub=$a; break;; esac; done
echo "$PPID $sub" >> '${gitLog}'
exec '${realGit}' "$@"
`;
  writeFileSync(path.join(bin, 'git'), wrapper);
  chmodSync(path.join(bin, 'git'), 0o755);
  process.env.PATH = `${bin}:${process.env.PATH}`;

  const rig = await startBenchRig(tmp, ['bench-good'], 'weaver-bench-spawn');
  try {
    const { client, taskQueue } = rig;
    rig.model.setDefault('bench-good', () => ({ content: editFormat('editblock').render({ summary: 'bench: implement slugify', files: [{ path: 'src/slugify.js', action: 'write', content: GOOD }] }), delayMs: MODEL_DELAY_MS }));

    let seq = 0;
    const one = async () => {
      const repo = await createExampleRepo(path.join(tmp, 'repos', `r${++seq}`));
      const handle = await startCodingTask({ ...exampleTask(repo, { id: 'bench-good', model: 'bench-good' }), push: true }, { client, taskQueue, workflowId: `bench-spawn-${process.pid}-${seq}` });
      const result = await handle.result();
      if (result.status !== 'succeeded') throw new Error(`${handle.workflowId}: ${result.status}: ${result.reason}`);
    };
    await one(); // warm-up: not counted

    // The repositories are made up front (their git is the bench's, not the worker's).
    const repos = await Promise.all(Array.from({ length: TASKS }, (_, i) => createExampleRepo(path.join(tmp, 'batch', `r${i}`))));
    writeFileSync(gitLog, '');
    spawnMs.length = 0;
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < repos.length) {
          const i = next++;
          const handle = await startCodingTask({ ...exampleTask(repos[i], { id: 'bench-good', model: 'bench-good' }), push: true }, { client, taskQueue, workflowId: `bench-spawn-${process.pid}-b${i}` });
          const result = await handle.result();
          if (result.status !== 'succeeded') throw new Error(`${handle.workflowId}: ${result.status}: ${result.reason}`);
        }
      }),
    );
    delay.disable();
    const wallMs = Date.now() - started;

    const calls = readFileSync(gitLog, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
    const bySub = new Map<string, number>();
    for (const [, sub = '?'] of calls) bySub.set(sub, (bySub.get(sub) ?? 0) + 1);
    const forkedByWorker = calls.filter((c) => Number(c[0]) === process.pid).length;
    const ms = (ns: number) => (ns / 1e6).toFixed(1);
    const total = spawnMs.reduce((a, b) => a + b, 0);
    console.log(
      `bench-spawn — node ${process.version}, ${os.cpus().length} CPU, ${TASKS} tasks at concurrency ${CONCURRENCY}, model ${MODEL_DELAY_MS} ms; ${wallMs} ms (${((TASKS * 60_000) / wallMs).toFixed(1)} tasks/min)\n` +
        `  git processes per task: ${(calls.length / TASKS).toFixed(1)} (${forkedByWorker} of ${calls.length} forked by the worker itself)\n` +
        `    by subcommand per task: ${[...bySub.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} ${(n / TASKS).toFixed(1)}`).join(', ')}\n` +
        `  worker main thread in ChildProcess#spawn: ${spawnMs.length} calls, ${(total / TASKS).toFixed(1)} ms per task, longest ${Math.max(0, ...spawnMs).toFixed(1)} ms\n` +
        `  worker event-loop delay: max ${ms(delay.max)} ms, p99 ${ms(delay.percentile(99))} ms, mean ${ms(delay.mean)} ms`,
    );
  } finally {
    await rig.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
