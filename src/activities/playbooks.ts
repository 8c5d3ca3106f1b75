// Which playbook a workspace runs (worker side, reading the checkout): the task's, the
// repository's `.weaver/playbook.yaml`, the `setupCommand`/`testCommand` shorthand, or the
// checks a person would run, detected from the stack — for a monorepo, from the nearest
// manifest above the changed files. Nothing found is `none`: the workflow's `no_checks`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { normaliseStep, REPO_PLAYBOOK_PATH, shorthandSteps, type PlaybookStep, type ResolvedPlaybook } from '../domain/playbook';
import { parsePlaybookText, PlaybookError, playbookSteps } from '../domain/playbookText';
import type { PlaybookRequest } from './types';

/** The playbook for a fresh checkout at `dir` (setup steps run from it right away). */
export function resolvePlaybook(dir: string, req: PlaybookRequest): ResolvedPlaybook {
  const stack = detectAt(dir, '')?.stack;
  const withStack = (p: Omit<ResolvedPlaybook, 'stack'>): ResolvedPlaybook => (stack ? { ...p, stack } : p);
  if (req.playbook !== undefined) {
    const steps = typeof req.playbook === 'string' ? readText(req.playbook, "the task's playbook") : playbookSteps(req.playbook);
    return withStack({ source: 'task', description: `the task's playbook: ${names(steps)}`, steps });
  }
  if (req.testCommand) {
    return withStack({ source: 'testCommand', description: 'the task\'s testCommand', steps: shorthandSteps(req.setupCommand, req.testCommand) });
  }
  const repoFile = path.join(dir, REPO_PLAYBOOK_PATH);
  if (isFile(repoFile)) {
    const steps = withSetup(readText(readFileSync(repoFile, 'utf8'), REPO_PLAYBOOK_PATH), req.setupCommand);
    return withStack({ source: 'repository', description: `${REPO_PLAYBOOK_PATH}: ${names(steps)}`, steps });
  }
  const found = detectAt(dir, '');
  if (!found) {
    const steps = shorthandSteps(req.setupCommand);
    const anywhere = manifestBelow(dir);
    return {
      source: 'none',
      description: anywhere ? `nothing detected at the root (a manifest below it: ${anywhere})` : 'nothing detected: no playbook, no test command, no manifest with checks',
      steps,
      ...(anywhere ? {} : { nothingAnywhere: true }),
    };
  }
  const steps = withSetup(found.steps, req.setupCommand);
  return { source: 'detected', stack: found.stack, description: `detected (${found.stack}: ${found.manifest}): ${names(steps)}`, steps };
}

/**
 * The detected checks for a change: the nearest manifest above each changed path (a monorepo's
 * package), else the root's. Undefined where the workspace's playbook is not a detected one.
 */
export function detectForChange(dir: string, base: ResolvedPlaybook, changed: string[], before: Map<string, string | null> = new Map()): ResolvedPlaybook | undefined {
  if (base.source !== 'detected' && base.source !== 'none') return undefined;
  const roots = new Map<string, Detected>();
  // Every changed file counts (none is dropped past a number of packages): its nearest manifest.
  for (const file of changed) {
    for (let rel = parentOf(file); ; rel = parentOf(rel)) {
      if (roots.has(rel)) break;
      const found = detectAt(dir, rel, before);
      if (found) {
        roots.set(rel, found);
        break;
      }
      if (!rel) break;
    }
  }
  if (!roots.size || (roots.size === 1 && roots.has(''))) return undefined;
  // The setup steps ran at the root already; each package's checks run where its manifest is.
  const setup = base.steps.filter((s) => s.kind === 'setup');
  const checks = [...roots].flatMap(([rel, d]) =>
    d.steps.filter((s) => s.kind !== 'setup').map((s) => (rel ? { ...s, name: `${s.name}@${rel}`, cwd: rel } : s)),
  );
  const where = [...roots].map(([rel, d]) => `${rel || '.'} (${d.stack}: ${d.manifest})`).join(', ');
  return { source: 'detected', stack: [...roots.values()][0].stack, description: `detected for the changed files: ${where}: ${names(checks)}`, steps: [...setup, ...checks] };
}

