// Builds the prompt on the worker that holds the workspace: task, acceptance criteria, a
// bounded view of the repository and the previous failure. Stored as an artifact; the
// workflow only sees the reference.
import { constants } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { validateChangePath } from './apply';
import type { ArtifactStore } from './artifacts';
import type { BuildPromptRequest, BuiltPrompt } from './types';
import type { PromptMessages } from './llm';
import { gitFor } from './workspace';

const MAX_TREE_ENTRIES = 400;
const MAX_FILE_BYTES = 24_000;
const MAX_CONTEXT_BYTES = 80_000;
/** Without relatedFiles, small source files are included up to this many. */
const AUTO_FILES = 12;

export const SYSTEM_PROMPT = `You are Weaver, a careful software engineer. You change a git repository so that its tests pass and the task's acceptance criteria hold.
Answer with ONE JSON object and nothing else, in this shape:
{"summary": "<one paragraph: what you changed and why>",
 "files": [{"path": "<relative/path>", "action": "create" | "modify" | "delete", "content": "<the WHOLE new file content; omit for delete>"}]}
Paths are relative to the repository root; never touch .git/. Give complete file contents, not diffs.`;

const PLAN_ONLY = `Do not change files now. Split the task into 2-5 smaller, independent subtasks that each edit different files, and answer ONLY {"summary": "...", "subtasks": [{"title": "...", "description": "...", "acceptanceCriteria": ["..."], "relatedFiles": ["..."]}]}.`;

const SUBTASKS_HINT = `If the task is clearly too large for one change, you may instead answer {"summary": "...", "subtasks": [{"title": "...", "description": "...", "acceptanceCriteria": ["..."], "relatedFiles": ["..."]}]} with 2-5 independent subtasks that each edit different files.`;

export async function buildPrompt(store: ArtifactStore, req: BuildPromptRequest): Promise<BuiltPrompt> {
  const dir = req.workspace.dir;
  const tracked = (await gitFor(dir).raw(['ls-files'])).split('\n').filter(Boolean);
  const tree = tracked.slice(0, MAX_TREE_ENTRIES).join('\n') + (tracked.length > MAX_TREE_ENTRIES ? `\n… and ${tracked.length - MAX_TREE_ENTRIES} more` : '');

  const wanted = req.task.relatedFiles?.length ? req.task.relatedFiles : await smallestFiles(dir, tracked);
  let budget = MAX_CONTEXT_BYTES;
  const files: string[] = [];
  for (const rel of wanted) {
    if (budget <= 0) break;
    // Same confinement as applying a change (design rule 7): a related file named by the task
    // or the model must not pull `.git/config`, `../x` or a symlink's target outside the
    // workspace into the prompt (and from there to a provider and the artifact store).
    const file = await readConfined(dir, rel);
    if (!file.ok) {
      // eslint-disable-next-line no-control-regex
      files.push(`--- ${rel.replace(/[\x00-\x1f\x7f]/g, '?')} (${file.reason})`);
      continue;
    }
    const text = file.text;
    const shown = text.slice(0, Math.min(MAX_FILE_BYTES, budget));
    budget -= shown.length;
    files.push(`--- ${rel}\n${shown}${shown.length < text.length ? '\n… (truncated)' : ''}`);
  }

  const t = req.task;
  const sections = [
    `# Task: ${t.title}`,
    t.description,
    t.acceptanceCriteria?.length ? `## Acceptance criteria\n${t.acceptanceCriteria.map((c) => `- ${c}`).join('\n')}` : '',
    `## Repository files\n${tree}`,
    files.length ? `## File contents\n${files.join('\n\n')}` : '',
    req.guidance?.length ? `## Guidance from a person\n${req.guidance.map((g) => `- ${g}`).join('\n')}` : '',
    req.feedback
      ? `## Your previous attempt (attempt ${req.attempt - 1}) failed\n${req.feedback}\n${req.planOnly ? 'Doing it in one change did not work.' : 'Fix the problem; answer with the complete change set again.'}`
      : '',
    req.planOnly ? PLAN_ONLY : req.allowSubtasks ? SUBTASKS_HINT : '',
  ].filter(Boolean);
  const messages: PromptMessages = { system: SYSTEM_PROMPT, user: sections.join('\n\n') };
  const prompt = await store.putJson('prompt', messages);
  return { prompt, estTokens: Math.ceil((messages.system.length + messages.user.length) / 4) };
}

type ReadResult = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Reads workspace file `rel` if it stays in the workspace: `validateChangePath` (no absolute
 * path, `..`, `.git`, or ancestor symlink leaving the workspace). A symlink as the file itself
 * is followed only when its target, fully resolved, is a file inside the workspace and not
 * under `.git`. The file is opened without following a symlink that appeared meanwhile.
 */
export async function readConfined(dir: string, rel: string): Promise<ReadResult> {
  // validateChangePath speaks of writing; the rule is the same for reading.
  const why = (reason: string) => reason.replace(/^writing inside \.git is not allowed$/, 'inside .git');
  const check = await validateChangePath(dir, rel);
  let abs: string;
  if (check.ok) {
    if (!check.exists) return { ok: false, reason: 'does not exist yet' };
    abs = check.abs;
  } else if (check.reason === 'path is a symbolic link') {
    const root = await realpath(dir);
    let target: string;
    try {
      target = await realpath(path.join(root, rel));
    } catch {
      return { ok: false, reason: 'not readable: dangling symbolic link' };
    }
    const inside = path.relative(root, target);
    if (!inside || inside.startsWith('..') || path.isAbsolute(inside)) {
      return { ok: false, reason: 'not readable: symbolic link to outside the workspace' };
    }
    const again = await validateChangePath(dir, inside.split(path.sep).join('/'));
    if (!again.ok) return { ok: false, reason: `not readable: symbolic link target: ${why(again.reason)}` };
    if (!again.exists) return { ok: false, reason: 'not readable: symbolic link target is not a file' };
    abs = again.abs;
  } else {
    return { ok: false, reason: `not readable: ${why(check.reason)}` };
  }
  try {
    const handle = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (!(await handle.stat()).isFile()) return { ok: false, reason: 'not readable: not a regular file' };
      return { ok: true, text: await handle.readFile('utf8') };
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { ok: false, reason: `not readable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

async function smallestFiles(dir: string, tracked: string[]): Promise<string[]> {
  const sized = await Promise.all(
    tracked
      .filter((f) => /\.(c|cc|cpp|cs|css|go|h|html|java|js|jsx|json|kt|md|mjs|cjs|py|rb|rs|sh|toml|ts|tsx|txt|yaml|yml)$/.test(f))
      .filter((f) => !/(^|\/)(package-lock\.json|yarn\.lock|pnpm-lock\.yaml)$/.test(f))
      .slice(0, 2000)
      .map(async (f) => ({ f, size: (await stat(path.join(dir, f)).catch(() => ({ size: Infinity }))).size })),
  );
  return sized
    .filter((s) => s.size <= MAX_FILE_BYTES)
    .sort((a, b) => a.size - b.size || a.f.localeCompare(b.f))
    .slice(0, AUTO_FILES)
    .map((s) => s.f)
    .sort();
}
