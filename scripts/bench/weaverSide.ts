// The bench's Weaver side, on its defaults: a Temporal dev server of its own, the workflow code
// bundled once, one in-process worker (createWorkers: the sandbox it detects, as a user's worker
// would), a client; a codingTask run to its result; what its history holds.
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { startCodingTask } from '../../src/client';
import { startDevServer, stopProcessGroup, temporalCliPath, killProcessGroup } from '../../src/devtools/devServer';
import { describeSandbox, enforcementOf, sandboxDetails } from '../../src/activities/sandbox/setting';
import type { ProviderRegistry } from '../../src/domain/registry';
import type { CodingTaskInput } from '../../src/domain/schema';
import { weaverLogger } from '../../src/logging';
import { bundleWeaverWorkflows } from '../../src/workflowBundle';
import { createWorkers, workerSandbox } from '../../src/worker';

const EventType = temporal.api.enums.v1.EventType;

export interface HistoryFigures {
  events: number;
  bytes: number;
  workflowTasks: number;
  activities: number;
  localActivities: number;
  upserts: number;
  children: number;
}

export class WeaverSide {
  private seq = 0;
  private constructor(
    readonly serverPid: number,
    readonly sandbox: string,
    private readonly client: Client,
    private readonly taskQueue: string,
    private readonly stopAll: () => Promise<void>,
  ) {}

  /**
   * `onServer` gets the dev server's pid at once: a later failed step must not leave it running.
   * `metricsAddress`: the SDK's Prometheus metrics there (its requests to the server by operation).
   */
  static async start(tmp: string, onServer: (pid: number) => void, providers: ProviderRegistry, metricsAddress?: string): Promise<WeaverSide> {
    Runtime.install({ logger: weaverLogger('WARN'), ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}) });
    const server = await startDevServer({ cli: temporalCliPath(), logFile: path.join(tmp, 'temporal-server.log') });
    onServer(server.pid);
    // The worker's own bundle (its bundler options), made once.
    const { code } = await bundleWeaverWorkflows({ logger: new DefaultLogger('WARN') });
    const nativeConn = await NativeConnection.connect({ address: server.address });
    const clientConn = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConn, namespace: 'default' });
    const taskQueue = `weaver-bench-${process.pid}`;
    const deps = { artifactDir: path.join(tmp, 'artifacts'), workspaceRoot: path.join(tmp, 'workspaces'), repoRoots: [tmp] };
    // What createWorkers itself detects from WEAVER_SANDBOX (unset: the default), described for the report.
    const sb = await workerSandbox(deps);
    const sandbox = sb.kind === 'none' ? `none (${sb.warning})` : `${describeSandbox(sb)}, limits by ${enforcementOf(sb)}${sandboxDetails(sb)} (WEAVER_SANDBOX=${sb.mode})`;
    const worker = await createWorkers({ connection: nativeConn, taskQueue, workspaceQueue: `${taskQueue}-ws`, workflowBundle: { code }, providers, deps });
    const running = worker.run();
    const stopAll = async () => {
      worker.shutdown();
      await running.catch(() => undefined);
      await nativeConn.close().catch(() => undefined);
      await clientConn.close().catch(() => undefined);
      await stopProcessGroup(server.pid);
    };
    return new WeaverSide(server.pid, sandbox, client, taskQueue, stopAll);
  }

  /** One codingTask to its result; rejects unless it succeeded, pushed, in one attempt. */
  async run(input: CodingTaskInput): Promise<{ ms: number; handle: WorkflowHandle }> {
    const started = Date.now();
    const handle = await startCodingTask(input, { client: this.client, taskQueue: this.taskQueue, workflowId: `bench-${process.pid}-${++this.seq}` });
    const result = await handle.result();
    const ms = Date.now() - started;
    if (result.status !== 'succeeded' || result.attempts.length !== 1 || !result.pushed) {
      throw new Error(`${handle.workflowId}: expected a pushed success in 1 attempt, got ${result.status} in ${result.attempts.length} (pushed: ${result.pushed}): ${result.reason ?? ''}`);
    }
    return { ms, handle };
  }

  async history(handle: WorkflowHandle): Promise<HistoryFigures> {
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const count = (t: number) => events.filter((e) => e.eventType === t).length;
    return {
      events: events.length,
      bytes: temporal.api.history.v1.History.encode(history).finish().length,
      workflowTasks: count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
      activities: count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
      localActivities: events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length,
      upserts: count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
      children: count(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
    };
  }

  stop(): Promise<void> {
    return this.stopAll();
  }

  kill(): void {
    killProcessGroup(this.serverPid, 'SIGKILL');
  }
}
