// A worker started while its Temporal server is down (issue 17 item 3): it says it waits, retries
// with backoff, and starts once a server comes up at that address — a real `node src/worker.ts`
// process and a second real dev server, started on the worker's port after it began waiting.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startDevServer, stopProcessGroup } from '../src/devtools/devServer';
import { connectBackoffMs, connectWithRetry } from '../src/connect';
import { bannerOf, killStartedWorkers, spawnWorkerProcess, waitUntil } from './support/processes';
import { temporalCliPath, uniqueQueue, workflowBundle } from './support/temporal';

let tmp: string;
let server: { pid: number } | undefined;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'weaver-boot-'));
});
afterAll(async () => {
  killStartedWorkers();
  if (server) await stopProcessGroup(server.pid);
  await rm(tmp, { recursive: true, force: true });
});

test('backoff: 1 s, doubling, at most 15 s', () => {
  expect([1, 2, 3, 4, 5, 6, 20].map(connectBackoffMs)).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
});

test('WEAVER_CONNECT_WAIT bounds the wait: past it, the start fails naming the address and the setting', async () => {
  const address = `127.0.0.1:${await freePort('127.0.0.1')}`;
  const lines: string[] = [];
  const err = await connectWithRetry({ address, waitMs: 2500, log: (l) => lines.push(l) }).then(() => undefined, (e: Error) => e);
  expect(err?.message).toMatch(new RegExp(`^Temporal at ${address} not reachable after \\d+ attempts .*\\(WEAVER_CONNECT_WAIT\\)`));
  // Every attempt but the last said it waits (how many fit in 2.5 s depends on the machine).
  const attempts = Number(/after (\d+) attempts/.exec(err!.message)![1]);
  expect(lines).toEqual(Array.from({ length: attempts - 1 }, (_, i) => expect.stringContaining(`waiting for Temporal at ${address} (attempt ${i + 1}`)));
});

test('a worker started while the server is down waits, saying so, and starts when it comes up', async () => {
  const bundle = process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
  if (!bundle) workflowBundle(); // throws why there is none
  const port = await freePort('127.0.0.1');
  const address = `127.0.0.1:${port}`;
  const worker = spawnWorkerProcess({
    TEMPORAL_ADDRESS: address,
    TEMPORAL_NAMESPACE: 'default',
    WEAVER_TASK_QUEUE: uniqueQueue('boot'),
    WEAVER_WORKSPACE_ROOT: path.join(tmp, 'workspaces'),
    WEAVER_ARTIFACT_DIR: path.join(tmp, 'artifacts'),
    WEAVER_DEV: '1',
    WEAVER_SANDBOX: 'off',
    WEAVER_WORKFLOW_BUNDLE: bundle!,
    WEAVER_LOG_LEVEL: 'WARN',
    MALLOC_ARENA_MAX: '2',
  });
  // Twice refused (nothing listens there yet): it keeps trying, and lives.
  await waitUntil('two failed attempts', () => worker.output().includes(`waiting for Temporal at ${address} (attempt 2`), 120_000);
  expect(worker.child.exitCode).toBeNull();
  expect(worker.output()).not.toContain('\n  operations:');
  server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'server.log'), port });
  await bannerOf(worker, 180_000);
  expect(worker.output()).toContain(`temporal ${address}/default`);
  // The banner says the malloc arena cap it was started with (src/mallocArenas.ts).
  expect(worker.output()).toContain('malloc arenas: at most 2 (MALLOC_ARENA_MAX)');
}, 300_000);
