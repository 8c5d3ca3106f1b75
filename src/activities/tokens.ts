// Token counts with a real BPE tokenizer (o200k_base, the GPT-4o/o-series/gpt-5 encoding):
// prompts are assembled and budgets reserved by the same count. Other families tokenize
// differently; the prompt budget keeps a margin for that (domain/models.ts promptBudget).
import { countTokens as o200k } from 'gpt-tokenizer/cjs/encoding/o200k_base';

export function countTokens(text: string): number {
  // The tokenizer treats `<|endoftext|>`-style strings as special; count them as plain text.
  return text ? o200k(text, { allowedSpecial: 'all' } as never) : 0;
}
