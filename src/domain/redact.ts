// Redaction of secrets in captured text (design rule 6). Pure: no Node imports, so workflow code
// may import it too. Two layers:
//   - literal secrets (API keys read from the worker's env), replaced wherever they appear;
//   - generic patterns for things that look like credentials (sk-… keys, Bearer tokens,
//     `api_key=…` assignments, tokens in URLs), replaced even when nobody told us the value.
// `StreamRedactor` does the same over a stream of chunks (a command's output) without ever
// holding the whole text, and without leaking a secret that straddles two chunks.
// Which repository files hold secrets (`.env`, keys…) is ./secretFiles.ts's.
// Over 300 lines because StreamRedactor must mask exactly what redact() masks: both run on the
// same patterns and applyRedactions, which stay private here.

export { isNamedSecretFile, secretFileReason, secretFilesNamed } from './secretFiles';

export const REDACTED = '[REDACTED]';

/** Shorter values are too likely to occur by chance (and redacting them would shred logs). */
export const MIN_SECRET_LENGTH = 6;

/** Env var names whose values are treated as secrets (WEAVER_GIT_TOKEN_<HOST>: the worker's git credentials). */
const SECRET_ENV_NAME = /(?:_API_KEY|_TOKEN|_SECRET|_PASSWORD|_SECRET_ACCESS_KEY|_PRIVATE_KEY)$|^WEAVER_GIT_TOKEN_/i;

/** Whether the worker treats the value of env var `name` as a secret (redacted, kept out of commands). */
export function isSecretEnvName(name: string): boolean {
  return SECRET_ENV_NAME.test(name);
}

/**
 * The values of env vars that hold secrets: names ending in `_API_KEY`, `_TOKEN`, `_SECRET`
 * (also `_PASSWORD`, `_SECRET_ACCESS_KEY`, `_PRIVATE_KEY`, and `WEAVER_GIT_TOKEN_*`), any case, plus the vars named in
 * `names` (e.g. a provider's `apiKeyEnv`). Values shorter than MIN_SECRET_LENGTH are skipped.
 * Deduplicated, longest first.
 */
export function secretsFromEnv(env: Record<string, string | undefined>, names: string[] = []): string[] {
  const wanted = new Set(names);
  const values: string[] = [];
  // The names, then only the values wanted (process.env makes a string per value read).
  for (const name of Object.keys(env)) {
    const value = wanted.has(name) || SECRET_ENV_NAME.test(name) ? env[name] : undefined;
    if (value !== undefined) values.push(value);
  }
  return normalizeSecrets(values);
}

/**
 * A copy of `env` without the vars `secretsFromEnv` would read (same name rules plus `names`):
 * for commands that run model-written code and have no business seeing the worker's API keys.
 */
export function scrubEnv(env: Record<string, string | undefined>, names: string[] = []): Record<string, string | undefined> {
  const drop = new Set(names);
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!drop.has(name) && !SECRET_ENV_NAME.test(name)) out[name] = value;
  }
  return out;
}

/** Drops empty/short values and duplicates; longest first so a longer secret wins over its prefix. */
export function normalizeSecrets(secrets: readonly string[]): string[] {
  const set = new Set<string>();
  for (const s of secrets) {
    if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) set.add(s);
  }
  return [...set].sort((a, b) => b.length - a.length);
}

/**
 * A span to replace with REDACTED: [start, end). `matchStart` ≤ start is where the evidence
 * begins (e.g. the `Bearer ` before a token): a stream must not be cut between the two.
 */
export interface Redaction {
  matchStart: number;
  start: number;
  end: number;
}

interface Pattern {
  re: RegExp;
  /** Capture groups holding the value to hide; none → the whole match. */
  groups?: number[];
  /** Of `groups`, those whose value is a literal even in source code (quoted, or by its shape). */
  literal?: number[];
}

