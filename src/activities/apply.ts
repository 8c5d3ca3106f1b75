// Applies a model's change set to a workspace, confined to it (design rule 7): no absolute
// paths, no `..`, nothing under `.git`, nothing through a symlink that leaves the workspace,
// no writing to a symlink. All or nothing: every path is checked before anything is written,
// and if a write still fails midway, what was already written is rolled back.
// Plain async functions; the activity wrapper lives in ./index.ts.
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, realpath, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ChangeSetSchema, formatZodIssues, type ChangeSet, type FileChange } from '../domain/schema';

export interface ApplyResult {
  applied: boolean;
  /** Workspace-relative paths written or deleted (empty when nothing was applied). */
  files: string[];
  /** One line per rejected or failed file, naming the path and the reason; non-empty ⇒ nothing written. */
  errors: string[];
}

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

function describePath(p: unknown): string {
  const s = typeof p === 'string' ? p : String(p);
  const short = s.length > 200 ? `${s.slice(0, 200)}…` : s;
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f"]/.test(short) || short.trim() !== short || short === '' ? JSON.stringify(short) : short;
}

interface Planned {
  change: FileChange;
  rel: string;
  abs: string;
  exists: boolean;
}

interface Undo {
  /** Files to put back as they were (content and mode), or remove if they did not exist. */
  files: { abs: string; before: { content: Buffer; mode: number } | null }[];
  /** Directories created, deepest last. */
  dirs: string[];
}

/**
 * Validates every path first and writes nothing if any is rejected. `create` overwrites an
 * existing file; `modify` and `delete` need an existing regular file. Parent directories are
 * created as needed. Throws only if `dir` is unusable (an infrastructure problem); a bad change
 * set is reported in `errors`.
 */
export async function applyChangeSet(dir: string, change: ChangeSet): Promise<ApplyResult> {
  const parsed = ChangeSetSchema.safeParse(change);
  if (!parsed.success) {
    return { applied: false, files: [], errors: formatZodIssues(parsed.error).map((l) => `change set: ${l}`) };
  }
  const root = await realpath(dir);
  const errors: string[] = [];
  const plan: Planned[] = [];
  const seen = new Map<string, string>();

  for (const fc of parsed.data.files) {
    const check = await validateAgainstRoot(root, fc.path);
    if (!check.ok) {
      errors.push(`${describePath(fc.path)}: ${check.reason}`);
      continue;
    }
    const key = check.rel;
    const dup = seen.get(key);
    if (dup !== undefined) {
      errors.push(`${describePath(fc.path)}: appears more than once in the change set (also as ${describePath(dup)})`);
      continue;
    }
    seen.set(key, fc.path);
    if (fc.action !== 'create' && !check.exists) {
      errors.push(`${describePath(fc.path)}: cannot ${fc.action}: file does not exist`);
      continue;
    }
    plan.push({ change: fc, rel: check.rel, abs: check.abs, exists: check.exists });
  }

  // One file of the set must not be a directory of another (`a` and `a/b`).
  for (const a of plan) {
    for (const b of plan) {
      if (b.rel.startsWith(`${a.rel}/`)) {
        errors.push(`${describePath(b.change.path)}: conflicts with ${describePath(a.change.path)} in the same change set (a file cannot also be a directory)`);
      }
    }
  }
  if (errors.length > 0) return { applied: false, files: [], errors };

  const undo: Undo = { files: [], dirs: [] };
  const files: string[] = [];
  let current: Planned | undefined;
  try {
    for (const item of plan) {
      current = item;
      await applyOne(root, item, undo);
      files.push(item.rel);
    }
  } catch (err) {
    const reason = (err as Error).message;
    await rollback(undo);
    return { applied: false, files: [], errors: [`${describePath(current?.change.path)}: ${current?.change.action} failed: ${reason}`] };
  }
  return { applied: true, files, errors: [] };
}

async function applyOne(root: string, item: Planned, undo: Undo): Promise<void> {
  const { change, abs } = item;
  let keepMode: number | undefined;
  if (item.exists) {
    const st = await lstat(abs);
    if (!st.isFile()) throw new Error('path is no longer a regular file');
    undo.files.push({ abs, before: { content: await readFile(abs), mode: st.mode & 0o7777 } });
    if (change.action !== 'delete' && st.nlink > 1) {
      // A hard link may share its inode with a file outside the workspace: replace, don't write through.
      await unlink(abs);
      keepMode = st.mode & 0o7777;
    }
  } else {
    undo.files.push({ abs, before: null });
  }
  if (change.action === 'delete') {
    await unlink(abs);
    return;
  }
  await makeParents(root, path.dirname(abs), undo);
  // O_NOFOLLOW: even if a symlink appeared since validation, do not write through it.
  const handle = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, keepMode ?? 0o666);
  try {
    await handle.writeFile(change.content, 'utf8');
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
