// A worker's settings file (WEAVER_PROVIDERS, WEAVER_GIT_CREDENTIALS), YAML or JSON.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/**
 * What `file` holds, parsed by its extension (.json as JSON, anything else as YAML); `fail`
 * makes the error thrown from one line saying why it cannot be read or parsed.
 */
export function readSettingsFile(file: string, fail: (issue: string) => Error): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fail(`cannot read the file: ${(err as Error).message}`);
  }
  try {
    // YAML is a superset of JSON: one parser reads both; .json files get JSON's stricter reading.
    return /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw fail(`not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
}
