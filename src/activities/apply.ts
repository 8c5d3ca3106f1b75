// Applies a model's change set to a workspace, confined to it (design rule 7): no absolute
// paths, no `..`, nothing under `.git`, nothing through a symlink that leaves the workspace,
// no writing to a symlink. Every block is first applied in memory, in answer order (several
// edits of one file apply one after the other; search/replace blocks are matched by
// src/domain/matching.ts); nothing is written unless every block applies (all or nothing per
// attempt), and if a write still fails midway, what was already written is rolled back.
// Errors are feedback for the model: one line per failed block, naming it.
// Plain async functions; the activity wrapper lives in ./index.ts.
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, realpath, rmdir, unlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { applyEdit, MATCH_LEVEL_DESCRIPTIONS, MAX_CANDIDATES } from '../domain/matching';
import { ChangeSetSchema, formatZodIssues, type ChangeSet, type FileChange } from '../domain/schema';
import { REDACTED } from '../domain/redact';
import { isTestPath } from '../domain/testPaths';

export interface ApplyResult {
  applied: boolean;
  /** Workspace-relative paths written or deleted, in answer order (empty when nothing was applied). */
  files: string[];
  /** One line per failed block, naming it and saying what to do; non-empty ⇒ nothing written. */
  errors: string[];
  /** Things worth knowing that did not stop the change: blocks already applied (skipped), tolerant matches. */
  notes: string[];
}

export interface ApplyOptions {
  /**
   * How each file was shown to the model (workspace-relative paths): whole rewrites need 'whole'
   * ('masked': shown whole but with values masked as [REDACTED], so never rewritten whole).
   */
  shown?: Record<string, 'whole' | 'partial' | 'masked'>;
  /** Whether test files may be changed (task.allowTestChanges); refused otherwise. */
  allowTestChanges?: boolean;
}

