// Which endpoints a task may name itself (issue 15, item 1). Prompts carry repository files, so
// an endpoint a task chooses is where the repository goes: none by default; a worker may allow
// some with WEAVER_INLINE_ENDPOINTS, a list of URL patterns (`http://127.0.0.1:*`,
// `http://localhost:11434/*`): scheme and host exact, `*` in the port and the path. Such calls
// never carry a key of the worker's (src/domain/registry.ts). Pure: patterns and matching only.

export const INLINE_ENDPOINTS_ENV = 'WEAVER_INLINE_ENDPOINTS';

/** Thrown for a pattern list that does not parse: names where it came from and each bad pattern. */
export class InlineEndpointsError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(
      `${source}: ${issues.join('; ')} (patterns are scheme://host[:port][/path], comma-separated; scheme and host exact, * only as the port or in the path, e.g. http://127.0.0.1:*, http://localhost:11434/*)`,
    );
    this.name = 'InlineEndpointsError';
  }
}

interface Pattern {
  scheme: 'http:' | 'https:';
  /** Lower case; IPv6 in brackets, as WHATWG URL spells a hostname. */
  host: string;
  /** '*': any; '': the scheme's default; else digits. */
  port: string;
  /** Undefined: any path. */
  path?: RegExp;
}

const DEFAULT_PORT = { 'http:': '80', 'https:': '443' } as const;
const PATTERN = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\*|\d{1,5}))?(\/[^\s?#]*)?$/;

function parsePattern(text: string): Pattern | string {
  const m = PATTERN.exec(text);
  if (!m) {
    if (/^https?:\/\/[^/]*@/i.test(text)) return `"${text}": no user or password in a pattern`;
    if (/^https?:\/\/[^/:]*\*/i.test(text)) return `"${text}": the host must be exact (no *)`;
    if (!/^https?:\/\//i.test(text)) return `"${text}": must start with http:// or https://`;
    return `"${text}" is not scheme://host[:port][/path]`;
  }
  const [, scheme, host, port = '', path] = m;
  if (port !== '*' && port !== '' && Number(port) > 65535) return `"${text}": port ${port} is out of range`;
  const normalPort = port === '*' || port === '' ? port : String(Number(port));
  return { scheme: `${scheme.toLowerCase()}:` as Pattern['scheme'], host: host.toLowerCase(), port: normalPort, path: path === undefined ? undefined : pathRegExp(path) };
}

/**
 * `/v1` matches exactly `/v1` (a trailing slash aside); `/v1/*` matches `/v1` and everything
 * under it; any other `*` matches any run of characters.
 */
function pathRegExp(path: string): RegExp {
  const p = path.replace(/\/+$/, '');
  const esc = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  if (p.endsWith('/*')) return new RegExp(`^${esc(p.slice(0, -2))}(?:/.*)?$`);
  return new RegExp(`^${esc(p)}$`);
}

/** Splits a WEAVER_INLINE_ENDPOINTS value (commas or white space) into patterns. */
export function splitPatterns(value: string | undefined): string[] {
  return (value ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Checks every pattern, throwing one error that names `source` and each bad pattern. */
export function checkInlineEndpoints(patterns: readonly string[], source = INLINE_ENDPOINTS_ENV): string[] {
  const issues = patterns.map(parsePattern).filter((p): p is string => typeof p === 'string');
  if (issues.length) throw new InlineEndpointsError(source, issues);
  return [...patterns];
}

/** `url` as a message may show it: without a user or password, and short. */
export function displayURL(url: string): string {
  const shown = url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}

/**
 * Whether a task's own `baseURL` matches one of the worker's patterns. Matched on the URL as
 * the HTTP client will read it (WHATWG URL: `http://0x7f.1` is 127.0.0.1); a URL with a user,
 * a password, a query or a fragment never matches.
 */
export function inlineEndpointAllowed(patterns: readonly string[] | undefined, url: string): boolean {
  if (!patterns?.length) return false;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.username || u.password || u.search || u.hash) return false;
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  const port = u.port || DEFAULT_PORT[u.protocol];
  const path = u.pathname.replace(/\/+$/, '');
  return patterns.some((text) => {
    const p = parsePattern(text);
    if (typeof p === 'string') return false;
    if (p.scheme !== u.protocol || p.host !== u.hostname) return false;
    if (p.port !== '*' && (p.port || DEFAULT_PORT[p.scheme]) !== port) return false;
    return !p.path || p.path.test(path);
  });
}
