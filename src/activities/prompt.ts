// Builds the prompt on the worker that holds the workspace: task, acceptance criteria, a
// bounded view of the repository and the previous failure. Stored as an artifact; the
// workflow only sees the reference.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import type { ArtifactStore } from './artifacts';
import type { BuildPromptRequest, BuiltPrompt } from './types';
import type { PromptMessages } from './llm';

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
  const tracked = (await simpleGit(dir).raw(['ls-files'])).split('\n').filter(Boolean);
  const tree = tracked.slice(0, MAX_TREE_ENTRIES).join('\n') + (tracked.length > MAX_TREE_ENTRIES ? `\n… and ${tracked.length - MAX_TREE_ENTRIES} more` : '');

  const wanted = req.task.relatedFiles?.length ? req.task.relatedFiles : await smallestFiles(dir, tracked);
  let budget = MAX_CONTEXT_BYTES;
  const files: string[] = [];
  for (const rel of wanted) {
    if (budget <= 0) break;
    const abs = path.resolve(dir, rel);
    if (!abs.startsWith(path.resolve(dir) + path.sep)) continue;
    const text = await readFile(abs, 'utf8').catch(() => null);
    if (text === null) {
      files.push(`--- ${rel} (does not exist yet)`);
      continue;
    }
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
