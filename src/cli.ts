// `weaver` CLI on top of the client SDK: run a task and follow it live, look at a run.
import { parseArgs } from 'node:util';
import { WorkflowUpdateFailedError, type QueryDefinition, type WorkflowHandle } from '@temporalio/client';
import { batchProgressQuery, progressQuery } from './workflows/messages';
import {
  addGuidance,
  approvePush,
  cancelTask,
  getProgress,
  resultOf,
  startCodingTask,
  startTaskBatch,
  webUiLink,
  weaverClient,
  type BatchProgress,
  type BatchResult,
  type CodingTaskResult,
  type Progress,
} from './client';
import { withPagedResults } from './batchStore';
import { awaitingApproval, formatBatch, formatBatchProgress, formatGc, formatProgress, formatResult } from './cliFormat';
import { openArtifactStore } from './activities/s3Artifacts';
import { config } from './config';
import { durationSeconds } from './domain/schema';
import { formatDiffstat, readArtifact, Unavailable, viewRun } from './inspect';
import { InputError, readInputFile } from './cliInput';
import { reportCliError, UsageError } from './cliErrors';

export { formatBatch, formatBatchProgress, formatProgress, formatResult } from './cliFormat';

const USAGE = `usage:
  weaver run <task.json> [--json] [--id <workflowId>] [--detach]
  weaver batch <batch.json> [--json] [--id <workflowId>] [--detach]
  weaver status <workflowId> [--json]
  weaver result <workflowId> [--json]
  weaver diff <workflowId> [--stat]
  weaver logs <workflowId> [--attempt N] [--step NAME]
  weaver guide <workflowId> <text>
  weaver approve <workflowId> [--commit <sha>] [--reject] [comment]
  weaver cancel <workflowId>
  weaver doctor [--json]
  weaver gc [--dry-run] [--older-than 7d] [--json]
  weaver discard <workflowId>   (its unpushed commits' records: gc may then remove their bundles)

any command: --debug shows the stack of an error`;

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
      'dry-run': { type: 'boolean' },
      'older-than': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      debug: { type: 'boolean' },
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
      const input = await readInputFile(arg);
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
      const input = await readInputFile(arg, 'batch file');
      const handle = await startTaskBatch(input, { workflowId: values.id, onWarning: warn });
      if (!values.json) out(`started batch ${handle.workflowId}\n  ${webUiLink(handle.workflowId)}`);
      if (values.detach) {
        if (values.json) out(JSON.stringify({ workflowId: handle.workflowId }));
        return 0;
      }
      const batch = await withPagedResults(await follow<BatchResult, BatchProgress>(handle, values.json ? () => undefined : out, formatBatchProgress, 500, batchProgressQuery));
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
        const result = desc.status.name === 'COMPLETED' ? await withPagedResults((await handle.result()) as BatchResult) : undefined;
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
      if (attempt !== undefined && !(Number.isInteger(attempt) && attempt >= 0)) throw new UsageError(`--attempt must be a whole number (0: the setup steps), got "${values.attempt}"`);
      const { logs } = await viewRun((await weaverClient()).workflow.getHandle(arg));
      // A step asked for by name without an attempt: the last attempt that has it (setup: attempt 0).
      const named = values.step === undefined ? undefined : [...logs].reverse().find((l) => l.steps.some((st) => st.name === values.step));
      const record = attempt === undefined ? (named ?? logs[logs.length - 1]) : logs.find((l) => l.attempt === attempt);
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
        const batch = await withPagedResults((await handle.result()) as BatchResult);
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
      // Without --commit, the decision still names a commit: the one `progress` shows awaiting approval now.
      const shown = values.commit ? undefined : await (await weaverClient()).workflow.getHandle(arg).query(progressQuery).catch(() => undefined);
      const commit = values.commit ?? (shown?.phase === 'awaiting_approval' ? shown.commit : undefined);
      if (commit && !values.commit) out(`${values.reject ? 'rejecting' : 'approving'} commit ${commit} (the one awaiting approval; name it with --commit to be sure)`);
      const decision = { approved: !values.reject, by: process.env.USER, comment: rest.join(' ') || undefined, ...(commit ? { commit } : {}) };
      const answer = await approvePush(arg, decision).catch(
        (err: unknown) => {
          if (err instanceof WorkflowUpdateFailedError) throw new InputError(`${arg}: ${err.cause?.message ?? err.message}`);
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
    case 'doctor': {
      // Loaded here alone: the doctor pulls in the worker (its sandbox probe), which would double every other command's start.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { formatChecks, runDoctor } = require('./doctor') as typeof import('./doctor');
      const checks = await runDoctor();
      out(values.json ? JSON.stringify(checks, null, 2) : formatChecks(checks));
      return checks.every((c) => c.ok) ? 0 : 1;
    }
    case 'gc': {
      // This host's workspaces and caches, and the store they share (settings as the worker's).
      const c = config();
      const olderThan = values['older-than'];
      const seconds = olderThan === undefined ? undefined : durationSeconds(olderThan);
      if (olderThan !== undefined && seconds === undefined) throw new UsageError(`--older-than must be a duration such as 12h, 7d or 2w, got "${olderThan}"`);
      const client = await weaverClient();
      // Loaded here alone, like the doctor: the sweep and the tag cache would slow every other command's start.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { runGc } = require('./gc') as typeof import('./gc');
      const store = openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env: process.env });
      const report = await runGc({ connection: client.connection, namespace: c.namespace, workspaceRoot: c.workspaceRoot, cacheDir: c.cacheDir, store, retentionMs: seconds === undefined ? c.retentionMs : seconds * 1000, cacheMaxBytes: c.cacheMaxBytes, dryRun: values['dry-run'] });
      out(values.json ? JSON.stringify(report, null, 2) : formatGc(report));
      return 0;
    }
    case 'discard': {
      if (!arg) throw new UsageError('discard needs a workflow id');
      const c = config();
      // Loaded here alone, like gc's (it pulls in git).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { discardUnpushed } = require('./activities/unpushed') as typeof import('./activities/unpushed');
      const dropped = await discardUnpushed(openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env: process.env }), arg);
      if (!dropped.length) out(`${arg}: no unpushed commit recorded`);
      for (const u of dropped) out(`discarded unpushed commit ${u.commit} of ${u.workflowId} (bundle ${u.bundle}): weaver gc may now remove it`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

/** What the client changed in the input (credentials taken out of a URL): on stderr, so --json output stays JSON. */
const warn = (message: string) => console.error(`warning: ${message}`);

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

/** Runs the CLI and exits: 0 succeeded, 1 did not, 2 bad input or usage; an error is one line (describeCliError). */
export function runCli(argv: string[]): void {
  main(argv)
    .then((code) => process.exit(code))
    .catch((err: unknown) => process.exit(reportCliError(err, argv.includes('--debug'), USAGE)));
}

if (require.main === module) runCli(process.argv.slice(2));
