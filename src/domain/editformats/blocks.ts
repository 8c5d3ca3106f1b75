// The marker-block grammar shared by the plain-text edit formats (editblock, whole):
//
//   <summary: a short paragraph>
//
//   path/to/file.ext
//   <<<<<<< SEARCH
//   exact existing lines
//   =======
//   replacement lines
//   >>>>>>> REPLACE
//
//   path/to/new_file.ext
//   <<<<<<< FILE
//   the whole content
//   >>>>>>> FILE                (>>>>>>> FILE NOEOL: the content has no final newline)
//
//   path/to/obsolete.ext
//   <<<<<<< DELETE
//   >>>>>>> DELETE
//
//   <<<<<<< READ
//   path/one.ext
//   >>>>>>> READ
//
// A marker is a run of L identical characters (L ≥ 5; the renderer writes L ≥ 7), a space and
// the kind. The opening marker fixes L for its block: inside it, only a line of exactly L `=`
// (a SEARCH block's divider) and the closing `>{L} KIND` are special; every other line is
// content, verbatim — fences, backticks, markers of other lengths. The renderer picks L longer
// than any run of `<`, `=` or `>` that starts a content line, so any content round-trips.
// Pure: no Node built-ins (imported by workflow code).
// Over 300 lines because the parser and the renderer of one grammar must agree line for line
// (any content round-trips), and the whole-answer reading (JSON fallback, summary) sits on both.
import {
  ChangeSetSchema,
  FilesRequestSchema,
  SubtaskProposalSchema,
  formatZodIssues,
  type ChangeSet,
  type FileChange,
  type FilesRequest,
  type ModelAnswer,
  type SubtaskProposal,
} from '../schema';
import type { ParsedAnswer } from './types';
import { parseReadRequest, renderReadRequest } from './reads';

export type BlockKind = 'SEARCH' | 'FILE' | 'DELETE' | 'READ';

/** The closing word of each kind. */
export const CLOSING: Record<BlockKind, string> = { SEARCH: 'REPLACE', FILE: 'FILE', DELETE: 'DELETE', READ: 'READ' };

export type Block =
  | { kind: 'SEARCH'; number: number; line: number; path: string; search: string; replace: string }
  | { kind: 'FILE'; number: number; line: number; path: string; content: string }
  | { kind: 'DELETE'; number: number; line: number; path: string }
  | { kind: 'READ'; line: number; paths: string[] };

export interface ParsedBlocks {
  /** In answer order. Edit blocks (SEARCH, FILE, DELETE) are numbered 1, 2, … as the applier numbers them. */
  blocks: Block[];
  /** One line per problem, naming the block: retry feedback for the model. */
  errors: string[];
  /** The prose before the first block: fence lines and the first block's path line dropped, trimmed. */
  preamble: string;
}

/** The renderer's shortest marker; the parser accepts down to MIN_MARKER. */
export const RENDER_MARKER = 7;
export const MIN_MARKER = 5;
/** The summary taken from the prose is cut to this many characters. */
export const MAX_SUMMARY = 2000;

