// `npm run demo`: a real codingTask end to end on a fresh example repository.
//   - starts the Temporal dev server (scripts/dev-server.sh) if none is listening,
//   - runs a worker in this process,
//   - uses OPENAI_API_KEY / OPENAI_BASE_URL if set, else the scripted offline demo model.
// `npm run demo -- --serve` prepares the same task as .weaver/demo/task.json and keeps the
// worker and the demo model running, for `temporal workflow start ... --input-file`.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';
import { weaverLogger } from '../src/logging';
import { simpleGit } from 'simple-git';
import { follow, formatResult } from '../src/cli';
import { startCodingTask, webUiLink } from '../src/client';
import { config } from '../src/config';
import { createExampleRepo, DEMO_MODEL, demoModelStep, exampleTask } from './demo/example';
import { ScriptedModelServer } from './demo/scriptedModelServer';
import type { ProviderSpec } from '../src/domain/schema';
import { createWorkers, ensureSearchAttributes } from '../src/worker';
import { loadProviderRegistry } from '../src/activities/providers';

const ROOT = path.resolve(__dirname, '..');
const DEMO_DIR = path.join(ROOT, '.weaver', 'demo');
const SERVE_MODEL_PORT = Number(process.env.WEAVER_DEMO_MODEL_PORT || 8787);

async function ensureServer(address: string): Promise<void> {
  try {
    const c = await Connection.connect({ address, connectTimeout: 2000 });
    await c.close();
  } catch {
    console.log(`No Temporal server at ${address}: starting the dev server (scripts/dev-server.sh)…`);
    execFileSync('bash', [path.join(ROOT, 'scripts/dev-server.sh')], { stdio: 'inherit' });
  }
}

async function main() {
  // Keep the demo's output to what it shows; the worker's own logs only when something is wrong.
  Runtime.install({ logger: weaverLogger((process.env.WEAVER_LOG_LEVEL as LogLevel) || 'WARN') });
  const serve = process.argv.includes('--serve');
  // A development machine: the worker clones the local example repository (WEAVER_REPO_ROOTS
  // is for real workers) and uses the sandbox when it is there. An explicit setting wins.
  process.env.WEAVER_DEV ??= '1';
  const c = config();
  await ensureServer(c.address);

  let model: ScriptedModelServer | undefined;
  let provider: ProviderSpec;
  // The worker's registry (WEAVER_PROVIDERS, else the built-in `openai`); the scripted model
  // joins it as `demo`: a task names providers from the registry, never an endpoint of its own.
  const providers = loadProviderRegistry(c.providersFile);
  if (process.env.OPENAI_API_KEY || process.env.OPENAI_BASE_URL) {
    // `openai`: the worker's built-in registry entry (its OPENAI_API_KEY, OPENAI_BASE_URL), or WEAVER_PROVIDERS's.
    provider = { id: 'openai', model: process.env.WEAVER_DEMO_MODEL || 'gpt-4o-mini', maxTokens: 4000 };
    console.log(`Model: ${provider.model} at ${process.env.OPENAI_BASE_URL || 'api.openai.com'} (a real LLM)`);
  } else {
    model = await ScriptedModelServer.start({ port: serve ? SERVE_MODEL_PORT : 0 });
    model.setDefault(DEMO_MODEL, demoModelStep);
    providers.providers.demo = { baseURL: model.url, models: [DEMO_MODEL], pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } };
    provider = { id: 'demo', model: DEMO_MODEL };
    console.log(
      `Model: SCRIPTED OFFLINE DEMO MODEL at ${model.url} — not an LLM. It answers wrong first and right once it sees the test failure.\n` +
        '       Set OPENAI_API_KEY (or OPENAI_BASE_URL for Ollama, vLLM, OpenRouter, Azure) to use a real model.',
    );
  }

  const repo = await createExampleRepo(path.join(DEMO_DIR, 'example-repo'));
  const task = exampleTask(repo, provider);
  const taskFile = path.join(DEMO_DIR, 'task.json');
  await writeFile(taskFile, JSON.stringify(task, null, 2));
  console.log(`Example repository: ${repo} (tests fail: slugify is not written)\nTask: ${taskFile}`);

  const connection = await NativeConnection.connect({ address: c.address });
  await ensureSearchAttributes(connection, c.namespace);
  const worker = await createWorkers({ connection, providers });
  const running = worker.run();
  console.log(`Worker polling "${c.taskQueue}" (workspace queue "${worker.workspaceQueue}")`);

  if (serve) {
    console.log(
      `\nReady. In another terminal:\n  ${execFileSync('bash', [path.join(ROOT, 'scripts/temporal-cli.sh')]).toString().trim()} workflow start --type codingTask --task-queue ${c.taskQueue} --workflow-id weaver-demo-$(date +%s) --input-file ${taskFile}\nCtrl-C to stop.`,
    );
    process.once('SIGINT', () => worker.shutdown());
    await running;
    await model?.close();
    return;
  }

  let exitCode = 1;
  try {
    const handle = await startCodingTask(task);
    console.log(`\nStarted ${handle.workflowId}\n  Web UI: ${webUiLink(handle.workflowId)}`);
    const result = await follow(handle, console.log);
    console.log(`\n${formatResult(result)}`);
    if (result.status === 'succeeded' && result.commit) {
      const inRepo = (await simpleGit(repo).revparse([result.branch])).trim();
      const log = await simpleGit(repo).raw(['log', '--oneline', '-1', result.branch]);
      console.log(`\nIn the example repo, ${result.branch} is at ${inRepo.slice(0, 12)}: ${log.trim()}`);
      exitCode = inRepo === result.commit ? 0 : 1;
    }
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await model?.close();
  }
  const took = demoStartedAt();
  console.log(`\nThe demo took ${((Date.now() - took.at) / 1000).toFixed(1)} s (${took.since}).`);
  process.exit(exitCode);
}

/**
 * When `npm run demo` started — the Temporal CLI and bubblewrap provisioning before this script
 * included — from the npm process's start time in /proc; else when this process started.
 */
function demoStartedAt(): { at: number; since: string } {
  const self = { at: Date.now() - process.uptime() * 1000, since: 'this script only; provisioning before it not counted' };
  try {
    const bootMs = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]) * 1000;
    let pid = process.ppid;
    for (let hops = 0; hops < 6 && pid > 1; hops++) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      // Field 22, in clock ticks since boot (USER_HZ, 100 on Linux).
      if (/(^|[\s/])npm(-cli\.js)?\s+run\b/.test(cmdline) && bootMs) return { at: bootMs + Number(fields[19]) * 10, since: 'since `npm run demo` started, provisioning included' };
      pid = Number(fields[1]);
    }
  } catch {
    // Not Linux, or /proc hidden: this process's own start.
  }
  return self;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
