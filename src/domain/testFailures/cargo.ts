// cargo test: the `---- name stdout ----` sections (or inline panics with --nocapture), rustc
// errors, and backtraces trimmed to the project's frames.
import { block, isBlank, type Block, type Ctx, type DetectorResult } from './blocks';

const cargoKey = (line: string): boolean => /panicked|assertion|left|right|^error|-->/.test(line);

export function isRustLibrary(path: string): boolean {
  return /^\/rustc\/|[\\/]\.cargo[\\/]registry[\\/]|[\\/]\.rustup[\\/]|[\\/]library[\\/](?:std|core|alloc|test)[\\/]/.test(path);
}

/** Trims a `stack backtrace:` to the project's frames (function line + `at path:L:C` line). */
function trimRustBody(body: string[], symbols: string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < body.length; k++) {
    const l = body[k];
    if (/^note: .*(?:RUST_BACKTRACE|backtrace)/.test(l)) continue;
    if (l.trim() !== 'stack backtrace:') {
      out.push(l);
      continue;
    }
    const kept: string[] = [];
    let omitted = 0;
    k++;
    for (; k < body.length; k++) {
      const fm = /^\s*\d+: (.+)$/.exec(body[k]);
      if (!fm) break;
      const at = k + 1 < body.length ? /^\s+at (.+?):\d+(?::\d+)?\s*$/.exec(body[k + 1]) : null;
      if (at) k++;
      if (at && !isRustLibrary(at[1])) {
        kept.push(body[k - 1], body[k]);
        const leaf = fm[1].split('::').filter((p) => /^[A-Za-z_]\w*$/.test(p)).pop();
        if (leaf) symbols.push(leaf);
      } else omitted++;
    }
    k--;
    if (kept.length) out.push('stack backtrace (project frames):', ...kept);
    if (omitted && kept.length) out.push(`   … ${omitted} library frames omitted`);
  }
  return out;
}

export function detectCargo({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  const listed: { name: string; at: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('test result: ')) {
      const m = /(\d+) failed/.exec(line);
      if (m) summaryCount = (summaryCount ?? 0) + Number(m[1]);
      continue;
    }
    if (line === 'failures:') {
      // Either the header before the `---- … stdout ----` sections or the list of names after them.
      for (let j = i + 1; j < lines.length; j++) {
        const n = /^ {4}(\S.*)$/.exec(lines[j]);
        if (!n) {
          if (isBlank(lines[j]) && listed.length === 0 && j === i + 1) continue;
          break;
        }
        listed.push({ name: n[1].trim(), at: j });
      }
      continue;
    }
    if (line.startsWith('---- ') && line.endsWith(' ----')) {
      const m = /^---- (.+?) (?:stdout|stderr) ----$/.exec(line);
      if (!m) continue;
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j];
        if ((l.startsWith('---- ') && l.endsWith(' ----')) || l === 'failures:' || l.startsWith('test result: ')) break;
        raw.push(l);
      }
      const symbols: string[] = [];
      const body = trimRustBody(raw, symbols);
      while (body.length && isBlank(body[body.length - 1])) body.pop();
      while (body.length && isBlank(body[0])) body.shift();
      blocks.push(block('cargo', { start: i, header: line, name: m[1], key: `cargo\u0000${m[1]}`, body, symbols, isKey: cargoKey }));
      i = j - 1;
      continue;
    }
    // rustc errors: `error[E0308]: …` then ` --> src/lib.rs:3:5` and the snippet, up to a blank line.
    if (line.startsWith('error') && /^error(?:\[E\d+\])?: /.test(line) && i + 1 < lines.length && /^\s*--> /.test(lines[i + 1])) {
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && j < i + 60; j++) body.push(lines[j]);
      blocks.push(block('cargo', { start: i, header: line, key: `cargo\u0000${line}\u0000${lines[i + 1]}`, body, counts: false, isKey: cargoKey }));
      i = j - 1;
    }
  }
  // With --nocapture there are no sections: the panics are inline.
  if (!blocks.some((b) => b.counts)) {
    for (let i = 0; i < lines.length; i++) {
      const m = /^thread '([^']+)'(?: \(\d+\))? panicked at /.exec(lines[i]);
      if (!m || m[1] === 'main') continue;
      const raw = [lines[i]];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && !lines[j].startsWith('test ') && !lines[j].startsWith('thread '); j++) raw.push(lines[j]);
      const symbols: string[] = [];
      blocks.push(block('cargo', { start: i, header: `---- ${m[1]} ----`, name: m[1], key: `cargo\u0000${m[1]}`, body: trimRustBody(raw, symbols), symbols, isKey: cargoKey }));
      i = j - 1;
    }
  }
  for (const { name, at } of listed) {
    if (!blocks.some((b) => b.name === name)) blocks.push(block('cargo', { start: at, header: `failed: ${name}`, name, key: `cargo\u0000${name}`, isKey: cargoKey }));
  }
  return { blocks, summaryCount };
}
