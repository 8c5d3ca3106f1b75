// How the `weaver` CLI prints progress, results and batches (src/cli.ts runs the commands).
import { formatResources } from './domain/report';
import type { BatchProgress, BatchResult, CodingTaskResult, Progress, Usage } from './domain/schema';
import { formatDiffstat } from './inspect';
import { formatBytes, totalBytes } from './activities/commands';
import type { GcReport } from './gc';

export function formatProgress(p: Progress): string {
  const d = p.lastDecision ? ` — last decision: ${p.lastDecision.action} (${p.lastDecision.why})` : '';
  const s = p.diffstat ? `, ${p.diffstat.filesChanged} file(s) +${p.diffstat.added} -${p.diffstat.removed}` : '';
  const awaiting = p.phase === 'awaiting_approval' && p.commit ? ` — commit ${p.commit.slice(0, 12)} awaits approval${s}` : '';
  // Cost routing or escalation: who this attempt is calling and why.
  const route = p.route && p.route.attempt === p.attempt ? ` — ${p.route.provider} (${p.route.model}): ${p.route.reason.slice(0, 120)}` : '';
  return `[${p.phase}${p.step ? `: ${p.step}${p.then ? `; then ${p.then}` : ''}` : ''}] attempt ${p.attempt}/${p.maxAttempts}, ${p.usage.calls} call(s), ${p.usage.tokensIn + p.usage.tokensOut} tokens, $${p.usage.costUsd.toFixed(4)}${route}${awaiting}${d}`;
}

export function formatBatchProgress(p: BatchProgress): string {
  return `${p.finished}/${p.total} finished, ${p.running} running, ${p.successCount} succeeded`;
}

function formatUsage(u: Usage): string {
  return `${u.calls} call(s), ${u.tokensIn} in / ${u.tokensOut} out tokens, $${u.costUsd.toFixed(6)}`;
}

/** Per-task status and the aggregate of a taskBatch result. */
export function formatBatch(b: BatchResult): string {
  const a = b.aggregate;
  const lines = [
    `batch: ${a.successCount}/${a.total} succeeded, ${a.failureCount} failed`,
    ...b.results.map(
      (r) =>
        `  ${r.workflowId}: ${r.status}${r.status === 'succeeded' ? '' : ` (${r.reason.split('\n')[0].slice(0, 160)})`}` +
        ` — ${r.branch}${r.commit ? ` @ ${r.commit.slice(0, 12)}` : ''}${r.pushed ? ' (pushed)' : ''}`,
    ),
    `usage: ${formatUsage(a.usage)}`,
  ];
  const providers = Object.entries(a.usage.byProvider ?? {});
  for (const [id, u] of providers) lines.push(`  ${id}: ${u.calls} call(s), $${u.costUsd.toFixed(6)}`);
  return lines.join('\n');
}

export function formatResult(r: CodingTaskResult): string {
  const lines = [
    `status: ${r.status}`,
    `reason: ${r.reason}`,
    `branch: ${r.branch}${r.commit ? ` @ ${r.commit.slice(0, 12)}` : ''}${r.pushed ? ' (pushed)' : r.workspace ? ` (in ${r.workspace})` : ''}`,
    ...(r.checks ? [`checks: ${r.checks.description}`] : []),
    `attempts: ${r.attempts.length}`,
    ...r.attempts.map(
      (a) =>
        `  #${a.attempt} ${a.provider ?? '-'}: ${a.outcome}${a.detail ? ` (${a.detail.slice(0, 120)})` : ''} → ${a.decision.action}` +
        (a.routing?.tried.length ? ` (called: ${a.routing.tried.map((t) => `${t.provider}, ${t.reason.slice(0, 80)}`).join('; ')})` : '') +
        (a.steps?.length ? ` [${a.steps.map((s) => `${s.name} ${s.status}`).join(', ')}]` : '') +
        (a.tests?.limit ? `\n      stopped by a limit: ${a.tests.limit}` : '') +
        (a.tests?.resources ? `\n      tests used ${formatResources(a.tests.resources)}` : ''),
    ),
    `usage: ${formatUsage(r.usage)}`,
  ];
  if (r.aggregate) lines.push(`children: ${r.aggregate.successCount}/${r.aggregate.total} succeeded`);
  const report = r.artifacts.find((a) => a.kind === 'report');
  if (report) lines.push(`report: ${report.ref}`);
  return lines.join('\n');
}

