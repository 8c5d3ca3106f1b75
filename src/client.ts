// Typed SDK for services that start and watch Weaver tasks. Input is validated with the
// same zod schema the workflow uses, before anything starts.
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { config } from './config';
import { unpricedBudgetError } from './domain/pricing';
import { checkPlaybookText } from './domain/playbookText';
import {
  parseBatchInput,
  parseTaskInput,
  TaskInputError,
  type BatchResult,
  type CodingTaskInput,
  type CodingTaskResult,
  type Progress,
  type TaskBatchInput,
  type ParsedCodingTaskInput,
} from './domain/schema';
import { strippedCredentialsNote, stripTaskCredentials } from './domain/repoUrl';
import { WeaverRepo, WeaverStatus } from './domain/searchAttributes';
import { slugify } from './domain/slug';
import { resultFromFailure } from './domain/taskOutcome';
import { WORKFLOW_TASK_TIMEOUT } from './domain/liveness';
import { INLINE_TASKS_MAX_BYTES, uploadBatchTasks, withPagedResults, type StoreSettings } from './batchStore';

export { slugify };
import type { codingTask } from './workflows';
import { addGuidanceSignal, approvePushUpdate, progressQuery, type PushDecision } from './workflows/messages';

export * from './domain/schema';
export { FAILURE_TYPES, resultFromFailure } from './domain/taskOutcome';

export interface ClientOptions {
  /** An existing client; otherwise one is made from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE. */
  client?: Client;
  taskQueue?: string;
  /** Defaults to `weaver-<slug of the title>-<random>`: readable in the Web UI. */
  workflowId?: string;
  /**
   * Told what the client changed in the input before starting — e.g. credentials taken out of a
   * `repo` URL (the worker supplies git credentials). Default: `console.warn`.
   */
  onWarning?: (message: string) => void;
}

/** The input without credentials in its repo / push.remote URLs; says so through `onWarning`. */
function withoutCredentials<T extends Parameters<typeof stripTaskCredentials>[0]>(input: T, opts: ClientOptions, label = ''): T {
  const { input: clean, stripped } = stripTaskCredentials(input);
  if (stripped.length) (opts.onWarning ?? ((m: string) => console.warn(`weaver: ${m}`)))(`${label}${strippedCredentialsNote(stripped)}`);
  return clean;
}

/**
 * A budget over an inline endpoint without a known price is refused here, before anything
 * starts (the workflow refuses it too). Registry providers are priced by the worker, which the
 * client cannot see: the workflow checks those at start.
 */
function refuseUnpricedBudget(input: ParsedCodingTaskInput, label = ''): void {
  const inline = input.providers.filter((p) => p.baseURL && p.model).map((p) => ({ id: p.id, model: p.model!, pricing: p.pricing }));
  const problem = unpricedBudgetError(inline, { maxCostUsd: input.limits?.maxCostUsd, shadow: input.strategy?.shadow });
  if (problem) throw new TaskInputError([`${label}limits.maxCostUsd: ${problem}`]);
}

let defaultClient: Promise<Client> | undefined;

/** No Temporal server answered at `address` within the connect deadline (WEAVER_CONNECT_TIMEOUT). */
export class TemporalUnreachableError extends Error {
  constructor(
    readonly address: string,
    cause: unknown,
  ) {
    super(`Temporal is not reachable at ${address}: ${(cause as Error)?.message?.split('\n')[0] ?? String(cause)}`, { cause });
    this.name = 'TemporalUnreachableError';
  }
}

/** Connection.connect with a short deadline; a failure names the address tried. */
export async function connectTemporal(address: string, timeoutMs = config().connectTimeoutMs): Promise<Connection> {
  try {
    return await Connection.connect({ address, connectTimeout: timeoutMs });
  } catch (err) {
    throw new TemporalUnreachableError(address, err);
  }
}

/**
 * The shared client from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (read at the first call that
 * connects). A failed connection is not cached: the next call tries again.
 */
