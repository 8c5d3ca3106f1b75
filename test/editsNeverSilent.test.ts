// Edits that never land silently wrong (issue 14, item 3), end to end through the public entry
// points: a real worker on the test dev server, real git repositories, the real openai SDK over
// HTTP to the scripted model server, real test processes.
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { editText, searchReplace } from './support/answers';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const CALC = [
  'def compute(a, b):',
  '    return a - b',
  '',
  '',
  'def f(x, y):',
  '    return compute(x, y)',
  '',
  '',
  'def g(x, y):',
  '    return compute(y, x)  # TODO fix the order',
  '',
].join('\n');
const FIXED = CALC.replace('    return compute(y, x)  # TODO fix the order\n', '    return compute(x, y)\n');
const TEST_PY = 'import calc\n\n\ndef test_g():\n    assert calc.g(5, 2) == 3\n';
const README = '# calc\n\nSubtraction helpers.\n';

async function calcRepo(name: string): Promise<string> {
  return makeRepo(path.join(rig.tmp, name), { 'calc.py': CALC, 'test_calc.py': TEST_PY, 'README.md': README });
}

function calcTask(repo: string, model: string) {
  return {
    ...rig.task(repo, [rig.provider(model)]),
    task: { title: 'Fix g', description: 'g(x, y) must compute x - y, like f does.', relatedFiles: ['calc.py'] },
    testCommand: ['python3', '-c', 'import calc; assert calc.g(5, 2) == 3, calc.g(5, 2); assert calc.f(5, 2) == 3'],
    limits: { maxAttempts: 3 },
    push: true,
  };
}

const show = (repo: string, ref: string) => simpleGit(repo).show([ref]);
const tree = async (repo: string, ref: string) => (await simpleGit(repo).raw(['ls-tree', '-r', '--name-only', ref])).trim().split('\n');

test('a SEARCH that misses g() is a failure even though f() already has its REPLACE line: the next prompt says so, attempt 2 fixes g', async () => {
  const repo = await calcRepo('reviewed');
  // Attempt 1 misquotes g's line (a ':' too many); its replacement is exactly f's line.
  const miss = searchReplace('calc.py', '    return compute(y, x)  # TODO: fix the order\n', '    return compute(x, y)\n', 'Fix the argument order in g.');
  const fix = searchReplace('calc.py', '    return compute(y, x)  # TODO fix the order\n', '    return compute(x, y)\n', 'Fix the argument order in g.');
  rig.model.script('never-silent-miss', [{ content: miss }, { content: fix }]);

  const result = await rig.run(calcTask(repo, 'never-silent-miss'));

  expect(result.attempts.map((a) => a.outcome)).toEqual(['apply_failed', 'tests_passed']);
  expect(result.status).toBe('succeeded');
  // Nothing of attempt 1 was booked as applied or skipped.
  expect(result.attempts[0].notes ?? []).toEqual([]);

  const prompts = rig.model.requestsFor('never-silent-miss').map(lastUserText);
  expect(prompts).toHaveLength(2);
  expect(prompts[0]).not.toContain('could not be applied');
  expect(prompts[1]).toContain(
    '- block 1 (calc.py): SEARCH did not match. Its REPLACE lines are already in calc.py (lines 6-6): are you sure you need this block?',
  );
  // The closest actual lines: g's, numbered.
  expect(prompts[1]).toContain('Closest lines in calc.py (10-10):\n   10 |     return compute(y, x)  # TODO fix the order');
  expect(prompts[1]).not.toMatch(/already applied/i);

  expect(await show(repo, `${result.branch}:calc.py`)).toBe(FIXED);
  expect(await show(repo, `${result.branch}:calc.py`)).toContain('def f(x, y):\n    return compute(x, y)\n\n\ndef g(x, y):\n    return compute(x, y)\n');
});

test('prose before a block is never its path: no 18.x, no README.md, no test-file edit from prose; the error names each block', async () => {
  const repo = await calcRepo('prose');
  const fixBlock = editText('Fix g.', [{ path: 'calc.py', action: 'edit', search: '    return compute(y, x)  # TODO fix the order\n', replace: '    return compute(x, y)\n' }]);
  const withProse = [
    fixBlock.trimEnd(),
    '',
    'Add the helper (needs Node 18.x):',
    '<<<<<<< FILE',
    'def helper():',
    '    return 1',
    '>>>>>>> FILE',
    '',
    'See README.md for details.',
    '<<<<<<< FILE',
    '# notes',
    '>>>>>>> FILE',
    '',
    'And in the test file:',
    '```python',
    '<<<<<<< SEARCH',
    '    assert calc.g(5, 2) == 3',
    '=======',
    '    assert True',
    '>>>>>>> REPLACE',
    '```',
    '',
  ].join('\n');
  rig.model.script('never-silent-prose', [{ content: withProse }, { content: fixBlock }]);

  const result = await rig.run({ ...calcTask(repo, 'never-silent-prose'), task: { title: 'Fix g', description: 'g(x, y) must compute x - y.', relatedFiles: ['calc.py', 'test_calc.py'], allowTestChanges: true } });

  expect(result.attempts.map((a) => a.outcome)).toEqual(['schema_violation', 'tests_passed']);
  expect(result.status).toBe('succeeded');
  const prompts = rig.model.requestsFor('never-silent-prose').map(lastUserText);
  expect(prompts[1]).toContain('block 2: the line before it ("Add the helper (needs Node 18.x):") is not a path line');
  expect(prompts[1]).toContain('block 3: the line before it ("See README.md for details.") is not a path line');
  expect(prompts[1]).toContain('block 4: the line before it ("And in the test file:") is not a path line');
  // Blocks without a path are named by number alone: no path was guessed for them.
  expect(prompts[1]).not.toMatch(/block [234] \(/);

  const files = await tree(repo, result.branch);
  expect(files.sort()).toEqual(['README.md', 'calc.py', 'test_calc.py']);
  expect(await show(repo, `${result.branch}:README.md`)).toBe(README);
  expect(await show(repo, `${result.branch}:test_calc.py`)).toBe(TEST_PY);
  expect(await show(repo, `${result.branch}:calc.py`)).toBe(FIXED);
});
