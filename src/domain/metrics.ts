// Weaver's own Prometheus metrics: their names, units and bounded label values. Pure: the
// activities (provider calls, commands) and the workflow (task outcomes) record through the
// Temporal SDK's metric meter (src/activities/metrics.ts, src/workflows/metrics.ts), which the
// worker's Runtime serves on the same endpoint as the SDK's own (src/telemetry.ts).
// Labels stay bounded: provider ids and models from the registry, outcomes, error families,
// statuses and kinds from fixed lists — never a workflow id, a path or a step's free name.

export const METRICS = {
  /** Counter {provider, model, outcome}: one per HTTP request to a provider. */
  providerCalls: 'weaver_provider_calls_total',
  /** Counter {provider, model, kind: input | cached | output}: input excludes the cached part. */
  providerTokens: 'weaver_provider_tokens_total',
  /**
   * Histogram (float, USD) {provider, model}: the cost of each answered call. The SDK's counters
   * are integers, so the total is this histogram's `_sum` (exact to a float), its `_count` the calls.
   */
  providerCost: 'weaver_provider_cost_usd',
  /** Histogram (ms) {provider, model, outcome}: request to answer (or failure). */
  providerLatency: 'weaver_provider_call_latency_ms',
  /** Counter {status, level: root | child}: finished coding tasks. */
  tasks: 'weaver_tasks_total',
  /** Histogram {status, level}: attempts a finished task made. */
  taskAttempts: 'weaver_task_attempts',
  /** Counter {limit}: commands a sandbox limit (or the timeout) ended or hampered. */
  sandboxKills: 'weaver_sandbox_kills_total',
  /** Histogram (ms) {kind, status: passed | failed}: one sandboxed command (setup, a check step, tests). */
  stepDuration: 'weaver_step_duration_ms',
} as const;

/** Bucket bounds where the SDK's defaults do not fit: calls take seconds to minutes, costs are cents. */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [METRICS.providerLatency]: [250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000],
  [METRICS.providerCost]: [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  [METRICS.taskAttempts]: [1, 2, 3, 5, 8, 13, 20],
  [METRICS.stepDuration]: [100, 1000, 5000, 15_000, 60_000, 300_000, 900_000, 1_800_000],
};

/** The limit a sandbox result names (src/activities/sandbox/limits.ts wording), as a label value. */
export function limitLabel(limit: string | undefined, timedOut: boolean): string | undefined {
  if (limit) {
    const known: [RegExp, string][] = [
      [/memory limit/, 'memory'],
      [/file size limit/, 'file_size'],
      [/CPU time limit/, 'cpu'],
      [/process limit/, 'processes'],
      [/disk limit/, 'disk'],
      [/egress/, 'egress'],
    ];
    return known.find(([re]) => re.test(limit))?.[1] ?? 'other';
  }
  return timedOut ? 'timeout' : undefined;
}

/** The step kind of a command's log kind (`test-log`, `setup-log`, `lint-log`…), bounded. */
export function stepKindLabel(logKind: string): string {
  const kind = logKind.replace(/-log$/, '');
  return ['setup', 'format', 'lint', 'typecheck', 'test', 'build'].includes(kind) ? kind : 'custom';
}

/** A task's depth as a label: roots are what operators count; children are parts of one. */
export const levelLabel = (depth: number): 'root' | 'child' => (depth > 0 ? 'child' : 'root');
