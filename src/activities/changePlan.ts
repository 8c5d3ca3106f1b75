// A change set applied in memory, block by block in answer order, against the workspace as it
// is: what each file becomes, and one error per block that does not apply (feedback for the
// model), or notes for blocks that change nothing and tolerant matches. Nothing is written here.
// A block that does not match always fails, even when its replacement is already in the file:
// that is a hint for the model, not proof the block was meant for those lines.
import { applyEdit, MATCH_LEVEL_DESCRIPTIONS, MAX_CANDIDATES } from '../domain/matching';
import { REDACTED } from '../domain/redact';
import type { FileChange } from '../domain/schema';
import { isTestPath } from '../domain/testPaths';
import { checkPathSyntax, loadFile, validateAgainstRoot } from './confinedPaths';

export interface ApplyOptions {
  /**
   * How each file was shown to the model (workspace-relative paths): whole rewrites need 'whole'
   * ('masked': shown whole but with values masked as [REDACTED], so never rewritten whole).
   */
  shown?: Record<string, 'whole' | 'partial' | 'masked'>;
  /** Whether test files may be changed (task.allowTestChanges); refused otherwise. */
  allowTestChanges?: boolean;
}

/** A whole-file rewrite of an existing file is accepted only up to this size (and only if shown whole). */
export const MAX_WHOLE_REWRITE_BYTES = 20_000;

