// What every edit format provides: its documentation for the model beside its parser (one
// format = one module, as Aider pairs editblock_prompts.py with editblock_coder.py).
import type { ChangeSet, FilesRequest, ModelAnswer, SubtaskProposal } from '../schema';

export const EDIT_FORMATS = ['editblock', 'whole'] as const;
export type EditFormatName = (typeof EDIT_FORMATS)[number];

export type ParsedAnswer = { ok: true; value: ModelAnswer } | { ok: false; error: string };

export interface EditFormat {
  readonly name: EditFormatName;
  /** The system prompt's description of how to answer (with a worked example). */
  readonly instructions: string;
  /** A one-line reminder placed at the end of the user message. */
  readonly reminder: string;
  /** The model's text → a change set, a files request or a subtask proposal; never throws. */
  parse(text: string): ParsedAnswer;
  /** The canonical text of an answer in this format (the demo's model, tests, benchmarks). */
  render(answer: ChangeSet | FilesRequest | SubtaskProposal): string;
}
