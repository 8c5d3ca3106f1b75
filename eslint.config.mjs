// ESLint flat config: typescript-eslint with typed linting.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Node built-ins (bare and node:-prefixed) and anything that does I/O must not
// reach the workflow sandbox; workflows may only import activity *types*.
const NODE_BUILTINS = ['fs', 'path', 'child_process', 'crypto', 'os', 'http', 'https', 'net', 'stream', 'util', 'events'];

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', '.tools/**', '.weaver/**', '.bench-cache/**', 'coverage/**', '**/*.d.ts'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          // Config files outside tsconfig's include still get (untyped) linting.
          allowDefaultProject: ['*.js', '*.mjs', '*.cjs', 'bin/*.mjs'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/no-explicit-any': 'warn',
    },
  },
  {
    // Plain JS (configs, bin): no type information.
    files: ['**/*.{js,mjs,cjs}'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: {
        module: 'writable', require: 'readonly', process: 'readonly', console: 'readonly', __dirname: 'readonly',
      },
    },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Deterministic workflow code: bundled into Temporal's sandbox.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...NODE_BUILTINS.map((name) => ({
              name,
              message: 'Workflows run in the Temporal sandbox: no Node built-ins (do I/O in an activity).',
            })),
            { name: 'openai', message: 'LLM calls are activities (src/activities), not workflow code.' },
            { name: 'simple-git', message: 'git runs in activities (src/activities), not workflow code.' },
            { name: '@temporalio/activity', message: 'Workflows import from @temporalio/workflow only.' },
            { name: '@temporalio/client', message: 'Workflows import from @temporalio/workflow only.' },
            { name: '@temporalio/worker', message: 'Workflows import from @temporalio/workflow only.' },
          ],
          patterns: [
            { group: ['node:*'], message: 'Workflows run in the Temporal sandbox: no Node built-ins.' },
            {
              group: NODE_BUILTINS.map((name) => `${name}/*`),
              message: 'Workflows run in the Temporal sandbox: no Node built-ins.',
            },
            { group: ['openai/*', 'simple-git/*'], message: 'I/O libraries belong in activities.' },
            {
              group: ['**/activities', '**/activities/*', '**/activities/**'],
              allowTypeImports: true,
              message: 'Workflows may import activity TYPES only (`import type ...`) and call them through proxyActivities.',
            },
          ],
        },
      ],
    },
  },
);