const OPEN_RE = /^(<{5,}) +([A-Za-z]+)[ \t\r]*$/;
const STRAY_CLOSE_RE = /^(>{5,}) +(REPLACE|FILE|DELETE|READ)\b/i;
const FENCE_RE = /^[ \t]*(`{3,}|~{3,})[ \t]*[\w.+#-]*[ \t\r]*$/;

export function isFenceLine(line: string): boolean {
  return FENCE_RE.test(line);
}

const isBlank = (line: string) => line.trim() === '';

function closingRe(len: number, kind: BlockKind): RegExp {
  const noeol = kind === 'FILE' ? '( +NOEOL)?' : '()';
  return new RegExp(`^>{${len}} +${CLOSING[kind]}${noeol}[ \\t\\r]*$`, 'i');
}

function dividerRe(len: number): RegExp {
  return new RegExp(`^={${len}}[ \\t\\r]*$`);
}

function kindOf(word: string): BlockKind | undefined {
  const k = word.toUpperCase();
  return k === 'SEARCH' || k === 'FILE' || k === 'DELETE' || k === 'READ' ? k : undefined;
}

// ---- Paths ------------------------------------------------------------------------------------

/** Extensionless file names that are paths on their own (`Makefile`, not prose like `Then:`). */
const BARE_NAMES =
  /^(GNUmakefile|[Mm]akefile|Dockerfile|Containerfile|Gemfile|Rakefile|Procfile|Vagrantfile|Jenkinsfile|[Jj]ustfile|Brewfile|Podfile|Pipfile|Snakefile|Tiltfile|Caddyfile|Earthfile|Guardfile|Berksfile|Fastfile|LICEN[CS]E|COPYING|README|CHANGELOG|CHANGES|AUTHORS|CONTRIBUTORS|NOTICE|CODEOWNERS|OWNERS|BUILD|WORKSPACE|VERSION|MANIFEST)$/;

function pathLike(token: string): boolean {
  if (token === '' || /\s/.test(token) || /^\.+$/.test(token)) return false;
  return /[/\\]/.test(token) || /[^.]\.[\w-]+$/.test(token) || /^\.[\w-]/.test(token) || BARE_NAMES.test(token);
}

/** A path line's markup that cannot be prose: a heading `#`, a list marker, `**…**`, a `File:` label. */
function undecorate(line: string): string {
  let s = line.trim();
  for (;;) {
    const prev = s;
    s = s.replace(/^#+\s+/, '');
    s = s.replace(/^(?:[-*+]|\d+[.)])\s+/, '');
    const emphasis = /^(\*\*|__|\*|_)(.+)\1$/.exec(s);
    if (emphasis) s = emphasis[2].trim();
    s = s.replace(/^(?:file(?:name)?|path)\s*:\s*/i, '');
    if (s === prev) return s;
  }
}

/** `a b.py` in backticks (any run, as the renderer writes) or quotes: the path verbatim. */
const QUOTED_RE = /^(?:(`+)([^`](?:[\s\S]*[^`])?)\1|"([^"]+)"|'([^']+)')$/;

/**
 * The path a block's path line names, or undefined when the line is not a path line. A path
 * line holds only the path (markup aside): one token without spaces that looks like a file
 * path, or any path in backticks or quotes. A sentence is never a path line, even one that
 * mentions a file (`See README.md for details.`, `Add the helper (needs Node 18.x):`): taking
 * a word of prose for a path writes files nobody asked for. Nor is a line ending in `:`.
 */
export function pathFromLine(line: string): string | undefined {
  const raw = line.replace(/\r$/, '').trim();
  if (raw.endsWith(':')) return undefined;
  const s = undecorate(raw);
  const quoted = QUOTED_RE.exec(s);
  if (quoted) {
    const p = quoted[2] ?? quoted[3] ?? quoted[4];
    return isBlank(p) ? undefined : p;
  }
  if (s.endsWith(':') || !pathLike(s)) return undefined;
  return s;
}

/** A path as its line in a rendered answer: bare when that reads back, else in backticks. */
export function renderPath(p: string): string {
  if (pathFromLine(p) === p && !isFenceLine(p) && !OPEN_RE.test(p) && !isBlank(p)) return p;
  const longest = Math.max(0, ...(p.match(/`+/g) ?? []).map((run) => run.length));
  const ticks = '`'.repeat(longest + 1);
  return `${ticks}${p}${ticks}`;
}

/** A READ block's line: each non-blank line is one path, decorations stripped. */
function readPath(line: string): string | undefined {
  if (isBlank(line) || isFenceLine(line)) return undefined;
  const s = undecorate(line);
  const quoted = QUOTED_RE.exec(s);
  if (quoted) return quoted[2] ?? quoted[3] ?? quoted[4];
  // `grep:` alone is a search without a pattern (refused as such), not a path `grep`.
  if (/^grep:/i.test(s)) return s;
  return s.replace(/:$/, '').trim() || undefined;
}

// ---- Parsing ----------------------------------------------------------------------------------

function describeBlock(number: number, path?: string): string {
  return path ? `block ${number} (${path})` : `block ${number}`;
}

function joinContent(lines: string[], eol: boolean): string {
  if (lines.length === 0) return '';
  return lines.join('\n') + (eol ? '\n' : '');
}

/** Finds the marker-like line after `from` most likely meant to close the block, for a hint. */
function strayCloserHint(lines: string[], from: number, len: number, kind: BlockKind): string {
  for (let j = from; j < lines.length; j++) {
    const m = STRAY_CLOSE_RE.exec(lines[j]);
    if (!m) continue;
    const seen = lines[j].trim();
    const expected = `${'>'.repeat(len)} ${CLOSING[kind]}`;
    if (m[1].length !== len) {
      return ` (line ${j + 1} has \`${seen}\`: the closing marker must have the same number of '>' as the opening has '<')`;
    }
    return ` (line ${j + 1} has \`${seen}\`: a ${kind} block closes with \`${expected}\`)`;
  }
  return '';
}