const MANIFESTS = new Set(['package.json', 'pyproject.toml', 'setup.cfg', 'pytest.ini', 'tox.ini', 'setup.py', 'go.mod', 'Cargo.toml', 'pom.xml', 'build.gradle', 'build.gradle.kts', 'CMakeLists.txt', 'Makefile']);
const SCAN_ENTRIES = 20_000;

/**
 * The first manifest below the root (a monorepo's package, found for a change's files later),
 * or undefined when a bounded walk finds none. A walk cut short by its bound says "unknown".
 */
function manifestBelow(dir: string): string | undefined {
  const queue = [''];
  let seen = 0;
  while (queue.length) {
    const rel = queue.shift()!;
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (++seen > SCAN_ENTRIES) return `(more than ${SCAN_ENTRIES} entries: not scanned whole)`;
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory() && e.name !== '.git' && e.name !== 'node_modules' && !e.name.startsWith('.')) queue.push(child);
      else if (rel && e.isFile() && MANIFESTS.has(e.name)) return child;
    }
  }
  return undefined;
}

interface Detected {
  stack: string;
  manifest: string;
  steps: PlaybookStep[];
}

/**
 * What a person would run in `rel` (relative to `dir`), by the manifests there. `before`: the
 * change's files as they were before it (null: it did not exist) — a manifest the model wrote or
 * edited never decides the checks its own change runs.
 */
