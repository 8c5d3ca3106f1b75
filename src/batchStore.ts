// The client's side of a batch in the artifact store: a big task list is uploaded (the batch's
// input then names it, instead of carrying up to 2 MB of tasks), and the results, paged into the
// store by the batch, are read back in input order.
import { openArtifactStore } from './activities/s3Artifacts';
import { config, type WeaverConfig } from './config';
import { BATCH_TASKS_KIND, joinPages, toJsonLines } from './domain/batch';
import type { ArtifactRef, BatchResult, CodingTaskInput, CodingTaskResult } from './domain/schema';

/** Where the workers' artifacts are (their WEAVER_ARTIFACT_DIR / WEAVER_ARTIFACTS); default: this process's settings. */
export type StoreSettings = Pick<WeaverConfig, 'artifactDir' | 'artifacts'>;

/** Above this much JSON a batch's tasks are uploaded rather than sent inline (Temporal refuses inputs over ~2 MB). */
export const INLINE_TASKS_MAX_BYTES = 256 * 1024;

function storeOf(c: StoreSettings = config(), env: NodeJS.ProcessEnv = process.env) {
  return openArtifactStore({ artifacts: c.artifacts, dir: c.artifactDir, env });
}

/** Stores the task list as JSON Lines; the batch reads it a page at a time. */
export async function uploadBatchTasks(tasks: CodingTaskInput[], store?: StoreSettings): Promise<ArtifactRef> {
  return storeOf(store).put(BATCH_TASKS_KIND, toJsonLines(tasks));
}

/** The batch's result with every row, in input order: those it returned inline, else read from its pages. */
export async function withPagedResults(result: BatchResult, store?: StoreSettings): Promise<BatchResult> {
  if (!result.pages?.length || result.results.length === result.aggregate.total) return result;
  const s = storeOf(store);
  const results = await joinPages(result.pages, async (p) => JSON.parse(await s.read(p.ref)) as CodingTaskResult[]);
  return { ...result, results };
}
