// Applies a model's change set to a workspace, confined to it (design rule 7): no absolute
// paths, no `..`, nothing under `.git`, nothing through a symlink that leaves the workspace,
// no writing to a symlink. Every block is first applied in memory, in answer order (several
// edits of one file apply one after the other; search/replace blocks are matched by
// src/domain/matching.ts); nothing is written unless every block applies (all or nothing per
// attempt), and if a write still fails midway, what was already written is rolled back.
// Errors are feedback for the model: one line per failed block, naming it.
// Plain async functions; the activity wrapper lives in ./index.ts. The path checks are in
// ./confinedPaths.ts, the in-memory application in ./changePlan.ts; the writing and its rollback
// here.
import { constants } from 'node:fs';
import { mkdir, open, readFile, realpath, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ChangeSetSchema, formatZodIssues, type ChangeSet } from '../domain/schema';
import { describePath, planChangeSet, type ApplyOptions, type FileState } from './changePlan';
import type { WrittenFile } from './changeDiff';
import { lstatOrNull, withinRoot } from './confinedPaths';

export { lazyElision, MAX_WHOLE_REWRITE_BYTES, type ApplyOptions } from './changePlan';
export { checkPathSyntax, MAX_EDIT_BYTES, validateChangePath, type PathCheck, type PathSyntaxCheck } from './confinedPaths';

export interface ApplyResult {
  applied: boolean;
  /** Workspace-relative paths written or deleted, in answer order (empty when nothing was applied). */
  files: string[];
  /** One line per failed block, naming it and saying what to do; non-empty ⇒ nothing written. */
  errors: string[];
  /** Things worth knowing that did not stop the change: blocks that change nothing (skipped), tolerant matches. */
  notes: string[];
}

export interface PreviewResult {
  ok: boolean;
  /** The files the change set would change, with their resulting content (null: deleted), in answer order. */
  files: { path: string; content: string | null }[];
  errors: string[];
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
 * `contents`, when given, receives each written file's bytes before and after.
 */
export async function applyChangeSet(dir: string, change: ChangeSet, opts: ApplyOptions = {}, contents?: WrittenFile[]): Promise<ApplyResult> {
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
  // What each file held before and holds now: the change's diff is made from these (./changeDiff.ts).
  if (contents) {
    for (const [i, rel] of written.entries()) {
      const st = plan.states.get(rel)!;
      contents.push({ path: rel, before: undo.files[i].before?.content ?? null, after: st.present ? Buffer.from(st.current ?? '', 'utf8') : null });
    }
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
  for (let d = dirPath; d !== root && withinRoot(root, d); d = path.dirname(d)) {
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