/** Splits an answer into marker blocks. Never throws. */
export function parseBlocks(text: string): ParsedBlocks {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const errors: string[] = [];
  /** Lines since the end of the previous block (or the start), with their indexes. */
  let between: number[] = [];
  let preamble: string | undefined;
  let number = 0;
  let i = 0;

  const takePreamble = (skip: number | undefined) => {
    if (preamble !== undefined) return;
    preamble = between
      .filter((k) => k !== skip && !isFenceLine(lines[k]))
      .map((k) => lines[k].replace(/\r$/, ''))
      .join('\n')
      .trim();
  };

  while (i < lines.length) {
    const open = OPEN_RE.exec(lines[i]);
    if (!open) {
      const stray = STRAY_CLOSE_RE.exec(lines[i]);
      if (stray) {
        const opener = stray[2].toUpperCase() === 'REPLACE' ? 'SEARCH' : stray[2].toUpperCase();
        errors.push(`line ${i + 1}: \`${lines[i].trim()}\` without an opening \`${'<'.repeat(stray[1].length)} ${opener}\` before it: every block starts with its opening marker line`);
      }
      between.push(i);
      i++;
      continue;
    }
    const len = open[1].length;
    const kind = kindOf(open[2]);
    const line = i + 1;
    if (!kind) {
      errors.push(`line ${i + 1}: unknown block \`${lines[i].trim()}\`: blocks are SEARCH (…REPLACE), FILE, DELETE or READ`);
      between.push(i);
      i++;
      continue;
    }

    // The path: only the block's own path line, right before the marker or before the fence
    // that holds it. Never prose further up, never the previous block's path: a guess here
    // writes a file nobody asked for, or edits the wrong one.
    let path: string | undefined;
    let pathLine: number | undefined;
    let label: string;
    if (kind !== 'READ') {
      number++;
      const first = between.length > 0 ? between[0] : i;
      let at = i - 1;
      if (at >= first && isFenceLine(lines[at])) at--;
      const candidate = at >= first ? lines[at].replace(/\r$/, '') : undefined;
      if (candidate !== undefined && !isBlank(candidate)) {
        path = pathFromLine(candidate);
        if (path !== undefined) pathLine = at;
      }
      label = describeBlock(number, path);
      if (path === undefined) {
        const why =
          candidate === undefined
            ? 'there is no path line before it'
            : isBlank(candidate)
              ? 'the line before it is blank, not its path line'
              : `the line before it (${JSON.stringify(candidate.trim().slice(0, 80))}) is not a path line`;
        errors.push(
          `${label}: ${why}: put the file's path alone on the line just before \`${lines[i].trim()}\` (only the path, in backticks if it has spaces; not a sentence, no trailing ':'; every block needs its own, even for the same file as the block before)`,
        );
      }
    } else {
      label = `the READ block at line ${line}`;
    }
    takePreamble(pathLine);

    // The block's body, up to its closing marker.
    const closeRe = closingRe(len, kind);
    const divRe = dividerRe(len);
    const body: string[] = [];
    let divider = -1;
    let extraDivider = false;
    let close = -1;
    let noeol = false;
    for (let j = i + 1; j < lines.length; j++) {
      const c = closeRe.exec(lines[j]);
      if (c) {
        close = j;
        noeol = Boolean(c[1]);
        break;
      }
      if (kind === 'SEARCH' && divRe.test(lines[j])) {
        if (divider >= 0) extraDivider = true;
        else {
          divider = body.length;
          continue;
        }
      }
      body.push(lines[j]);
    }
    const expected = `${'>'.repeat(len)} ${CLOSING[kind]}`;
    if (close < 0) {
      const missingDivider = kind === 'SEARCH' && divider < 0 ? ` and its ${'='.repeat(len)} divider` : '';
      errors.push(`${label}: unterminated, expected \`${expected}\`${missingDivider}${strayCloserHint(lines, i + 1, len, kind)}`);
      break;
    }
    i = close + 1;
    between = [];

    if (kind === 'SEARCH') {
      if (divider < 0) {
        errors.push(
          `${label}: missing the \`${'='.repeat(len)}\` divider between the lines to find and their replacement (a line of exactly ${len} '=', as many as the '<' of the opening marker)`,
        );
        continue;
      }
      if (extraDivider) {
        const longer = len + 1;
        errors.push(
          `${label}: more than one \`${'='.repeat(len)}\` divider line: if the file has a line of exactly ${len} '=', write this block with longer markers (\`${'<'.repeat(longer)} SEARCH\`, \`${'='.repeat(longer)}\`, \`${'>'.repeat(longer)} REPLACE\`)`,
        );
        continue;
      }
      if (path !== undefined) {
        blocks.push({
          kind,
          number,
          line,
          path,
          search: joinContent(body.slice(0, divider), true),
          replace: joinContent(body.slice(divider), true),
        });
      }
    } else if (kind === 'FILE') {
      if (path !== undefined) blocks.push({ kind, number, line, path, content: joinContent(body, !noeol) });
    } else if (kind === 'DELETE') {
      if (path !== undefined) blocks.push({ kind, number, line, path });
    } else {
      const paths: string[] = [];
      let bad = false;
      for (const p of body.map(readPath)) {
        if (p === undefined) continue;
        const r = parseReadRequest(p);
        if ('error' in r) {
          errors.push(`${label}: ${r.error}`);
          bad = true;
        } else paths.push(renderReadRequest(r));
      }
      if (paths.length === 0 && !bad) errors.push(`${label}: lists no files: write one path per line between \`${'<'.repeat(len)} READ\` and \`${expected}\``);
      else if (!bad) blocks.push({ kind, line, paths });
    }
  }
  if (preamble === undefined) preamble = '';
  return { blocks, errors, preamble };
}

