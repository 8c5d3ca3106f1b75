// A playbook step's `when`: a small expression language, parsed (never `eval`ed) into a tree
// and evaluated against what the workflow knows of the attempt. Pure: it runs in the workflow.
//
//   changed('**/*.py') && attempt > 1
//   steps.lint.failed || stack == 'go'
//   label('docs') and not changed('src/**')
//
// Anything it does not know — a function, a field, a step not defined before — is refused
// when the playbook is read, with the column where it stands.
import { Minimatch, minimatch } from 'minimatch';

/** What a condition can see. */
export interface ConditionContext {
  /** Paths the attempt's change wrote (repository-relative). */
  changed: string[];
  attempt: number;
  /** The detected stack (`node`, `python`, `go`, …) or '' when none was. */
  stack: string;
  labels: string[];
  /** Outcomes of the steps that came before in this attempt, by name. */
  steps: Record<string, { status: 'passed' | 'failed' | 'skipped'; exitCode?: number | null }>;
}

type Value = string | number | boolean;

export type Node =
  | { t: 'lit'; v: Value }
  | { t: 'field'; path: string[] }
  | { t: 'call'; fn: FunctionName; args: Node[] }
  | { t: 'not'; e: Node }
  | { t: 'bin'; op: BinaryOp; l: Node; r: Node };

type BinaryOp = '&&' | '||' | '==' | '!=' | '<' | '<=' | '>' | '>=';
type FunctionName = keyof typeof FUNCTIONS;

/**
 * Globs as a person writes them (`**`, `*`, `?`, `[ab]`), without brace and extglob expansion:
 * a `{1..100000}` or a nested `+(a|…)` from a repository's playbook would run for seconds or
 * minutes inside the workflow (`changed('a', 'b')` says what braces would).
 */
const GLOB = { dot: true, nobrace: true, noext: true } as const;
const MAX_GLOB_CHARS = 200;
const MAX_GLOBSTARS = 4;

function globOptions(g: string) {
  return { ...GLOB, matchBase: !g.includes('/') };
}

/** Why a glob is refused (undefined: fine). */
function globProblem(g: string): string | undefined {
  if (g.length > MAX_GLOB_CHARS) return `a glob is at most ${MAX_GLOB_CHARS} characters`;
  if ((g.match(/\*\*/g) ?? []).length > MAX_GLOBSTARS) return `a glob has at most ${MAX_GLOBSTARS} "**"`;
  try {
    new Minimatch(g, globOptions(g)).makeRe();
  } catch (err) {
    return `not a glob: ${(err as Error).message}`;
  }
  return undefined;
}

/** The functions a condition may call: each takes strings. */
const FUNCTIONS = {
  /** Whether any changed path matches any of the globs. */
  changed: (ctx: ConditionContext, globs: string[]) => ctx.changed.some((p) => globs.some((g) => minimatch(p, g, globOptions(g)))),
  /** Whether the task carries any of these labels. */
  label: (ctx: ConditionContext, names: string[]) => names.some((n) => ctx.labels.includes(n)),
};

/** Fields of `steps.<name>`. */
const STEP_FIELDS = ['failed', 'passed', 'skipped', 'ran', 'exitCode'] as const;
const TOP_FIELDS = ['attempt', 'stack', 'labels'] as const;

export class ConditionError extends Error {
  constructor(
    message: string,
    readonly column: number,
  ) {
    super(`${message} (column ${column})`);
    this.name = 'ConditionError';
  }
}

interface Token {
  kind: 'num' | 'str' | 'ident' | 'op' | 'end';
  text: string;
  value?: Value;
  col: number;
}

const MAX_CONDITION_CHARS = 500;
const MAX_ARGS = 20;

function tokenize(src: string): Token[] {
  if (src.length > MAX_CONDITION_CHARS) throw new ConditionError(`a condition is at most ${MAX_CONDITION_CHARS} characters`, 1);
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    const col = i + 1;
    if (/\s/.test(c)) {
      i++;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(src.slice(i))![0];
      out.push({ kind: 'num', text: m, value: Number(m), col });
      i += m.length;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        s += src[j++];
      }
      if (j >= src.length) throw new ConditionError('unterminated string', col);
      out.push({ kind: 'str', text: src.slice(i, j + 1), value: s, col });
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i))![0];
      out.push({ kind: 'ident', text: m, col });
      i += m.length;
    } else {
      const two = src.slice(i, i + 2);
      const op = ['&&', '||', '==', '!=', '<=', '>='].includes(two) ? two : '!<>().,'.includes(c) ? c : undefined;
      if (!op) throw new ConditionError(`unexpected character ${JSON.stringify(c)}`, col);
      out.push({ kind: 'op', text: op, col });
      i += op.length;
    }
  }
  out.push({ kind: 'end', text: 'end of condition', col: src.length + 1 });
  return out;
}

/**
 * Parses a condition; `stepsBefore` are the names of the steps that run before this one (a
 * condition may only read those). Throws ConditionError naming what it does not know.
 */
