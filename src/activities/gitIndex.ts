// A git index file read in-process (formats 2 and 3, SHA-1 repositories): path → mode and blob
// id, so the worker can tell, without starting git, what a tree recorded for a path. Anything
// it does not read plainly — format 4, a sparse index, conflict stages, extended flags — is
// `undefined`, and the caller asks git instead.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface IndexEntry {
  /** `100644`, `100755`, `120000` (symlink), `160000` (submodule). */
  mode: string;
  /** The blob's id (hex). */
  id: string;
}

/** The entries of the index at `file`, or undefined when it is not one this reader takes. */
export async function readGitIndex(file: string): Promise<Map<string, IndexEntry> | undefined> {
  const buf = await readFile(file).catch(() => undefined);
  if (!buf || buf.length < 12 || buf.toString('latin1', 0, 4) !== 'DIRC') return undefined;
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) return undefined;
  const count = buf.readUInt32BE(8);
  const entries = new Map<string, IndexEntry>();
  let at = 12;
  for (let i = 0; i < count; i++) {
    if (at + 62 > buf.length) return undefined;
    const mode = buf.readUInt32BE(at + 24);
    const id = buf.toString('hex', at + 40, at + 60);
    const flags = buf.readUInt16BE(at + 60);
    // Extended flags (intent-to-add, skip-worktree) or a conflict stage: not a plain tree's entry.
    if (flags & 0x4000 || (flags >> 12) & 3) return undefined;
    const start = at + 62;
    const end = buf.indexOf(0, start);
    if (end < 0) return undefined;
    const type = mode >> 12;
    // 0o10: regular file, 0o12: symlink, 0o16: gitlink; a directory (sparse index) is not read here.
    if (type !== 0o10 && type !== 0o12 && type !== 0o16) return undefined;
    entries.set(buf.toString('utf8', start, end), { mode: mode.toString(8).padStart(6, '0'), id });
    // Each entry is padded with 1 to 8 NULs to a multiple of 8 bytes.
    at += (62 + (end - start) + 8) & ~7;
  }
  return entries;
}

/** The id git gives `content` as a blob (SHA-1). */
export function blobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}
