// Usage ledger arithmetic. Pure: the workflow adds completed call results here, so every
// paid answer is counted exactly once (design rule 5).
import { roundUsd } from './pricing';
import type { ModelUsage, ProviderUsage, Usage } from './schema';

export function emptyUsage(): Usage {
  return { tokensIn: 0, tokensOut: 0, costUsd: 0, calls: 0, estimatedCostUsd: 0, byProvider: {} };
}

export interface CallUsage {
  provider: string;
  /** Counted per model too where given (calls booked since per-model usage). */
  model?: string;
  tokensIn: number;
  tokensOut: number;
  tokensCached?: number;
  costUsd: number;
  latencyMs: number;
  /** Error family when the call failed (no tokens then). */
  errorFamily?: string;
}

export function recordCall(usage: Usage, call: CallUsage): void {
  const p: ProviderUsage = (usage.byProvider[call.provider] ??= {
    calls: 0,
    failures: {},
    tokensIn: 0,
    tokensOut: 0,
    costUsd: 0,
    meanLatencyMs: 0,
    latencyMsSum: 0,
  });
  p.calls += 1;
  p.latencyMsSum += call.latencyMs;
  p.meanLatencyMs = Math.round(p.latencyMsSum / p.calls);
  p.tokensIn += call.tokensIn;
  p.tokensOut += call.tokensOut;
  p.costUsd = roundUsd(p.costUsd + call.costUsd);
  if (call.errorFamily) p.failures[call.errorFamily] = (p.failures[call.errorFamily] ?? 0) + 1;
  addCached(p, call.tokensCached);
  if (call.model !== undefined) {
    const m = modelOf(p, call.model);
    m.calls += 1;
    m.tokensIn += call.tokensIn;
    m.tokensOut += call.tokensOut;
    m.costUsd = roundUsd(m.costUsd + call.costUsd);
    addCached(m, call.tokensCached);
    if (call.errorFamily) m.failures[call.errorFamily] = (m.failures[call.errorFamily] ?? 0) + 1;
    rate(m);
    rate(p);
  }
  addCached(usage, call.tokensCached);
  usage.calls += 1;
  usage.tokensIn += call.tokensIn;
  usage.tokensOut += call.tokensOut;
  usage.costUsd = roundUsd(usage.costUsd + call.costUsd);
}

const emptyModel = (): ModelUsage => ({ calls: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, failures: {}, succeeded: 0, successRate: 0 });

function modelOf(p: ProviderUsage, model: string): ModelUsage {
  const byModel = (p.byModel ??= {});
  // Own keys only: a model named like an Object.prototype member must not reach it.
  if (!Object.prototype.hasOwnProperty.call(byModel, model)) byModel[model] = emptyModel();
  return byModel[model];
}

/** successRate from succeeded / calls (a provider's only once it counts per model). */
function rate(u: { calls: number; succeeded?: number; successRate?: number }): void {
  u.succeeded ??= 0;
  u.successRate = u.calls ? Math.round((u.succeeded / u.calls) * 1e4) / 1e4 : 0;
}

/** A provider's answer a task committed (its checks passed): counted for it and its model. */
export function recordSucceeded(usage: Usage, provider: string, model: string): void {
  const p = usage.byProvider[provider];
  if (!p) return;
  const m = modelOf(p, model);
  m.succeeded += 1;
  rate(m);
  p.succeeded = (p.succeeded ?? 0) + 1;
  rate(p);
}

/** An estimated spend (lost or cut-off call) on its provider and model. */
export function addEstimated(usage: Usage, provider: string, model: string | undefined, usd: number): void {
  const p = usage.byProvider[provider];
  if (!p) return;
  p.estimatedCostUsd = roundUsd((p.estimatedCostUsd ?? 0) + usd);
  const m = model !== undefined ? p.byModel?.[model] : undefined;
  if (m) m.estimatedCostUsd = roundUsd((m.estimatedCostUsd ?? 0) + usd);
}

