// Activity proxies with explicit timeouts and retry policies, one place for all of them.
import { ActivityCancellationType, proxyActivities, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WorkspaceHandle } from '../activities/types';
import { NON_RETRYABLE_FAILURE_TYPES } from '../domain/errors';

/**
 * Provider calls: one HTTP call per activity execution. The workflow itself retries typed
 * failures (strategies.ts), so every call becomes one event and one ledger entry, and a long
 * Retry-After becomes a durable timer instead of a blocked worker.
 */
export const llm = proxyActivities<Pick<Activities, 'generateChange'>>({
  startToCloseTimeout: '10 minutes',
  // The call heartbeats every WEAVER_HEARTBEAT_MS (1 s): 10 s of silence means its worker died,
  // and the call is booked as lost (estimated spend) and retried elsewhere.
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 1, nonRetryableErrorTypes: NON_RETRYABLE_FAILURE_TYPES },
  // A cancelled call (a lost race) reports back before we move on: if it had already
  // answered, that answer is delivered and booked instead of being dropped.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** Work any worker can do: clone a workspace (it stays on that worker), store artifacts. */
export const shared = proxyActivities<Pick<Activities, 'prepareWorkspace' | 'storeArtifact' | 'resolveProviders'>>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['CloneFailed', 'SetupFailed', 'InvalidBranch', 'ProviderNotAllowed'] },
});

/**
 * Activities that must run where the workspace is (design rule 4). A short
 * schedule-to-start timeout notices a dead worker; the workflow then rebuilds elsewhere.
 */
export function onWorkspace(ws: WorkspaceHandle, testTimeoutSec: number) {
  const retry: RetryPolicy = { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: ['WorkspaceLost'] };
  const common: ActivityOptions = { taskQueue: ws.taskQueue, scheduleToStartTimeout: '2 minutes', retry };
  const git = proxyActivities<Pick<Activities, 'buildPrompt' | 'applyChange' | 'previewChanges' | 'rollbackWorkspace' | 'commitAndPush' | 'releaseWorkspace' | 'mergeBranches'>>({
    ...common,
    startToCloseTimeout: '5 minutes',
  });
  const tests = proxyActivities<Pick<Activities, 'runTests'>>({
    ...common,
    startToCloseTimeout: `${Math.ceil(testTimeoutSec) + 120} seconds`,
    heartbeatTimeout: '30 seconds',
    // On cancel, wait until the test process group is really killed before cleaning up.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // A test run that died with its worker is rerun once; a failing test is not an error.
    retry: { ...retry, maximumAttempts: 2 },
  });
  // Proxies have no enumerable keys: name each activity rather than spreading.
  return {
    buildPrompt: git.buildPrompt,
    applyChange: git.applyChange,
    previewChanges: git.previewChanges,
    rollbackWorkspace: git.rollbackWorkspace,
    commitAndPush: git.commitAndPush,
    releaseWorkspace: git.releaseWorkspace,
    mergeBranches: git.mergeBranches,
    runTests: tests.runTests,
  };
}
