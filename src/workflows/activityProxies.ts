// Activity proxies with explicit timeouts and retry policies, one place for all of them.
import { ActivityCancellationType, ActivityFailure, ApplicationFailure, isCancellation, log, proxyActivities, proxyLocalActivities, TimeoutFailure, type ActivityFunction, type ActivityFunctionWithOptions, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { patched } from './patches';
import type { Activities } from '../activities';
import type { WorkspaceHandle } from '../activities/types';
import {
  ALIVE_CHECK_SEC,
  aliveQueueOf,
  DEFAULT_QUEUE_CHECK_SEC,
  FIRST_QUEUE_CHECK_SEC,
  HEARTBEAT_TIMEOUT_TYPE,
  MAX_QUEUE_CHECKS,
  PING_AFTER_SILENCE,
  QUICK_QUEUE_CHECK,
  WORKSPACE_HEARTBEAT_TIMEOUT_SEC,
  type WorkerLoad,
} from '../domain/liveness';
import { DEFAULT_PROVIDER_TIMEOUT_SEC, NON_RETRYABLE_FAILURE_TYPES } from '../domain/errors';
import type { ProviderSpec } from '../domain/schema';

/** Room beyond the provider's own deadline: reading the prompt, storing the answer (with its retries), parsing. */
const LLM_MARGIN_SEC = 60;
/** Executions of one provider call: the first, then retries after lost workers that only deliver its kept answer. */
const KEPT_ANSWER_TRIES = 3;
/** Silence after which the worker running a call is taken for dead (the call is booked as lost and asked again). */
export const LLM_HEARTBEAT_TIMEOUT_SEC = 10;

/**
 * The provider-call proxy for `spec`: one HTTP call per activity execution. The workflow itself
 * retries typed failures (strategies.ts), so every call becomes one event and one ledger entry,
 * and a long Retry-After becomes a durable timer instead of a blocked worker. Start-to-close
 * fits the provider's own deadline (`timeoutSec`, the openai SDK's timeout inside the activity)
 * plus room for storing the answer; a slow model is not cut by a fixed 10 minutes, nor does a
 * fast one hold a dead call that long. The heartbeat timeout measures the worker, not the
 * provider (the activity beats on a timer while it waits), so it stays short: a dead worker is
 * noticed in seconds whatever the model's speed. `taskQueue`: a rate-limited provider's own
 * (Temporal dispatches at most its requestsPerSecond from it); the start-to-close clock starts
 * once a worker takes the call, so time waiting for the limit is not counted against it.
 */
export function llmFor(spec: Pick<ProviderSpec, 'timeoutSec'>, keptAnswers = false, taskQueue?: string) {
  const timeoutSec = Math.ceil(spec.timeoutSec ?? DEFAULT_PROVIDER_TIMEOUT_SEC);
  const startToCloseSec = timeoutSec + LLM_MARGIN_SEC;
  return proxyActivities<Pick<Activities, 'generateChange'>>({
    // A rate-limited provider's queue (its kept-answer retries go there too); else the workflow's.
    ...(taskQueue ? { taskQueue } : {}),
    startToCloseTimeout: `${startToCloseSec} seconds`,
    heartbeatTimeout: `${Math.min(LLM_HEARTBEAT_TIMEOUT_SEC, startToCloseSec)} seconds`,
    // `keptAnswers` (runs since KEPT_ANSWERS): Temporal retries the call after its worker was lost
    // (the activity's own failures are all non-retryable), and the retry delivers the answer the
    // lost worker kept in the store, or fails WorkerLost without calling (src/activities/answers.ts).
    retry: keptAnswers
      ? { maximumAttempts: KEPT_ANSWER_TRIES, initialInterval: '500 milliseconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURE_TYPES }
      : { maximumAttempts: 1, nonRetryableErrorTypes: NON_RETRYABLE_FAILURE_TYPES },
    // A cancelled call (a lost race) reports back before we move on: if it had already
    // answered, that answer is delivered and booked instead of being dropped.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** The command activities' start-to-close: a safety net a wait for a command slot never reaches. */
const SLOT_WAIT_SAFETY_NET_SEC = 24 * 3600;

/** Work any worker can do: clone a workspace (it stays on that worker), store artifacts. */
const sharedOptions: ActivityOptions = {
  // A safety net, not a limit: preparing clones, waits for command slots and runs every setup
  // step (each with its own timeoutSec); a dead worker is noticed by the heartbeat timeout.
  startToCloseTimeout: `${SLOT_WAIT_SAFETY_NET_SEC} seconds`,
  // A dead worker is noticed in seconds here too (the clone beats on a timer; the rest take
  // milliseconds), not after a minute: measured by test/faults.test.ts.
  heartbeatTimeout: `${WORKSPACE_HEARTBEAT_TIMEOUT_SEC} seconds`,
  retry: { initialInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['CloneFailed', 'SetupFailed', 'InvalidBranch', 'ProviderNotAllowed'] },
};
export const shared = proxyActivities<Pick<Activities, 'prepareWorkspace' | 'storeArtifact' | 'resolveProviders' | 'childUsage' | 'readBatchTasks'>>(sharedOptions);

/** Runs since PREPARE_WAITS_FOR_CANCEL: a cancelled preparation is waited for, and what it made is removed. */
export const PREPARE_WAITS_FOR_CANCEL = 'prepare-waits-for-cancel';

const preparing = proxyActivities<Pick<Activities, 'prepareWorkspace'>>({
  ...sharedOptions,
  // A cancel reaches the activity at its next heartbeat; a setup step that ends before that
  // returns a clone no one would remove once the workflow had moved on. Waited for, a clone made
  // anyway comes back to the workflow, which removes it like any other (candidates.ts, codingTask.ts).
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** Clone and set up a workspace (on whichever worker takes it). */
export function prepareWorkspace(req: Parameters<Activities['prepareWorkspace']>[0]): ReturnType<Activities['prepareWorkspace']> {
  return (patched(PREPARE_WAITS_FOR_CANCEL) ? preparing : shared).prepareWorkspace(req);
}

/**
 * Short bookkeeping run by the worker that runs the workflow task, as local activities (runs since
 * LEAN_ROUND_TRIPS): a marker in the history instead of three events and a workflow task of its
 * own each. Reading the worker's registry and storing a small artifact take milliseconds; a worker
 * lost meanwhile loses the workflow task, and the next worker runs them again (both idempotent:
 * the store is content-addressed).
 */
export const bookkeeping = proxyLocalActivities<Pick<Activities, 'storeArtifact' | 'resolveProviders'>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: ['ProviderNotAllowed'] },
});

/**
 * Activities that must run where the workspace is (design rule 4).
 * - A dead worker is noticed in seconds: every one heartbeats (WORKSPACE_HEARTBEAT_TIMEOUT_SEC).
 *   Since PING_AFTER_SILENCE a heartbeat timeout is not retried by the server (a retry to a dead
 *   queue only waits there): the workflow pings the liveness responder at once and queues the
 *   activity again only if it answers (a worker restarted on its slot, or a slow one), up to the
 *   tries the server's retry allowed; silence means the workspace is lost.
 * - A busy worker is not a dead one: an activity still queued after FIRST_QUEUE_CHECK_SEC (then
 *   `queueCheckSec` each time) asks the worker's liveness responder (its own worker, never busy)
 *   and, if it answers, is queued again; only silence there means the workspace is lost and the
 *   workflow rebuilds it, saying how that was found (workerGone).
 */

/** Start-to-close of a command activity whose command may run `timeoutSec`. */
export function commandClockSec(timeoutSec: number): number {
  return Math.max(SLOT_WAIT_SAFETY_NET_SEC, 2 * Math.ceil(timeoutSec) + 120);
}

/** Tries of a git activity and of a test run whose worker went silent (the server's retries before PING_AFTER_SILENCE). */
const SILENT_TRIES = { git: 3, tests: 2 } as const;

/**
 * The workspace activities on `ws`'s queue, first checked after `queueCheckSec` in their queue;
 * `pingOnSilence`: a heartbeat timeout comes back to the workflow instead of being retried.
 */
function workspaceProxies(ws: WorkspaceHandle, testTimeoutSec: number, queueCheckSec: number, pingOnSilence: boolean) {
  const retry: RetryPolicy = {
    initialInterval: '1 second',
    maximumAttempts: SILENT_TRIES.git,
    nonRetryableErrorTypes: ['WorkspaceLost', ...(pingOnSilence ? [HEARTBEAT_TIMEOUT_TYPE] : [])],
  };
  const common: ActivityOptions = {
    taskQueue: ws.taskQueue,
    scheduleToStartTimeout: `${queueCheckSec} seconds`,
    heartbeatTimeout: `${WORKSPACE_HEARTBEAT_TIMEOUT_SEC} seconds`,
    retry,
  };
  const git = proxyActivities<Pick<Activities, 'buildPrompt' | 'applyChange' | 'previewChanges' | 'rollbackWorkspace' | 'commitAndPush' | 'releaseWorkspace' | 'mergeBranches'>>({
    ...common,
    startToCloseTimeout: '5 minutes',
  });
  // applyChangeAndCheck runs the checks too: a test run's clock, cancellation and tries.
  const tests = proxyActivities<Pick<Activities, 'runTests' | 'runCheck' | 'applyChangeAndCheck'>>({
    ...common,
    // Waiting for a command slot (WEAVER_MAX_COMMANDS) is not working: the command's own time
    // limit starts once it has its slot and is enforced by the activity, and a dead worker is
    // noticed by heartbeats (the wait beats too). This clock is only a safety net, never the
    // limit a queued suite runs into (a day, or more for a longer command).
    startToCloseTimeout: `${commandClockSec(testTimeoutSec)} seconds`,
    // On cancel, wait until the test process group is really killed before cleaning up.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // A test run that died with its worker is rerun once; a failing test is not an error.
    retry: { ...retry, maximumAttempts: SILENT_TRIES.tests },
  });
  return { git, tests };
}

type WorkspaceActivity = 'buildPrompt' | 'applyChange' | 'previewChanges' | 'rollbackWorkspace' | 'commitAndPush' | 'releaseWorkspace' | 'mergeBranches' | 'runTests' | 'runCheck' | 'applyChangeAndCheck';
const RUNS_COMMANDS: WorkspaceActivity[] = ['runTests', 'runCheck', 'applyChangeAndCheck'];

export function onWorkspace(ws: WorkspaceHandle, testTimeoutSec: number) {
  const queueCheckSec = ws.queueCheckSec ?? DEFAULT_QUEUE_CHECK_SEC;
  const firstCheckSec = Math.min(FIRST_QUEUE_CHECK_SEC, queueCheckSec);
  const proxies = (pingOnSilence: boolean) => ({
    first: workspaceProxies(ws, testTimeoutSec, firstCheckSec, pingOnSilence),
    later: workspaceProxies(ws, testTimeoutSec, queueCheckSec, pingOnSilence),
  });
  const [retried, pinged] = [proxies(false), proxies(true)];
  const alive = proxyActivities<Pick<Activities, 'workspaceAlive'>>({
    taskQueue: aliveQueueOf(ws.taskQueue),
    scheduleToStartTimeout: `${ALIVE_CHECK_SEC} seconds`,
    startToCloseTimeout: `${ALIVE_CHECK_SEC} seconds`,
    retry: { maximumAttempts: 1 },
  });
  /** Schedules `call` again for as long as its worker answers the liveness check. */
  const untilTaken = async <R>(name: WorkspaceActivity, call: (acts: ReturnType<typeof workspaceProxies>) => Promise<R>): Promise<R> => {
    // Runs started before QUICK_QUEUE_CHECK waited queueCheckSec from the first try, and runs
    // before PING_AFTER_SILENCE left heartbeat timeouts to the server's retry: they replay so.
    const quick = patched(QUICK_QUEUE_CHECK);
    const pingOnSilence = quick && patched(PING_AFTER_SILENCE);
    const { first, later } = pingOnSilence ? pinged : retried;
    /** The next try is the first in its queue (the start, or again after a silence the worker answered for). */
    let fresh = quick;
    let silences = 0;
    for (let checks = 0; ; checks++) {
      const waitedSec = fresh ? firstCheckSec : queueCheckSec;
      try {
        return await call(fresh ? first : later);
      } catch (err) {
        const silent = pingOnSilence && heartbeatTimedOut(err);
        // A worker killed on every try (or too slow to beat) keeps its workspace no longer than the server's retries did: lost.
        if (silent && ++silences >= SILENT_TRIES[RUNS_COMMANDS.includes(name) ? 'tests' : 'git']) throw err;
        // Runs started before the check went straight to a rebuild: they replay as they ran.
        if (!silent && (!queuedTooLong(err) || checks >= MAX_QUEUE_CHECKS || !patched('workspace-liveness-check'))) throw err;
        let load: WorkerLoad;
        try {
          load = await alive.workspaceAlive();
        } catch (pingErr) {
          if (isCancellation(pingErr)) throw pingErr;
          // Nobody answers for that queue: the workspace is lost, saying how that was found
          // (runs before QUICK_QUEUE_CHECK rethrew the timeout itself; both read as lost).
          const how = silent ? `stopped heartbeating (${WORKSPACE_HEARTBEAT_TIMEOUT_SEC} s without a beat)` : `waited ${waitedSec} s in its queue untaken`;
          throw quick ? workerGone(err as ActivityFailure, ws.taskQueue, how, silent) : err;
        }
        const { running, queued, limit } = load.commands;
        const what = silent ? 'stopped heartbeating, but its worker answers (restarted, or slow)' : 'still queued: its worker is alive and busy';
        log.info(`${name} on ${ws.taskQueue} ${what} (${running}/${limit} commands running, ${queued} waiting); queued again`);
        fresh = silent;
      }
    }
  };
  /** The proxy function, `executeWithOptions` included, with that patience: `pick` names it in both sets of proxies. */
  const patient = <F extends ActivityFunction>(name: WorkspaceActivity, pick: (acts: ReturnType<typeof workspaceProxies>) => ActivityFunctionWithOptions<F>): ActivityFunctionWithOptions<F> => {
    const wrapped = ((...args: Parameters<F>) => untilTaken(name, (acts) => pick(acts)(...args))) as ActivityFunctionWithOptions<F>;
    wrapped.executeWithOptions = (options, args) => untilTaken(name, (acts) => pick(acts).executeWithOptions(options, args));
    return wrapped;
  };
  // Proxies have no enumerable keys: name each activity rather than spreading.
  return {
    buildPrompt: patient('buildPrompt', (a) => a.git.buildPrompt),
    applyChange: patient('applyChange', (a) => a.git.applyChange),
    previewChanges: patient('previewChanges', (a) => a.git.previewChanges),
    rollbackWorkspace: patient('rollbackWorkspace', (a) => a.git.rollbackWorkspace),
    commitAndPush: patient('commitAndPush', (a) => a.git.commitAndPush),
    releaseWorkspace: patient('releaseWorkspace', (a) => a.git.releaseWorkspace),
    mergeBranches: patient('mergeBranches', (a) => a.git.mergeBranches),
    runTests: patient('runTests', (a) => a.tests.runTests),
    runCheck: patient('runCheck', (a) => a.tests.runCheck),
    applyChangeAndCheck: patient('applyChangeAndCheck', (a) => a.tests.applyChangeAndCheck),
  };
}

/**
 * The workspace's worker is gone: `queued` waited out its schedule-to-start (or its heartbeat
 * timeout: `how` says which) and the worker's liveness responder did not answer either. A WorkspaceLost failure of the same activity, whose
 * message (quoted in the attempt's notes and in the result) says how that was found and when;
 * its details say whether a worker had `started` it (its heartbeats stopped) or it waited untaken.
 */
function workerGone(queued: ActivityFailure, taskQueue: string, how: string, started: boolean): ActivityFailure {
  const at = new Date(Date.now()).toISOString();
  const why = `no worker on ${taskQueue}: ${queued.activityType} ${how} and nobody polled ${aliveQueueOf(taskQueue)} within ${ALIVE_CHECK_SEC} s (checked at ${at})`;
  return new ActivityFailure(why, queued.activityType, queued.activityId, queued.retryState, queued.identity, ApplicationFailure.create({ type: 'WorkspaceLost', message: why, nonRetryable: true, details: [{ started }] }));
}

/** The activity's worker stopped heartbeating (died, or starved of CPU for WORKSPACE_HEARTBEAT_TIMEOUT_SEC). */
function heartbeatTimedOut(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'HEARTBEAT';
}

/** The activity waited out its schedule-to-start timeout: nobody took it from the queue. */
function queuedTooLong(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';
}
