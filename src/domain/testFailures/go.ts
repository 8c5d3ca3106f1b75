// go test: `--- FAIL` blocks (with -v output gathered under its test), panics with their
// goroutine trace trimmed to the project's frames, and build (or vet) failures.
import { block, indentOf, isBlank, type Block, type Ctx, type DetectorResult } from './blocks';

interface GoFrame {
  func: string;
  location: string;
}

function isGoLibrary(path: string, goroot: string): boolean {
  return (goroot !== '' && path.startsWith(goroot)) || /\/pkg\/mod\/|\/src\/(?:runtime|testing|reflect)\/\w+\.go$/.test(path);
}

/** `example.com/pkg.(*T).Method.func1(0x…)` -> `Method`. */
function goFuncName(func: string): string {
  const base = func.replace(/\(.*$/, '').split('/').pop() ?? '';
  const parts = base.split('.').filter((p) => /^[A-Za-z_]\w*$/.test(p) && !/^func\d+$/.test(p));
  return parts.length > 1 ? parts[parts.length - 1] : '';
}

export function detectGo({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  const failBlocks: (Block & { end: number })[] = [];
  // `go test -v` prints t.Error output under `=== RUN`, before the `--- FAIL` line.
  const outputs = new Map<string, string[]>();
  let current = '';
  let collectIndent = -1;

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const t = line.trimStart();
    if (t.startsWith('=== ')) {
      const m = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)/.exec(t);
      if (m) current = m[1];
      collectIndent = -1;
      continue;
    }
    if (t.startsWith('--- FAIL: ')) {
      collectIndent = -1;
      const m = /^--- FAIL: (\S+)(?: \(([\d.]+s)\))?/.exec(t);
      if (!m) continue;
      const indent = indentOf(line);
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j];
        const lt = l.trimStart();
        if (isBlank(l) || indentOf(l) <= indent || lt.startsWith('--- ') || lt.startsWith('=== ')) break;
        body.push(l);
      }
      const b = { ...block('go', { start: i, header: t, name: m[1], key: `go\u0000${m[1]}`, body }), end: j };
      failBlocks.push(b);
      blocks.push(b);
      i = j - 1;
      continue;
    }
    if (current && collectIndent >= 0 && indentOf(line) > collectIndent && !isBlank(line)) {
      outputs.get(current)?.push(line);
      continue;
    }
    collectIndent = -1;
    if (current && /^\s+\S+\.go:\d+: /.test(line)) {
      const list = outputs.get(current) ?? [];
      list.push(line);
      outputs.set(current, list);
      collectIndent = indentOf(line);
      continue;
    }

    // panic: … goroutine N [running]: frames (function line, then `\tpath:line +0x…`).
    if (line.startsWith('panic: ')) {
      let j = i + 1;
      const head = [line];
      while (j < lines.length && j < i + 10 && !/^goroutine \d+ \[/.test(lines[j])) head.push(lines[j++]);
      if (j >= lines.length || !/^goroutine \d+ \[/.test(lines[j])) continue; // not a Go panic
      const goroutine = lines[j++];
      const frames: GoFrame[] = [];
      for (; j + 1 < lines.length; j += 2) {
        const fn = lines[j];
        const loc = lines[j + 1];
        if (isBlank(fn) || !/^\s+\S+\.go:\d+/.test(loc)) break;
        frames.push({ func: fn.trim(), location: loc.trim() });
      }
      // Skip the other goroutines' traces, up to the package verdict.
      let end = j;
      while (end < lines.length && end < j + 5000 && !/^(?:FAIL|ok)\b|^exit status \d+/.test(lines[end])) end++;
      let goroot = '';
      for (const f of frames) {
        const g = /^(.*\/src\/)(?:runtime|testing)\/\w+\.go:/.exec(f.location);
        if (g) goroot = g[1];
      }
      const kept = frames.filter((f) => !isGoLibrary(f.location.replace(/ \+0x[0-9a-f]+$/, ''), goroot) && !f.func.startsWith('created by testing.')).slice(0, 10);
      const body = [...head.slice(1), goroutine, ...kept.flatMap((f) => [f.func, `\t${f.location}`])];
      if (kept.length < frames.length) body.push(`\t… ${frames.length - kept.length} runtime frames omitted`);
      const symbols = kept.map((f) => goFuncName(f.func)).filter(Boolean);
      const prev = failBlocks[failBlocks.length - 1];
      if (prev && prev.end === i && prev.body.length === 0) {
        prev.body.push(line, ...body);
        prev.symbols.push(...symbols);
      } else {
        const name = current || '';
        blocks.push(block('go', { start: i, header: line, name, key: `go\u0000panic\u0000${name}\u0000${i}`, body, symbols, counts: name !== '' && !failBlocks.some((b) => b.name === name) }));
      }
      i = end - 1;
      continue;
    }

    // Build (or vet) failure: `# pkg` then `file.go:L:C: message` lines.
    if (line.startsWith('# ') && i + 1 < lines.length && /^\S+\.go:\d+(?::\d+)?: /.test(lines[i + 1])) {
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && (/^\S+\.go:\d+(?::\d+)?: /.test(lines[j]) || /^\s+\S/.test(lines[j])); j++) body.push(lines[j]);
      blocks.push(block('go', { start: i, header: `build failed: ${line.slice(2).trim()}`, key: `go\u0000build\u0000${line}`, body, counts: false }));
      i = j - 1;
    }
  }

  // Verbose output goes under the test; a parent whose only failure is a subtest is not shown.
  const names = new Set(failBlocks.map((b) => b.name));
  const result: Block[] = [];
  for (const b of blocks) {
    if (b.framework === 'go' && names.has(b.name) && b.body.length === 0) {
      const out = outputs.get(b.name);
      if (out?.length) b.body.push(...out);
      else if ([...names].some((n) => n.startsWith(`${b.name}/`))) continue;
    }
    result.push(b);
  }
  return { blocks: result };
}
