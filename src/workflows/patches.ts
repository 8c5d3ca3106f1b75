// One patch marker per run instead of one per workflow change. Every `patched(id)` records a
// marker and the SDK upserts TemporalChangeVersion with it: ten of each in a plain task's
// history (20 of its 65 events, ten visibility writes at the server). A run started by code
// that has every change in EPOCH_COVERS records PATCH_EPOCH once, at its first check of one of
// them, and every covered check is then true without a marker of its own.
//
// Older histories keep replaying: they hold no epoch marker, so a covered check falls through to
// its own marker, exactly as before. A run that goes on under this code after such a replay
// records the epoch at its next check (not replaying, both would be true: the same answer), and
// its replay reaches the epoch marker at the same point.
//
// The covered set is frozen: a history with the epoch marker was made by code with every change
// listed, so adding an id here would make that id true for runs that never had it. A later
// change uses its own `patched(id)` (not in the set) until a new epoch covers it too.
import { patched as sdkPatched } from '@temporalio/workflow';

export const PATCH_EPOCH = 'weaver-epoch-1';

export const EPOCH_COVERS: ReadonlySet<string> = new Set([
  'approval-names-commit',
  'approval-signal-checked',
  'attempts-continue-as-new',
  'batch-weaver-status',
  'batch-window',
  'book-cut-streams',
  'bundle-every-commit',
  'child-spend-counted',
  'child-task-timeout',
  'compare-resulting-files',
  'cost-routing',
  'default-tree-cost',
  'durable-provider-waits',
  'fail-workflow-on-failed-task',
  'fold-round-trips',
  'kept-answers',
  'lean-round-trips',
  'parallel-all-checks',
  'ping-after-heartbeat-timeout',
  'playbooks',
  'prompt-budgets',
  'provider-rate-queues',
  'provider-registry',
  'quick-queue-check',
  'quota-window',
  'reapply-after-rebuild',
  'rebuild-after-dead-worker',
  'rebuild-at-commit',
  'rebuild-at-integration',
  'rebuild-in-ask',
  'rebuild-while-progressing',
  'refuse-unpriced-budget',
  'release-workspace-after-push',
  'reserve-shadows',
  'resolve-model-profiles',
  'settings-from-history',
  'strip-url-credentials',
  'weaver-status-on-refusal',
  'workspace-liveness-check',
]);

/** `patched(id)` of @temporalio/workflow, with the ids in EPOCH_COVERS answered by the run's one epoch marker. */
export function patched(id: string): boolean {
  if (EPOCH_COVERS.has(id) && sdkPatched(PATCH_EPOCH)) return true;
  return sdkPatched(id);
}
