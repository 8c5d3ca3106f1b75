// Task outcomes from the workflow, through the SDK's workflow metric meter: it records nothing
// while replaying, so a task is counted when it finishes, not again when its history is replayed
// on another worker. Metrics go through a sink and issue no command: nothing to version.
import { metricMeter } from '@temporalio/workflow';
import { levelLabel, METRICS } from '../domain/metrics';
import type { CodingTaskResult } from '../domain/schema';

export function recordTaskOutcome(result: Pick<CodingTaskResult, 'status' | 'attempts'>, depth: number): void {
  const tags = { status: result.status, level: levelLabel(depth) };
  metricMeter.createCounter(METRICS.tasks, 'tasks', 'Finished coding tasks by status').add(1, tags);
  metricMeter.createHistogram(METRICS.taskAttempts, 'int', 'attempts', 'Attempts a finished task made').record(result.attempts.length, tags);
}
