// Benchmark of a workspace rollback with a large setup output (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-rollback.ts [--files N] [--rounds R] [--kb K] [--legacy] [--sandbox-uid]
//
// Clones a small repository through prepareWorkspace, then plays a setup that leaves N (default
// 5,000) files of K KiB (default 8): half in an ignored `venv/`, half in an untracked, not
// ignored `gen/`. Each round
// is an attempt (a changed tracked file, a new file, one setup file rewritten, an ignored file
// and a `.gitignore` planted by "the tests") followed by rollbackWorkspace. Figures: the time
// to record the state after setup (once per workspace), the median and worst rollback, and
// whether the setup output was all there, as setup left it, after each rollback. --legacy: no
// state recorded, so the rollback is the old one (reset --hard, clean -f -d), for comparison.
// --sandbox-uid (as root): each "command" is preceded by the hand-over of the workspace to a
// sandbox uid that a root worker does (src/activities/sandbox/uids.ts), as it would be.
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { makeRepo } from '../test/support/repos';
import { handOver } from '../src/activities/sandbox/uids';
import * as ws from '../src/activities/workspace';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

async function main(): Promise<void> {
  const files = arg('--files', 5000);
  const rounds = arg('--rounds', 10);
  const filler = '#'.repeat(arg('--kb', 8) * 1024);
  const base = sandboxableTempDir('weaver-bench-rollback-');
  try {
    const repo = await makeRepo(path.join(base, 'origin'), { '.gitignore': 'venv/\n', 'src/a.py': 'A = 1\n', 'README.md': '# bench\n' });
    const deps = { artifactDir: path.join(base, 'artifacts'), workspaceRoot: path.join(base, 'ws'), workspaceQueue: 'q', env: process.env, repoRoots: [base] };
    const handle = await ws.prepareWorkspace(deps, { workflowId: 'bench', repo, baseBranch: 'main', branch: 'weaver/bench' });
    // A second apart, as commands are: a hand-over then changes every file's ctime (seconds).
    const handOverAs = process.argv.includes('--sandbox-uid')
      ? async () => {
          await new Promise((r) => setTimeout(r, 1100));
          await handOver(handle.dir, 200_123);
        }
      : async () => undefined;
    // The setup command's output (made by the sandbox's uid).
    for (let i = 0; i < files; i++) {
      const dir = path.join(handle.dir, i % 2 ? 'venv' : 'gen', `pkg${i % 50}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `m${i}.py`), `# setup output ${i}\nVALUE = ${i}\n${filler}\n`);
    }
    const record = process.argv.includes('--legacy') ? undefined : ws.recordSetupState;
    await handOverAs();
    let recordMs = 0;
    if (record) {
      const t0 = performance.now();
      await record(handle);
      recordMs = performance.now() - t0;
    }
    const times: number[] = [];
    let intact = true;
    for (let r = 0; r < rounds; r++) {
      // An attempt and its tests.
      await handOverAs();
      writeFileSync(path.join(handle.dir, 'src/a.py'), `A = ${r + 2}\n`);
      writeFileSync(path.join(handle.dir, 'src/new.py'), 'NEW = 1\n');
      // (the old rollback deleted gen/ altogether)
      mkdirSync(path.join(handle.dir, 'gen/pkg0'), { recursive: true });
      writeFileSync(path.join(handle.dir, 'gen/pkg0/m0.py'), 'clobbered by a test\n');
      mkdirSync(path.join(handle.dir, 'venv/pkg1/__pycache__'), { recursive: true });
      writeFileSync(path.join(handle.dir, 'venv/pkg1/__pycache__/m1.pyc'), 'bytecode');
      writeFileSync(path.join(handle.dir, 'src/.gitignore'), '*\n');
      const t0 = performance.now();
      await ws.rollbackWorkspace(handle);
      times.push(performance.now() - t0);
      intact &&=
        existsSync(path.join(handle.dir, 'gen/pkg0/m0.py')) &&
        readFileSync(path.join(handle.dir, 'gen/pkg0/m0.py'), 'utf8') === `# setup output 0\nVALUE = 0\n${filler}\n` &&
        existsSync(path.join(handle.dir, `venv/pkg${(files - 1) % 50}/m${files - 1}.py`)) &&
        !existsSync(path.join(handle.dir, 'src/.gitignore')) &&
        !existsSync(path.join(handle.dir, 'venv/pkg1/__pycache__'));
    }
    times.sort((a, b) => a - b);
    const ms = (n: number) => `${n.toFixed(0)} ms`;
    console.log(`setup output: ${files} files of ${filler.length >> 10} KiB (${files / 2} in ignored venv/, ${files / 2} in untracked gen/)${process.argv.includes('--sandbox-uid') ? ', handed to a sandbox uid before each command' : ''}`);
    console.log(`state after setup recorded in: ${record ? ms(recordMs) : '(none recorded: --legacy)'}`);
    console.log(`rollback over ${rounds} rounds: median ${ms(times[Math.floor(times.length / 2)])}, worst ${ms(times[times.length - 1])}`);
    console.log(`setup output as setup left it and test debris gone after every rollback: ${intact ? 'yes' : 'NO'}`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

void main();
