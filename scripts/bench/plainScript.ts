// The plain script as a process: reads tasks (one JSON PlainTask per line) on stdin, runs each
// as it arrives (the caller bounds the concurrency), writes one JSON PlainResult per line on
// stdout. Long-lived like a worker, so neither side pays a process start per task. The model
// endpoint comes from the environment, as the `openai` SDK reads it (OPENAI_BASE_URL, OPENAI_API_KEY).
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { runPlainTask, type PlainTask } from './plainTask';

const openai = new OpenAI();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const task = JSON.parse(line) as PlainTask;
  void runPlainTask(openai, task).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
});
// The caller closing stdin is the end: in-flight tasks finish first (the process exits when idle).
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
