// How the workflow code is bundled: one set of options for the worker (bundling at start), a
// prebuilt bundle (WEAVER_WORKFLOW_BUNDLE), the tests' bundle and the benchmarks, so all of them
// run the same code. Figures in the README ("Workflow tasks").
import { bundleWorkflowCode, type BundleOptions, type WorkerOptions } from '@temporalio/worker';

type WebpackConfig = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];

/**
 * The SDK's webpack configuration, leaner:
 * - the source map stays inline (the worker reads it from there to map workflow stack traces,
 *   as the Web UI shows them) but without the sources' text (`nosources`): file, line and column
 *   are kept, the 2.6 MB copy of every source file is not;
 * - modules whose exports no workflow uses are left out (`sideEffects`, `usedExports`: what
 *   package.json files declare side-effect free).
 */
export function leanWebpackConfig(config: WebpackConfig): WebpackConfig {
  return {
    ...config,
    devtool: 'inline-nosources-source-map',
    optimization: { ...config.optimization, sideEffects: true, usedExports: true, providedExports: true, innerGraph: true },
  };
}

/** The bundler options every bundle of Weaver's workflows is built with. */
export const WORKFLOW_BUNDLER_OPTIONS: NonNullable<WorkerOptions['bundlerOptions']> = {
  webpackConfigHook: leanWebpackConfig,
};

/** Bundles `workflowsPath` (src/workflows by default) as the worker would. */
export async function bundleWeaverWorkflows(opts: Pick<BundleOptions, 'logger'> & { workflowsPath?: string; webpackConfigHook?: BundleOptions['webpackConfigHook'] } = {}): Promise<{ code: string }> {
  const extra = opts.webpackConfigHook ?? ((c: WebpackConfig) => c);
  return bundleWorkflowCode({
    workflowsPath: opts.workflowsPath ?? require.resolve('./workflows'),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...WORKFLOW_BUNDLER_OPTIONS,
    webpackConfigHook: (config) => extra(leanWebpackConfig(config)),
  });
}
