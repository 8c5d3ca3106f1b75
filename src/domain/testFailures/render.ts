// The failures as text within maxChars: the first few blocks whole or cut to their key lines,
// the rest listed by name; generic windows from the end of the log backwards.
import { indentOf, isBlank, type Block } from './blocks';

/** Lines are cut to this many characters in `text`. */
const MAX_TEXT_LINE = 400;
/** Failures rendered whole (bounded); the rest are listed by name. */
const MAX_WHOLE_BLOCKS = 5;

function cutLine(line: string): string {
  return line.length > MAX_TEXT_LINE ? `${line.slice(0, MAX_TEXT_LINE)}…` : line;
}

/** Body lines dedented, blank runs collapsed, long lines cut. */
function tidyBody(body: string[]): string[] {
  const nonBlank = body.filter((l) => !isBlank(l));
  const min = nonBlank.length ? Math.min(...nonBlank.slice(0, 500).map(indentOf)) : 0;
  const out: string[] = [];
  for (const l of body) {
    if (isBlank(l)) {
      if (out.length && out[out.length - 1] !== '') out.push('');
      continue;
    }
    out.push(cutLine(`  ${l.slice(Math.min(min, indentOf(l))).trimEnd()}`));
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out;
}

/** The block within `cap` characters: whole if it fits, else its key lines (with context), else cut. */
function renderBlock(b: Block, cap: number): string {
  const header = cutLine(b.header.trim());
  const body = tidyBody(b.body);
  const whole = [header, ...body].join('\n');
  if (whole.length <= cap) return whole;

  const keys: number[] = [];
  for (let i = 0; i < body.length; i++) if (body[i] !== '' && b.isKey(body[i].trimStart())) keys.push(i);
  const pick = (context: number): string => {
    const keep = new Set<number>();
    for (let i = 0; i < Math.min(2, body.length); i++) keep.add(i);
    for (const k of keys) for (let d = -context; d <= context; d++) if (k + d >= 0 && k + d < body.length) keep.add(k + d);
    const out = [header];
    let last = -1;
    for (let i = 0; i < body.length; i++) {
      if (!keep.has(i)) continue;
      if (i > last + 1) out.push('  …');
      out.push(body[i]);
      last = i;
    }
    if (last < body.length - 1) out.push('  …');
    return out.join('\n');
  };
  for (const context of [2, 1, 0]) {
    const text = pick(context);
    if (text.length <= cap) return text;
  }
  const text = pick(0);
  return `${text.slice(0, Math.max(0, cap - 16)).replace(/\n[^\n]*$/, '')}\n  … (truncated)`;
}

export function renderBlocks(blocks: Block[], maxChars: number): string {
  const SEP = '\n\n';
  const parts: string[] = [];
  let used = 0;
  let shown = 0;
  for (; shown < blocks.length && shown < MAX_WHOLE_BLOCKS; shown++) {
    const left = blocks.length - shown - 1;
    const reserve = left > 0 ? Math.min(Math.floor(maxChars / 5), 80 + left * 40) : 0;
    const room = maxChars - used - reserve - (parts.length ? SEP.length : 0);
    if (room < 160) break;
    const cap = parts.length === 0 ? room : Math.min(room, Math.max(600, Math.floor(maxChars / 3)));
    const text = renderBlock(blocks[shown], cap);
    parts.push(text);
    used += text.length + (parts.length > 1 ? SEP.length : 0);
  }
  const rest = blocks.slice(shown);
  if (rest.length) {
    const tests = rest.filter((b) => b.counts).length;
    const others = rest.length - tests;
    const what = [tests ? `${tests} more failing test${tests === 1 ? '' : 's'}` : '', others ? `${others} more error block${others === 1 ? '' : 's'}` : '']
      .filter(Boolean)
      .join(' and ');
    const lines = [`… ${what} omitted:`];
    let size = used + SEP.length + lines[0].length;
    let listed = 0;
    for (const b of rest) {
      const entry = `- ${cutLine(b.name || b.header.trim()).slice(0, 160)}`;
      if (size + entry.length + 40 > maxChars) break;
      lines.push(entry);
      size += entry.length + 1;
      listed++;
    }
    if (listed < rest.length) lines.push(`- (${rest.length - listed} more not listed)`);
    parts.push(lines.join('\n'));
  }
  const text = parts.join(SEP);
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

/** Generic windows: the last ones are kept first (the error that ended the run is usually near the end). */
export function renderGeneric(windows: Block[], lines: string[], maxChars: number): string {
  if (windows.length === 0) {
    const tail: string[] = [];
    let size = 0;
    for (let i = lines.length - 1; i >= 0; i--) {
      const l = cutLine(lines[i].trimEnd());
      if (size + l.length + 1 > maxChars) break;
      tail.unshift(l);
      size += l.length + 1;
    }
    while (tail.length && tail[0] === '') tail.shift();
    return tail.join('\n').trim() === '' ? '' : tail.join('\n');
  }
  const rendered = windows.map((w) => [w.header, ...w.body].map((l) => cutLine(l.trimEnd())).join('\n'));
  const chosen: string[] = [];
  let size = 0;
  let first = rendered.length;
  for (let i = rendered.length - 1; i >= 0; i--) {
    const r = rendered[i];
    const budget = maxChars - size - (chosen.length ? 5 : 0) - (i > 0 ? 60 : 0);
    if (r.length > budget) {
      if (chosen.length === 0) {
        // One window larger than the budget: its last lines, whole.
        const ls = r.split('\n');
        const kept: string[] = [];
        let n = 0;
        for (let k = ls.length - 1; k >= 0 && n + ls[k].length + 1 <= budget - 40; k--) {
          kept.unshift(ls[k]);
          n += ls[k].length + 1;
        }
        chosen.unshift(`… ${ls.length - kept.length} earlier lines omitted\n${kept.join('\n')}`);
        first = i;
      }
      break;
    }
    chosen.unshift(r);
    size += r.length + 5;
    first = i;
  }
  const head = first > 0 ? [`… ${first} earlier matching section${first === 1 ? '' : 's'} omitted`] : [];
  const text = [...head, ...chosen].join('\n…\n');
  return text.length > maxChars ? text.slice(text.length - maxChars) : text;
}
