// The paths a model names, confined to the workspace (design rule 7): checked on their own (no
// absolute path, `..`, `.git`…) and on the disk (no symlink leaving the workspace), for writing
// a change (./apply.ts) and for reading a file into a prompt (./prompt.ts); files read without
// following a symlink that appeared meanwhile.
import { constants } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

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

/** Whether `target` is `root` or lies under it (path.relative: neither `..` nor absolute). */
export function withinRoot(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export async function lstatOrNull(p: string) {
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

export async function validateAgainstRoot(root: string, p: string): Promise<PathCheck> {
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
  if (!withinRoot(root, abs) || abs === root) return { ok: false, reason: 'path escapes the workspace' };

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
  if (!withinRoot(root, real)) {
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

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads a regular file without following a symlink; text when it is UTF-8 and not too large. */
export async function loadFile(abs: string): Promise<{ bytes: number; text: string | null; unreadable?: string }> {
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

type ReadResult = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Reads workspace file `rel` if it stays in the workspace: `validateChangePath` (no absolute
 * path, `..`, `.git`, or ancestor symlink leaving the workspace). A symlink as the file itself
 * is followed only when its target, fully resolved, is a file inside the workspace and not
 * under `.git`. The file is opened without following a symlink that appeared meanwhile.
 */
export async function readConfined(dir: string, rel: string, maxBytes = Infinity): Promise<ReadResult> {
  // validateChangePath speaks of writing; the rule is the same for reading.
  const why = (reason: string) => reason.replace(/^writing inside \.git is not allowed$/, 'inside .git');
  const check = await validateChangePath(dir, rel);
  let abs: string;
  if (check.ok) {
    if (!check.exists) return { ok: false, reason: 'does not exist yet' };
    abs = check.abs;
  } else if (check.reason === 'path is a symbolic link') {
    const root = await realpath(dir);
    let target: string;
    try {
      target = await realpath(path.join(root, rel));
    } catch {
      return { ok: false, reason: 'not readable: dangling symbolic link' };
    }
    const inside = path.relative(root, target);
    if (!inside || inside.startsWith('..') || path.isAbsolute(inside)) {
      return { ok: false, reason: 'not readable: symbolic link to outside the workspace' };
    }
    const again = await validateChangePath(dir, inside.split(path.sep).join('/'));
    if (!again.ok) return { ok: false, reason: `not readable: symbolic link target: ${why(again.reason)}` };
    if (!again.exists) return { ok: false, reason: 'not readable: symbolic link target is not a file' };
    abs = again.abs;
  } else {
    return { ok: false, reason: `not readable: ${why(check.reason)}` };
  }
  try {
    const handle = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (!st.isFile()) return { ok: false, reason: 'not readable: not a regular file' };
      if (st.size > maxBytes) return { ok: false, reason: `not shown: ${st.size} bytes` };
      const bytes = await handle.readFile();
      if (bytes.includes(0)) return { ok: false, reason: 'not shown: a binary file' };
      return { ok: true, text: bytes.toString('utf8') };
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { ok: false, reason: `not readable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}
