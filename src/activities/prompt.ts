// Builds the prompt on the worker that holds the workspace, by priority into the token budget
// every provider of the task can take: task and criteria, the last failure (its failing tests
// and its diff), the files the task or the model named, a ranked repository map, then more of
// the top-ranked files — whole when they fit, else marked partial spans with line numbers.
// Stored as an artifact; the workflow only sees the reference and a few counts.
//
// Redacted like logs (design rule 6): the worker's secrets and values that look like
// credentials are masked as [REDACTED] everywhere in the prompt (counted in `redactions`); a
// file with a masked value is marked `masked`, so it can be edited with SEARCH/REPLACE but not
// rewritten whole (which would write the marker over the value). Secret files (`.env`, keys,
// credentials — domain/redact.ts secretFileReason) are left out of the map and the files, and a
// READ of one gets a note instead, unless the task names it: then it is sent as it is, with
// only the worker's own secrets masked. For a subtask (`namedSecretFiles` set) only the root
// task's naming counts: a subtask's text is a model's answer, which must not unlock `.env`.
import { EDIT_FORMATS } from '../domain/editformats/types';
import { isNamedSecretFile, REDACTED, redactCounted, secretFileReason } from '../domain/redact';
import { editFormat, parseReadRequest, type ReadRequest } from '../domain/editformats';
import type { ArtifactStore } from './artifacts';
import { readConfined } from './confinedPaths';
import { extractFailuresFromFile } from './failureLog';
import { grepFiles } from './grep';
import type { PromptMessages } from './llm';
import { fileView, leadingComments, rankShare } from './fileViews';
import { anchorLines, cutToTokens, fence, langOf, maskedInSpans, renderRanges } from './promptSpans';
import { buildRepoMap, extractMentions, skippedLine, type RankedDef } from './repomap';
import { indexPaths, isVendoredOrGenerated, readIndex } from './repomap/files';
import { countTokens } from './tokens';
import type { BuildPromptRequest, BuiltPrompt, Shown } from './types';

export { readConfined } from './confinedPaths';
export { fence } from './promptSpans';

export const SYSTEM_PROMPT = `You are Weaver, a careful software engineer. You change a git repository so that its tests pass and the task's acceptance criteria hold.
You see the task, a map of the repository (its most relevant definitions), the files that matter (whole, or the relevant parts of large ones, marked partial with line numbers), and — on a retry — what went wrong last time.
Change as little as the task needs. Keep the code's existing style. Paths are relative to the repository root; never touch .git/.`;

const PLAN_ONLY = `Do not change files now. Split the task into 2-5 smaller, independent subtasks that each edit different files, and answer ONLY {"summary": "...", "subtasks": [{"title": "...", "description": "...", "acceptanceCriteria": ["..."], "relatedFiles": ["..."]}]}.`;

const SUBTASKS_HINT = `If the task is clearly too large for one change, you may instead answer with only a JSON object {"summary": "...", "subtasks": [{"title": "...", "description": "...", "acceptanceCriteria": ["..."], "relatedFiles": ["..."]}]} listing 2-5 independent subtasks that each edit different files.`;

/** Room kept for the edit format's instructions, which generateChange adds per provider. */
const FORMAT_TOKENS = Math.max(...EDIT_FORMATS.map((f) => countTokens(`${editFormat(f).instructions}\n\n${editFormat(f).reminder}`)));
/** A failed change's diff gets at most this share of the budget; the failing tests as much. */
const DIFF_SHARE = 0.15;
const FAILURE_SHARE = 0.15;
/** All of the feedback together (apply errors with their closest lines included). */
const FEEDBACK_SHARE = 0.4;
const GUIDANCE_SHARE = 0.1;
/** Named files that cannot be shown are listed, up to this many. */
const MAX_UNREADABLE_LISTED = 20;
/** Larger files, or files with a NUL byte, are not shown (a READ of them says why). */
const MAX_SHOWN_FILE_BYTES = 2 * 1024 * 1024;
/** Files shown beyond the named ones: at most this many, from the top of the ranking. */
const MAX_RANKED_FILES = 12;
/** Up to this many tracked files, files without definitions are shown too while they fit. */
const SMALL_REPO_FILES = 40;
/** Identifiers defined in more files than this are too common to pull a file in by name. */
const MAX_DEFINERS = 3;