// Every pattern is linear-time: bounded or anchored prefixes, no nested quantifiers.
const PATTERNS: Pattern[] = [
  // OpenAI-style keys (sk-…, sk-proj-…, sk-ant-…).
  { re: /\bsk-[A-Za-z0-9_-]{16,}/g },
  // GitHub tokens.
  { re: /\bgh[pousr]_[A-Za-z0-9]{20,}/g },
  { re: /\bgithub_pat_[A-Za-z0-9_]{20,}/g },
  // AWS access key ids.
  { re: /\bAKIA[0-9A-Z]{16}\b/g },
  // Slack tokens.
  { re: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g },
  // Authorization: Bearer <token>
  { re: /\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)/gi, groups: [1], literal: [1] },
  // api_key=…, "apiKey": "…", X-Api-Key: …, GITHUB_TOKEN=…, client_secret=…, password: …
  // (`name:value` without a space is left to the URL pattern: `https://x-access-token:…@host`.)
  {
    re: /(?:api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|secret[_-]?key|secret[_-]?access[_-]?key|private[_-]?key|[_-](?:token|secret|password)|password|passwd)["']?(?:[ \t]*=|[ \t]*:(?=[ \t"']))[ \t]*(?:"([^"\r\n]+)"|'([^'\r\n]+)'|([^\s"'`,;&<>()[\]{}]+))/gi,
    groups: [1, 2, 3],
    literal: [1, 2],
  },
  // Credentials in URLs: scheme://user:password@host
  { re: /\b[a-z][a-z0-9+.-]{0,20}:\/\/[^\s:@/]{1,256}:([^\s@/]{1,256})@/gi, groups: [1], literal: [1] },
  // The body of a PEM private key (lines of base64 after the header; `\n` escapes in a string too).
  // The body's lines bounded (a 4096-bit key has about 50): an unbounded `+` over megabytes of
  // base64-looking lines overflows the regexp engine's backtracking stack (RangeError).
  { re: /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----((?:[ \t]*(?:\\r)?(?:\\n|\r?\n)[ \t]*[A-Za-z0-9+/=]{1,200}){1,400})/g, groups: [1], literal: [1] },
];

/** How much of the redaction to apply (prompts use `code`; logs and artifacts the default). */
export interface RedactOptions {
  /** Only the literal secrets given, none of the generic credential patterns. */
  literalOnly?: boolean;
  /**
   * The text is source code (a prompt): a generic match counts only when its value looks like
   * a literal secret — quoted, or an unquoted token with a digit — not an expression
   * (`token = tokens[0]`, `password: string`) or a placeholder (`"${API_KEY}"`, `<token>`).
   */
  code?: boolean;
}

/** Template placeholders and references, not values: `${X}`, `{{x}}`, `$X`, `<your key>`, `%(x)s`, `{x}`. */
const PLACEHOLDER = /\$\{|\{\{|^\$[A-Za-z_]|^<[^>]*>$|%\(|^\{[^}]*\}$|^\*+$/;
/** An unquoted value in code that is a literal token rather than a name or an expression. */
const UNQUOTED_LITERAL = /^(?=[^\d]*\d)(?=.*[A-Za-z])[A-Za-z0-9+/=_~.-]{8,}$/;

/** `DB_PASSWORD=hunter2`: an env-file style line (upper-case name, no spaces), a value in code too. */
function envAssignment(prefix: string, value: string): boolean {
  return /^[A-Z0-9_-]+=$/.test(prefix) && !PLACEHOLDER.test(value);
}

function plausibleLiteral(value: string, literal: boolean): boolean {
  if (PLACEHOLDER.test(value)) return false;
  return literal ? value.trim().length >= MIN_SECRET_LENGTH : UNQUOTED_LITERAL.test(value);
}

/**
 * Where `text` needs redacting: sorted by start, non-overlapping. A pattern's value that is
 * already REDACTED is not found again (redacting twice changes nothing and counts nothing).
 */
export function findRedactions(text: string, secrets: readonly string[], opts: RedactOptions = {}): Redaction[] {
  const found: Redaction[] = [];
  for (const s of secrets) {
    if (s.length < MIN_SECRET_LENGTH) continue;
    for (let i = text.indexOf(s); i !== -1; i = text.indexOf(s, i + s.length)) {
      found.push({ matchStart: i, start: i, end: i + s.length });
    }
  }
  for (const { re, groups, literal } of opts.literalOnly ? [] : PATTERNS) {
    // A fresh RegExp with the `d` flag gives group offsets; `g` keeps lastIndex state local.
    const rx = new RegExp(re.source, re.flags.includes('d') ? re.flags : `${re.flags}d`);
    for (let m = rx.exec(text); m !== null; m = rx.exec(text)) {
      if (m[0].length === 0) {
        rx.lastIndex++;
        continue;
      }
      let span: [number, number] | undefined;
      let isLiteral = false;
      if (!groups) {
        span = [m.index, m.index + m[0].length];
      } else {
        for (const g of groups) {
          const at = m.indices?.[g];
          if (at && at[1] > at[0]) {
            span = [at[0], at[1]];
            isLiteral = literal?.includes(g) ?? false;
            break;
          }
        }
      }
      if (!span) continue;
      const value = text.slice(span[0], span[1]);
      if (value === REDACTED) continue;
      if (opts.code && groups && !plausibleLiteral(value, isLiteral) && !envAssignment(text.slice(m.index, span[0]), value)) continue;
      found.push({ matchStart: m.index, start: span[0], end: span[1] });
    }
  }
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Redaction[] = [];
  for (const r of found) {
    const last = merged[merged.length - 1];
    if (last && r.start < last.end) {
      last.end = Math.max(last.end, r.end);
      last.matchStart = Math.min(last.matchStart, r.matchStart);
    } else {
      merged.push({ ...r });
    }
  }
  return merged;
}

/** Replaces the given spans (sorted, non-overlapping, all within [0, upTo)) with REDACTED. */
function applyRedactions(text: string, spans: readonly Redaction[], upTo = text.length): string {
  let out = '';
  let at = 0;
  for (const r of spans) {
    if (r.end > upTo) break;
    out += text.slice(at, r.start) + REDACTED;
    at = r.end;
  }
  return out + text.slice(at, upTo);
}

/**
 * Replaces every occurrence of each secret (length ≥ MIN_SECRET_LENGTH) and everything that
 * looks like a credential with `[REDACTED]`.
 */
export function redact(text: string, secrets: readonly string[]): string {
  if (!text) return text;
  const list = normalizeSecrets(secrets);
  return applyRedactions(text, findRedactions(text, list));
}

/** How much of a provider's error text reaches history (failure messages, call events, warnings). */
export const PROVIDER_TEXT_MAX = 500;

/**
 * Text from outside the worker (a provider's error body) as history may keep it: redacted, then
 * cut to `max` characters with a marker saying how long it was. Redacted before the cut, so a
 * credential across the cut is masked whole; only a head window is examined, so a huge body
 * costs no more than a small one.
 */
export function redactCut(text: string, secrets: readonly string[], max = PROVIDER_TEXT_MAX): string {
  const window = max + 4096;
  const head = redact(text.length > window ? text.slice(0, window) : text, secrets);
  if (text.length <= window && head.length <= max) return head;
  // Never half a surrogate pair.
  const end = isHighSurrogate(head.charCodeAt(max - 1)) ? max - 1 : max;
  return `${head.slice(0, end)}… [cut: ${text.length} chars in all]`;
}

/** `redact` with options, also saying how many values it masked. */
export function redactCounted(text: string, secrets: readonly string[], opts: RedactOptions = {}): { text: string; count: number } {
  if (!text) return { text, count: 0 };
  const spans = findRedactions(text, normalizeSecrets(secrets), opts);
  return spans.length ? { text: applyRedactions(text, spans), count: spans.length } : { text, count: 0 };
}

export interface StreamRedactorOptions {
  /** Characters held back so a secret split across chunks is seen whole (default ≥ 1024). */
  carry?: number;
  /** Process only once this many characters beyond `carry` are pending (default 16 Ki). */
  minEmit?: number;
  /** Never hold more than this; an endless token beyond it is redacted to its end (default 1 Mi). */
  maxPending?: number;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

// Characters that can continue a credential token (used after a forced cut inside one).
const TOKEN_CONTINUATION = /^[A-Za-z0-9._~+/=-]+/;

/**
 * Redacts a text stream chunk by chunk: `push` returns what is safe to emit now, `flush` the
 * rest. Concatenated outputs equal `redact(whole input)` except in pathological cases (a single
 * credential-looking token longer than `maxPending`, which is redacted all the same).
 * Memory is bounded by `maxPending` plus one chunk.
 */
export class StreamRedactor {
  private pending = '';
  private swallow = false;
  private readonly secrets: string[];
  private readonly carry: number;
  private readonly minEmit: number;
  private readonly maxPending: number;

  constructor(secrets: readonly string[], opts: StreamRedactorOptions = {}) {
    this.secrets = normalizeSecrets(secrets);
    const longest = this.secrets[0]?.length ?? 0;
    this.carry = Math.max(opts.carry ?? 1024, 2 * longest, 64);
    this.minEmit = Math.max(opts.minEmit ?? 16 * 1024, 1);
    this.maxPending = Math.max(opts.maxPending ?? 1024 * 1024, this.carry + this.minEmit);
  }

  push(chunk: string): string {
    if (!chunk) return '';
    this.pending += chunk;
    if (this.swallow) {
      // Still inside a token we already replaced by REDACTED: drop its continuation.
      const m = TOKEN_CONTINUATION.exec(this.pending);
      const n = m ? m[0].length : 0;
      this.pending = this.pending.slice(n);
      if (this.pending.length === 0) return '';
      this.swallow = false;
    }
    if (this.pending.length < this.carry + this.minEmit) return '';
    return this.drain(false);
  }

  flush(): string {
    if (this.swallow) {
      const m = TOKEN_CONTINUATION.exec(this.pending);
      this.pending = this.pending.slice(m ? m[0].length : 0);
      this.swallow = false;
    }
    return this.drain(true);
  }

  private drain(final: boolean): string {
    const text = this.pending;
    if (!text) return '';
    const spans = findRedactions(text, this.secrets);
    if (final) {
      this.pending = '';
      return applyRedactions(text, spans);
    }
    // Emit up to `cut`, never cutting inside a match (evidence included): move the cut back
    // to the start of any match that straddles it. A match touching the end of `text` may
    // still grow, so it straddles any cut before its end as well.
    let cut = text.length - this.carry;
    for (let moved = true; moved && cut > 0; ) {
      moved = false;
      for (const r of spans) {
        if (r.matchStart < cut && cut < r.end) {
          cut = r.matchStart;
          moved = true;
        }
      }
    }
    // Never split a surrogate pair (the halves would each become U+FFFD when encoded).
    if (cut > 0 && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
    if (cut <= 0) {
      if (text.length < this.maxPending) return '';
      // One endless credential-looking token: redact through the end and swallow the rest of it.
      const last = spans[spans.length - 1];
      this.pending = '';
      this.swallow = last !== undefined && last.end === text.length;
      return applyRedactions(text, spans);
    }
    this.pending = text.slice(cut);
    return applyRedactions(text, spans, cut);
  }
}
