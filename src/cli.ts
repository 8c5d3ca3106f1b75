// `weaver` CLI on top of the client SDK: run a task and follow it live, look at a run.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type QueryDefinition, type WorkflowHandle } from '@temporalio/client';
import { batchProgressQuery, progressQuery } from './workflows/messages';
import { formatResources } from './domain/report';
import {
  addGuidance,
  approvePush,
  cancelTask,
  getProgress,
  resultOf,
  startCodingTask,
  startTaskBatch,
  TaskInputError,
  webUiLink,
  weaverClient,
  type BatchProgress,
  type BatchResult,
  type CodingTaskResult,
  type Progress,
  type Usage,
} from './client';
import { formatDiffstat, readArtifact, Unavailable, viewRun } from './inspect';

const USAGE = `usage:
  weaver run <task.json> [--json] [--id <workflowId>] [--detach]
  weaver batch <batch.json> [--json] [--id <workflowId>] [--detach]
  weaver status <workflowId> [--json]
  weaver result <workflowId> [--json]
  weaver diff <workflowId> [--stat]
  weaver logs <workflowId> [--attempt N] [--step NAME]
  weaver guide <workflowId> <text>
  weaver approve <workflowId> [--commit <sha>] [--reject] [comment]
  weaver cancel <workflowId>`;

