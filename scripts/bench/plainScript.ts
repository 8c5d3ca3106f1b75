// The plain script as a process: reads tasks (one JSON PlainTask per line) on stdin, runs each
// as it arrives (the caller bounds the concurrency), writes one JSON PlainResult per line on
// stdout. Long-lived like a worker, so neither side pays a process start per task. The model
// endpoint comes from the environment, as the `openai` SDK reads it (OPENAI_BASE_URL, OPENAI_API_KEY).
// Measuring only (not part of the user's script): its event loop, as a control for the worker's.
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { watchLoop } from './loop';
import { runPlainTask, type PlainTask } from './plainTask';

const openai = new OpenAI();
const loop = watchLoop();
const send = (msg: unknown) => process.stdout.write(JSON.stringify(msg) + '\n');
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const msg = JSON.parse(line) as PlainTask | { loop: 'reset' | 'read' };
  if ('loop' in msg) {
    if (msg.loop === 'reset') loop.reset();
    else send({ loop: loop.read() });
    return;
  }
  void runPlainTask(openai, msg).then(send);
});
// The caller closing stdin is the end: in-flight tasks finish first (the process exits when idle).
send({ ready: true });
