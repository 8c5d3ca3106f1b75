// How fast a dead worker is noticed and how a busy one is told apart from a gone one (design
// rule 8). Pure: read by the workflow's activity options and by the worker's config checks.

/**
 * Heartbeat timeout of every workspace activity. The SDK sends heartbeats at 0.8 × this, so a
 * worker that died is noticed within about this long (the retry then lands on the same queue:
 * a worker restarted on its slot picks it up at once).
 */
export const WORKSPACE_HEARTBEAT_TIMEOUT_SEC = 10;

/**
 * The smallest heartbeat timeout any Weaver activity uses (workspace activities and provider
 * calls both 10 s). A worker whose WEAVER_HEARTBEAT_MS is half of it or more is refused at start.
 */
export const MIN_HEARTBEAT_TIMEOUT_MS = 10_000;

/**
 * How long a workspace activity found busy may wait again in its worker's queue before the
 * workflow asks whether that worker is still there (WorkspaceHandle.queueCheckSec overrides it,
 * from the worker's WEAVER_QUEUE_CHECK_SEC). The first wait is FIRST_QUEUE_CHECK_SEC (runs before
 * QUICK_QUEUE_CHECK waited this long from the start: a lost host cost this plus ALIVE_CHECK_SEC).
 */
export const DEFAULT_QUEUE_CHECK_SEC = 25;

/**
 * The first wait of a workspace activity in its queue before the liveness ping (runs since
 * QUICK_QUEUE_CHECK; later waits are WorkspaceHandle.queueCheckSec). A live worker with a free
 * slot always has polls waiting at the server, which hands it the task in milliseconds whatever
 * the worker's CPU load; only a busy or dead one leaves the task queued, and the ping tells which.
 * So a lost host is found in this plus ALIVE_CHECK_SEC (when it died mid-activity: the heartbeat
 * timeout plus ALIVE_CHECK_SEC, since PING_AFTER_SILENCE), and a busy worker costs one ping per activity.
 */
export const FIRST_QUEUE_CHECK_SEC = 2;

/** Marks runs whose workspace activities are first checked after FIRST_QUEUE_CHECK_SEC, not queueCheckSec. */
export const QUICK_QUEUE_CHECK = 'quick-queue-check';

/**
 * Marks runs whose workspace activities the server does not retry after a heartbeat timeout:
 * the workflow pings the worker's liveness queue at once and queues the activity again only if
 * the worker answers. Runs before it were retried on the same (maybe dead) queue, which cost the
 * retry interval and FIRST_QUEUE_CHECK_SEC more before the same ping (3 s of a lost host's ~16 s).
 */
export const PING_AFTER_SILENCE = 'ping-after-heartbeat-timeout';

/** Temporal's name for a heartbeat timeout in a retry policy's non-retryable types. */
export const HEARTBEAT_TIMEOUT_TYPE = 'TemporalTimeout:Heartbeat';

/** Schedule-to-start of the liveness ping: the answering worker is never busy, so seconds suffice. */
export const ALIVE_CHECK_SEC = 3;

/** After this many liveness checks answered "alive, but busy" (100 minutes at 25 s) the workspace counts as lost. */
export const MAX_QUEUE_CHECKS = 240;

/**
 * The queue of a worker's liveness responder: a worker of its own with free slots, so it answers
 * even while every workspace slot is taken by long test runs.
 */
export function aliveQueueOf(workspaceQueue: string): string {
  return `${workspaceQueue}/alive`;
}

/** What the liveness ping answers: the worker's load, for the logs. */
export interface WorkerLoad {
  workspaceQueue: string;
  pid: number;
  commands: { running: number; queued: number; limit: number };
}

/**
 * Workflow-task timeout of every Weaver workflow (the SDK's default is 10 s). A workflow task
 * takes milliseconds on a quiet machine, but one replaying a long history on a worker that just
 * started (the bundle loaded, the history fetched) was measured at up to 14 s under heavy load:
 * past 10 s it timed out and was replayed again elsewhere, adding load where there was too much.
 * 30 s is twice that worst case; what it costs is the wait after a worker dies in the middle of
 * a workflow task (rare: tasks are that short) — at most 30 s, inside the 60 s resume target.
 */
export const WORKFLOW_TASK_TIMEOUT = '30 seconds' as const;
