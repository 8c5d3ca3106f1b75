/**
 * Helpers every workflow test uses to reach the ONE dev server that
 * test/globalSetup.ts starts per jest run. Typical use:
 *
 *   const { client } = await testConnection();
 *   const worker = await Worker.create({
 *     connection: await testNativeConnection(),
 *     namespace: TEST_NAMESPACE,
 *     taskQueue: uniqueQueue('retry'),
 *     workflowBundle: workflowBundle(),
 *     activities,
 *   });
 *   afterAll(closeTestConnections);
 */
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';
import { weaverLogger } from '../../src/logging';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../../src/devtools/devServer';

export const TEST_NAMESPACE = 'default';

/** The names and CLI types globalSetup registers (same as scripts/dev-server.sh and docker-compose.yml). */
export const WEAVER_SEARCH_ATTRIBUTES = DEV_SERVER_SEARCH_ATTRIBUTES;

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run tests through jest (jest.config.js globalSetup starts the Temporal dev server)`);
  }
  return value;
}

/** host:port of the test dev server. */
export function testAddress(): string {
  return requireEnv('WEAVER_TEST_TEMPORAL_ADDRESS');
}

/** Absolute path of the `temporal` CLI binary the server runs from (for tests driving the CLI). */
export function temporalCliPath(): string {
  return requireEnv('WEAVER_TEST_TEMPORAL_CLI');
}

export interface TestConnection {
  connection: Connection;
  client: Client;
}

let clientConn: Promise<TestConnection> | undefined;
let nativeConn: Promise<NativeConnection> | undefined;
let bundle: { code: string } | undefined;

/** Memoised client Connection + Client (namespace "default") to the test server. */
export function testConnection(): Promise<TestConnection> {
  if (!clientConn) {
    clientConn = Connection.connect({ address: testAddress() }).then(
      (connection) => ({ connection, client: new Client({ connection, namespace: TEST_NAMESPACE }) }),
      (err: unknown) => {
        clientConn = undefined;
        throw err;
      },
    );
  }
  return clientConn;
}

/** Shorthand for `(await testConnection()).client`. */
export async function testClient(): Promise<Client> {
  return (await testConnection()).client;
}

/**
 * Quieter SDK logs in tests (WARN; override with WEAVER_TEST_LOG_LEVEL=INFO|DEBUG...).
 * Runs before the first NativeConnection; a test that wants its own Runtime
 * (e.g. to capture logs) must call Runtime.install before testNativeConnection().
 */
function installTestRuntime(): void {
  if (Runtime.instantiator) return;
  const level = (process.env.WEAVER_TEST_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  Runtime.install({ logger: weaverLogger(level) });
}

/** Memoised NativeConnection for Worker.create. */
export function testNativeConnection(): Promise<NativeConnection> {
  if (!nativeConn) {
    installTestRuntime();
    nativeConn = NativeConnection.connect({ address: testAddress() }).catch((err: unknown) => {
      nativeConn = undefined;
      throw err;
    });
  }
  return nativeConn;
}

/** Whether globalSetup produced a bundle; 'missing' means there is no src/workflows module yet. */
export function workflowBundleStatus(): 'ok' | 'missing' | 'failed' {
  if (process.env.WEAVER_TEST_WORKFLOW_BUNDLE) return 'ok';
  return (process.env.WEAVER_TEST_WORKFLOW_BUNDLE_ERROR ?? '').startsWith('missing') ? 'missing' : 'failed';
}

/** The workflow bundle built once by globalSetup: pass as `Worker.create({ workflowBundle })`. */
export function workflowBundle(): { code: string } {
  if (!bundle) {
    const file = process.env.WEAVER_TEST_WORKFLOW_BUNDLE;
    if (!file) {
      throw new Error(
        `no workflow bundle: ${process.env.WEAVER_TEST_WORKFLOW_BUNDLE_ERROR ?? 'WEAVER_TEST_WORKFLOW_BUNDLE is not set (run through jest)'}`,
      );
    }
    bundle = { code: readFileSync(file, 'utf8') };
  }
  return bundle;
}

let queueSeq = 0;
/** A task queue name no other test (or earlier run against a kept server) uses. */
export function uniqueQueue(prefix = 'test'): string {
  queueSeq += 1;
  const rand = Math.random().toString(36).slice(2, 8);
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${queueSeq}-${rand}`;
}

/** Close the memoised connections; use in afterAll. */
export async function closeTestConnections(): Promise<void> {
  const c = clientConn;
  const n = nativeConn;
  clientConn = undefined;
  nativeConn = undefined;
  await Promise.all([
    c?.then(({ connection }) => connection.close()).catch(() => undefined),
    n?.then((conn) => conn.close()).catch(() => undefined),
  ]);
}

/** Size in bytes of a workflow's full event history, encoded as protobuf (what Temporal's limits measure). */
export async function historySizeBytes(client: Client, workflowId: string, runId?: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return temporal.api.history.v1.History.encode(history).finish().length;
}

/** One run of a workflow that continued as new: its history, events and encoded bytes. */
export interface RunHistory {
  runId: string;
  history: temporal.api.history.v1.IHistory;
  events: number;
  bytes: number;
}

/** Every run of a workflow from `firstRunId`, following its continue-as-new chain. */
export async function runHistories(client: Client, workflowId: string, firstRunId: string): Promise<RunHistory[]> {
  const runs: RunHistory[] = [];
  for (let runId: string | undefined = firstRunId; runId; ) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events: temporal.api.history.v1.IHistoryEvent[] = history.events ?? [];
    runs.push({ runId, history, events: events.length, bytes: temporal.api.history.v1.History.encode(history).finish().length });
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}
