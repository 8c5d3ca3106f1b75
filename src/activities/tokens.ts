// Token counts with a real BPE tokenizer (o200k_base, the GPT-4o/o-series/gpt-5 encoding):
// prompts are assembled and budgets reserved by the same count. Other families tokenize
// differently; the prompt budget keeps a margin for that (domain/models.ts promptBudget).
import { countTokens as o200k } from 'gpt-tokenizer/cjs/encoding/o200k_base';

/** BPE merging is quadratic in the length of one pre-token (a long run of one character
 *  class): longer lines are counted in slices, which changes the count by a token or so. */
const SLICE = 1_000;

export function countTokens(text: string): number {
  if (!text) return 0;
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
