// What a commit changes against the task's base: a bounded diffstat for the workflow's state
// (the `progress` query shows it while a person decides on the push) and the whole diff as an
// artifact (history carries only its reference, design rule 3).
import type { ArtifactRef, Diffstat } from '../domain/schema';
import type { ArtifactStore } from './artifacts';
import { openWorkspace } from './git';
import type { WorkspaceHandle } from './types';

/** Files listed by name in a diffstat; the rest are counted (a history event stays small). */
export const MAX_DIFFSTAT_FILES = 200;

// No external diff drivers or text conversion: git runs nothing a repository names.
const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv', '--no-renames'];

export interface CommitDescription {
  diffstat: Diffstat;
  /** Absent when the commit changes nothing against the base. */
  diff?: ArtifactRef;
}

/** The diffstat and the diff of `commit` against the workspace's base commit. */
export async function describeCommit(store: ArtifactStore, ws: WorkspaceHandle, commit: string): Promise<CommitDescription> {
  const git = openWorkspace(ws);
  const range = [ws.baseCommit, commit, '--'];
  // One git for both: the numstat entries (each NUL-terminated, never empty without renames),
  // an empty entry, then the patch exactly as `git diff` alone prints it.
  const out = await git.raw(['diff', ...DIFF_FLAGS, '--numstat', '-z', '--patch', ...range]);
  const end = out.indexOf('\0\0');
  const diffstat = parseNumstat(end < 0 ? out : out.slice(0, end + 1));
  const text = end < 0 ? '' : out.slice(end + 2);
  return { diffstat, ...(text ? { diff: await store.put('diff', text) } : {}) };
}

/** `git diff --numstat -z` (without renames): `added\tremoved\tpath\0` per file, `-` for binary. */
export function parseNumstat(out: string, max = MAX_DIFFSTAT_FILES): Diffstat {
  const all = out
    .split('\0')
    .filter(Boolean)
    .map((entry) => {
      const [a, r, ...rest] = entry.split('\t');
      const path = rest.join('\t');
      return a === '-' ? { path, added: 0, removed: 0, binary: true as const } : { path, added: Number(a) || 0, removed: Number(r) || 0 };
    });
  const stat: Diffstat = {
    files: all.slice(0, max),
    filesChanged: all.length,
    added: all.reduce((n, f) => n + f.added, 0),
    removed: all.reduce((n, f) => n + f.removed, 0),
  };
  if (all.length > max) stat.moreFiles = all.length - max;
  return stat;
}
