// Stub bodies (issue 16, item 3): a function whose body is only a placeholder is most likely the
// one a task asks to write. Cheap and textual (no second parse): Python bodies by indentation,
// brace languages by the outermost `{…}` of the definition, comments and docstrings stripped.
import type { LangId } from './languages';

/** Definitions longer than this are not stubs (and are not looked at). */
const MAX_STUB_LINES = 40;

// One placeholder statement, the whole body: Python.
const PY_STUB = /^(?:pass|\.\.\.|raise\s+NotImplementedError\b(?:\([^)]*\))?|return\s+NotImplemented)$/;
// Brace languages: `throw new Error('not implemented')` (JS/TS), `throw new
// UnsupportedOperationException(…)` (Java), `todo!()` / `unimplemented!()` (Rust),
// `panic("TODO")` / `panic("not implemented")` (Go); an optional `return` before the placeholder.
const NOT_IMPLEMENTED = String.raw`(?:[^"'\x60]*(?:not\s+(?:yet\s+)?implemented|todo|unimplemented|fixme|stub)[^"'\x60]*)`;
const BRACE_STUB = new RegExp(
  String.raw`^(?:return\s+)?(?:` +
    String.raw`throw\s+new\s+(?:\w+\.)*(?:Error|NotImplementedError|UnsupportedOperationException|NotImplementedException|UnimplementedError)\s*\(\s*(?:["'\x60]${NOT_IMPLEMENTED}["'\x60])?\s*\)` +
    String.raw`|throw\s+new\s+(?:\w+\.)*(?:UnsupportedOperationException|NotImplementedException|NotImplementedError)\s*\([^)]*\)` +
    String.raw`|(?:todo|unimplemented)!\s*\([^)]*\)` +
    String.raw`|panic\s*\(\s*(?:"${NOT_IMPLEMENTED}"|\x60${NOT_IMPLEMENTED}\x60)\s*\)` +
    String.raw`)\s*;?$`,
  'i',
);

const BRACE_COMMENTS = /\/\*[\s\S]*?\*\/|\/\/[^\n]*/g;
const PY_COMMENT = /(^|\s)#[^\n]*/g;
const PY_DOCSTRING = /^(?:[rRuUbB]{0,2})("""|''')[\s\S]*?\1\s*|^(?:[rRuUbB]{0,2})("[^"\n]*"|'[^'\n]*')\s*(?:\n|$)/;

/** Python: the statements after the signature's `:` (the first line ending with one). */
function pythonStub(lines: string[]): boolean {
  let k = 0;
  let inline = '';
  for (; k < lines.length; k++) {
    const code = lines[k].replace(PY_COMMENT, '$1').trimEnd();
    // `def f(): pass` on one line: the statement after the colon.
    const one = /^\s*(?:async\s+)?def\s.*\)\s*(?:->[^:]+)?:\s*(\S.*)$/.exec(code);
    if (one && k === 0) {
      inline = one[1];
      break;
    }
    if (code.endsWith(':')) break;
  }
  const body = (inline || lines.slice(k + 1).join('\n')).replace(PY_COMMENT, '$1').trim().replace(PY_DOCSTRING, '').trim();
  if (!body) return !inline && k < lines.length; // a docstring alone
  return body.split(/\s*\n\s*|;\s*/).filter(Boolean).every((s) => PY_STUB.test(s));
}

/** Brace languages: the inside of the definition's last `{…}` block, balanced from its end. */
function braceStub(text: string): boolean {
  const code = text.replace(BRACE_COMMENTS, '');
  const close = code.lastIndexOf('}');
  if (close < 0) return false; // a declaration without a body (interface, trait, abstract)
  let depth = 0;
  let open = -1;
  for (let i = close; i >= 0; i--) {
    const c = code[i];
    if (c === '}') depth++;
    else if (c === '{' && --depth === 0) {
      open = i;
      break;
    }
  }
  if (open < 0) return false;
  // An object literal, not a body: `= {…}`, `({…})`, `, {…}`.
  if (/[=(,]$/.test(code.slice(0, open).trimEnd())) return false;
  const body = code.slice(open + 1, close).trim();
  return body === '' || BRACE_STUB.test(body);
}

/**
 * Whether the function or method on lines line..endLine (1-based; `lineAt` gives a line's text)
 * is a stub: an empty body, `pass`/`...`, or a "not implemented" placeholder.
 */
export function isStub(lang: LangId, kind: string, line: number, endLine: number, lineAt: (l: number) => string): boolean {
  if (kind !== 'function' && kind !== 'method') return false;
  if (endLine < line || endLine - line >= MAX_STUB_LINES) return false;
  const lines = Array.from({ length: endLine - line + 1 }, (_, j) => lineAt(line + j));
  if (lang === 'python') return pythonStub(lines);
  return braceStub(lines.join('\n'));
}
