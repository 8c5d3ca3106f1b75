// Weaver's metrics from the activities, through the running activity's metric meter (the SDK's:
// served by the worker's Runtime with its own metrics; a no-op when no exporter is set up).
// Names and labels: src/domain/metrics.ts.
import { Context } from '@temporalio/activity';
import type { MetricMeter } from '@temporalio/common';
import { limitLabel, METRICS, stepKindLabel } from '../domain/metrics';

/** The running activity's meter; none outside an activity (unit calls), where nothing is recorded. */
function meter(): MetricMeter | undefined {
  try {
    return Context.current().metricMeter;
  } catch {
    return undefined;
  }
}

export interface CallFigures {
  provider: string;
  model: string;
  /** The answer's verdict (`ok`, `truncated`, `schema_violation`…) or the failure's error family. */
  outcome: string;
  latencyMs: number;
  /** Only for an answered call: the tokens and cost the provider reported (the ledger books the same). */
  tokensIn?: number;
  tokensOut?: number;
  tokensCached?: number;
  costUsd?: number;
}

/**
 * One request to a provider, recorded by the execution that made it: a retry delivering a kept
 * answer (src/activities/answers.ts) never records it again, so a call booked once is counted once.
 */
export function recordProviderCall(c: CallFigures): void {
  const m = meter();
  if (!m) return;
  const tags = { provider: c.provider, model: c.model };
  m.createCounter(METRICS.providerCalls, 'calls', 'Provider requests by outcome (answer verdict or error family)').add(1, { ...tags, outcome: c.outcome });
  m.createHistogram(METRICS.providerLatency, 'int', 'ms', 'Provider call latency').record(Math.max(0, Math.round(c.latencyMs)), { ...tags, outcome: c.outcome });
  if (c.tokensIn === undefined) return;
  const cached = Math.min(c.tokensCached ?? 0, c.tokensIn);
  const tokens = m.createCounter(METRICS.providerTokens, 'tokens', 'Provider tokens: input (uncached), cached input, output');
  tokens.add(c.tokensIn - cached, { ...tags, kind: 'input' });
  if (cached) tokens.add(cached, { ...tags, kind: 'cached' });
  tokens.add(c.tokensOut ?? 0, { ...tags, kind: 'output' });
  m.createHistogram(METRICS.providerCost, 'float', 'USD', 'Cost of each answered call at the registry price (sum: total spend)').record(c.costUsd ?? 0, tags);
}

/** One sandboxed command: its duration by step kind, and the limit that ended it if one did. */
export function recordCommand(logKind: string, r: { durationMs: number; timedOut: boolean; passed: boolean }, limit: string | undefined): void {
  const m = meter();
  if (!m) return;
  m.createHistogram(METRICS.stepDuration, 'int', 'ms', 'Sandboxed command (setup, check step, tests) wall time').record(Math.max(0, Math.round(r.durationMs)), {
    kind: stepKindLabel(logKind),
    status: r.passed ? 'passed' : 'failed',
  });
  const hit = limitLabel(limit, r.timedOut);
  if (hit) m.createCounter(METRICS.sandboxKills, 'commands', 'Commands a sandbox limit or the timeout ended or hampered').add(1, { limit: hit });
}

