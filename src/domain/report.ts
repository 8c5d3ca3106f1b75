// A short human-readable report of a run, stored as an artifact. Pure: the workflow renders
// it, so the (large) result is not sent through history a second time.
import { howItEnded } from './decider';
import type { CodingTaskResult, ResourceUsage } from './schema';

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/** What a command used, in a few words: `3.10 s wall, 2.95 s CPU, 105 MiB peak (cgroup v1)`. */
export function formatResources(u: ResourceUsage): string {
  const parts = [`${seconds(u.wallMs)} wall`];
  if (u.cpuMs !== undefined) parts.push(`${seconds(u.cpuMs)} CPU`);
  if (u.peakMemoryMb !== undefined) parts.push(`${u.peakMemoryMb} MiB peak`);
  return `${parts.join(', ')} (${u.measuredBy})`;
}

export function renderReport(r: CodingTaskResult, title: string): string {
  const lines = [
    `# ${title}`,
    '',
    `- status: **${r.status}** — ${r.reason}`,
    `- branch: \`${r.branch}\`${r.commit ? ` @ ${r.commit}` : ''}${r.pushed ? ' (pushed)' : r.workspace ? ` (in ${r.workspace})` : ''}`,
    `- usage: ${r.usage.calls} call(s), ${r.usage.tokensIn} in / ${r.usage.tokensOut} out tokens, $${r.usage.costUsd.toFixed(6)}` +
      (r.usage.estimatedCostUsd ? ` + $${r.usage.estimatedCostUsd.toFixed(6)} estimated (lost answers)` : '') +
      (r.usage.shadow ? `; shadow $${r.usage.shadow.costUsd.toFixed(6)}` : ''),
    ...(r.checks ? [`- checks: ${r.checks.description}`] : []),
    ...(r.warnings ?? []).map((w) => `- warning: ${w}`),
    '',
    '| attempt | provider | outcome | tests used | decision |',
    '| --- | --- | --- | --- | --- |',
    ...r.attempts.map(
      (a) =>
        `| ${a.attempt} | ${a.provider ?? '-'} | ${a.outcome}${a.detail ? ` (${a.detail.slice(0, 80)})` : ''}${a.tests?.limit ? ` — ${a.tests.limit}` : ''} | ` +
        `${a.tests?.resources ? formatResources(a.tests.resources) : '-'} | ${a.decision.action}: ${a.decision.why.slice(0, 160)} |`,
    ),
  ];
  // Cost routing or escalation: each provider called, and why.
  const routes = r.attempts.flatMap((a) => (a.routing?.tried ?? []).map((t) => ({ attempt: a.attempt, ...t })));
  if (routes.length) {
    lines.push('', '| attempt | provider called | model | why |', '| --- | --- | --- | --- |');
    for (const t of routes) lines.push(`| ${t.attempt} | ${t.provider} | ${t.model} | ${t.reason.slice(0, 160)} |`);
  }
  // parallel-all: every answer as its own workspace's checks judged it, and the one used.
  const candidates = r.attempts.flatMap((a) => (a.candidates ?? []).map((c) => ({ attempt: a.attempt, used: a.provider === c.provider, ...c })));
  if (candidates.length) {
    lines.push('', '| attempt | answer from | its checks | cost | used |', '| --- | --- | --- | --- | --- |');
    for (const c of candidates) lines.push(`| ${c.attempt} | ${c.provider} | ${c.outcome}${c.detail ? ` (${c.detail.slice(0, 80)})` : ''} | $${c.costUsd.toFixed(6)} | ${c.used ? 'yes' : '-'} |`);
  }
  const steps = [...(r.checks?.setup ?? []).map((s) => ({ attempt: '-' as number | string, ...s })), ...r.attempts.flatMap((a) => (a.steps ?? []).map((s) => ({ attempt: a.attempt as number | string, ...s })))];
  if (steps.length) {
    lines.push('', '| attempt | step | outcome | time | CPU | peak memory |', '| --- | --- | --- | --- | --- | --- |');
    for (const s of steps) {
      const outcome = s.status === 'skipped' ? `skipped (${s.skippedBecause ?? ''})` : s.status === 'failed' ? `failed (${howItEnded(s)})` : 'passed';
      const res = s.resources;
      const secs = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
      lines.push(`| ${s.attempt} | ${s.name} | ${outcome} | ${secs(s.durationMs)} | ${secs(res?.cpuMs)} | ${res?.peakMemoryMb === undefined ? '-' : `${res.peakMemoryMb} MiB`} |`);
    }
  }
  if (r.children?.length) {
    lines.push('', '| child | status | merged | reason |', '| --- | --- | --- | --- |');
    for (const c of r.children) lines.push(`| ${c.workflowId} | ${c.status} | ${c.merged ?? '-'} | ${(c.conflict ?? c.reason).slice(0, 160)} |`);
  }
  const byProvider = Object.entries(r.usage.byProvider);
  if (byProvider.length) {
    lines.push('', '| provider | calls | failures | tokens in/out | cost | mean latency |', '| --- | --- | --- | --- | --- | --- |');
    for (const [id, p] of byProvider) {
      const failures = Object.entries(p.failures).map(([f, n]) => `${f}×${n}`).join(', ') || '-';
      lines.push(`| ${id} | ${p.calls} | ${failures} | ${p.tokensIn}/${p.tokensOut} | $${p.costUsd.toFixed(6)} | ${p.meanLatencyMs} ms |`);
    }
    const models = byProvider.flatMap(([id, p]) => Object.entries(p.byModel ?? {}).map(([model, m]) => ({ id, model, ...m })));
    if (models.length) {
      lines.push('', '| provider | model | calls | tokens in/out (cached) | cost | succeeded |', '| --- | --- | --- | --- | --- | --- |');
      for (const m of models) {
        lines.push(`| ${m.id} | ${m.model} | ${m.calls} | ${m.tokensIn}/${m.tokensOut} (${m.tokensCached ?? 0}) | $${m.costUsd.toFixed(6)} | ${m.succeeded}/${m.calls} (${Math.round(m.successRate * 100)}%) |`);
      }
    }
  }
  return lines.join('\n') + '\n';
}
