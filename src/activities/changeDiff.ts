// The diff of an applied change, built in-process from what the change wrote (the contents
// before and after, already in memory) instead of `git diff --cached`: the same text git gives
// with DIFF_FLAGS — headers, modes, full blob ids, hunks with 3 lines of context and git's
// default function line, "\ No newline at end of file", "Binary files … differ" — computed by
// jsdiff. Used only where the worker can vouch that git would diff exactly these bytes: the
// recorded blobs match them (no filter, no CRLF conversion changed them), no attributes file
// could change how git diffs, and every path is a plain file git would not quote.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { structuredPatch } from 'diff';
import { blobId, readGitIndex, type IndexEntry } from './gitIndex';

/** What `git diff` is asked for wherever the worker stores a change's diff: one format, whoever makes it. */
export const CHANGE_DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv', '--no-renames', '--full-index', '-U3', '--inter-hunk-context=0', '--src-prefix=a/', '--dst-prefix=b/'];

export interface WrittenFile {
  /** Workspace-relative. */
  path: string;
  /** Its bytes before the change (null: it was not there) and after (null: deleted). */
  before: Buffer | null;
  after: Buffer | null;
}

const ZERO_ID = '0'.repeat(40);
/** git's own test for binary content: a NUL in the first 8000 bytes. */
const BINARY_PROBE = 8000;
/** Paths git writes as they are (no quoting, no trailing tab for a space). */
const PLAIN_PATH = /^[A-Za-z0-9._@+=,%~^-]+(?:\/[A-Za-z0-9._@+=,%~^-]+)*$/;
const CONTEXT = 3;

/**
 * The diff `git diff --cached <against>` would show for `files`, given the index files for
 * both sides (`againstIndex`: the tree diffed against, as an index; `stagedIndex`: the index
 * with the change staged) — or undefined when git must be asked.
 */
export async function changeDiff(repo: string, files: WrittenFile[], againstIndex: string, stagedIndex: string): Promise<string | undefined> {
  if (!files.length || files.some((f) => !PLAIN_PATH.test(f.path)) || !noAttributes(repo)) return undefined;
  const [against, staged] = await Promise.all([readGitIndex(againstIndex), readGitIndex(stagedIndex)]);
  if (!against || !staged || hasAttributesFile(against) || hasAttributesFile(staged)) return undefined;
  const parts: string[] = [];
  for (const f of [...files].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)))) {
    const old = side(against, f.path, f.before);
    const now = side(staged, f.path, f.after);
    if (old === false || now === false) return undefined;
    parts.push(fileDiff(f.path, old, now));
  }
  return Buffer.from(parts.join(''), 'latin1').toString('utf8');
}

type Side = { mode: string; id: string; content: Buffer } | null;

/** The index's entry for `p` when it records exactly `content` as a regular file (null: absent on both), else false. */
function side(index: Map<string, IndexEntry>, p: string, content: Buffer | null): Side | false {
  const entry = index.get(p);
  // A directory there (the pathspec would take in what is under it): git's business.
  if (!entry) return content === null && !hasUnder(index, p) ? null : false;
  if (content === null || !/^100(644|755)$/.test(entry.mode) || entry.id !== blobId(content)) return false;
  return { mode: entry.mode, id: entry.id, content };
}

function hasUnder(index: Map<string, IndexEntry>, p: string): boolean {
  const prefix = `${p}/`;
  for (const k of index.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

function hasAttributesFile(index: Map<string, IndexEntry>): boolean {
  for (const k of index.keys()) if (k === '.gitattributes' || k.endsWith('/.gitattributes')) return true;
  return false;
}

/** No attributes file outside the tree either: the repository's info/attributes, the user's global one. */
function noAttributes(repo: string): boolean {
  const xdg = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return ![path.join(repo, '.git', 'info', 'attributes'), path.join(xdg, 'git', 'attributes')].some((f) => existsSync(f)) && !globalAttributesFile();
}

/** Whether the user's git config names an attributes file (core.attributesFile): then git is asked. */
function globalAttributesFile(): boolean {
  const files = [process.env.GIT_CONFIG_GLOBAL, path.join(os.homedir(), '.gitconfig'), path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'git', 'config')];
  return files.some((f) => {
    try {
      return !!f && /attributesfile/i.test(readFileSync(f, 'latin1'));
    } catch {
      return false;
    }
  });
}

/** One file's part of the diff, in latin1 (a char per byte, so any content passes unchanged). */
export function fileDiff(p: string, old: Side, now: Side): string {
  let out = `diff --git a/${p} b/${p}\n`;
  if (!old) out += `new file mode ${now!.mode}\n`;
  else if (!now) out += `deleted file mode ${old.mode}\n`;
  else if (old.mode !== now.mode) out += `old mode ${old.mode}\nnew mode ${now.mode}\n`;
  const oldId = old?.id ?? ZERO_ID;
  const newId = now?.id ?? ZERO_ID;
  if (oldId === newId) return out;
  out += `index ${oldId}..${newId}${old && now && old.mode === now.mode ? ` ${old.mode}` : ''}\n`;
  const a = old?.content ?? Buffer.alloc(0);
  const b = now?.content ?? Buffer.alloc(0);
  // An empty file added or removed: the header is all git shows.
  if ((!old && !b.length) || (!now && !a.length)) return out;
  const from = old ? `a/${p}` : '/dev/null';
  const to = now ? `b/${p}` : '/dev/null';
  if (isBinary(a) || isBinary(b)) return `${out}Binary files ${from} and ${to} differ\n`;
  out += `--- ${from}\n+++ ${to}\n`;
  const oldText = a.toString('latin1');
  const oldLines = oldText.split('\n');
  for (const h of structuredPatch(from, to, oldText, b.toString('latin1'), '', '', { context: CONTEXT }).hunks) {
    const range = (start: number, count: number) => `${count ? start : start - 1}${count === 1 ? '' : `,${count}`}`;
    const func = funcLine(oldLines, h.oldStart - 1);
    out += `@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@${func ? ` ${func}` : ''}\n`;
    out += h.lines.map((l) => `${l}\n`).join('');
  }
  return out;
}

function isBinary(content: Buffer): boolean {
  return content.subarray(0, BINARY_PROBE).includes(0);
}

/**
 * git's default hunk-header function line: the last line before the hunk (0-based `before`,
 * exclusive) starting with a letter, `_` or `$`, cut to 80 bytes, trailing whitespace (C's isspace) dropped.
 */
function funcLine(lines: string[], before: number): string {
  for (let i = Math.min(before, lines.length) - 1; i >= 0; i--) {
    if (/^[A-Za-z_$]/.test(lines[i])) return lines[i].slice(0, 80).replace(/[ \t\n\v\f\r]+$/, '');
  }
  return '';
}