export async function weaverClient(): Promise<Client> {
  if (!defaultClient) {
    const attempt = (async () => {
      const c = config();
      const connection = await connectTemporal(c.address, c.connectTimeoutMs);
      return new Client({ connection, namespace: c.namespace });
    })();
    defaultClient = attempt;
    attempt.catch(() => {
      if (defaultClient === attempt) defaultClient = undefined;
    });
  }
  return defaultClient;
}

export function makeWorkflowId(title: string): string {
  return `weaver-${slugify(title)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A codingTask's result whatever its status. A task that did not deliver (`failed`,
 * `budget_exceeded`, `rejected`) fails its workflow — Failed in the Web UI — with its whole
 * result as the failure's details: that result is returned here like a completed one's. Throws
 * (WorkflowFailedError) only when there is no result: input refused at the workflow, terminated,
 * timed out. Works on any handle (`client.workflow.getHandle(id)` too).
 */
export async function resultOf<R = CodingTaskResult>(handle: Pick<WorkflowHandle, 'result'>): Promise<R> {
  try {
    return (await handle.result()) as R;
  } catch (err) {
    const result = err instanceof WorkflowFailedError ? resultFromFailure(err.cause) : undefined;
    if (result) return result as R;
    throw err;
  }
}

/**
 * Validates (throws TaskInputError naming each bad field, e.g. an `apiKeyEnv`: keys and where they
 * go are the worker's registry's, WEAVER_PROVIDERS) and starts a codingTask.
 */
export async function startCodingTask(input: CodingTaskInput | unknown, opts: ClientOptions = {}): Promise<WorkflowHandle<typeof codingTask>> {
  // Credentials never start a workflow: they would be in its history, search attributes and memo.
  const parsed = withoutCredentials(parseTaskInput(input), opts);
  refuseBadPlaybook(parsed);
  refuseUnpricedBudget(parsed);
  const client = opts.client ?? (await weaverClient());
  const workflowId = opts.workflowId ?? makeWorkflowId(parsed.task.title);
  try {
    const handle = await client.workflow.start<typeof codingTask>('codingTask', {
      taskQueue: opts.taskQueue ?? config().taskQueue,
      workflowId,
      args: [parsed],
      memo: { title: parsed.task.title },
      // Workflow tasks replaying a long history on a loaded host outlast the default 10 s (src/domain/liveness.ts).
      workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      // Shown at the top of the run in the Web UI.
      staticSummary: `Weaver: ${parsed.task.title}`,
      staticDetails: [
        `**repo** ${parsed.repo}${parsed.baseBranch ? ` (${parsed.baseBranch})` : ''}`,
        `**providers** ${parsed.providers.map((p) => `${p.id} (${p.model ?? 'default model'})`).join(', ')} · strategy ${parsed.strategy?.mode ?? 'sequential'}`,
        `**checks** ${parsed.playbook ? 'the task\'s playbook' : parsed.testCommand ? (Array.isArray(parsed.testCommand) ? parsed.testCommand.join(' ') : parsed.testCommand) : 'the repository\'s playbook, or detected from its stack'}`,
      ].join('\n\n'),
      typedSearchAttributes: [
        { key: WeaverRepo, value: parsed.repo.slice(0, 200) },
        { key: WeaverStatus, value: 'running' },
      ],
    });
    // result() gives the CodingTaskResult for a failed task too, as it did before they failed.
    return { ...handle, result: () => resultOf(handle) };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new Error(`a Weaver task with id ${workflowId} is already running; pick another --id`);
    }
    throw err;
  }
}

/** A playbook given as text is read here, so a bad one is refused before anything starts (line and field named). */
function refuseBadPlaybook(input: { playbook?: unknown }, prefix = ''): void {
  const problems = checkPlaybookText(input, `${prefix}playbook`);
  if (problems.length) throw new TaskInputError(problems);
}

export interface BatchOptions extends ClientOptions {
  /** The workers' artifact store, where a big task list is uploaded and the result pages are read (default: WEAVER_ARTIFACT_DIR / WEAVER_ARTIFACTS here). */
  store?: StoreSettings;
  /** Upload the task list whatever its size (default: only over INLINE_TASKS_MAX_BYTES of JSON). */
  upload?: boolean;
}

export async function startTaskBatch(input: TaskBatchInput | unknown, opts: BatchOptions = {}): Promise<WorkflowHandleWithFirstExecutionRunId> {
  const batch = parseBatchInput(input);
  const given = batch.tasks ?? [];
  given.forEach((t, i) => refuseBadPlaybook(t, `tasks[${i}].`));
  given.forEach((t, i) => refuseUnpricedBudget(t, `tasks[${i}].`));
  const tasks = given.map((t, i) => withoutCredentials(t, opts, `tasks[${i}]: `));
  // A big list goes to the store and the batch's input names it (the batch reads a page at a time).
  const upload = batch.tasks && (opts.upload || JSON.stringify(tasks).length > INLINE_TASKS_MAX_BYTES);
  const { tasks: _inline, ...rest } = batch;
  const parsed = upload ? { ...rest, tasksRef: await uploadBatchTasks(tasks, opts.store) } : batch.tasks ? { ...batch, tasks } : batch;
  const client = opts.client ?? (await weaverClient());
  return client.workflow.start('taskBatch', {
    taskQueue: opts.taskQueue ?? config().taskQueue,
    workflowId: opts.workflowId ?? `weaver-batch-${Math.random().toString(36).slice(2, 8)}`,
    args: [parsed],
    workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
  });
}

export async function getProgress(workflowId: string, opts: Pick<ClientOptions, 'client'> = {}): Promise<Progress> {
  const client = opts.client ?? (await weaverClient());
  return client.workflow.getHandle(workflowId).query(progressQuery);
}

/** The task's result, failed or not (see resultOf). */
export async function getResult(workflowId: string, opts: Pick<ClientOptions, 'client'> = {}): Promise<CodingTaskResult> {
  const client = opts.client ?? (await weaverClient());
  return resultOf(client.workflow.getHandle(workflowId));
}

/** The batch's result with every row in input order (read back from its pages in the store when not inline). */
export async function getBatchResult(workflowId: string, opts: Pick<BatchOptions, 'client' | 'store'> = {}): Promise<BatchResult> {
  const client = opts.client ?? (await weaverClient());
  return withPagedResults(await client.workflow.getHandle(workflowId).result(), opts.store);
}

/** Guidance for the next attempt's prompt (human in the loop). */
export async function addGuidance(workflowId: string, text: string, opts: Pick<ClientOptions, 'client'> = {}): Promise<void> {
  const client = opts.client ?? (await weaverClient());
  await client.workflow.getHandle(workflowId).signal(addGuidanceSignal, text);
}

/**
 * Approves (or rejects) the push of a task started with `requireApproval`. Resolves with what
 * the task will do; throws (WorkflowUpdateFailedError, with the reason) when the task is not
 * waiting for one, or when `decision.commit` (full or abbreviated SHA, ≥ 7 hex digits) is not the
 * commit awaiting approval — name the commit you reviewed (`getProgress(id).commit`, with its
 * `diffstat` and `diff`), so the decision is about that commit and no other.
 */
export async function approvePush(
  workflowId: string,
  decision: PushDecision,
  opts: Pick<ClientOptions, 'client'> = {},
): Promise<string> {
  const client = opts.client ?? (await weaverClient());
  return client.workflow.getHandle(workflowId).executeUpdate(approvePushUpdate, { args: [decision] });
}

export async function cancelTask(workflowId: string, opts: Pick<ClientOptions, 'client'> = {}): Promise<void> {
  const client = opts.client ?? (await weaverClient());
  await client.workflow.getHandle(workflowId).cancel();
}

export function webUiLink(workflowId: string, namespace = config().namespace): string {
  return `${config().uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
