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
// A covered set is frozen: a history with an epoch's marker was made by code with every change
// it lists, so adding an id to it would make that id true for runs that never had it. A later
// change gets a new epoch (its set: the last one's and the change) — so a run still records one
// marker — and the older epochs stay, for the histories that hold them.
import { patched as sdkPatched } from '@temporalio/workflow';

/** The changes of the first epoch (frozen). */
const EPOCH_1: ReadonlySet<string> = new Set([
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

/** The epochs, newest first; each covers the one before it and the changes made since (frozen). */
export const EPOCHS: ReadonlyArray<{ marker: string; covers: ReadonlySet<string> }> = [
  { marker: 'weaver-epoch-2', covers: new Set([...EPOCH_1, 'commit-with-checks', 'prepare-waits-for-cancel']) },
  { marker: 'weaver-epoch-1', covers: EPOCH_1 },
];

/** The marker a run of this code records. */
export const PATCH_EPOCH = EPOCHS[0].marker;
/** What that marker answers. */
export const EPOCH_COVERS = EPOCHS[0].covers;

/**
 * `patched(id)` of @temporalio/workflow, with a covered id answered by the run's one epoch
 * marker: the newest epoch's for runs of this code, an older one's while an older history
 * replays (the newer markers are not in it), else the change's own marker.
 */
export function patched(id: string): boolean {
  for (const epoch of EPOCHS) if (epoch.covers.has(id) && sdkPatched(epoch.marker)) return true;
  return sdkPatched(id);
}
