// The default edit format: targeted SEARCH/REPLACE blocks for existing files, whole content
// only for new files, deletions, and READ requests (modeled on Aider's editblock format, whose
// prompts sit in editblock_prompts.py beside the parser in editblock_coder.py). The grammar is
// shared with the `whole` format (./blocks.ts).
import { parseBlockAnswer, renderBlockAnswer } from './blocks';
import type { EditFormat } from './types';

export const EDITBLOCK_INSTRUCTIONS = `# How to answer

Answer in plain text, not JSON: first a short paragraph saying what you change and why, then one block per change.

To change an existing file, write its path alone on a line, then a SEARCH/REPLACE block:

path/to/file.py
<<<<<<< SEARCH
exact lines from the file as it is now
=======
the lines that replace them
>>>>>>> REPLACE

The path line is the line right before \`<<<<<<< SEARCH\` (or right before the \`\`\` fence, if you put the block in one), and it holds only the path, relative to the repository root: no other words, no trailing ":", in backticks if the path has spaces. Every block needs its own path line, even a block for the same file as the block before it. A block without one is refused; a file name mentioned in a sentence is never taken as a block's path.

Rules for SEARCH/REPLACE blocks:
1. The SEARCH part must copy the existing lines EXACTLY, character for character, including whitespace, indentation, comments and docstrings. Copy them from the file as you were shown it (without the line numbers of a partial view).
2. Keep blocks small: the lines that change plus a few lines of context, enough to be unique. Use several small blocks rather than one large one. Do not repeat unchanged code you do not need.
3. Each SEARCH part must match ONE place in the file. If the same lines occur more than once, include more surrounding lines.
4. Blocks of one file apply in order, each to the result of the previous one.
5. To move code, use two blocks: one that removes it from its old place (empty replacement), one that inserts it at the new place.
6. To delete lines, leave the replacement empty.

To create a new file, write its path, then its whole content in a FILE block:

path/to/new_file.py
<<<<<<< FILE
the whole content of the file
>>>>>>> FILE

Use a FILE block only for a new file, or for an existing small file you were shown WHOLE. Never write a FILE block for a file you were shown only in part (marked partial): the rest of it would be lost — use SEARCH/REPLACE blocks.

To delete a file:

path/to/obsolete.py
<<<<<<< DELETE
>>>>>>> DELETE

If you need to see a file you were not shown (or the part of a file you were not shown), ask for it instead of guessing, and write no other blocks; this does not cost an attempt:

<<<<<<< READ
path/to/needed_file.py
path/to/other_file.py
>>>>>>> READ

A READ line may also ask for part of a file or search the repository:
- \`path/to/file.py:120-220\` — those lines, numbered (to see more of a file you were shown only in part);
- \`path/to/file.py#Name\` or \`path/to/file.py#Class.method\` — that definition and its body;
- \`grep: <regex>\` or \`grep: <regex> in <glob>\` (e.g. \`grep: def parse in src/**/*.py\`) — matching lines of the tracked files with their paths and line numbers (at most 50).

Paths are relative to the repository root. Never edit anything under .git/. Between a block's markers put only the file's own lines, verbatim: no line numbers, no "..." for elided code, no Markdown fence around them (a fence around the whole block is fine; a fence that is a line of the file is copied like any other line). Markers are 7 characters long; if a line of the file itself starts with 7 or more '<', '=' or '>', make that block's three markers longer than it (e.g. 9: <<<<<<<<< SEARCH, =========, >>>>>>>>> REPLACE).

If the task is clearly too large for one change and the prompt allows it, you may instead answer with the JSON subtask proposal it describes.

# Example

Task: make greet() say "Hello" instead of "Hi", and add a farewell module.

Use "Hello" in greet() and add a farewell() helper in a new module.

src/greeting.py
<<<<<<< SEARCH
def greet(name):
    return f"Hi, {name}!"
=======
def greet(name):
    return f"Hello, {name}!"
>>>>>>> REPLACE

src/farewell.py
<<<<<<< FILE
def farewell(name):
    return f"Goodbye, {name}!"
>>>>>>> FILE
`;

export const EDITBLOCK_REMINDER =
  'Answer with a short summary, then SEARCH/REPLACE blocks (path line, <<<<<<< SEARCH, exact existing lines, =======, new lines, >>>>>>> REPLACE); FILE blocks only for new files; a READ block (paths, path:FIRST-LAST, path#Symbol or grep: regex) if you need to see code first.';

export const editblock: EditFormat = {
  name: 'editblock',
  instructions: EDITBLOCK_INSTRUCTIONS,
  reminder: EDITBLOCK_REMINDER,
  parse: parseBlockAnswer,
  render: renderBlockAnswer,
};