// ---- Rendering --------------------------------------------------------------------------------

/** Lines of a content string: `a\nb\n` → [a, b]; `a` → [a] (no final newline); `` → []. */
export function contentLines(content: string): { lines: string[]; eol: boolean } {
  if (content === '') return { lines: [], eol: true };
  const eol = content.endsWith('\n');
  return { lines: (eol ? content.slice(0, -1) : content).split('\n'), eol };
}

/** max(7, 1 + the longest run of `<`, `=` or `>` that starts any of the lines). */
export function markerLength(lines: readonly string[]): number {
  let longest = 0;
  for (const l of lines) {
    const m = /^(<+|=+|>+)/.exec(l);
    if (m && m[1].length > longest) longest = m[1].length;
  }
  return Math.max(RENDER_MARKER, longest + 1);
}

/** The canonical text of one change (path line and block). */
export function renderChange(fc: FileChange): string {
  const head = renderPath(fc.path);
  if (fc.action === 'delete') {
    return `${head}\n${'<'.repeat(RENDER_MARKER)} DELETE\n${'>'.repeat(RENDER_MARKER)} DELETE\n`;
  }
  if (fc.action === 'write') {
    const { lines, eol } = contentLines(fc.content);
    const len = markerLength(lines);
    const body = lines.map((l) => `${l}\n`).join('');
    return `${head}\n${'<'.repeat(len)} FILE\n${body}${'>'.repeat(len)} FILE${eol ? '' : ' NOEOL'}\n`;
  }
  // Search and replacement are whole lines: a missing final newline is added.
  const s = contentLines(fc.search).lines;
  const r = contentLines(fc.replace).lines;
  const len = markerLength([...s, ...r]);
  const body = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
  return `${head}\n${'<'.repeat(len)} SEARCH\n${body(s)}${'='.repeat(len)}\n${body(r)}${'>'.repeat(len)} REPLACE\n`;
}

export function renderRead(paths: readonly string[]): string {
  const lines = paths.map(renderPath);
  const len = markerLength(lines);
  return `${'<'.repeat(len)} READ\n${lines.map((l) => `${l}\n`).join('')}${'>'.repeat(len)} READ\n`;
}

function isChangeSet(a: ModelAnswer): a is ChangeSet {
  return 'files' in a;
}
function isFilesRequest(a: ModelAnswer): a is FilesRequest {
  return 'needFiles' in a;
}

/** The canonical text of an answer: summary, blank line, blocks (a subtask proposal stays JSON). */
export function renderBlockAnswer(answer: ChangeSet | FilesRequest | SubtaskProposal): string {
  if (isChangeSet(answer)) {
    return `${answer.summary.trim()}\n\n${answer.files.map(renderChange).join('\n')}`;
  }
  if (isFilesRequest(answer)) {
    const summary = answer.summary?.trim();
    return `${summary ? `${summary}\n\n` : ''}${renderRead(answer.needFiles)}`;
  }
  return `\`\`\`json\n${JSON.stringify(answer, null, 2)}\n\`\`\`\n`;
}