interface Section {
  title: string;
  body: string;
}

export interface PromptOptions {
  /** Where the repository map caches its tags (shared by the worker's workspaces). */
  cacheDir: string;
  /** The worker's secret values (domain/redact.ts secretsFromEnv): masked wherever they appear. */
  secrets?: readonly string[];
}

export async function buildPrompt(store: ArtifactStore, req: BuildPromptRequest, opts: PromptOptions): Promise<BuiltPrompt> {
  const dir = req.workspace.dir;
  const t = req.task;
  const hint = req.planOnly ? PLAN_ONLY : req.allowSubtasks ? SUBTASKS_HINT : '';
  // Section titles and joins: a small fixed allowance.
  const budget = req.tokenBudget - countTokens(SYSTEM_PROMPT) - (req.planOnly ? 0 : FORMAT_TOKENS) - countTokens(hint) - 100;
  let left = budget;
  const take = (text: string) => (left -= countTokens(text));
  const secrets = opts.secrets ?? [];
  let redactions = 0;
  /** The worker's secrets and credential-looking literals masked and counted, then cut to `tokens`. */
  const maskCut = (text: string, tokens: number) => {
    const r = redactCounted(text, secrets, { code: true });
    const cut = tokens === Infinity ? r.text : cutToTokens(r.text, tokens);
    // Cut: what was masked in the part that went (at most the markers that stayed).
    redactions += cut === r.text ? r.count : Math.min(r.count, cut.split(REDACTED).length - 1);
    return cut;
  };

  // 1. The task, always.
  // A task larger than half the budget would crowd out the code it is about.
  const head = maskCut(
    [
      `# Task: ${t.title}`,
      t.description,
      t.acceptanceCriteria?.length ? `## Acceptance criteria\n${t.acceptanceCriteria.map((c) => `- ${c}`).join('\n')}` : '',
      t.allowTestChanges ? '' : 'Test files are not to be changed in this task: change the code under test.',
    ]
      .filter(Boolean)
      .join('\n\n'),
    Math.floor(budget / 2),
  );
  take(head);

  // 2. What went wrong last time: the failing part of the test output and the failed diff.
  const feedback: string[] = [];
  const failureMentions = { text: '' };
  if (req.feedback) {
    const f = req.failure?.testLog
      ? // Streamed: a log of any size costs bounded memory and never holds up the worker's other activities.
        await extractFailuresFromFile(await store.localPath(req.failure.testLog), { maxChars: Math.max(1500, Math.floor(budget * FAILURE_SHARE * 3)), root: dir })
      : undefined;
    if (f?.failures) {
      // The failing tests say more than the end of the output: keep only the Decider's headline.
      feedback.push(req.feedback.split('\n')[0]);
      feedback.push(`### Failing tests (${f.framework})\n${fence(f.text)}`);
      failureMentions.text = [f.text, ...f.files, ...f.symbols].join('\n');
    } else {
      feedback.push(req.feedback);
      if (f?.text) failureMentions.text = [f.text, ...f.files, ...f.symbols].join('\n');
    }
    if (req.failure?.diff) {
      const diff = await store.read(req.failure.diff);
      const shown = cutToTokens(diff, Math.floor(budget * DIFF_SHARE));
      feedback.push(
        `### The change you made (it was rolled back)${shown.length < diff.length ? ' — cut, it was longer' : ''}\n${fence(shown, 'diff')}`,
      );
    }
    feedback.push(req.planOnly ? 'Doing it in one change did not work.' : 'Fix the problem and answer with the complete change again.');
  }
  const feedbackText = maskCut(feedback.join('\n\n'), Math.floor(budget * FEEDBACK_SHARE));
  take(feedbackText);
  const guidance = req.guidance?.length ? maskCut(req.guidance.map((g) => `- ${g}`).join('\n'), Math.floor(budget * GUIDANCE_SHARE)) : '';
  take(guidance);

  // 3. What the task and the failures name: paths and identifiers, for the map and the files.
  // One `ls-files -s` for the tracked paths here and the map's files.
  const index = readIndex(dir);
  const tracked = indexPaths(await index);
  // What the model asked for with READ: whole files (named like the task's), and parts of files
  // (`path:120-220`, `path#Symbol`) or searches (`grep: …`), served after the named files.
  const reads = (req.requestedFiles ?? []).map((raw) => ({ raw, r: parseReadRequest(raw) }));
  const wholeReads = reads.flatMap(({ r }) => ('kind' in r && r.kind === 'file' ? [r.path] : []));
  const partReads = reads.filter(({ r }) => !('kind' in r) || r.kind !== 'file');
  const partPaths = partReads.flatMap(({ r }) => ('path' in r ? [normalizeRel(r.path)] : []));
  const named = [...(t.relatedFiles ?? []), ...wholeReads];
  const taskText = [t.title, t.description, ...(t.acceptanceCriteria ?? []), ...(req.guidance ?? [])].join('\n');
  const mentions = extractMentions([taskText, failureMentions.text].join('\n'), tracked);
  // Secret files are sent only when the task (or a person's guidance) names them: in
  // relatedFiles or by path in its text — not when the model asks or a failure mentions them.
  // A subtask's own task came from a model's answer: only what the root task named counts.
  const rootNamed = req.namedSecretFiles;
  let taskNamed: Set<string> | undefined;
  const namedByTask = (rel: string) => {
    if (rootNamed) return isNamedSecretFile(rel, rootNamed);
    taskNamed ??= new Set([...(t.relatedFiles ?? []).map(normalizeRel), ...extractMentions(taskText, tracked).paths]);
    return taskNamed.has(rel) || new RegExp(`(?<![\\w./-])${escapeRegExp(rel)}(?![\\w/-]|\\.\\w)`).test(taskText);
  };
  const withheldSecret = (rel: string, text?: string) => {
    const why = secretFileReason(rel, text);
    return why && !namedByTask(rel) ? why : undefined;
  };
  const secretRule = rootNamed ? 'a subtask is sent secret files only when the top-level task names them' : 'secret files are sent only when the task names them';
  // Ranked first (the named files' spans follow their ranked definitions), rendered after them.
  // Directories the task names (`vendor/`, `pkg/v1/`) bring back the noise files under them.
  const trackedDirs = new Set(tracked.flatMap((f) => f.split('/').slice(0, -1).map((_, k, parts) => parts.slice(0, k + 1).join('/'))));
  const namedDirs = [...taskText.matchAll(/(?<![\w./-])(?:\.\/)?([\w.-]+(?:\/[\w.-]+)*)\/(?![\w.-])/g)].map((m) => m[1]).filter((d) => trackedDirs.has(d));
  const mapMentioned = [...new Set([...named, ...partPaths, ...mentions.paths].map(normalizeRel).concat(namedDirs.map((d) => `${d}/`)))];
  const map = await buildRepoMap({
    dir,
    cacheDir: opts.cacheDir,
    mentionedFiles: mapMentioned,
    mentionedIdents: mentions.idents,
    queryText: [taskText, failureMentions.text].join('\n'),
    index,
    tokenBudget: 0,
  });

  // 4. The files the task or the model named — each whole if it fits, else its relevant spans
  // (as every file shown below).
  const defsByFile = new Map(map.ranked.map((r) => [r.path, r.defs]));
  const anchorsFrom = anchorLines(failureMentions.text);
  const identSet = new Set(mentions.idents);
  const shown: Shown = {};
  const files: string[] = [];
  let unreadable = 0;
  const withheld = new Set<string>();
  /** Partly shown files: the room each was given and the tokens its view took. */
  const views: Record<string, { room: number; tokens: number }> = {};
  /** Files shown so far only by a READ's parts, and those parts' lines: their view is still to come. */
  const readParts = new Map<string, [number, number][]>();
  const rankOf = new Map(map.ranked.map((r) => [r.path, r.rank]));
  /** `floor`, or more for a file ranked far above those that may still follow (fileViews.ts rankShare). */
  const shareOf = (rel: string, floor: number) =>
    rankShare(
      rankOf.get(rel) ?? 0,
      map.ranked
        .slice(0, MAX_RANKED_FILES)
        .filter((r) => r.path !== rel && !(r.path in shown))
        .map((r) => r.rank),
      floor,
    );
  const show = async (name: string, floor: number, explicit: boolean) => {
    // `./src/a.py` and `src/a.py` are one file.
    const rel = normalizeRel(name);
    if ((rel in shown && !readParts.has(rel)) || withheld.has(rel) || left <= 200) return;
    const elsewhere = readParts.get(rel) ?? [];
    readParts.delete(rel);
    const note = (reason: string) => {
      if (explicit && unreadable++ < MAX_UNREADABLE_LISTED) {
        // eslint-disable-next-line no-control-regex
        const line = `### ${rel.slice(0, 300).replace(/[\x00-\x1f\x7f]/g, '?')} (${reason})`;
        files.push(line);
        take(line);
      }
    };
    const secretWhy = (text?: string) => {
      const why = withheldSecret(rel, text);
      if (why) {
        withheld.add(rel);
        note(`withheld: ${why}; ${secretRule}`);
      }
      return why;
    };
    if (secretWhy()) return;
    const file = await readConfined(dir, rel, MAX_SHOWN_FILE_BYTES);
    if (!file.ok) return note(file.reason);
    if (secretWhy(file.text)) return;
    // A secret file the task named is sent as it is, but for the worker's own secrets.
    const masked = redactCounted(file.text, secrets, secretFileReason(rel, file.text) ? { literalOnly: true } : { code: true });
    const text = masked.text;
    const room = Math.floor(left * shareOf(rel, floor));
    const whole = `### ${rel}\n${fence(text, langOf(rel))}`;
    // A token is at least a character or so: far too long a file is not even counted whole.
    const wholeTokens = whole.length > room * 8 ? Infinity : countTokens(whole);
    if (wholeTokens <= room) {
      // Masked values cannot be rewritten whole: the marker would replace them in the file.
      shown[rel] = masked.count ? 'masked' : 'whole';
      redactions += masked.count;
      files.push(whole);
      left -= wholeTokens;
      return;
    }
    // Around a READ's part: the view leaves out the lines the part shows.
    const partial = fileView(rel, text, defsByFile.get(rel) ?? [], identSet, anchorsFrom.get(rel) ?? [], room, elsewhere);
    if (!partial) return;
    shown[rel] = 'partial';
    redactions += masked.count ? maskedInSpans(file.text, text, partial.spans, masked.count) : 0;
    files.push(partial.text);
    const tokens = countTokens(partial.text);
    views[rel] = { room, tokens };
    left -= tokens;
  };
  for (const rel of named) await show(rel, 0.6, true);
  /** A note for a READ that cannot be served as asked (listed like unreadable named files). */
  const readNote = (what: string, reason: string) => {
    if (unreadable++ >= MAX_UNREADABLE_LISTED) return;
    // eslint-disable-next-line no-control-regex
    const line = `### ${what.slice(0, 300).replace(/[\x00-\x1f\x7f]/g, '?')} (${reason})`;
    files.push(line);
    take(line);
  };
  /** Lines of a file a READ asked for (a range, a definition's body), numbered. */
  const showPart = async (raw: string, rel: string, spans: [number, number][], what: string) => {
    if (left <= 200) return;
    if (shown[rel] === 'whole' || shown[rel] === 'masked') return readNote(raw, `${rel} is shown whole above`);
    const secretWhy = (text?: string) => {
      const why = withheldSecret(rel, text);
      if (why) {
        withheld.add(rel);
        readNote(raw, `withheld: ${why}; ${secretRule}`);
      }
      return why;
    };
    if (secretWhy()) return;
    const file = await readConfined(dir, rel, MAX_SHOWN_FILE_BYTES);
    if (!file.ok) return readNote(raw, file.reason);
    if (secretWhy(file.text)) return;
    const masked = redactCounted(file.text, secrets, secretFileReason(rel, file.text) ? { literalOnly: true } : { code: true });
    const part = renderRanges(rel, masked.text, spans, Math.floor(left * 0.5), what);
    if (!part) {
      const n = masked.text.split('\n').length - (masked.text.endsWith('\n') ? 1 : 0);
      return readNote(raw, `nothing to show: ${rel} has ${n} lines`);
    }
    // Only parts: the file's own view may still follow (without these lines), and it stays
    // partial (a whole-file rewrite is refused) unless it is then shown whole.
    if (!(rel in shown) || readParts.has(rel)) readParts.set(rel, [...(readParts.get(rel) ?? []), ...part.spans]);
    shown[rel] ??= 'partial';
    redactions += masked.count ? maskedInSpans(file.text, masked.text, part.spans, masked.count) : 0;
    files.push(part.text);
    left -= countTokens(part.text);
  };
  const serveRead = async (raw: string, r: ReadRequest | { error: string }) => {
    if (left <= 200) return;
    if ('error' in r) return readNote(raw, r.error);
    if (r.kind === 'range') return showPart(raw, normalizeRel(r.path), [[r.start, r.end]], `, as asked: lines ${r.start}-${r.end}`);
    if (r.kind === 'symbol') {
      const rel = normalizeRel(r.path);
      const defs = defsByFile.get(rel) ?? [];
      const found = findSymbol(defs, r.symbol);
      if (!found.length) {
        const names = [...new Set(defs.map((d) => d.name))];
        const listed = names.length ? `${names.slice(0, 40).join(', ')}${names.length > 40 ? ', …' : ''}` : 'none found';
        return readNote(raw, `symbol not found in ${rel} (definitions there: ${listed})`);
      }
      const text = await readConfined(dir, rel, MAX_SHOWN_FILE_BYTES);
      const lines = text.ok ? text.text.split('\n') : [];
      const spans = found.map((d): [number, number] => [leadingComments(lines, d.line), Math.max(d.line, d.endLine)]);
      return showPart(raw, rel, spans, `, as asked: ${r.symbol} at ${found.map((d) => `lines ${d.line}-${d.endLine}`).join(', ')}`);
    }
    if (r.kind === 'grep') {
      const result = await grepFiles(dir, tracked, r.pattern, r.glob, (rel, text) => withheldSecret(rel, text));
      const notes = [
        `${result.matches} match${result.matches === 1 ? '' : 'es'} in ${result.files} file${result.files === 1 ? '' : 's'} searched`,
        result.literal ? `searched for literally: ${result.literal}` : '',
        result.stopped ?? '',
        'secret files are not searched',
      ].filter(Boolean);
      const body = result.lines.length ? maskCut(result.lines.join('\n'), Math.floor(left * 0.4)) : '';
      const section = `### ${raw.slice(0, 300)} (${notes.join('; ')})${body ? `\n${fence(body)}` : ''}`;
      files.push(section);
      take(section);
    }
  };
  for (const { raw, r } of partReads) await serveRead(raw, r);
  // 5. The repository map (1-4k tokens, scaled to the budget), leaving out what is shown whole.
  // Files shown whole (masked or not) are not outlined again, nor are secret files.
  const leftOut = [...Object.keys(shown).filter((f) => shown[f] !== 'partial'), ...map.ranked.map((r) => r.path).filter((f) => withheldSecret(f))];
  const rendered = await map.render(Math.max(0, Math.min(4096, Math.floor(budget / 8), Math.floor(left / 3))), leftOut);
  const outline = { text: maskCut(rendered.text, Infinity), tokens: rendered.tokens };
  take(outline.text);
  // What the map left out as vendored, generated or duplicate code (the task named none of it).
  const skippedNote = maskCut(skippedLine(map.skipped), Infinity);
  take(skippedNote);
  // 6. Then more files: those defining what the task names, then the top of the ranking.
  const definers = new Map<string, string[]>();
  for (const r of map.ranked) {
    for (const d of r.defs) if (identSet.has(d.name)) definers.set(d.name, [...(definers.get(d.name) ?? []), r.path]);
  }
  for (const paths of definers.values()) {
    if (paths.length <= MAX_DEFINERS) for (const rel of paths) await show(rel, 0.5, false);
  }
  for (const r of map.ranked.slice(0, MAX_RANKED_FILES)) await show(r.path, 0.4, false);
  // A small repository is shown whole where it fits, definitions or not (configs, data, docs).
  // Not the vendored, generated or duplicate files the map left out.
  if (tracked.length <= SMALL_REPO_FILES) {
    const noise = new Set(map.skipped.files);
    const mentioned = new Set(mapMentioned);
    for (const rel of tracked) if (!noise.has(rel) && (mentioned.has(rel) || !isVendoredOrGenerated(rel))) await show(rel, 0.3, false);
  }

  // The stable part first (task, map, files), the attempt's own last: providers cache a
  // prompt's repeated prefix (activities/chatRequest.ts), so a retry pays full price only for its feedback.
  const stable: Section[] = [
    { title: '', body: head },
    { title: 'Repository map (the most relevant definitions; ⋮ marks elided code)', body: [outline.text, skippedNote].filter(Boolean).join('\n\n') },
    { title: 'Files', body: files.join('\n\n') },
  ];
  const attempt: Section[] = [
    { title: 'Guidance from a person', body: guidance },
    { title: `Your previous attempt (attempt ${req.attempt - 1}) failed`, body: feedbackText },
    { title: '', body: hint },
  ];
  // Last, the worker's own secrets wherever they still are (a file name, a reason): never sent.
  const [fixed, varying] = [stable, attempt].map((part) => {
    const r = redactCounted(joinSections(part), secrets, { literalOnly: true });
    redactions += r.count;
    return r.text;
  });
  const user = [fixed, varying].filter(Boolean).join('\n\n');
  const messages: PromptMessages = { system: SYSTEM_PROMPT, user, mode: req.planOnly ? 'plan' : 'change', stableChars: fixed.length };
  const prompt = await store.putJson('prompt', messages);
  const estTokens = countTokens(SYSTEM_PROMPT) + countTokens(user) + (req.planOnly ? 0 : FORMAT_TOKENS);
  return {
    prompt,
    estTokens,
    shown,
    redactions,
    stats: {
      mapTokens: outline.tokens,
      mappedFiles: map.stats.files,
      mapMs: map.stats.ms,
      filesShown: Object.keys(shown).length,
      secretFilesWithheld: withheld.size,
      partialViews: views,
    },
  };
}

function joinSections(sections: Section[]): string {
  return sections
    .filter((s) => s.body)
    .map((s) => (s.title ? `## ${s.title}\n${s.body}` : s.body))
    .join('\n\n');
}

/** The definitions a READ's `#Symbol` names: `bar`, or `Foo.bar` (a `bar` inside a `Foo`); at most 3. */
function findSymbol(defs: RankedDef[], symbol: string): RankedDef[] {
  const parts = symbol.split('.');
  const last = parts[parts.length - 1];
  let found = defs.filter((d) => d.name === last);
  if (parts.length > 1) {
    const outer = defs.filter((d) => d.name === parts[parts.length - 2]);
    const inside = found.filter((d) => outer.some((o) => o !== d && o.line <= d.line && d.endLine <= o.endLine));
    // Go and Rust methods sit outside their type: the name alone, then.
    if (inside.length) found = inside;
  }
  return [...found].sort((a, b) => a.line - b.line).slice(0, 3);
}

function normalizeRel(name: string): string {
  return name.replace(/^(\.\/)+/, '');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

