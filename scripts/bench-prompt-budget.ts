// Benchmark (not a test): what a one-function task's prompt costs on this repository at the
// budget before prompt budgets (the window less the answer's room) and at the 16k default.
//
//   npx tsx scripts/bench-prompt-budget.ts [--model gpt-4o-mini]
//
// This repository's HEAD is cloned into a temp dir; `costOf` (src/domain/pricing.ts) has its
// body replaced by a stub and the task names it. Printed per budget: the prompt's tokens, the
// files shown and the cost of one call's input at the model's price and at a Sonnet-class $3/MTok.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { buildPrompt } from '../src/activities/prompt';
import { DEFAULT_PROMPT_BUDGET, promptBudget, resolveProvider } from '../src/domain/models';
import { costOf } from '../src/domain/pricing';

const model = process.argv[process.argv.indexOf('--model') + 1] ?? 'gpt-4o-mini';
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'weaver-bench-budget-'));
  try {
    const dir = path.join(base, 'repo');
    execFileSync('git', ['clone', '-q', path.resolve(__dirname, '..'), dir]);
    const rel = 'src/domain/pricing.ts';
    const text = readFileSync(path.join(dir, rel), 'utf8');
    const stubbed = text.replace(/(export function costOf\([^{]*\{\n)[\s\S]*?\n\}/, "$1  throw new Error('not implemented');\n}");
    writeFileSync(path.join(dir, rel), stubbed);
    git(dir, 'commit', '-q', '-am', 'stub costOf');
    const head = git(dir, 'rev-parse', 'HEAD').trim();
    const store = new LocalArtifactStore(path.join(base, 'artifacts'));
    const spec = resolveProvider({ id: 'p', model });
    const budgets = [
      ['window (before)', promptBudget([spec])],
      ['default (now)', promptBudget([spec], {})],
    ] as const;
    console.log(`model ${model}: window ${spec.contextWindow}, answer room ${spec.maxTokens}, default budget ${DEFAULT_PROMPT_BUDGET}`);
    for (const [label, tokenBudget] of budgets) {
      const built = await buildPrompt(
        store,
        {
          workspace: { id: 'b', dir, taskQueue: 'q', branch: 'main', baseCommit: head },
          task: { title: 'Implement costOf', description: 'costOf in src/domain/pricing.ts is a stub: implement it (USD of a call from its tokens and the price).' },
          attempt: 1,
          tokenBudget,
          allowSubtasks: false,
        },
        { cacheDir: path.join(base, 'cache') },
      );
      const usd = costOf({ model }, built.estTokens, 0);
      const sonnet = costOf({ model: 'x', pricing: { inputPerMTok: 3, outputPerMTok: 15 } }, built.estTokens, 0);
      console.log(`${label.padEnd(16)} budget ${String(tokenBudget).padStart(7)}  prompt ${String(built.estTokens).padStart(6)} tokens  files ${String(built.stats.filesShown).padStart(3)}  input $${usd.toFixed(4)} (${model}), $${sonnet.toFixed(4)} at $3/MTok`);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

void main();