export interface PreviewResult {
  ok: boolean;
  /** The files the change set would change, with their resulting content (null: deleted), in answer order. */
  files: { path: string; content: string | null }[];
  errors: string[];
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
/** Files larger than this are not loaded for editing. */
export const MAX_EDIT_BYTES = 16 * 1024 * 1024;

export type PathSyntaxCheck = { ok: true; rel: string } | { ok: false; reason: string };

export type PathCheck =
  | {
      ok: true;
      /** Canonical workspace-relative path, `/`-separated (`./a//b` → `a/b`). */
      rel: string;
      /** Absolute path under the workspace's real path. */
      abs: string;
      /** Whether a regular file is there now. */
      exists: boolean;
    }
  | { ok: false; reason: string };

const MAX_PATH_LENGTH = 4096;

function isGitDirName(segment: string): boolean {
  // `.git`, any case; also `.git.` / `.git ` (Windows drops trailing dots and spaces) and the
  // 8.3 short name `git~1`.
  const s = segment.toLowerCase().replace(/[. ]+$/, '');
  return s === '.git' || s === 'git~1';
}

/**
 * Checks a change path on its own, without looking at the disk: relative, no `..`, not `.`,
 * nothing under `.git`, no NUL or control characters, not Windows-absolute. Backslashes count
 * as separators (a model writing `a\..\b` means `..`).
 */
export function checkPathSyntax(p: unknown): PathSyntaxCheck {
  if (typeof p !== 'string') return { ok: false, reason: 'path is not a string' };
  if (p.length === 0) return { ok: false, reason: 'path is empty' };
  if (p.length > MAX_PATH_LENGTH) return { ok: false, reason: `path is longer than ${MAX_PATH_LENGTH} characters` };
  if (p.includes('\0')) return { ok: false, reason: 'path contains a NUL byte' };
  // eslint-disable-next-line no-control-regex
  if (/[\x01-\x1f\x7f]/.test(p)) return { ok: false, reason: 'path contains control characters' };
  if (p.startsWith('/') || p.startsWith('\\')) return { ok: false, reason: 'absolute paths are not allowed' };
  if (/^[A-Za-z]:/.test(p)) return { ok: false, reason: 'absolute (drive-letter) paths are not allowed' };
  if (/[\\/]$/.test(p)) return { ok: false, reason: 'path names a directory, not a file' };
  const segments = p.split(/[\\/]+/);
  if (segments.includes('..')) return { ok: false, reason: "'..' segments are not allowed (path escapes the workspace)" };
  const kept = segments.filter((s) => s !== '.' && s !== '');
  if (kept.length === 0) return { ok: false, reason: 'path does not name a file in the workspace' };
  if (kept.some(isGitDirName)) return { ok: false, reason: 'writing inside .git is not allowed' };
  return { ok: true, rel: kept.join('/') };
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: an ancestor is a file; the walk up finds and reports it.
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * Full check of one change path against the workspace `dir`: `checkPathSyntax`, then the disk:
 * the deepest existing ancestor, with all symlinks resolved, must be a directory inside the
 * workspace's real path and not inside `.git`; the target itself must not be a symlink or a
 * directory. Throws only if `dir` itself is unusable.
 */
export async function validateChangePath(dir: string, p: string): Promise<PathCheck> {
  return validateAgainstRoot(await realpath(dir), p);
}

async function validateAgainstRoot(root: string, p: string): Promise<PathCheck> {
  try {
    return await checkOnDisk(root, p);
  } catch (err) {
    // ENAMETOOLONG, ELOOP, EACCES…: a property of this path, reported like any other rejection.
    const e = err as NodeJS.ErrnoException;
    return { ok: false, reason: `cannot check path: ${e.code ?? e.message}` };
  }
}

async function checkOnDisk(root: string, p: string): Promise<PathCheck> {
  const syntax = checkPathSyntax(p);
  if (!syntax.ok) return syntax;
  const segments = syntax.rel.split('/');
  const abs = path.join(root, ...segments);
  if (!isInside(root, abs) || abs === root) return { ok: false, reason: 'path escapes the workspace' };

  // The target itself: never follow or replace a symlink, never treat a directory as a file.
  const own = await lstatOrNull(abs);
  if (own?.isSymbolicLink()) return { ok: false, reason: 'path is a symbolic link' };
  if (own?.isDirectory()) return { ok: false, reason: 'path is a directory' };
  if (own && !own.isFile()) return { ok: false, reason: 'path is not a regular file' };

  // The deepest ancestor that exists (lstat: a dangling symlink exists too).
  let depth = segments.length - 1;
  while (depth > 0 && (await lstatOrNull(path.join(root, ...segments.slice(0, depth)))) === null) depth--;
  const ancestor = path.join(root, ...segments.slice(0, depth));
  let real: string;
  try {
    real = await realpath(ancestor);
  } catch {
    return { ok: false, reason: `${segments.slice(0, depth).join('/')} is a dangling symbolic link` };
  }
  if (!isInside(root, real)) {
    return { ok: false, reason: `path resolves outside the workspace through a symbolic link (${segments.slice(0, depth).join('/')})` };
  }
  if (path.relative(root, real).split(path.sep).some(isGitDirName)) {
    return { ok: false, reason: 'path resolves into .git through a symbolic link' };
  }
  if (!(await stat(real)).isDirectory()) {
    return { ok: false, reason: `${segments.slice(0, depth).join('/')} is a file, not a directory` };
  }
  return { ok: true, rel: syntax.rel, abs, exists: own !== null };
}

interface FileState {
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

interface Plan {
  states: Map<string, FileState>;
  /** Files whose final content differs from the disk, in answer order. */
  changed: string[];
  errors: string[];
  notes: string[];
}

function describePath(p: unknown): string {
  const s = typeof p === 'string' ? p : String(p);
  const short = s.length > 200 ? `${s.slice(0, 200)}…` : s;
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f"]/.test(short) || short.trim() !== short || short === '' ? JSON.stringify(short) : short;
}

function listBlocks(ns: number[]): string {
  if (ns.length === 1) return `block ${ns[0]}`;
  return `blocks ${ns.slice(0, -1).join(', ')} and ${ns[ns.length - 1]}`;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads a regular file without following a symlink; text when it is UTF-8 and not too large. */
async function loadFile(abs: string): Promise<{ bytes: number; text: string | null; unreadable?: string }> {
  const handle = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { bytes: st.size, text: null, unreadable: 'is not a regular file' };
    if (st.size > MAX_EDIT_BYTES) return { bytes: st.size, text: null, unreadable: `is too large to edit (${st.size} bytes)` };
    const buf = await handle.readFile();
    if (buf.includes(0)) return { bytes: buf.length, text: null, unreadable: 'is a binary file' };
    try {
      return { bytes: buf.length, text: UTF8.decode(buf) };
    } catch {
      return { bytes: buf.length, text: null, unreadable: 'is not UTF-8 text' };
    }
  } finally {
    await handle.close();
  }
}

/** Applies every block in memory, in answer order; reads the workspace, writes nothing. */
async function planChangeSet(root: string, files: FileChange[], opts: ApplyOptions): Promise<Plan> {
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
          skip(`already applied: ${rel} already has this content; skipped`);
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
        skip(`already applied: ${rel} already has this content; skipped`);
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
        skip(`changes nothing (its replacement equals the lines it matched); skipped`);
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
    if (r.reason === 'no-match' && r.alreadyApplied) {
      skip('already applied: its replacement is already in the file; skipped');
      continue;
    }
    if (r.reason === 'no-match' && r.closest) {
      fail(
        `SEARCH did not match. Closest lines in ${rel}${after} (${r.closest.startLine}-${r.closest.endLine}):\n${r.closest.numbered}\n` +
          'SEARCH must copy the existing lines exactly (whitespace, comments and all), without line numbers.',
      );
      continue;
    }
    fail(`SEARCH did not match: nothing in ${rel}${after} resembles it. Copy the existing lines exactly, or ask to see the file with READ.`);
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
    const already = skipped.length ? `; ${listBlocks(skipped)} ${skipped.length === 1 ? 'was' : 'were'} already applied` : '';
    errors.push(`Nothing was written (all or nothing): ${would}${already}. Fix the failed blocks and send all the blocks again.`);
  } else if (changed.length === 0) {
    errors.push(
      skipped.length === files.length
        ? 'every block is already applied: the files already contain these changes, so nothing would change; look for what else makes the tests fail'
        : 'the change set changes nothing',
    );
  }
  return { states, changed, errors, notes };
}

function validated(change: ChangeSet): { ok: true; change: ChangeSet } | { ok: false; errors: string[] } {
  const parsed = ChangeSetSchema.safeParse(change);
  if (!parsed.success) return { ok: false, errors: formatZodIssues(parsed.error).map((l) => `change set: ${l}`) };
  return { ok: true, change: parsed.data };
}

/**
 * What the change set would make of the workspace's files, without writing anything: the same
 * computation as `applyChangeSet` (consensus compares candidates by their resulting files).
 */
export async function previewChangeSet(dir: string, change: ChangeSet, opts: ApplyOptions = {}): Promise<PreviewResult> {
  const v = validated(change);
  if (!v.ok) return { ok: false, files: [], errors: v.errors };
  const plan = await planChangeSet(await realpath(dir), v.change.files, opts);
  if (plan.errors.length > 0) return { ok: false, files: [], errors: plan.errors };
  return { ok: true, files: plan.changed.map((rel) => {
        const st = plan.states.get(rel)!;
        return { path: rel, content: st.present ? st.current : null };
      }), errors: [] };
}

interface Undo {
  /** Files to put back as they were (content and mode), or remove if they did not exist. */
  files: { abs: string; before: { content: Buffer; mode: number } | null }[];
  /** Directories created, deepest last. */
  dirs: string[];
}

/**
 * Applies every block in memory first (edits matched tolerantly but uniquely, whole rewrites
 * only of files shown whole and small, test files only when allowed) and writes nothing unless
 * all apply. Parent directories are created as needed. Throws only if `dir` is unusable (an
 * infrastructure problem); a bad change set is reported in `errors`, as feedback for the model.
 */
export async function applyChangeSet(dir: string, change: ChangeSet, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const v = validated(change);
  if (!v.ok) return { applied: false, files: [], errors: v.errors, notes: [] };
  const root = await realpath(dir);
  const plan = await planChangeSet(root, v.change.files, opts);
  if (plan.errors.length > 0) return { applied: false, files: [], errors: plan.errors, notes: plan.notes };

  const undo: Undo = { files: [], dirs: [] };
  const written: string[] = [];
  let current: FileState | undefined;
  try {
    for (const rel of plan.changed) {
      current = plan.states.get(rel)!;
      await writeOne(root, current, undo);
      written.push(rel);
    }
  } catch (err) {
    const reason = (err as Error).message;
    await rollback(undo);
    const what = current?.present ? 'write' : 'delete';
    return {
      applied: false,
      files: [],
      errors: [`${describePath(current?.rel)}: ${what} failed: ${reason}; nothing was written (all or nothing)`],
      notes: plan.notes,
    };
  }
  return { applied: true, files: written, errors: [], notes: plan.notes };
}

async function writeOne(root: string, item: FileState, undo: Undo): Promise<void> {
  const { abs } = item;
  const content = item.present ? item.current : null;
  let keepMode: number | undefined;
  const own = await lstatOrNull(abs);
  if (own) {
    if (!own.isFile()) throw new Error('path is no longer a regular file');
    undo.files.push({ abs, before: { content: await readFile(abs), mode: own.mode & 0o7777 } });
    if (content !== null && own.nlink > 1) {
      // A hard link may share its inode with a file outside the workspace: replace, don't write through.
      await unlink(abs);
      keepMode = own.mode & 0o7777;
    }
  } else {
    undo.files.push({ abs, before: null });
  }
  if (content === null) {
    if (own) await unlink(abs);
    return;
  }
  await makeParents(root, path.dirname(abs), undo);
  // O_NOFOLLOW: even if a symlink appeared since validation, do not write through it.
  const handle = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, keepMode ?? 0o666);
  try {
    await handle.writeFile(content, 'utf8');
    if (keepMode !== undefined) await handle.chmod(keepMode);
  } finally {
    await handle.close();
  }
}

/** mkdir -p, recording each directory created so a rollback can remove it. */
async function makeParents(root: string, dirPath: string, undo: Undo): Promise<void> {
  const missing: string[] = [];
  for (let d = dirPath; d !== root && isInside(root, d); d = path.dirname(d)) {
    if ((await lstatOrNull(d)) !== null) break;
    missing.unshift(d);
  }
  for (const d of missing) {
    await mkdir(d);
    undo.dirs.push(d);
  }
}

async function rollback(undo: Undo): Promise<void> {
  for (const f of [...undo.files].reverse()) {
    try {
      if (f.before === null) {
        await unlink(f.abs).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      } else {
        const handle = await open(f.abs, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, f.before.mode);
        try {
          await handle.writeFile(f.before.content);
          await handle.chmod(f.before.mode);
        } finally {
          await handle.close();
        }
      }
    } catch {
      // Best effort: the workflow resets the workspace before the next attempt anyway.
    }
  }
  for (const d of [...undo.dirs].reverse()) {
    await rmdir(d).catch(() => undefined);
  }
}
