// The `whole` edit format, for models that cannot copy lines exactly: every changed file is
// written out whole in a FILE block. Same grammar as editblock (./blocks.ts), and its parser
// accepts everything editblock's does (a SEARCH/REPLACE block still applies). The applier
// refuses a whole rewrite of a file the model was shown only in part, so the prompt builder
// should show files whole to such a model.
import { parseBlockAnswer, renderBlockAnswer } from './blocks';
import type { EditFormat } from './types';

export const WHOLE_INSTRUCTIONS = `# How to answer

Answer in plain text, not JSON: first a short paragraph saying what you change and why, then, for every file you change or create, its path alone on a line followed by its COMPLETE new content in a FILE block:

path/to/file.py
<<<<<<< FILE
the whole content of the file, every line, including the lines you do not change
>>>>>>> FILE

The path line is the line right before \`<<<<<<< FILE\` (or right before the \`\`\` fence, if you put the block in one), and it holds only the path, relative to the repository root: no other words, no trailing ":", in backticks if the path has spaces. Every block needs its own path line. A block without one is refused; a file name mentioned in a sentence is never taken as a block's path.

Rules:
1. Write the entire file: never elide code with "..." or comments like "rest unchanged" — whatever you leave out is deleted.
2. Only rewrite files you were shown WHOLE (or new files). You cannot rewrite a file you were shown only in part (marked partial): ask to see it whole with a READ block.
3. Between the markers put only the file's own lines, verbatim: no line numbers and no Markdown fence around them (a fence that is a line of the file is copied like any other line).
4. A file larger than about 20 KB cannot be rewritten whole: change it with a SEARCH/REPLACE block instead — its path, then <<<<<<< SEARCH, a few exact existing lines, =======, their replacement, >>>>>>> REPLACE.
5. Markers are 7 characters long; if a line of the file itself starts with 7 or more '<', '=' or '>', make that block's markers longer than it (e.g. <<<<<<<<< FILE and >>>>>>>>> FILE).

To delete a file:

path/to/obsolete.py
<<<<<<< DELETE
>>>>>>> DELETE

If you need to see a file you were not shown, ask for it instead of guessing, and write no other blocks; this does not cost an attempt:

<<<<<<< READ
path/to/needed_file.py
>>>>>>> READ

A READ line may also ask for part of a file or search the repository:
- \`path/to/file.py:120-220\` — those lines, numbered (to see more of a file you were shown only in part);
- \`path/to/file.py#Name\` or \`path/to/file.py#Class.method\` — that definition and its body;
- \`grep: <regex>\` or \`grep: <regex> in <glob>\` (e.g. \`grep: def parse in src/**/*.py\`) — matching lines of the tracked files with their paths and line numbers (at most 50).

Paths are relative to the repository root. Never edit anything under .git/.

If the task is clearly too large for one change and the prompt allows it, you may instead answer with the JSON subtask proposal it describes.

# Example

Task: make greet() say "Hello" instead of "Hi".

greet() now says "Hello".

src/greeting.py
<<<<<<< FILE
def greet(name):
    return f"Hello, {name}!"
>>>>>>> FILE
`;

export const WHOLE_REMINDER =
  'Answer with a short summary, then for each changed file its path and its COMPLETE new content in a FILE block (<<<<<<< FILE … >>>>>>> FILE); a READ block (paths, path:FIRST-LAST, path#Symbol or grep: regex) if you need to see code first.';

export const whole: EditFormat = {
  name: 'whole',
  instructions: WHOLE_INSTRUCTIONS,
  reminder: WHOLE_REMINDER,
  parse: parseBlockAnswer,
  render: renderBlockAnswer,
};
