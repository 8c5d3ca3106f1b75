// Egress allowlist patterns (pure: the task schema validates them, the worker's proxy matches
// them). A pattern is a host (`registry.npmjs.org`), every subdomain of one (`*.pypi.org`, not
// `pypi.org` itself), an IPv4 or [IPv6] literal, each with an optional port: none means 80 and
// 443, `:*` any port.

/**
 * What a command with network may reach when the worker sets no WEAVER_EGRESS_ALLOW: the package
 * registries of each stack Weaver detects, nothing else.
 */
export const DEFAULT_EGRESS_ALLOW: readonly string[] = [
  // npm (and yarn's mirror of it)
  'registry.npmjs.org',
  'registry.yarnpkg.com',
  // PyPI: the index and the files it points to
  'pypi.org',
  'files.pythonhosted.org',
  // Go: the module proxy and the checksum database
  'proxy.golang.org',
  'sum.golang.org',
  // Rust: crates.io, its sparse index and its downloads
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  // Maven Central
  'repo.maven.apache.org',
  'repo1.maven.org',
  // Debian packages
  'deb.debian.org',
];

export interface EgressPattern {
  host: string;
  /** `*.host`: any subdomain of `host`. */
  wildcard: boolean;
  /** A port; `'*'` any; absent: 80 and 443. */
  port?: number | '*';
}

/** One refused connection of a command (the worker's proxy), counted by (host, port, why). */
export interface EgressRefusal {
  host: string;
  port: number;
  why: string;
  times: number;
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const NAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_RE = /^[0-9a-f:.]+$/;

/** `*.pypi.org`, `host:8080`, `[::1]:*` → the pattern; a string saying what is wrong otherwise. */
export function parseEgressPattern(raw: string): EgressPattern | string {
  const s = raw.trim().toLowerCase();
  const m = /^(\*\.)?(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\*|\d{1,5}))?$/.exec(s);
  if (!m) return `"${raw}" is not a host pattern (host, *.domain, IP, [IPv6], each with an optional :port or :*)`;
  const wildcard = !!m[1];
  const bracketed = m[2].startsWith('[');
  const host = bracketed ? m[2].slice(1, -1) : m[2].replace(/\.$/, '');
  if (bracketed ? !IPV6_RE.test(host) || wildcard : !(NAME_RE.test(host) || IPV4_RE.test(host)) || (wildcard && IPV4_RE.test(host))) {
    return `"${raw}" is not a host pattern (host, *.domain, IP, [IPv6], each with an optional :port or :*)`;
  }
  const port = m[3] === undefined ? undefined : m[3] === '*' ? '*' : Number(m[3]);
  if (typeof port === 'number' && (port < 1 || port > 65535)) return `"${raw}": port must be 1–65535`;
  return { host, wildcard, ...(port === undefined ? {} : { port }) };
}

/** The patterns of a list; throws naming `setting` and the first bad entry. */
export function parseEgressList(list: readonly string[], setting: string): EgressPattern[] {
  return list.map((s) => {
    const p = parseEgressPattern(s);
    if (typeof p === 'string') throw new Error(`${setting}: ${p}`);
    return p;
  });
}

const portOk = (p: EgressPattern, port: number) => (p.port === '*' ? true : p.port === undefined ? port === 80 || port === 443 : p.port === port);
const hostOk = (p: EgressPattern, host: string) => (p.wildcard ? host.endsWith(`.${p.host}`) : host === p.host);

/** Whether `host:port` (host lowercased, without brackets or a trailing dot) is allowed. */
export function egressAllows(patterns: readonly EgressPattern[], host: string, port: number): boolean {
  return patterns.some((p) => hostOk(p, host) && portOk(p, port));
}

/** Whether everything `t` allows, `w` allows too. */
function covers(w: EgressPattern, t: EgressPattern): boolean {
  const hosts = t.wildcard ? w.wildcard && (t.host === w.host || t.host.endsWith(`.${w.host}`)) : hostOk(w, t.host);
  const ports =
    w.port === '*' || (t.port === undefined ? w.port === undefined : t.port === '*' ? false : portOk(w, t.port));
  return hosts && ports;
}

/**
 * The task's `sandbox.egress` within the worker's list: a task narrows what the worker allows,
 * never widens it. Absent: the worker's list. An entry the worker's list does not cover is
 * dropped (for a note).
 */
export function narrowEgress(worker: readonly string[], task?: readonly string[]): { allow: string[]; dropped: string[] } {
  if (task === undefined) return { allow: [...worker], dropped: [] };
  const w = worker.map(parseEgressPattern).filter((p): p is EgressPattern => typeof p !== 'string');
  const allow: string[] = [];
  const dropped: string[] = [];
  for (const entry of task) {
    const t = parseEgressPattern(entry);
    if (typeof t !== 'string' && w.some((p) => covers(p, t))) allow.push(entry);
    else dropped.push(entry);
  }
  return { allow, dropped };
}