/** "… existing code …", "rest of the file unchanged": a rewrite that would drop what it elides. */
const ELISION = /^\s*(?:\/\/|#|\/\*|\*|--|<!--)?\s*(?:\.\.\.|…)?\s*\(?(?:(?:the )?rest of (?:the )?(?:file|code|class|function|module)|(?:existing|remaining|other|previous|unchanged) (?:code|lines|methods|functions|content|implementation)|(?:code|lines) (?:unchanged|omitted|as before|remains? the same))\b.*$/i;

/** The first line of a whole-file rewrite that elides code the file has (not a line it had before). */
export function lazyElision(before: string, after: string): string | undefined {
  const had = new Set(before.split('\n').map((l) => l.trim()));
  return after
    .split('\n')
    .find((l) => ELISION.test(l) && !had.has(l.trim()))
    ?.trim()
    .slice(0, 80);
}

export interface FileState {
  rel: string;
  abs: string;
  /** A regular file was there when the plan started. */
  onDisk: boolean;
  bytes: number;
  /** The file's text as it is on disk (null: absent, or not loadable as text — see `unreadable`). */
  original: string | null;
  unreadable?: string;
  /** Whether the file exists after the blocks so far. */
  present: boolean;
  /** Its content after the blocks so far (null: absent, or present but unreadable and untouched). */
  current: string | null;
  /** Blocks (numbers) that changed it so far, and the last one that deleted it. */
  touchedBy: number[];
  deletedBy?: number;
}

export interface Plan {
  states: Map<string, FileState>;
  /** Files whose final content differs from the disk, in answer order. */
  changed: string[];
  errors: string[];
  notes: string[];
}

export function describePath(p: unknown): string {
  const s = typeof p === 'string' ? p : String(p);
  const short = s.length > 200 ? `${s.slice(0, 200)}…` : s;
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f"]/.test(short) || short.trim() !== short || short === '' ? JSON.stringify(short) : short;
}

function listBlocks(ns: number[]): string {
  if (ns.length === 1) return `block ${ns[0]}`;
  return `blocks ${ns.slice(0, -1).join(', ')} and ${ns[ns.length - 1]}`;
}

/** Applies every block in memory, in answer order; reads the workspace, writes nothing. */
export async function planChangeSet(root: string, files: FileChange[], opts: ApplyOptions): Promise<Plan> {
  const errors: string[] = [];
  const notes: string[] = [];
  const states = new Map<string, FileState>();
  const order: string[] = [];
  const good: number[] = [];
  const skipped: number[] = [];
  const shown = new Map<string, 'whole' | 'partial' | 'masked'>();
  for (const [p, how] of Object.entries(opts.shown ?? {})) {
    const c = checkPathSyntax(p);
    if (c.ok && shown.get(c.rel) !== 'whole') shown.set(c.rel, how);
  }

  for (const [i, fc] of files.entries()) {
    const n = i + 1;
    const label = `block ${n} (${describePath(fc.path)})`;
    const fail = (why: string) => errors.push(`${label}: ${why}`);
    const skip = (why: string) => {
      skipped.push(n);
      notes.push(`${label}: ${why}`);
    };

    const check = await validateAgainstRoot(root, fc.path);
    if (!check.ok) {
      fail(check.reason);
      continue;
    }
    const rel = check.rel;
    if (isTestPath(rel) && !opts.allowTestChanges) {
      fail(`${rel} is a test file and this task does not allow test changes (task.allowTestChanges); change the code under test`);
      continue;
    }
    let st = states.get(rel);
    if (!st) {
      let loaded: Awaited<ReturnType<typeof loadFile>> = { bytes: 0, text: null };
      try {
        if (check.exists) loaded = await loadFile(check.abs);
      } catch (err) {
        fail(`cannot read ${rel}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        continue;
      }
      st = {
        rel,
        abs: check.abs,
        onDisk: check.exists,
        bytes: loaded.bytes,
        original: loaded.text,
        unreadable: loaded.unreadable,
        present: check.exists,
        current: check.exists ? loaded.text : null,
        touchedBy: [],
      };
      states.set(rel, st);
      order.push(rel);
    }
    const gone = st.deletedBy !== undefined ? ` (block ${st.deletedBy} deletes it)` : '';

    if (fc.action === 'delete') {
      if (!st.present) {
        fail(`cannot delete ${rel}: file does not exist${gone}`);
        continue;
      }
      st.present = false;
      st.current = null;
      st.deletedBy = n;
      st.touchedBy.push(n);
      good.push(n);
      continue;
    }

    if (fc.action === 'write') {
      if (st.touchedBy.length > 0) {
        fail(`${listBlocks(st.touchedBy)} already change${st.touchedBy.length === 1 ? 's' : ''} ${rel}: a FILE block must be the only block of its file (put every change of it in that one block)`);
        continue;
      }
      if (st.onDisk) {
        const how = shown.get(rel);
        if (how === 'partial') {
          fail(`you were shown only part of ${rel}: a whole-file rewrite would lose the rest; use SEARCH/REPLACE blocks`);
          continue;
        }
        if (how === 'masked') {
          fail(`${rel} holds values shown to you as ${REDACTED}: a whole-file rewrite would overwrite them; use SEARCH/REPLACE blocks on lines without ${REDACTED}`);
          continue;
        }
        if (how !== 'whole') {
          fail(`${rel} already exists and you were not shown it: a whole-file rewrite could lose its content; use SEARCH/REPLACE blocks, or ask for it with READ`);
          continue;
        }
        if (st.bytes > MAX_WHOLE_REWRITE_BYTES) {
          fail(`${rel} is ${st.bytes} bytes, too large for a whole-file rewrite (at most ${MAX_WHOLE_REWRITE_BYTES}); use SEARCH/REPLACE blocks`);
          continue;
        }
        if (st.present && st.current === fc.content) {
          skip(`changes nothing: ${rel} already has exactly this content; skipped`);
          continue;
        }
        const elided = st.current === null ? undefined : lazyElision(st.current, fc.content);
        if (elided) {
          fail(`the FILE block for ${rel} leaves code out ("${elided}"): write every line of the file, or use SEARCH/REPLACE blocks for the parts that change`);
          continue;
        }
      }
      st.present = true;
      st.current = fc.content;
      st.touchedBy.push(n);
      good.push(n);
      continue;
    }

    // A SEARCH/REPLACE edit.
    if (st.current === null) {
      if (st.present && st.unreadable) {
        fail(`${rel} ${st.unreadable}: it cannot be edited with SEARCH/REPLACE`);
      } else if (fc.search === '' && !st.onDisk) {
        // An empty SEARCH on a new path creates the file (Aider's habit).
        st.present = true;
        st.current = fc.replace;
        st.touchedBy.push(n);
        good.push(n);
      } else if (st.onDisk) {
        fail(`cannot edit ${rel}: it no longer exists${gone}`);
      } else {
        fail(`cannot edit ${rel}: file does not exist${gone}; to create it, use a FILE block with its whole content`);
      }
      continue;
    }
    if (fc.search === '') {
      if (fc.replace === st.current) {
        skip(`changes nothing: ${rel} already has exactly this content; skipped`);
        continue;
      }
      fail(`the SEARCH part is empty, but ${rel} already exists: use a FILE block only for a new file; to change ${rel}, give the exact lines to replace in SEARCH`);
      continue;
    }
    if (fc.search.includes(REDACTED) && !st.current.includes(REDACTED)) {
      // A masked value: the file holds the real one, which the model never saw and must not replace.
      fail(`SEARCH contains ${REDACTED}, a value masked in what you were shown; ${rel} holds the real value. Choose SEARCH lines without ${REDACTED} (edit around that line, not on it)`);
      continue;
    }
    const r = applyEdit(st.current, fc.search, fc.replace);
    const after = st.touchedBy.length > 0 ? ` (as it is after ${listBlocks(st.touchedBy)})` : '';
    if (r.ok) {
      if (r.content === st.current) {
        const why = fc.search === fc.replace ? 'its SEARCH and REPLACE are identical' : 'its replacement equals the lines it matched';
        skip(`changes nothing (${why}); skipped`);
        continue;
      }
      st.current = r.content;
      st.touchedBy.push(n);
      good.push(n);
      if (r.level !== 'exact') {
        notes.push(`${label}: matched ${MATCH_LEVEL_DESCRIPTIONS[r.level]} at lines ${r.startLine}-${r.endLine}`);
      }
      continue;
    }
    if (r.reason === 'ambiguous') {
      const how = r.level === 'exact' ? '' : ` (${MATCH_LEVEL_DESCRIPTIONS[r.level]})`;
      const lines = r.candidates.length > 10 ? `${r.candidates.slice(0, 10).join(', ')}, …` : r.candidates.join(', ');
      const count = r.candidates.length >= MAX_CANDIDATES ? `at least ${MAX_CANDIDATES}` : String(r.candidates.length);
      fail(`SEARCH matches ${count} places in ${rel}${after}${how}, starting at lines ${lines}: add surrounding lines to make it unique`);
      continue;
    }
    // Aider's hint: the REPLACE lines being somewhere in the file does not make this block done.
    const found =
      r.reason === 'no-match' && r.replaceFound
        ? ` Its REPLACE lines are already in ${rel}${after} (lines ${r.replaceFound.startLine}-${r.replaceFound.endLine}): are you sure you need this block? If the change it makes is still needed elsewhere, give the lines of that place in SEARCH.`
        : '';
    if (r.reason === 'no-match' && r.closest) {
      fail(
        `SEARCH did not match.${found} Closest lines in ${rel}${after} (${r.closest.startLine}-${r.closest.endLine}):\n${r.closest.numbered}\n` +
          'SEARCH must copy the existing lines exactly (whitespace, comments and all), without line numbers.',
      );
      continue;
    }
    fail(`SEARCH did not match: nothing in ${rel}${after} resembles it.${found} Copy the existing lines exactly, or ask to see the file with READ.`);
  }

  // One file of the set must not be a directory of another (`a` and `a/b`).
  const present = order.filter((rel) => states.get(rel)!.present);
  for (const a of present) {
    for (const b of present) {
      if (b.startsWith(`${a}/`)) {
        errors.push(`${describePath(b)}: conflicts with ${describePath(a)} in the same change set (a file cannot also be a directory)`);
      }
    }
  }

  const changed = order.filter((rel) => {
    const st = states.get(rel)!;
    return st.onDisk ? !st.present || st.current !== st.original : st.present;
  });
  if (errors.length > 0) {
    const would = good.length ? `${listBlocks(good)} would have applied` : 'no block would have applied';
    const nothing = skipped.length ? `; ${listBlocks(skipped)} change${skipped.length === 1 ? 's' : ''} nothing` : '';
    errors.push(`Nothing was written (all or nothing): ${would}${nothing}. Fix the failed blocks and send all the blocks again.`);
  } else if (changed.length === 0) {
    errors.push(
      skipped.length === files.length
        ? `no block changes anything (${listBlocks(skipped)}: the files already have exactly this content), so nothing would change; look for what else makes the tests fail`
        : 'the change set changes nothing',
    );
  }
  return { states, changed, errors, notes };
}
