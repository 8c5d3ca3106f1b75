// The benchmark's tasks: documented functions (Python def, Go func, JS/TS function or method)
// with a body of 4-80 lines, the body replaced by a stub, sampled with a seed across the repo.
// The doc comment / docstring stays in the file (as it would above a real stub).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface Fn {
  file: string;
  name: string;
  /** 0-based first line of the definition (its signature; the doc comment is above for Go/JS). */
  start: number;
  /** The lines that replace the definition (signature, docstring for Python, stub, closing brace). */
  stub: string[];
  /** 0-based last line of the original definition. */
  end: number;
  /** With --drop-doc: the lines from `docStart` to `end` are replaced by `bare` (no doc at all). */
  docStart: number;
  bare: string[];
  /** The doc's text, normalised to one paragraph. */
  doc: string;
}

const JS_KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'catch', 'function', 'return', 'constructor', 'else', 'with', 'do']);
const lead = (s: string) => /^\s*/.exec(s)![0];

function pythonFns(file: string, lines: string[]): Fn[] {
  const out: Fn[] = [];
  lines.forEach((line, i) => {
    const m = /^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(/.exec(line);
    if (!m || /^__\w+__$/.test(m[2])) return;
    let depth = 0;
    let sigEnd = i;
    for (; sigEnd < Math.min(lines.length, i + 15); sigEnd++) {
      for (const c of lines[sigEnd].replace(/#.*$/, '')) depth += c === '(' || c === '[' ? 1 : c === ')' || c === ']' ? -1 : 0;
      if (depth === 0 && /:\s*(#.*)?$/.test(lines[sigEnd])) break;
    }
    const q = /^\s*[rRuU]?("""|''')/.exec(lines[sigEnd + 1] ?? '');
    if (!q) return;
    let docEnd = sigEnd + 1;
    if (lines[docEnd].split(q[1]).length < 3) while (++docEnd < lines.length && !lines[docEnd].includes(q[1]));
    if (docEnd >= lines.length) return;
    let end = docEnd;
    for (let k = docEnd + 1; k < lines.length; k++) {
      if (!lines[k].trim()) continue;
      if (lead(lines[k]).length <= m[1].length) break;
      end = k;
    }
    if (end - docEnd < 4 || end - docEnd > 80) return;
    const doc = lines.slice(sigEnd + 1, docEnd + 1).join(' ').replace(/^\s*[rRuU]?("""|''')/, '').replace(/("""|''')\s*$/, '');
    const raise = `${lead(lines[docEnd + 1] ?? '') || `${m[1]}    `}raise NotImplementedError`;
    out.push({ file, name: m[2], start: i, end, stub: [...lines.slice(i, docEnd + 1), raise], doc, docStart: i, bare: [...lines.slice(i, sigEnd + 1), raise] });
  });
  return out;
}

function goFns(file: string, lines: string[]): Fn[] {
  if (file.endsWith('_test.go') || lines.slice(0, 5).some((l) => /^\/\/ Code generated/.test(l))) return [];
  const out: Fn[] = [];
  lines.forEach((line, i) => {
    const m = /^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)\s*[[(]/.exec(line);
    if (!m || !lines[i - 1]?.startsWith('//')) return;
    let sigEnd = i;
    while (sigEnd < i + 10 && sigEnd < lines.length && !lines[sigEnd].trimEnd().endsWith('{')) sigEnd++;
    let end = sigEnd + 1;
    while (end < lines.length && lines[end] !== '}') end++;
    if (end >= lines.length || end - sigEnd - 1 < 4 || end - sigEnd - 1 > 80) return;
    let docStart = i - 1;
    while (docStart > 0 && lines[docStart - 1].startsWith('//')) docStart--;
    const doc = lines
      .slice(docStart, i)
      .filter((l) => !/^\/\/go:|^\/\/\s*(nolint|TODO)/.test(l))
      .map((l) => l.replace(/^\/\/\s?/, ''))
      .join(' ');
    const stub = [...lines.slice(i, sigEnd + 1), '\tpanic("TODO")', '}'];
    out.push({ file, name: m[1], start: i, end, stub, doc, docStart, bare: stub });
  });
  return out;
}

function jsFns(file: string, lines: string[]): Fn[] {
  const out: Fn[] = [];
  lines.forEach((line, i) => {
    const top = /^(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*[(<].*\{\s*$/.exec(line);
    const method = /^(\s+)(?:(?:public|private|protected|static|async|override)\s+)*\*?\s*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\(.*\)\s*(?::\s*[^{}]+)?\{\s*$/.exec(line);
    const name = top?.[1] ?? method?.[2];
    if (!name || JS_KEYWORDS.has(name) || !lines[i - 1]?.trim().endsWith('*/')) return;
    const indent = top ? '' : method![1];
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^${indent}\\}[;,]?\\s*$`).test(lines[end])) end++;
    if (end >= lines.length || end - i - 1 < 4 || end - i - 1 > 80) return;
    let docStart = i - 1;
    while (docStart > 0 && !lines[docStart].trim().startsWith('/**') && i - docStart < 60) docStart--;
    if (!lines[docStart].trim().startsWith('/**')) return;
    const docLines: string[] = [];
    for (const l of lines.slice(docStart, i)) {
      const text = l.replace(/^\s*\/\*\*\s?|\s*\*\/\s*$|^\s*\*\s?/g, '');
      if (text.trim().startsWith('@')) break;
      docLines.push(text);
    }
    const stub = [line, `${lead(lines[i + 1])}throw new Error("TODO: implement");`, lines[end]];
    out.push({ file, name, start: i, end, stub, doc: docLines.join(' '), docStart, bare: stub });
  });
  return out;
}

/** The first sentence of a doc (two when the first is under 8 words), markup removed. */
export function firstSentences(doc: string): string {
  const text = doc
    .replace(/\{@link\s+([^}|\s]+)[^}]*\}/g, '$1')
    .replace(/:\w+:`~?([^`]+)`/g, '$1')
    .replace(/`+/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  // A sentence ends at . ! or ? before a capital letter (so "e.g. a" and "i.e. (x)" do not end one).
  const sentences = text.split(/(?<=[.!?])\s+(?=[A-Z])/);
  const first = sentences[0]?.trim() ?? '';
  return first.split(' ').length < 8 && sentences[1] ? `${first} ${sentences[1].trim()}` : first;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * (b)'s masking rule: F's name (alone, called `F()`, or qualified `X.F`) becomes "it", the file's
 * basename (with or without its extension) is removed; every other word stays.
 */
export function maskDoc(sentence: string, name: string, file: string): string {
  const base = path.basename(file);
  const stem = base.replace(/\.[^.]+$/, '');
  return sentence
    .replace(new RegExp(`(?<![\\w$])(?:[\\w$]+\\.)*${escape(name)}(?:\\(\\))?(?![\\w$])`, 'g'), 'it')
    .replace(new RegExp(`(?<![\\w$])(?:${escape(base)}|${escape(stem)})(?![\\w$])`, 'gi'), '')
    .replace(/^it\b/, 'It')
    .replace(/\s+/g, ' ')
    .trim();
}

/** N tasks, shuffled by `seed`, at most one per file while there are enough files. */
export function sampleTasks(dir: string, files: string[], n: number, seed: string): Fn[] {
  const all: Fn[] = [];
  for (const rel of files) {
    const ext = path.extname(rel);
    const extract = ext === '.py' ? pythonFns : ext === '.go' ? goFns : /^\.(js|mjs|cjs|ts|tsx)$/.test(ext) ? jsFns : undefined;
    // Tests are in the repository, not among the tasks.
    if (!extract || /(^|\/)(tests?|testing|__tests__)\/|(^|\/)test_[^/]*$|_test\.(go|py)$|\.(test|spec)\.[jt]s$/.test(rel)) continue;
    const lines = readFileSync(path.join(dir, rel), 'utf8').split('\n');
    // The masked description must still say something: 5 words or more.
    for (const f of extract(rel, lines)) if (maskDoc(firstSentences(f.doc), f.name, f.file).split(' ').length >= 5) all.push(f);
  }
  // Shuffled by a hash of the seed and the function's place: the same seed, the same tasks.
  const key = (f: Fn) => createHash('sha1').update(`${seed}\0${f.file}\0${f.start}`).digest('hex');
  const keys = new Map(all.map((f) => [f, key(f)]));
  all.sort((x, y) => (keys.get(x)! < keys.get(y)! ? -1 : 1));
  const picked: Fn[] = [];
  const files_ = new Set<string>();
  for (const f of all) {
    if (picked.length >= n || files_.has(f.file)) continue;
    picked.push(f);
    files_.add(f.file);
  }
  for (const f of all) if (picked.length < n && !picked.includes(f)) picked.push(f);
  return picked;
}

export interface Variant {
  id: 'a' | 'b';
  title: string;
  description: string;
}

export function variants(f: Fn): Variant[] {
  return [
    { id: 'a', title: `Implement ${f.name}`, description: `\`${f.name}\` is not implemented yet (its body is a stub). ${firstSentences(f.doc)}` },
    {
      id: 'b',
      title: 'Implement the missing function',
      description: `A function in this project is not implemented yet (its body is a stub). ${maskDoc(firstSentences(f.doc), f.name, f.file)}`,
    },
  ];
}
