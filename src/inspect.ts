// What a run left for a person to read — the diff it committed (or is asking approval for) and
// its step logs — found through the workflow (the `progress` query while it runs, the result
// once it has finished) and read from the artifact store the workers write to.
import { existsSync } from 'node:fs';
import { openArtifactStore } from './activities/s3Artifacts';
import { resultOf } from './client';
import { config, type WeaverConfig } from './config';
import type { ArtifactRef, AttemptLogs, CodingTaskResult, Diffstat, Progress } from './domain/schema';
import { attemptLogs, stepLogs } from './domain/stepLogs';
import { progressQuery } from './workflows/messages';
import type { WorkflowHandle } from '@temporalio/client';

/** Something the run does not have, or that cannot be read from here: exit 1 with the message. */
export class Unavailable extends Error {}

/** What `weaver diff` and `weaver logs` need of a run, from wherever the run keeps it now. */
export interface RunView {
  running: boolean;
  phase?: Progress['phase'];
  commit?: string;
  diffstat?: Diffstat;
  diff?: ArtifactRef;
  /** Where `diff` comes from: the commit (under approval or final), or the last attempt's change. */
  diffOf?: 'commit' | 'attempt';
  logs: AttemptLogs[];
}

/**
 * A running task through its `progress` query; a finished one through its result (a failed
 * task's too: resultOf). A closed run without a result (terminated) is queried like a running one.
 */
export async function viewRun(handle: WorkflowHandle): Promise<RunView> {
  const desc = await handle.describe();
  if (desc.type !== 'codingTask') throw new Unavailable(`${handle.workflowId} is a ${desc.type}; diff and logs are per codingTask (see its tasks' ids with \`weaver status\`)`);
  if (desc.status.name !== 'RUNNING') {
    const result = await resultOf(handle).catch(() => undefined);
    if (result) return fromResult(result);
  }
  const p = await handle.query(progressQuery);
  return { running: desc.status.name === 'RUNNING', phase: p.phase, commit: p.commit, diffstat: p.diffstat, diff: p.diff, diffOf: p.diff ? 'commit' : undefined, logs: p.logs ?? [] };
}

function fromResult(r: CodingTaskResult): RunView {
  // Results from before commits were described, or runs that never committed: the last
  // attempt's applied change is the diff there is.
  const lastDiff = [...r.attempts].reverse().flatMap((a) => a.artifacts.filter((x) => x.kind === 'diff'))[0];
  const diff = r.diff ?? lastDiff;
  return {
    running: false,
    phase: 'done',
    commit: r.commit,
    diffstat: r.diffstat,
    diff,
    diffOf: r.diff ? 'commit' : diff ? 'attempt' : undefined,
    // The setup steps ran once, when the workspace was prepared: "attempt 0" (`--attempt 0`, or `--step setup`).
    logs: [...(r.checks?.setup?.length ? [{ attempt: 0, steps: stepLogs({ steps: r.checks.setup }) }] : []), ...attemptLogs(r.attempts)],
  };
}

/**
 * An artifact's text from the workers' store: WEAVER_ARTIFACTS (an S3 bucket, with the AWS_*
 * variables) when set, else the directory WEAVER_ARTIFACT_DIR (default relative to the current
 * one — the workers' default is relative to theirs), on their machine or one they share.
 */
export async function readArtifact(ref: ArtifactRef, c: Pick<WeaverConfig, 'artifactDir' | 'artifacts'> = config(), env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const hint = c.artifacts
    ? 'set WEAVER_ARTIFACTS and the AWS_* variables as the workers have them'
    : "set WEAVER_ARTIFACT_DIR to the workers' artifact store (the same directory, on their machine or shared with it), or WEAVER_ARTIFACTS to their object store";
  if (!c.artifacts && !existsSync(c.artifactDir)) throw new Unavailable(`the artifact store is not reachable from here: ${c.artifactDir} does not exist; ${hint}`);
  const store = openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env });
  try {
    return await store.read(ref);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Unavailable(`${ref.kind} ${ref.ref} is not in the artifact store at ${store.where}; ${hint}`);
  }
}

/** `git diff --stat`-like lines: one per file, then the totals. */
export function formatDiffstat(s: Diffstat): string[] {
  const width = Math.min(60, Math.max(0, ...s.files.map((f) => f.path.length)));
  const lines = s.files.map((f) => ` ${f.path.padEnd(width)} | ${f.binary ? 'binary' : `+${f.added} -${f.removed}`}`);
  if (s.moreFiles) lines.push(` … and ${s.moreFiles} more file(s)`);
  lines.push(` ${s.filesChanged} file(s) changed, +${s.added} -${s.removed}`);
  return lines;
}
