// The edit formats a provider can be given (`ProviderSpec.editFormat`): each is one module with
// its prompt text beside its parser. Pure (bundled into workflow code).
import { editblock } from './editblock';
import type { EditFormat, EditFormatName } from './types';
import { whole } from './whole';

export * from './types';
export { editblock } from './editblock';
export { whole } from './whole';
export { parseBlockAnswer, parseBlocks, renderBlockAnswer, renderChange, renderRead, pathFromLine, markerLength } from './blocks';
export type { Block, BlockKind, ParsedBlocks } from './blocks';
export { parseReadRequest, renderReadRequest, MAX_GREP_PATTERN, MAX_RANGE_LINES, type ReadRequest } from './reads';

export const DEFAULT_EDIT_FORMAT: EditFormatName = 'editblock';

const FORMATS: Record<EditFormatName, EditFormat> = { editblock, whole };

/** The edit format called `name` (default: editblock). */
export function editFormat(name?: EditFormatName): EditFormat {
  return FORMATS[name ?? DEFAULT_EDIT_FORMAT] ?? FORMATS[DEFAULT_EDIT_FORMAT];
}
