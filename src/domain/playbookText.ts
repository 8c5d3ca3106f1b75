// A playbook's text (YAML, or JSON, which is YAML) into steps, with errors that name the line
// and the field. Used by the client (a task's `playbook` string, refused before it starts) and
// by the worker (the task's text, or the repository's `.weaver/playbook.yaml`). Not imported by
// workflows: they get the parsed steps.
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { normaliseStep, PlaybookSchema, type PlaybookInput, type PlaybookStep } from './playbook';

export class PlaybookError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid playbook (${source}): ${problems.join('; ')}`);
    this.name = 'PlaybookError';
  }
}

/**
 * Parses and validates a playbook given as text (`source` names it in errors: "the task's
 * playbook", ".weaver/playbook.yaml"). A bare list of steps is taken as `{ steps: [...] }`.
 */
export function parsePlaybookText(text: string, source: string): PlaybookStep[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new PlaybookError(
      source,
      doc.errors.slice(0, 5).map((e) => `line ${lines.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`),
    );
  }
  const bare = isSeq(doc.contents);
  const value: unknown = bare ? { steps: doc.toJS() } : doc.toJS();
  const parsed = PlaybookSchema.safeParse(value);
  if (parsed.success) return parsed.data.steps.map(normaliseStep);
  throw new PlaybookError(
    source,
    parsed.error.issues.slice(0, 10).map((issue) => {
      // An unknown field points at itself, not at the step that holds it.
      const path = [...(issue.path as (string | number)[]), ...(issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : [])];
      const node = nodeAt(doc.contents as YamlNode | null, bare ? path.slice(1) : path);
      const line = node?.range ? lines.linePos(node.range[0]).line : undefined;
      return `${line ? `line ${line}: ` : ''}${fieldName(path)}: ${issue.message}`;
    }),
  );
}

/** A validated playbook object (a task's `playbook` given as steps) with its defaults. */
export function playbookSteps(p: PlaybookInput): PlaybookStep[] {
  return PlaybookSchema.parse(p).steps.map(normaliseStep);
}

/** The deepest node on `path` that exists (an unknown key points at its map). */
function nodeAt(root: YamlNode | null, path: (string | number)[]): YamlNode | undefined {
  let node: YamlNode | null | undefined = root;
  for (const key of path) {
    let next: YamlNode | undefined;
    if (isSeq(node) && typeof key === 'number') next = node.items[key] as YamlNode | undefined;
    else if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      next = (pair?.value ?? pair?.key) as YamlNode | undefined;
    }
    if (!next) break;
    node = next;
  }
  return node ?? undefined;
}

/** `steps[2].when`, the way people read a path. */
function fieldName(path: (string | number)[]): string {
  if (!path.length) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
}

/** A task whose `playbook` is text: refused here (the client, before it starts) naming line and field. */
export function checkPlaybookText(input: { playbook?: unknown }, field = 'playbook'): string[] {
  if (typeof input.playbook !== 'string') return [];
  try {
    parsePlaybookText(input.playbook, "the task's playbook");
    return [];
  } catch (err) {
    if (!(err instanceof PlaybookError)) throw err;
    return err.problems.map((p) => `${field}: ${p}`);
  }
}
