// Which paths are tests: a model may change them only when the task allows it
// (`task.allowTestChanges`), so it cannot make a suite pass by editing the suite.
// Pure (no Node built-ins): the workflow and the applier both use it.

/** Directories whose files are tests (any depth): test/, tests/, __tests__/, spec/, src/test/… */
const TEST_DIRS = new Set(['test', 'tests', '__tests__', '__test__', 'spec', 'specs', 'testdata', '__snapshots__', '__mocks__']);

const TEST_FILES: RegExp[] = [
  /^conftest\.py$/,
  /^test_.+\.py$/, // pytest
  /_test\.(py|go|rb|exs|dart|c|cc|cpp|cxx|h|hpp|rs|kt|swift|lua|php|pl|r|zig|nim|ml|js|ts)$/i, // foo_test.go, foo_test.cpp
  /_tests\.(py|rs|c|cc|cpp)$/,
  /\.(test|spec)\.[cm]?[jt]sx?$/, // jest, vitest, mocha
  /\.(test|spec)\.(py|rb|go|php)$/,
  /_spec\.(rb|lua|exs)$/, // RSpec, busted
  /[a-z0-9_](Test|Tests|Spec|IT)\.(java|kt|kts|scala|groovy|cs|swift|php)$/, // JUnit, Kotest, NUnit, XCTest, PHPUnit
  /^Test[A-Z][A-Za-z0-9_]*\.(java|kt|cs|php)$/,
  /^test_.+\.(c|cc|cpp|rs|sh|bats)$/,
  /\.bats$/,
];

/** Whether `path` (workspace-relative, `/` or `\` separated) is a test file. */
export function isTestPath(path: string): boolean {
  const segments = path.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  if (segments.length === 0) return false;
  const name = segments[segments.length - 1];
  if (segments.slice(0, -1).some((d) => TEST_DIRS.has(d.toLowerCase()))) return true;
  return TEST_FILES.some((re) => re.test(name));
}
