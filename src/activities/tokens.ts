// Token counts with a real BPE tokenizer (o200k_base, the GPT-4o/o-series/gpt-5 encoding):
// prompts are assembled and budgets reserved by the same count. Other families tokenize
// differently; the prompt budget keeps a margin for that (domain/models.ts promptBudget).
// A text counted once is not counted again: the same file, map outline or section comes back
// attempt after attempt and task after task, and hashing it costs a fraction of the BPE.
import { createHash } from 'node:crypto';
import { countTokens as o200k } from 'gpt-tokenizer/cjs/encoding/o200k_base';

/** BPE merging is quadratic in the length of one pre-token (a long run of one character
 *  class): longer lines are counted in slices, which changes the count by a token or so. */
const SLICE = 1_000;
/** Shorter texts are counted each time: hashing them would cost about as much as the count. */
const CACHED_FROM_CHARS = 256;
/** Counts kept (least recently used dropped first): a repository's files and outlines across a worker's tasks. */
const CACHED_COUNTS = 4_096;

const counted = new Map<string, number>();
/** What the cache saved (this process), for the benchmark and tests: hits, misses and the ms spent in the tokenizer. */
export const tokenCache = { hits: 0, misses: 0, ms: 0 };

export function countTokens(text: string): number {
  if (!text) return 0;
  if (text.length < CACHED_FROM_CHARS) return timed(text);
  const key = createHash('sha1').update(text).digest('base64');
  const known = counted.get(key);
  if (known !== undefined) {
    tokenCache.hits++;
    // Most recently used last: Map keeps insertion order.
    counted.delete(key);
    counted.set(key, known);
    return known;
  }
  tokenCache.misses++;
  const n = timed(text);
  counted.set(key, n);
  if (counted.size > CACHED_COUNTS) counted.delete(counted.keys().next().value!);
  return n;
}

function timed(text: string): number {
  const started = performance.now();
  const n = countUncached(text);
  tokenCache.ms += performance.now() - started;
  return n;
}

function countUncached(text: string): number {
  if (!/[^\n]{1001}/.test(text)) return count(text);
  let total = 0;
  for (const line of text.split('\n')) {
    for (let i = 0; i < line.length; i += SLICE) total += count(line.slice(i, i + SLICE));
  }
  return total + (text.split('\n').length - 1);
}

function count(text: string): number {
  // The tokenizer treats `<|endoftext|>`-style strings as special; count them as one token each.
  return o200k(text, { allowedSpecial: 'all' } as never);
}
