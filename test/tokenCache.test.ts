// Token counts are remembered by content (issue 18 item 4): the same text is counted by the
// tokenizer once, and the remembered count is the tokenizer's own.
import { countTokens as o200k } from 'gpt-tokenizer/cjs/encoding/o200k_base';
import { countTokens, tokenCache } from '../src/activities/tokens';

test('a file counted twice goes through the tokenizer once, with the same count; another content is counted anew', () => {
  const file = `export function f${Date.now()}() {\n${'  return someValue + otherValue;\n'.repeat(40)}}\n`;
  const before = { ...tokenCache };
  const first = countTokens(file);
  const second = countTokens(file);
  expect(first).toBe(o200k(file, { allowedSpecial: 'all' } as never));
  expect(second).toBe(first);
  expect({ misses: tokenCache.misses - before.misses, hits: tokenCache.hits - before.hits }).toEqual({ misses: 1, hits: 1 });
  const edited = file.replace('someValue', 'someOtherValue');
  expect(countTokens(edited)).toBe(o200k(edited, { allowedSpecial: 'all' } as never));
  expect(tokenCache.misses - before.misses).toBe(2);
});
