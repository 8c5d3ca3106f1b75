// Reading a batch's stored task list a page at a time (workflows/taskBatch.ts): the workflow's
// history holds one page of tasks per read, never the whole list.
import { ApplicationFailure } from '@temporalio/activity';
import { jsonLinesWindow } from '../domain/batch';
import type { ArtifactRef } from '../domain/schema';
import type { ArtifactStore } from './artifacts';

export interface ReadBatchTasksRequest {
  tasks: ArtifactRef;
  from: number;
  count: number;
}

export async function readBatchTasks(store: Pick<ArtifactStore, 'read' | 'where'>, req: ReadBatchTasksRequest): Promise<{ tasks: unknown[]; total: number }> {
  let text: string;
  try {
    text = await store.read(req.tasks);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // The client uploaded it to another store than the workers': retrying will not find it.
    throw ApplicationFailure.nonRetryable(`the batch's task list ${req.tasks.ref} is not in the workers' artifact store (${store.where}): upload it where the workers read (WEAVER_ARTIFACT_DIR / WEAVER_ARTIFACTS)`, 'BatchTasksMissing');
  }
  const { items, total } = jsonLinesWindow(text, req.from, req.count);
  return { tasks: items, total };
}
