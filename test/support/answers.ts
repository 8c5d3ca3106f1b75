// Model answers in Weaver's plain-text edit format, for scripting the model server.
import { editFormat } from '../../src/domain/editformats';
import type { FileChange } from '../../src/domain/schema';

const editblock = editFormat('editblock');

/** A summary and edit blocks, as a model would write them. */
export function editText(summary: string, files: FileChange[]): string {
  return editblock.render({ summary, files });
}

/** One FILE block: the whole new content of `path`. */
export function wholeFile(path: string, content: string, summary = 'edit'): string {
  return editText(summary, [{ path, action: 'write', content }]);
}

/** One SEARCH/REPLACE block. */
export function searchReplace(path: string, search: string, replace: string, summary = 'edit'): string {
  return editText(summary, [{ path, action: 'edit', search, replace }]);
}

/** A request to see files first (READ block). */
export function readRequest(needFiles: string[], summary?: string): string {
  return editblock.render({ summary, needFiles });
}
