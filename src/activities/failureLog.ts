// The failing part of a stored test log, for the next prompt, without holding up the worker: a
// log is read in chunks, never whole when it is large (a string of its size could pass V8's
// limit, and extracting from a 100 MB log held the event loop for seconds: every activity of
// the process missed its heartbeats). A small log is extracted from as it is; a larger one is
// reduced to a bounded excerpt as it streams (domain/testFailures/excerpt.ts), yielding to the
// event loop between chunks, and the failures are extracted from the excerpt.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { extractFailures, type ExtractFailuresOptions, type FailureExtract } from '../domain/testFailures';
import { LogExcerpt, type ExcerptBudget } from '../domain/testFailures/excerpt';

/** Up to this size a log is extracted from whole (a few milliseconds). */
export const WHOLE_LOG_BYTES = 512 * 1024;
/** Read at a time; each chunk costs well under a millisecond of the event loop. */
const CHUNK_BYTES = 64 * 1024;

export interface LogExtract extends FailureExtract {
  /** Whether the log was reduced to an excerpt first (it was larger than WHOLE_LOG_BYTES). */
  excerpted: boolean;
  /** Chunks read: the event loop had a turn after each. */
  chunks: number;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function extractFailuresFromFile(file: string, opts: ExtractFailuresOptions & { budget?: Partial<ExcerptBudget> } = {}): Promise<LogExtract> {
  const { size } = await stat(file);
  const excerpt = size > WHOLE_LOG_BYTES ? new LogExcerpt(opts.budget) : undefined;
  const whole: string[] = [];
  const decoder = new StringDecoder('utf8');
  let chunks = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    const text = decoder.write(chunk as Buffer);
    if (excerpt) excerpt.push(text);
    else whole.push(text);
    chunks++;
    // A read that finds data buffered resolves without a turn of the event loop: give one.
    await nextTurn();
  }
  const rest = decoder.end();
  if (excerpt) excerpt.push(rest);
  else whole.push(rest);
  const text = excerpt ? excerpt.end() : whole.join('');
  return { ...extractFailures(text, opts), excerpted: !!excerpt, chunks };
}
