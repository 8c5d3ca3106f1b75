// The benchmark's model answer: a slugify that passes the example repository's tests, in
// Weaver's plain-text edit format (a summary, then the whole file between FILE markers). The
// plain script asks for the same format, so both sides get the same bytes from the same endpoint.
import { editFormat } from '../../src/domain/editformats';

export const GOOD_SLUGIFY = `function slugify(text) {\n  return String(text)\n    .normalize('NFKD')\n    .replace(/[\\u0300-\\u036f]/g, '')\n    .toLowerCase()\n    .replace(/[^a-z0-9]+/g, '-')\n    .replace(/^-+|-+$/g, '');\n}\n\nmodule.exports = { slugify };\n`;

export const goodAnswer = (): string =>
  editFormat('editblock').render({ summary: 'bench: implement slugify', files: [{ path: 'src/slugify.js', action: 'write', content: GOOD_SLUGIFY }] });

/** The scripted model that answers after `delayMs` (one name per delay: the delay is the model's). */
export const benchModel = (delayMs: number): string => `bench-${delayMs}ms`;
