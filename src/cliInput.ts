// Reading the CLI's input files (task and batch files, JSON or YAML): a file that cannot be read
// or parsed is refused in one line naming the file and where in it the problem is.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';

/** Bad input that is not a usage mistake (a file that is not JSON, a refused task): exit 2, no usage text. */
export class InputError extends Error {}

const isYaml = (file: string) => /\.ya?ml$/i.test(file);

/** `.yaml`/`.yml` files as YAML, anything else as JSON. */
export async function readInputFile(file: string, what = 'task file'): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return isYaml(file) ? (parseYaml(text) as unknown) : (JSON.parse(text) as unknown);
  } catch (err) {
    const at = positionOf(err, text);
    const why = (err as Error).message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError(`${what} ${file} is not valid ${isYaml(file) ? 'YAML' : 'JSON'}: ${why}${at ? ` (line ${at.line}, column ${at.col})` : ''}`);
  }
}

/** Line and column (from 1) of a parse error: YAML's own, or JSON's "at position N" (end of input: the end). */
function positionOf(err: unknown, text: string): { line: number; col: number } | undefined {
  if (err instanceof YAMLParseError && err.linePos) return err.linePos[0];
  const msg = (err as Error).message;
  const m = /at position (\d+)/.exec(msg);
  const offset = m ? Number(m[1]) : /end of JSON input/.test(msg) ? text.length : undefined;
  if (offset === undefined) return undefined;
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: before[before.length - 1].length + 1 };
}
