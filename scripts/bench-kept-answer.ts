// Benchmark (not a test): the window in which a crash still loses a paid answer.
//
//   npx tsx scripts/bench-kept-answer.ts [calls=40]
//
// The LLM activity (Temporal's activity context, the real openai SDK over HTTP to the scripted
// model server, the local artifact store) answers `calls` calls with a small answer (one 1 KB
// file) and with a large one (one 200 KB file). For each it prints min / median / p95 / max of:
// - sent → kept: from the server's last byte of the answer to the heartbeat carrying the kept
//   answer's reference (handed to the SDK): read, parse, judge, store, heartbeat;
// - sent → done: to the activity's return (its response and change-set artifacts written).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { CallBeat } from '../src/activities/answers';
import { LocalArtifactStore } from '../src/activities/artifacts';
import { generateChange } from '../src/activities/llm';
import type { ActivityDeps, GenerateChangeResult } from '../src/activities/types';
import { editFormat } from '../src/domain/editformats';
import { ScriptedModelServer } from './demo/scriptedModelServer';

const calls = Number(process.argv[2]) || 40;

function stat(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  return `min ${ms(s[0])}, median ${ms(at(0.5))}, p95 ${ms(at(0.95))}, max ${ms(s[s.length - 1])}`;
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weaver-bench-kept-'));
  const model = await ScriptedModelServer.start();
  const deps: ActivityDeps = {
    artifactDir: path.join(tmp, 'artifacts'),
    workspaceRoot: path.join(tmp, 'ws'),
    workspaceQueue: 'unused',
    env: { BENCH_KEY: 'sk-bench-key-0123456789' },
    heartbeatMs: 1000,
    providers: { providers: { bench: { baseURL: model.url, apiKeyEnv: 'BENCH_KEY', models: ['bench'] } } },
  };
  const store = new LocalArtifactStore(deps.artifactDir);
  const prompt = await store.putJson('prompt', { system: 'You edit code.', user: 'Change a.' });
  try {
    for (const [label, bytes] of [
      ['1 KB answer', 1024],
      ['200 KB answer', 200 * 1024],
    ] as const) {
      const kept: number[] = [];
      const done: number[] = [];
      for (let i = 0; i < calls; i++) {
        // A fresh body each call: a new artifact every time, never one already on disk.
        const body = `// ${label} ${i} ${Date.now()}\n${'x'.repeat(bytes)}\n`;
        const content = editFormat('editblock').render({ summary: 'bench', files: [{ path: 'src/a.js', action: 'write', content: body }] });
        model.script('bench', [{ content, usage: { prompt_tokens: 10, completion_tokens: 10 } }]);
        let sent = 0;
        let beat = 0;
        model.once('response', () => (sent = performance.now()));
        const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 10_000 });
        env.on('heartbeat', (d: unknown) => {
          if ((d as CallBeat).answer) beat = performance.now();
        });
        const r: GenerateChangeResult = await env.run(generateChange, deps, store, { workflowId: 'bench', attempt: 1, provider: { id: 'bench', model: 'bench', maxTokens: 100_000 }, prompt, role: 'primary' as const });
        const end = performance.now();
        if (r.outcome !== 'ok') throw new Error(`the scripted answer was not applied as an edit: ${r.outcome} ${r.error ?? ''}`);
        kept.push(beat - sent);
        done.push(end - sent);
      }
      console.log(`${label} (${calls} calls)\n  sent → kept (stored + heartbeated): ${stat(kept)}\n  sent → done (activity returns):     ${stat(done)}`);
    }
  } finally {
    await Promise.all([model.close(), rm(tmp, { recursive: true, force: true })]);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