export function parseCondition(src: string, stepsBefore: string[] = []): Node {
  const toks = tokenize(src);
  let pos = 0;
  const peek = () => toks[pos];
  const next = () => toks[pos++];
  const isOp = (text: string) => peek().kind === 'op' && peek().text === text;
  const isWord = (w: string) => peek().kind === 'ident' && peek().text === w;
  const expect = (text: string) => {
    if (!isOp(text)) throw new ConditionError(`expected "${text}" but found ${describe(peek())}`, peek().col);
    next();
  };

  const or = (): Node => {
    let l = and();
    while (isOp('||') || isWord('or')) {
      next();
      l = { t: 'bin', op: '||', l, r: and() };
    }
    return l;
  };
  const and = (): Node => {
    let l = not();
    while (isOp('&&') || isWord('and')) {
      next();
      l = { t: 'bin', op: '&&', l, r: not() };
    }
    return l;
  };
  const not = (): Node => {
    if (isOp('!') || isWord('not')) {
      next();
      return { t: 'not', e: not() };
    }
    return compare();
  };
  const compare = (): Node => {
    const l = primary();
    const op = peek();
    if (op.kind === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(op.text)) {
      next();
      return { t: 'bin', op: op.text as BinaryOp, l, r: primary() };
    }
    return l;
  };
  const primary = (): Node => {
    const tok = next();
    if (tok.kind === 'num' || tok.kind === 'str') return { t: 'lit', v: tok.value! };
    if (tok.kind === 'op' && tok.text === '(') {
      const e = or();
      expect(')');
      return e;
    }
    if (tok.kind !== 'ident') throw new ConditionError(`expected a value but found ${describe(tok)}`, tok.col);
    if (tok.text === 'true' || tok.text === 'false') return { t: 'lit', v: tok.text === 'true' };
    if (isOp('(')) {
      if (!Object.hasOwn(FUNCTIONS, tok.text)) {
        throw new ConditionError(`unknown function "${tok.text}" (known: ${Object.keys(FUNCTIONS).join(', ')})`, tok.col);
      }
      next();
      const args: Node[] = [];
      while (!isOp(')')) {
        const a = peek();
        if (a.kind !== 'str') throw new ConditionError(`${tok.text}() takes quoted strings, found ${describe(a)}`, a.col);
        const bad = tok.text === 'changed' ? globProblem(String(a.value)) : undefined;
        if (bad) throw new ConditionError(`${tok.text}(${a.text}): ${bad}`, a.col);
        if (args.length >= MAX_ARGS) throw new ConditionError(`${tok.text}() takes at most ${MAX_ARGS} arguments`, a.col);
        args.push({ t: 'lit', v: next().value! });
        if (!isOp(')')) expect(',');
      }
      next();
      if (!args.length) throw new ConditionError(`${tok.text}() needs at least one argument`, tok.col);
      return { t: 'call', fn: tok.text as FunctionName, args };
    }
    const path = [tok.text];
    while (isOp('.')) {
      next();
      const part = next();
      if (part.kind !== 'ident') throw new ConditionError(`expected a field name after "." but found ${describe(part)}`, part.col);
      path.push(part.text);
    }
    checkField(path, tok.col, stepsBefore);
    return { t: 'field', path };
  };

  const tree = or();
  if (peek().kind !== 'end') throw new ConditionError(`unexpected ${describe(peek())}`, peek().col);
  return tree;
}

function checkField(path: string[], col: number, stepsBefore: string[]): void {
  const [head, name, field] = path;
  if (head === 'steps') {
    if (path.length !== 3) throw new ConditionError(`a step's outcome is read as steps.<name>.<${STEP_FIELDS.join('|')}>`, col);
    if (!stepsBefore.includes(name)) {
      throw new ConditionError(`steps.${name}: no step named "${name}" runs before this one${stepsBefore.length ? ` (earlier steps: ${stepsBefore.join(', ')})` : ''}`, col);
    }
    if (!(STEP_FIELDS as readonly string[]).includes(field)) throw new ConditionError(`steps.${name}.${field}: unknown field (known: ${STEP_FIELDS.join(', ')})`, col);
    return;
  }
  if (path.length !== 1 || !(TOP_FIELDS as readonly string[]).includes(head)) {
    throw new ConditionError(`unknown field "${path.join('.')}" (known: ${TOP_FIELDS.join(', ')}, steps.<name>.<field>)`, col);
  }
}

function describe(t: Token): string {
  return t.kind === 'end' ? 'the end of the condition' : `"${t.text}"`;
}

/** Evaluates a parsed condition; the result is its truth. */
export function evaluateCondition(node: Node, ctx: ConditionContext): boolean {
  return truthy(value(node, ctx));
}

function value(node: Node, ctx: ConditionContext): Value | string[] {
  switch (node.t) {
    case 'lit':
      return node.v;
    case 'not':
      return !truthy(value(node.e, ctx));
    case 'call':
      return FUNCTIONS[node.fn](ctx, node.args.map((a) => String((a as { v: Value }).v)));
    case 'field': {
      const [head, name, field] = node.path;
      if (head === 'attempt') return ctx.attempt;
      if (head === 'stack') return ctx.stack;
      if (head === 'labels') return ctx.labels;
      const s = ctx.steps[name];
      if (field === 'exitCode') return s?.exitCode ?? -1;
      if (field === 'ran') return !!s && s.status !== 'skipped';
      return s?.status === field;
    }
    case 'bin': {
      if (node.op === '&&') return truthy(value(node.l, ctx)) && truthy(value(node.r, ctx));
      if (node.op === '||') return truthy(value(node.l, ctx)) || truthy(value(node.r, ctx));
      const l = scalar(value(node.l, ctx));
      const r = scalar(value(node.r, ctx));
      switch (node.op) {
        case '==':
          return l === r;
        case '!=':
          return l !== r;
        case '<':
          return l < r;
        case '<=':
          return l <= r;
        case '>':
          return l > r;
        default:
          return l >= r;
      }
    }
  }
}

function scalar(v: Value | string[]): Value {
  return Array.isArray(v) ? v.join(',') : v;
}

function truthy(v: Value | string[]): boolean {
  return Array.isArray(v) ? v.length > 0 : !!v;
}