/** Cached tokens are counted only where some were reported: ledgers without any stay as they were. */
function addCached(to: { tokensCached?: number }, n: number | undefined): void {
  if (n) to.tokensCached = (to.tokensCached ?? 0) + n;
}

export function recordShadowCall(usage: Usage, call: CallUsage): void {
  const s = (usage.shadow ??= { tokensIn: 0, tokensOut: 0, costUsd: 0, calls: 0 });
  s.calls += 1;
  s.tokensIn += call.tokensIn;
  s.tokensOut += call.tokensOut;
  s.costUsd = roundUsd(s.costUsd + call.costUsd);
}

/** Sums ledgers (a parent's own usage plus its children's). */
export function mergeUsage(...all: Usage[]): Usage {
  const out = emptyUsage();
  for (const u of all) {
    out.tokensIn += u.tokensIn;
    out.tokensOut += u.tokensOut;
    out.costUsd = roundUsd(out.costUsd + u.costUsd);
    out.calls += u.calls;
    addCached(out, u.tokensCached);
    out.estimatedCostUsd = roundUsd(out.estimatedCostUsd + u.estimatedCostUsd);
    for (const [id, p] of Object.entries(u.byProvider)) {
      const q = (out.byProvider[id] ??= { calls: 0, failures: {}, tokensIn: 0, tokensOut: 0, costUsd: 0, meanLatencyMs: 0, latencyMsSum: 0 });
      q.calls += p.calls;
      q.latencyMsSum += p.latencyMsSum;
      q.meanLatencyMs = q.calls ? Math.round(q.latencyMsSum / q.calls) : 0;
      q.tokensIn += p.tokensIn;
      q.tokensOut += p.tokensOut;
      q.costUsd = roundUsd(q.costUsd + p.costUsd);
      addCached(q, p.tokensCached);
      for (const [f, n] of Object.entries(p.failures)) q.failures[f] = (q.failures[f] ?? 0) + n;
      if (p.estimatedCostUsd) q.estimatedCostUsd = roundUsd((q.estimatedCostUsd ?? 0) + p.estimatedCostUsd);
      if (p.succeeded !== undefined || p.byModel) {
        q.succeeded = (q.succeeded ?? 0) + (p.succeeded ?? 0);
        rate(q);
      }
      for (const [model, m] of Object.entries(p.byModel ?? {})) {
        const r = modelOf(q, model);
        r.calls += m.calls;
        r.tokensIn += m.tokensIn;
        r.tokensOut += m.tokensOut;
        r.costUsd = roundUsd(r.costUsd + m.costUsd);
        addCached(r, m.tokensCached);
        if (m.estimatedCostUsd) r.estimatedCostUsd = roundUsd((r.estimatedCostUsd ?? 0) + m.estimatedCostUsd);
        for (const [f, n] of Object.entries(m.failures)) r.failures[f] = (r.failures[f] ?? 0) + n;
        r.succeeded += m.succeeded;
        rate(r);
      }
    }
    if (u.shadow) {
      const s = (out.shadow ??= { tokensIn: 0, tokensOut: 0, costUsd: 0, calls: 0 });
      s.calls += u.shadow.calls;
      s.tokensIn += u.shadow.tokensIn;
      s.tokensOut += u.shadow.tokensOut;
      s.costUsd = roundUsd(s.costUsd + u.shadow.costUsd);
      if (u.shadow.estimatedCostUsd) s.estimatedCostUsd = roundUsd((s.estimatedCostUsd ?? 0) + u.shadow.estimatedCostUsd);
    }
  }
  return out;
}

/** What a ledger's usage spent, known and estimated; with `shadows`, its shadow calls' too. */
export function spentUsd(u: Usage, shadows: boolean): number {
  const s = shadows ? u.shadow : undefined;
  return roundUsd(u.costUsd + u.estimatedCostUsd + (s ? s.costUsd + (s.estimatedCostUsd ?? 0) : 0));
}