// ---- Whole answers ----------------------------------------------------------------------------

function cap(s: string): string {
  return s.length > MAX_SUMMARY ? `${s.slice(0, MAX_SUMMARY - 1).replace(/[\ud800-\udbff]$/, '')}…` : s;
}

/** `Edit a.py, b.py` — for an answer without prose. */
export function generatedSummary(files: readonly FileChange[]): string {
  const paths = [...new Set(files.map((f) => f.path))];
  const shown = paths.slice(0, 8).join(', ');
  return cap(`Edit ${shown}${paths.length > 8 ? ` and ${paths.length - 8} more` : ''}`);
}

/** JSON objects in the text: fenced ones first, then the whole text, then balanced `{…}` spans. */
function jsonCandidates(text: string): unknown[] {
  const out: unknown[] = [];
  const tryParse = (s: string) => {
    try {
      const v: unknown = JSON.parse(s);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) out.push(v);
    } catch {
      // not JSON
    }
  };
  for (const m of text.matchAll(/```[ \t]*(?:json5?|jsonc)?[ \t]*\r?\n([\s\S]*?)\r?\n[ \t]*```/gi)) tryParse(m[1].trim());
  tryParse(text.trim());
  let starts = 0;
  for (let s = text.indexOf('{'); s >= 0 && starts < 50; s = text.indexOf('{', s + 1)) {
    starts++;
    const end = matchingBrace(text, s);
    if (end < 0) continue;
    tryParse(text.slice(s, end + 1));
    if (out.length > 0) break;
  }
  return out;
}

/** Index of the `}` closing the `{` at `start` (JSON strings respected), or -1. */
function matchingBrace(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const HOW_TO =
  'write each change as the file\'s path alone on the line right before its block (only the path, no sentence), then `<<<<<<< SEARCH`, the exact existing lines, `=======`, the new lines, `>>>>>>> REPLACE` (a new file: its path, then `<<<<<<< FILE`, the whole content, `>>>>>>> FILE`)';

function parseJsonAnswer(text: string): ParsedAnswer {
  for (const v of jsonCandidates(text)) {
    const o = v as Record<string, unknown>;
    if ('subtasks' in o) {
      const r = SubtaskProposalSchema.safeParse(o);
      return r.success ? { ok: true, value: r.data } : { ok: false, error: `subtask proposal: ${formatZodIssues(r.error).join('; ')}` };
    }
    if ('needFiles' in o) {
      const r = FilesRequestSchema.safeParse(o);
      return r.success ? { ok: true, value: r.data } : { ok: false, error: `files request: ${formatZodIssues(r.error).join('; ')}` };
    }
    if ('files' in o) {
      return { ok: false, error: `the answer is JSON, but changes are not written as JSON: ${HOW_TO}` };
    }
  }
  return { ok: false, error: `no edit blocks found: ${HOW_TO}; to see a file first, list it in a \`<<<<<<< READ\` block` };
}

/**
 * Parses an answer in the block grammar: edit blocks → a ChangeSet (READ blocks beside them
 * are ignored); only READ blocks → a FilesRequest; no blocks → a JSON subtask proposal or
 * files request. Never throws; an error names the block and says what to do.
 */
export function parseBlockAnswer(text: string): ParsedAnswer {
  try {
    const parsed = parseBlocks(text);
    if (parsed.errors.length > 0) return { ok: false, error: parsed.errors.join('\n') };
    const files: FileChange[] = [];
    const reads: string[] = [];
    for (const b of parsed.blocks) {
      if (b.kind === 'SEARCH') files.push({ path: b.path, action: 'edit', search: b.search, replace: b.replace });
      else if (b.kind === 'FILE') files.push({ path: b.path, action: 'write', content: b.content });
      else if (b.kind === 'DELETE') files.push({ path: b.path, action: 'delete' });
      else for (const p of b.paths) if (!reads.includes(p)) reads.push(p);
    }
    const summary = cap(parsed.preamble);
    if (files.length > 0) {
      const r = ChangeSetSchema.safeParse({ summary: summary || generatedSummary(files), files });
      if (!r.success) return { ok: false, error: formatZodIssues(r.error).join('; ') };
      return { ok: true, value: r.data };
    }
    if (reads.length > 0) {
      return { ok: true, value: summary ? { summary, needFiles: reads } : { needFiles: reads } };
    }
    return parseJsonAnswer(text);
  } catch (err) {
    return { ok: false, error: `could not read the answer: ${(err as Error).message}` };
  }
}