/** While a push waits for a person: what they are approving, and how to see it and name it. */
export function awaitingApproval(p: Progress): string {
  if (p.phase !== 'awaiting_approval' || !p.commit) return '';
  const stat = p.diffstat ? formatDiffstat(p.diffstat).map((l) => `\n   ${l}`).join('') : '';
  const id = p.workflowId;
  return `\n  commit ${p.commit} awaits approval${stat}\n  see it: weaver diff ${id}; approve it: weaver approve ${id} --commit ${p.commit.slice(0, 12)}`;
}


const GC_LISTED = 50;

/** What `weaver gc` removed (or, dry, would remove) and kept, with sizes and reasons. */
export function formatGc(r: GcReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const days = (ms: number) => (ms >= 86_400_000 ? `${(ms / 86_400_000).toFixed(1)}d` : ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)}h` : `${Math.round(ms / 1000)}s`);
  const { workspaces: ws, artifacts: a, tagCache: t } = r;
  const lines = [`retention ${days(r.retentionMs)}${r.dryRun ? ' (dry run: nothing removed)' : ''}; ${r.openRuns} open run(s) asked for their references`];
  lines.push(`workspaces: ${verb} ${ws.removed.length} (${totalBytes(ws.removed)}), kept ${ws.kept.length}`);
  for (const w of ws.removed) lines.push(`  - ${w.name} (${formatBytes(w.bytes ?? 0)}): run ${w.workflowId} ${w.status.toLowerCase()}`);
  for (const k of ws.kept) lines.push(`  = ${k.name}: ${k.why}`);
  lines.push(`artifacts: ${verb} ${a.removed.length} (${totalBytes(a.removed)}), kept ${a.kept.length} old ones still referenced (${totalBytes(a.kept)}) and ${a.young.count} younger than the retention (${formatBytes(a.young.bytes)})`);
  // Thousands of artifacts can go at once: the first ones here, all of them with --json.
  const some = <T>(xs: T[], line: (x: T) => string) => {
    lines.push(...xs.slice(0, GC_LISTED).map(line));
    if (xs.length > GC_LISTED) lines.push(`  … and ${xs.length - GC_LISTED} more (--json lists all)`);
  };
  some(a.removed, (x) => `  - ${x.what} (${formatBytes(x.bytes)}, ${days(x.ageMs)} old${x.from === 'cache' ? ', local cache copy' : ''})`);
  some(a.kept, (x) => `  = ${x.what} (${formatBytes(x.bytes)}, ${days(x.ageMs)} old): ${x.why}`);
  lines.push(`tag cache: ${verb} ${t.entriesRemoved} entries not used within the retention (${t.segmentsRemoved} segment(s) rewritten or removed, ${formatBytes(t.bytesFreed)}), kept ${t.entriesKept}`);
  lines.push(`unpushed commits: ${r.unpushed.length} recorded in the store, their bundles kept whatever their age`);
  some(r.unpushed, (u) => `  kept: unpushed commit ${u.commit} of ${u.workflowId} (bundle ${u.bundle}, branch ${u.branch}${u.repo ? ` of ${u.repo}` : ''})`);
  const c = r.caches;
  if (c) {
    const by = `tag cache ${formatBytes(c.sizes['tag cache'])}, toolchain caches ${formatBytes(c.sizes['toolchain cache'])}, artifact cache ${formatBytes(c.sizes['artifact cache'])}`;
    const over = c.totalBytes > c.capBytes ? `: ${r.dryRun ? 'would evict' : 'evicted'} ${c.evicted.length} (${formatBytes(c.freedBytes)} freed), least recently used first` : ', within it';
    lines.push(`caches: ${formatBytes(c.totalBytes)} of the ${formatBytes(c.capBytes)} cap (${by})${over}`);
    some(c.evicted, (x) => `  - ${x.kind} ${x.what} (${formatBytes(x.bytes)}, last used ${days(r.now - x.usedMs)} ago)`);
    some(c.inUse, (x) => `  = ${x.kind} ${x.what} (${formatBytes(x.bytes)}): kept, ${x.why}`);
  }
  return lines.join('\n');
}