export function detectAt(dir: string, rel: string, before: Map<string, string | null> = new Map()): Detected | undefined {
  const at = path.join(dir, rel);
  const key = (f: string) => (rel ? `${rel}/${f}` : f);
  const has = (f: string) => (before.has(key(f)) ? before.get(key(f)) !== null : existsSync(path.join(at, f)));
  const text = (f: string) => (before.has(key(f)) ? (before.get(key(f)) ?? '') : isFile(path.join(at, f)) ? readFileSync(path.join(at, f), 'utf8') : '');
  const step = (name: string, run: string | string[], kind?: PlaybookStep['kind']) => normaliseStep({ name, run, ...(kind ? { kind } : {}) });
  const sh = (script: string) => ['sh', '-c', script];

  const node = has('package.json') ? detectNode(text('package.json'), has, step) : undefined;
  // A package.json with nothing to check (a frontend's prettier next to a Python app) hides no other stack.
  if (node) return node;
  const pyManifest = ['pyproject.toml', 'setup.cfg', 'pytest.ini', 'tox.ini', 'setup.py'].find(has);
  // Test files alone make only the repository root a Python project (a tests/ folder is no package).
  if (pyManifest || (!rel && hasPythonTests(at))) {
    const steps: PlaybookStep[] = [];
    // With requirements, a virtualenv built in setup (network), seeing the system's packages (pytest).
    const venv = has('requirements.txt');
    if (venv) steps.push(step('setup', sh('python3 -m venv --system-site-packages .venv && .venv/bin/python -m pip install -q -r requirements.txt')));
    const python = venv ? '.venv/bin/python' : 'python3';
    const pyproject = text('pyproject.toml');
    if (/^\[tool\.ruff/m.test(pyproject) || has('ruff.toml') || has('.ruff.toml')) steps.push(step('lint', ['ruff', 'check', '.']));
    else if (has('.flake8') || /^\[flake8\]/m.test(text('setup.cfg') + text('tox.ini'))) steps.push(step('lint', ['flake8']));
    steps.push(step('test', [python, '-m', 'pytest', '-q']));
    return { stack: 'python', manifest: pyManifest ?? 'tests/', steps };
  }
  return detectCompiled(has, text, step, sh);
}

type Step = (name: string, run: string | string[], kind?: PlaybookStep['kind']) => PlaybookStep;

function detectNode(json: string, has: (f: string) => boolean, step: Step): Detected | undefined {
  {
    let pkg: { scripts?: Record<string, string>; dependencies?: object; devDependencies?: object };
    try {
      pkg = JSON.parse(json) as typeof pkg;
    } catch {
      return undefined;
    }
    const scripts = pkg.scripts ?? {};
    const deps = { ...pkg.dependencies, ...pkg.devDependencies } as Record<string, string>;
    const steps: PlaybookStep[] = [];
    // Installed once, with network (the sandbox's setup policy), unless the checkout has them.
    if (Object.keys(deps).length && !has('node_modules')) {
      steps.push(step('setup', has('package-lock.json') ? ['npm', 'ci', '--no-audit', '--no-fund'] : ['npm', 'install', '--no-audit', '--no-fund']));
    }
    if (scripts.lint) steps.push(step('lint', ['npm', 'run', 'lint']));
    if (scripts.typecheck) steps.push(step('typecheck', ['npm', 'run', 'typecheck']));
    else if (has('tsconfig.json') && deps.typescript) steps.push(step('typecheck', ['npx', '--no-install', 'tsc', '--noEmit']));
    // `npm init`'s placeholder fails on purpose: it checks nothing.
    if (scripts.test && !/no test specified/.test(scripts.test)) steps.push(step('test', ['npm', 'test']));
    return checksOnly(steps) ? { stack: 'node', manifest: 'package.json', steps } : undefined;
  }
}

function detectCompiled(has: (f: string) => boolean, text: (f: string) => string, step: Step, sh: (script: string) => string[]): Detected | undefined {
  if (has('go.mod')) {
    return { stack: 'go', manifest: 'go.mod', steps: [step('vet', ['go', 'vet', './...'], 'lint'), step('test', ['go', 'test', './...'])] };
  }
  if (has('Cargo.toml')) return { stack: 'rust', manifest: 'Cargo.toml', steps: [step('test', ['cargo', 'test'])] };
  if (has('pom.xml')) return { stack: 'java', manifest: 'pom.xml', steps: [step('test', ['mvn', '-q', '-B', 'test'])] };
  const gradle = ['build.gradle', 'build.gradle.kts'].find(has);
  if (gradle) return { stack: 'java', manifest: gradle, steps: [step('test', has('gradlew') ? ['./gradlew', 'test'] : ['gradle', 'test'])] };
  if (has('CMakeLists.txt')) {
    return {
      stack: 'cmake',
      manifest: 'CMakeLists.txt',
      steps: [step('build', sh('cmake -S . -B build && cmake --build build')), step('test', ['ctest', '--test-dir', 'build', '--output-on-failure'])],
    };
  }
  if (/^test\s*:/m.test(text('Makefile'))) return { stack: 'make', manifest: 'Makefile', steps: [step('test', ['make', 'test'])] };
  return undefined;
}

/** A playbook of setup alone checks nothing. */
function checksOnly(steps: PlaybookStep[]): boolean {
  return steps.some((s) => s.kind !== 'setup');
}

/** Python tests without a manifest: `test_*.py` / `*_test.py` at the top or in `tests/`/`test/`. */
function hasPythonTests(at: string): boolean {
  const pyTest = /^(test_.*|.*_test)\.py$/;
  for (const sub of ['', 'tests', 'test']) {
    const d = path.join(at, sub);
    try {
      if (statSync(d).isDirectory() && readdirSync(d).some((f) => pyTest.test(f))) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/** `setupCommand` with a playbook from elsewhere: it replaces that playbook's setup steps. */
function withSetup(steps: PlaybookStep[], setupCommand?: string | string[]): PlaybookStep[] {
  if (!setupCommand) return steps;
  return [...shorthandSteps(setupCommand), ...steps.filter((s) => s.kind !== 'setup')];
}

function readText(text: string, source: string): PlaybookStep[] {
  try {
    return parsePlaybookText(text, source);
  } catch (err) {
    if (err instanceof PlaybookError) throw ApplicationFailure.create({ type: 'InvalidPlaybook', nonRetryable: true, message: err.message });
    throw err;
  }
}

function names(steps: PlaybookStep[]): string {
  return steps.map((s) => s.name).join(', ') || 'no steps';
}

function parentOf(rel: string): string {
  const d = path.posix.dirname(rel);
  return d === '.' ? '' : d;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
