// The fallback when no runner is recognised: windows around the lines that look like errors
// (a Python traceback through to its exception line), merged where they touch.
import { block, isBlank, type Block, type Ctx } from './blocks';

const GENERIC_RE = /error|fail|assert|exception|traceback|panic|✖|✗|✘/i;
const GENERIC_ZERO_RE = /\b0 (?:failed|failures?|errors?|failing)\b|\b(?:failures?|errors?|failed):? 0\b|\bno errors?\b/i;

export function detectGeneric({ lines }: Ctx): Block[] {
  const windows: [number, number][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!GENERIC_RE.test(line) || GENERIC_ZERO_RE.test(line)) continue;
    let end = Math.min(lines.length, i + 4);
    if (/Traceback \(most recent call last\)/.test(line)) {
      // Through the frames to the exception line.
      let j = i + 1;
      while (j < lines.length && j < i + 300 && (/^\s/.test(lines[j]) || isBlank(lines[j]))) j++;
      end = Math.min(lines.length, j + 2);
    }
    const start = Math.max(0, i - 2);
    const last = windows[windows.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else windows.push([start, end]);
  }
  return windows.map(([s, e]) => {
    const chunk = lines.slice(s, e);
    return block('generic', { start: s, header: chunk[0], body: chunk.slice(1), key: `generic\u0000${s}`, counts: false });
  });
}
