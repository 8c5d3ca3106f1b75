// `grep: <regex> [in <glob>]` READ requests (issue 16, item 2): matches with line numbers across
// the tracked files, bounded — at most MAX_MATCHES matches and MAX_CHARS characters, each line
// scanned only up to MAX_LINE_SCAN characters, and a pattern that could backtrack badly (a
// quantified group holding a quantifier or an alternation, a backreference, a lookaround) or
// that is not a valid regex searched for literally instead. Files the caller skips (secret
// files, files too large) are never read or listed.
import { minimatch } from 'minimatch';
import { MAX_GREP_PATTERN } from '../domain/editformats';
import { readConfined } from './confinedPaths';

export const MAX_MATCHES = 50;
export const MAX_CHARS = 4000;
/** Characters of a line that are searched (and shown). */
export const MAX_LINE_SCAN = 300;
/** Files larger than this are not searched. */
const MAX_FILE_BYTES = 1024 * 1024;
/** Bytes searched in all, and wall time: the search stops there and says so. */
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
const MAX_MS = 3000;

export interface GrepResult {
  /** `path:line: text` lines. */
  lines: string[];
  matches: number;
  /** Why the search stopped early (more matches, size, time), if it did. */
  stopped?: string;
  /** Why the pattern was searched for literally, if it was. */
  literal?: string;
  files: number;
}

/** Why `pattern` is not used as a regex (then it is searched for literally), or undefined. */
export function unsafeRegex(pattern: string): string | undefined {
  if (pattern.length > MAX_GREP_PATTERN) return 'too long';
  try {
    new RegExp(pattern);
  } catch {
    return 'not a valid regular expression';
  }
  if (/\\[1-9]|\\k</.test(pattern)) return 'backreferences are not searched';
  if (/\(\?<?[=!]/.test(pattern)) return 'lookarounds are not searched';
  // A quantified group whose body repeats or alternates: (a+)+, (a|aa)*, (x*y){2,}.
  const stack: number[] = [];
  const risky: boolean[] = [];
  let unbounded = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      // Skip a character class.
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
      i = j;
      continue;
    }
    if (c === '(') {
      stack.push(i);
      risky.push(false);
    } else if (c === ')') {
      stack.pop();
      const inner = risky.pop() ?? false;
      const next = pattern[i + 1];
      const quantified = next === '*' || next === '+' || next === '{' || next === '?';
      if (quantified && inner && next !== '?') return 'a repeated group that itself repeats could take too long';
      if (risky.length && (inner || quantified)) risky[risky.length - 1] = true;
    } else if (c === '*' || c === '+' || c === '{' || c === '|') {
      if (risky.length) risky[risky.length - 1] = true;
      if (c !== '|') unbounded++;
    }
  }
  if (unbounded > 3) return 'more than 3 repetitions could take too long';
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Searches `files` (tracked, repository-relative) under `dir` for `pattern`, in `glob` if
 * given. `skip(rel, text)` withholds a file (a reason: it is neither searched nor listed).
 */
export async function grepFiles(
  dir: string,
  files: readonly string[],
  pattern: string,
  glob: string | undefined,
  skip: (rel: string, text?: string) => string | undefined,
): Promise<GrepResult> {
  const literal = unsafeRegex(pattern);
  const re = new RegExp(literal ? escapeRegExp(pattern.slice(0, MAX_GREP_PATTERN)) : pattern);
  // `*.py` matches at any depth, as in .gitignore; `src/**/*.py` from the root.
  const inGlob = glob ? (rel: string) => minimatch(rel, glob, { dot: true, matchBase: !glob.includes('/') }) : () => true;
  const lines: string[] = [];
  let chars = 0;
  let matches = 0;
  let bytes = 0;
  let searched = 0;
  let stopped: string | undefined;
  const t0 = Date.now();
  outer: for (const rel of files) {
    if (!inGlob(rel) || skip(rel)) continue;
    if (Date.now() - t0 > MAX_MS || bytes > MAX_TOTAL_BYTES) {
      stopped = 'the search took too long: narrow it with `in <glob>`';
      break;
    }
    const file = await readConfined(dir, rel, MAX_FILE_BYTES);
    if (!file.ok || file.text.includes('\0') || skip(rel, file.text)) continue;
    bytes += file.text.length;
    searched++;
    const text = file.text.split('\n');
    for (let i = 0; i < text.length; i++) {
      const line = text[i].length > MAX_LINE_SCAN ? text[i].slice(0, MAX_LINE_SCAN) : text[i];
      if (!re.test(line)) continue;
      const out = `${rel}:${i + 1}: ${line.trimEnd()}${text[i].length > MAX_LINE_SCAN ? ' …' : ''}`;
      if (matches >= MAX_MATCHES || chars + out.length + 1 > MAX_CHARS) {
        stopped = `more matches than shown (at most ${MAX_MATCHES} matches or ${MAX_CHARS} characters): narrow the pattern or add \`in <glob>\``;
        break outer;
      }
      lines.push(out);
      chars += out.length + 1;
      matches++;
    }
  }
  return { lines, matches, files: searched, ...(stopped ? { stopped } : {}), ...(literal ? { literal } : {}) };
}
