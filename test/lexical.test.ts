// Tasks that do not name the code (issue 16, item 3): the repository map ranks by the task's
// words too (BM25 over definition-level chunks, blended into PageRank's personalisation), and a
// stub among the matches is a strong hint. On real git repositories in temp dirs: a generated
// 550-file code base (test/support/codebase.ts) whose stubbed function is described, not named;
// stubs told apart in five languages; end to end through a worker and the scripted model server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildRepoMap, extractMentions, type RepoMap, type RepoMapRequest } from '../src/activities/repomap';
import { queryTerms } from '../src/activities/repomap/lexical';
import { lastUserText } from '../scripts/demo/scriptedModelServer';
import { searchReplace } from './support/answers';
import { largeCodebase, NEEDLE } from './support/codebase';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

const FILES = largeCodebase();
const position = (map: RepoMap, rel: string) => map.ranked.findIndex((r) => r.path === rel);

describe('a task that describes a stubbed function without naming it', () => {
  let base: string;
  let dir: string;
  beforeAll(async () => {
    base = mkdtempSync(path.join(tmpdir(), 'weaver-lexical-'));
    dir = await makeRepo(path.join(base, 'shop'), FILES);
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** The map as the prompt builder asks for it: what the text names, and the text itself. */
  const mapFor = (text: string, extra: Partial<RepoMapRequest> = {}) => {
    const named = extractMentions(text, Object.keys(FILES));
    return buildRepoMap({ dir, cacheDir: path.join(base, 'cache'), mentionedFiles: named.paths, mentionedIdents: named.idents, queryText: text, tokenBudget: 1024, ...extra });
  };

  test('ranks the stub\'s file first, the stub first among its definitions', async () => {
    expect(Object.keys(FILES).length).toBeGreaterThanOrEqual(500);
    const named = extractMentions(NEEDLE.description, Object.keys(FILES));
    expect(named.idents).not.toContain(NEEDLE.name);
    expect(named.paths).toEqual([]);
    // The preamble every such task has says nothing about the code; its behaviour is in stems.
    expect(queryTerms('A function in this project is not implemented yet (its body is a stub). It returns the value.')).toEqual([]);
    expect(queryTerms(NEEDLE.description)).toEqual(expect.arrayContaining(['check', 'digit', 'parcel', 'track', 'weight']));

    const map = await mapFor(NEEDLE.description);
    expect(map.ranked[0].path).toBe(NEEDLE.path);
    expect(map.ranked[0].defs[0]).toMatchObject({ name: NEEDLE.name, stub: true });
    expect(map.ranked[0].defs[0].lexical).toBeGreaterThan(0);
    // The implemented near-twin (the same words, no stub) comes after it, far behind: the stub decides.
    const twin = position(map, 'shop/inventory/barcodes.py');
    expect(twin).toBeGreaterThan(0);
    expect(map.ranked[0].rank).toBeGreaterThan(2 * map.ranked[twin].rank);
    expect(map.text).toContain(`def ${NEEDLE.name}(`);

    // Without the words, names alone leave the file far down (the import hub leads).
    const plain = await mapFor(NEEDLE.description, { queryText: undefined });
    expect(position(plain, NEEDLE.path)).toBeGreaterThan(20);
    expect(plain.ranked.some((r) => r.lexical !== undefined || r.defs.some((d) => d.stub))).toBe(false);
  });

  test('an identifier the task names still wins over words that match elsewhere', async () => {
    const target = 'shop/reports/summary.py';
    const fn = /^def (\w+)\(/m.exec(FILES[target])![1];
    const text = `Make \`${fn}\` drop empty values. Unrelated, for later: the check digit of a parcel tracking code, digits weighted 3 and 1 alternately, is still a stub.`;
    const map = await mapFor(text);
    expect(map.ranked[0].path).toBe(target);
    expect(map.ranked[0].defs[0].name).toBe(fn);
    // The words still count: the described stub's file is near the top.
    expect(position(map, NEEDLE.path)).toBeGreaterThan(0);
    expect(position(map, NEEDLE.path)).toBeLessThan(5);
  });

  test('a stub a failing test names (test_<name>) leads a task that says nothing else', async () => {
    const map = await mapFor('Make the failing test pass.', { mentionedIdents: [`test_${NEEDLE.name}`] });
    expect(map.ranked[0].path).toBe(NEEDLE.path);
    expect(map.ranked[0].defs[0]).toMatchObject({ name: NEEDLE.name, stub: true });
  });
});

describe('stubs, language by language', () => {
  const SOURCES: Record<string, string> = {
    'py/a.py': 'class A:\n    def todo_py(self):\n        """Later."""\n        raise NotImplementedError("later")\n\n    def done_py(self):\n        return 1\n\n\ndef empty_py():\n    pass\n',
    'ts/a.ts': "export function todoTs(x: { a: number }): string {\n  throw new Error('not implemented');\n}\n\nexport function doneTs(): string {\n  throw new Error('bad input');\n}\n",
    'js/a.js': "class A {\n  todoJs() {\n    // TODO: write it\n  }\n  doneJs() {\n    return { a: 1 };\n  }\n}\nmodule.exports = { A };\n",
    'go/a.go': 'package a\n\nfunc TodoGo(x int) map[string]int {\n\tpanic("TODO")\n}\n\nfunc DoneGo(x int) map[string]int {\n\treturn map[string]int{}\n}\n',
    'rs/a.rs': 'pub fn todo_rs(x: i32) -> i32 {\n    todo!()\n}\n\npub fn unimpl_rs() {\n    unimplemented!("later")\n}\n\npub fn done_rs(x: i32) -> i32 {\n    x + 1\n}\n',
    'java/A.java': 'class A {\n    int todoJava(int a) {\n        throw new UnsupportedOperationException("Not implemented");\n    }\n\n    int doneJava(int a) {\n        return a;\n    }\n}\n',
  };

  test('placeholder bodies are stubs; real bodies, throws of real errors and literals are not', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'weaver-stubs-'));
    try {
      const dir = await makeRepo(path.join(base, 'r'), SOURCES);
      const map = await buildRepoMap({ dir, cacheDir: path.join(base, 'cache'), mentionedFiles: [], mentionedIdents: [], queryText: 'write the missing code', tokenBudget: 1024 });
      const defs = map.ranked.flatMap((r) => r.defs);
      const stubs = defs.filter((d) => d.stub).map((d) => d.name).sort();
      expect(stubs).toEqual(['TodoGo', 'empty_py', 'todoJava', 'todoJs', 'todoTs', 'todo_py', 'todo_rs', 'unimpl_rs'].sort());
      for (const done of ['done_py', 'doneTs', 'doneJs', 'DoneGo', 'done_rs', 'doneJava']) expect(defs.find((d) => d.name === done)).toBeDefined();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('end to end: a worker, the scripted model server, a 550-file repository', () => {
  let rig: Rig;
  useRig((r) => (rig = r));

  test('the model is shown the described stub and its change passes the check', async () => {
    const repo = await makeRepo(path.join(rig.tmp, 'shop'), FILES);
    rig.model.script('lexical', [{ content: searchReplace(NEEDLE.path, NEEDLE.stubBody, NEEDLE.fixedBody, 'write the check digit') }]);
    const result = await rig.run({
      ...rig.task(repo, [rig.provider('lexical', { contextWindow: 16_000, maxTokens: 1024 })]),
      task: { title: 'A missing function', description: NEEDLE.description },
      testCommand: NEEDLE.check,
    });
    expect(result.status).toBe('succeeded');
    const [first] = rig.model.requestsFor('lexical');
    const seen = lastUserText(first);
    expect(seen).toContain(`### ${NEEDLE.path}`);
    expect(seen).toContain(`def ${NEEDLE.name}(code):`);
    expect(seen).toContain('raise NotImplementedError');
  });
});
