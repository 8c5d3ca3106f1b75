// A workflow bundle of src/workflows with some modules swapped for edited copies: what a later
// deploy (other prices, other defaults) or an older one (a patch not yet there) would run.
// Each copy is written to a temp dir with its relative imports made absolute (so they reach the
// real modules), and webpack's NormalModuleReplacementPlugin puts it where the real module
// resolves. Bundling takes several seconds: build each variant once per test file.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DefaultLogger } from '@temporalio/worker';
import { bundleWeaverWorkflows } from '../../src/workflowBundle';

const ROOT = path.resolve(__dirname, '..', '..');

/** A module of src/ (path relative to the repository, e.g. 'src/domain/pricing.ts') and how to edit it. */
export interface ModuleEdit {
  module: string;
  edit(source: string): string;
}

/**
 * `source` with `from` replaced by `to`; throws when `from` is not there (the module changed
 * and the edit no longer applies — fix the edit rather than bundle an unmodified copy).
 */
export function replaceExactly(source: string, from: string | RegExp, to: string, times = 1): string {
  const global = typeof from === 'string' ? new RegExp(from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g') : new RegExp(from.source, `${from.flags.replace('g', '')}g`);
  const found = source.match(global)?.length ?? 0;
  if (found !== times) throw new Error(`variant bundle: expected ${times} of ${String(from)}, found ${found}`);
  return source.replace(global, to);
}

/** Relative import specifiers made absolute against the real module's directory. */
function absoluteImports(source: string, realFile: string): string {
  return source.replace(/(\bfrom\s+|\bimport\s+|\brequire\(\s*)(['"])(\.{1,2}\/[^'"]*)\2/g, (_m, lead: string, q: string, spec: string) => {
    return `${lead}${q}${path.resolve(path.dirname(realFile), spec)}${q}`;
  });
}

const markOf = (module: string) => `weaver-variant-of:${module}`;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Bundles src/workflows with every edit applied. */
export async function variantWorkflowBundle(edits: ModuleEdit[]): Promise<{ code: string }> {
  // webpack ships with @temporalio/worker: the same copy its bundler runs.
  const webpack = createRequire(require.resolve('@temporalio/worker'))('webpack') as typeof import('webpack');
  const dir = await mkdtemp(path.join(tmpdir(), 'weaver-variant-'));
  let code: string;
  try {
    const plugins: InstanceType<typeof webpack.NormalModuleReplacementPlugin>[] = [];
    for (const [i, e] of edits.entries()) {
      const real = path.join(ROOT, e.module);
      const copy = path.join(dir, `${i}-${path.basename(real)}`);
      const edited = e.edit(await readFile(real, 'utf8'));
      // A mark to find in the bundle: proof that the copy, not the real module, went in.
      await writeFile(copy, `${absoluteImports(edited, real)}\nexport const __weaverVariantOf = '${markOf(e.module)}';\n`);
      // Matched against the resolved file (afterResolve): every importer of the real module gets the copy.
      plugins.push(new webpack.NormalModuleReplacementPlugin(new RegExp(`^${escape(real)}$`), copy));
    }
    ({ code } = await bundleWeaverWorkflows({
      logger: new DefaultLogger('WARN'),
      webpackConfigHook: (config) => ({
        ...config,
        // The copies live outside the project: their package imports resolve from its node_modules.
        resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), path.join(ROOT, 'node_modules')] },
        plugins: [...(config.plugins ?? []), ...plugins],
      }),
    }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const missing = edits.filter((e) => !code.includes(markOf(e.module)));
  if (missing.length) throw new Error(`variant bundle: ${missing.map((e) => e.module).join(', ')} not replaced`);
  return { code };
}
