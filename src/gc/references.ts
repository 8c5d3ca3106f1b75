// What retention must keep in the artifact store whatever its age (src/gc/index.ts): every
// artifact an open run refers to, and the git bundle holding a closed run's unpushed commit.
// An open run's references are read from its whole history (inputs, activity results, children's
// results, signals) and its pending activities' heartbeat details: a scan for `sha256:<hex>`, so
// no field can be missed as the schema grows. What is too new to be in history yet (an activity
// still running, a run not yet visible in the list) is young, and young artifacts are never pruned.
import type { Client } from '@temporalio/client';
import { resultOf } from '../client';

/** ref (`sha256:<hex>`) → why it is kept. */
export type Keep = Map<string, string>;

const REF = /sha256:[0-9a-f]{64}/g;

/** Adds every artifact reference in `value` (payload bytes decoded as text) to `into`. */
export function collectRefs(value: unknown, why: string, into: Keep): void {
  const add = (text: string) => {
    for (const [ref] of text.matchAll(REF)) if (!into.has(ref)) into.set(ref, why);
  };
  const walk = (v: unknown): void => {
    if (typeof v === 'string') add(v);
    else if (v instanceof Uint8Array) add(Buffer.from(v).toString('utf8'));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
}

/** What open runs and closed runs' unpushed commits refer to; counts for the report. */
export async function liveReferences(client: Client): Promise<{ keep: Keep; openRuns: number; unpushed: number }> {
  const keep: Keep = new Map();
  let openRuns = 0;
  for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    const handle = client.workflow.getHandle(wf.workflowId, wf.runId);
    collectRefs(await handle.fetchHistory(), `open run ${wf.workflowId}`, keep);
    collectRefs((await handle.describe()).raw.pendingActivities, `open run ${wf.workflowId} (an activity in flight)`, keep);
    openRuns++;
  }
  // A closed run that ended without pushing (approval timed out, push: false) holds its commit in
  // a bundle when its workspace is gone: that bundle is the commit's only copy.
  let unpushed = 0;
  for await (const wf of client.workflow.list({ query: 'WorkflowType="codingTask" AND (ExecutionStatus="Completed" OR ExecutionStatus="Failed")' })) {
    const result = (await resultOf(client.workflow.getHandle(wf.workflowId, wf.runId)).catch(() => undefined)) as { pushed?: boolean; bundle?: { ref: string } } | undefined;
    if (!result?.bundle || result.pushed) continue;
    keep.set(result.bundle.ref, `unpushed commit of ${wf.workflowId} (its bundle)`);
    unpushed++;
  }
  return { keep, openRuns, unpushed };
}