export async function main(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      id: { type: 'string' },
      detach: { type: 'boolean' },
      reject: { type: 'boolean' },
      commit: { type: 'string' },
      stat: { type: 'boolean' },
      attempt: { type: 'string' },
      step: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, arg, ...rest] = positionals;
  if (values.help) {
    out(USAGE);
    return 0;
  }
  if (!cmd) throw new UsageError('no command given');
  switch (cmd) {
    case 'run': {
      if (!arg) throw new UsageError('run needs a task file');
      const input = await readTaskFile(arg);
      const handle = await startCodingTask(input, { workflowId: values.id, onWarning: warn });
      if (!values.json) out(`started ${handle.workflowId}\n  ${webUiLink(handle.workflowId)}`);
      if (values.detach) {
        if (values.json) out(JSON.stringify({ workflowId: handle.workflowId }));
        return 0;
      }
      const result = await follow(handle, values.json ? () => undefined : out);
      out(values.json ? JSON.stringify(result, null, 2) : formatResult(result));
      return result.status === 'succeeded' ? 0 : 1;
    }
    case 'batch': {
      if (!arg) throw new UsageError('batch needs a batch file ({ "tasks": [...], "concurrency": N })');
      const input = await readTaskFile(arg);
      const handle = await startTaskBatch(input, { workflowId: values.id, onWarning: warn });
      if (!values.json) out(`started batch ${handle.workflowId}\n  ${webUiLink(handle.workflowId)}`);
      if (values.detach) {
        if (values.json) out(JSON.stringify({ workflowId: handle.workflowId }));
        return 0;
      }
      const batch = await follow<BatchResult, BatchProgress>(handle, values.json ? () => undefined : out, formatBatchProgress, 500, batchProgressQuery);
      out(values.json ? JSON.stringify(batch, null, 2) : formatBatch(batch));
      return batch.aggregate.failureCount === 0 ? 0 : 1;
    }
    case 'status': {
      if (!arg) throw new UsageError('status needs a workflow id');
      const client = await weaverClient();
      const handle = client.workflow.getHandle(arg);
      const desc = await handle.describe();
      if (desc.type === 'taskBatch') {
        const progress = await handle.query(batchProgressQuery).catch(() => undefined);
        const result = desc.status.name === 'COMPLETED' ? ((await handle.result()) as BatchResult) : undefined;
        if (values.json) out(JSON.stringify({ status: desc.status.name, type: desc.type, progress, result }, null, 2));
        else {
          const lines = [`${arg}: ${desc.status.name} (taskBatch)`];
          if (progress) lines.push(`  ${formatBatchProgress(progress)}`);
          if (result) lines.push(...formatBatch(result).split('\n').map((l) => `  ${l}`));
          lines.push(`  ${webUiLink(arg)}`);
          out(lines.join('\n'));
        }
        return 0;
      }
      const progress = await getProgress(arg).catch(() => undefined);
      if (values.json) out(JSON.stringify({ status: desc.status.name, progress }, null, 2));
      else out(`${arg}: ${desc.status.name}${progress ? `\n  ${formatProgress(progress)}${awaitingApproval(progress)}` : ''}\n  ${webUiLink(arg)}`);
      return 0;
    }
    case 'diff': {
      if (!arg) throw new UsageError('diff needs a workflow id');
      const view = await viewRun((await weaverClient()).workflow.getHandle(arg));
      if (values.stat) {
        if (!view.diffstat) throw new Unavailable(`${arg}: no diffstat (${view.commit ? 'the run predates them' : `nothing committed yet; the task is ${view.phase}`})`);
        out([`commit ${view.commit}`, ...formatDiffstat(view.diffstat)].join('\n'));
        return 0;
      }
      if (!view.diff) throw new Unavailable(`${arg}: no diff yet (${view.running ? `nothing committed yet; the task is ${view.phase}` : 'the run changed nothing'})`);
      // The diff as git wrote it (pipe it to a pager or `git apply`); where it comes from on stderr.
      if (view.diffOf === 'attempt') console.error(`(no commit diff recorded: the last attempt's change)`);
      out((await readArtifact(view.diff)).replace(/\n$/, ''));
      return 0;
    }
    case 'logs': {
      if (!arg) throw new UsageError('logs needs a workflow id');
      const attempt = values.attempt === undefined ? undefined : Number(values.attempt);
      if (attempt !== undefined && !(Number.isInteger(attempt) && attempt > 0)) throw new UsageError(`--attempt must be a whole number ≥ 1, got "${values.attempt}"`);
      const { logs } = await viewRun((await weaverClient()).workflow.getHandle(arg));
      const record = attempt === undefined ? logs[logs.length - 1] : logs.find((l) => l.attempt === attempt);
      if (!record) {
        throw new Unavailable(`${arg}: ${attempt === undefined ? 'no attempt has finished yet' : `no attempt ${attempt} (finished: ${logs.map((l) => l.attempt).join(', ') || 'none'})`}`);
      }
      const steps = values.step === undefined ? record.steps : record.steps.filter((st) => st.name === values.step);
      if (!steps.length) {
        const names = record.steps.map((st) => st.name).join(', ');
        throw new Unavailable(`${arg}: attempt ${record.attempt} ${values.step === undefined ? 'ran no steps' : `has no step "${values.step}" (steps: ${names || 'none'})`}`);
      }
      for (const st of steps) {
        // One step asked for: its log alone, as written (for grep and pagers); all: each under a header.
        if (values.step === undefined) out(`=== attempt ${record.attempt}, step ${st.name} (${st.kind}): ${st.status} ===`);
        if (st.log) out((await readArtifact(st.log)).replace(/\n$/, ''));
        else out(st.status === 'skipped' ? `(skipped${st.skippedBecause ? `: ${st.skippedBecause}` : ''})` : '(no log)');
      }
      return 0;
    }
    case 'result': {
      if (!arg) throw new UsageError('result needs a workflow id');
      const handle = (await weaverClient()).workflow.getHandle(arg);
      if ((await handle.describe()).type === 'taskBatch') {
        const batch = (await handle.result()) as BatchResult;
        out(values.json ? JSON.stringify(batch, null, 2) : formatBatch(batch));
        return batch.aggregate.failureCount === 0 ? 0 : 1;
      }
      // A failed task's workflow failed with its result as details: shown like any other.
      const result = await resultOf(handle);
      out(values.json ? JSON.stringify(result, null, 2) : formatResult(result));
      return result.status === 'succeeded' ? 0 : 1;
    }
    case 'guide': {
      if (!arg || !rest.length) throw new UsageError('guide needs a workflow id and text');
      await addGuidance(arg, rest.join(' '));
      out(`guidance sent to ${arg}; it goes into the next attempt's prompt`);
      return 0;
    }
    case 'approve': {
      if (!arg) throw new UsageError('approve needs a workflow id');
      const decision = { approved: !values.reject, by: process.env.USER, comment: rest.join(' ') || undefined, ...(values.commit ? { commit: values.commit } : {}) };
      const answer = await approvePush(arg, decision).catch(
        (err: unknown) => {
          if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`${arg}: ${err.cause?.message ?? err.message}`);
          throw err;
        },
      );
      out(`${arg}: ${answer}`);
      return 0;
    }
    case 'cancel': {
      if (!arg) throw new UsageError('cancel needs a workflow id');
      await cancelTask(arg);
      out(`cancellation requested for ${arg}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

class UsageError extends Error {}

/** While a push waits for a person: what they are approving, and how to see it and name it. */
function awaitingApproval(p: Progress): string {
  if (p.phase !== 'awaiting_approval' || !p.commit) return '';
  const stat = p.diffstat ? formatDiffstat(p.diffstat).map((l) => `\n   ${l}`).join('') : '';
  const id = p.workflowId;
  return `\n  commit ${p.commit} awaits approval${stat}\n  see it: weaver diff ${id}; approve it: weaver approve ${id} --commit ${p.commit.slice(0, 12)}`;
}

/** What the client changed in the input (credentials taken out of a URL): on stderr, so --json output stays JSON. */
const warn = (message: string) => console.error(`warning: ${message}`);

/** Bad input that is not a usage mistake (e.g. a task file that is not JSON): exit 2, no usage text. */
class InputError extends Error {}

async function readTaskFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read task file ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InputError(`task file ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Polls the progress query and prints each change of phase, attempt or decision. */
export async function follow<R = CodingTaskResult, P = Progress>(
  handle: WorkflowHandle,
  out: (line: string) => void,
  format: (p: P) => string = formatProgress as unknown as (p: P) => string,
  intervalMs = 500,
  query: QueryDefinition<P> = progressQuery as unknown as QueryDefinition<P>,
): Promise<R> {
  let last = '';
  let done = false;
  // resultOf: a task that did not deliver fails its workflow; its result is still the answer.
  const resultP = resultOf<R>(handle).finally(() => (done = true));
  while (!done) {
    const p = await handle.query(query).catch(() => undefined);
    if (p) {
      const line = format(p);
      if (line !== last) out(`  ${line}`);
      last = line;
    }
    await Promise.race([resultP.catch(() => undefined), new Promise((r) => setTimeout(r, intervalMs))]);
  }
  return resultP;
}

export function formatProgress(p: Progress): string {
  const d = p.lastDecision ? ` — last decision: ${p.lastDecision.action} (${p.lastDecision.why})` : '';
  const s = p.diffstat ? `, ${p.diffstat.filesChanged} file(s) +${p.diffstat.added} -${p.diffstat.removed}` : '';
  const awaiting = p.phase === 'awaiting_approval' && p.commit ? ` — commit ${p.commit.slice(0, 12)} awaits approval${s}` : '';
  return `[${p.phase}${p.step ? `: ${p.step}` : ''}] attempt ${p.attempt}/${p.maxAttempts}, ${p.usage.calls} call(s), ${p.usage.tokensIn + p.usage.tokensOut} tokens, $${p.usage.costUsd.toFixed(4)}${awaiting}${d}`;
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

/** Runs the CLI and exits: 0 succeeded, 1 did not, 2 bad input or usage. */
export function runCli(argv: string[]): void {
  main(argv)
    .then((code) => process.exit(code))
    .catch((err: unknown) => {
      if (err instanceof Unavailable) {
        console.error(err.message);
        process.exit(1);
      }
      if (err instanceof WorkflowNotFoundError) {
        console.error(`no such workflow: ${err.workflowId ?? err.message}`);
        process.exit(1);
      }
      if (err instanceof TaskInputError || err instanceof UsageError || err instanceof InputError) {
        console.error(err.message);
        if (err instanceof UsageError) console.error(USAGE);
        process.exit(2);
      }
      if (err instanceof WorkflowFailedError) {
        console.error(`task failed: ${err.cause?.message ?? err.message}`);
        process.exit(1);
      }
      console.error(err);
      process.exit(1);
    });
}

if (require.main === module) runCli(process.argv.slice(2));
