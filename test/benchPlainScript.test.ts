// The benchmark's plain script (scripts/bench/plainScript.ts) is only a fair yardstick if it
// really does every step Weaver does: these run the script process as the bench does, against
// the scripted model server and a real repository, and check what reached the repository.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { createExampleRepo } from '../scripts/demo/example';
import { ScriptedModelServer } from '../scripts/demo/scriptedModelServer';
import { GOOD_SLUGIFY } from '../scripts/bench/answer';
import { PlainSide } from '../scripts/bench/plainSide';
import type { PlainTask } from '../scripts/bench/plainTask';
import { editFormat } from '../src/domain/editformats';

jest.setTimeout(60_000);

let base: string;
let model: ScriptedModelServer;
let plain: PlainSide;

beforeAll(async () => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-plain-'));
  model = await ScriptedModelServer.start();
  plain = await PlainSide.start(model.url);
});

afterAll(async () => {
  await plain?.stop();
  await model?.close();
  rmSync(base, { recursive: true, force: true });
});

const answer = (content: string) => ({ content: editFormat('editblock').render({ summary: 'slugify', files: [{ path: 'src/slugify.js', action: 'write', content }] }) });

async function task(id: string): Promise<PlainTask> {
  const repo = await createExampleRepo(path.join(base, `repo-${id}`));
  return { id, repo, baseBranch: 'main', branch: `plain/${id}`, model: `m-${id}`, title: 'Implement slugify', description: 'Write slugify.', files: ['src/slugify.js'], testCommand: ['node', '--test', 'test/'], workDir: path.join(base, 'work') };
}

test('a task that passes its tests is committed and pushed to the repository as its own branch, and its clone removed', async () => {
  const t = await task('ok');
  model.script(t.model, [answer(GOOD_SLUGIFY)]);
  const result = await plain.run(t);

  const origin = simpleGit(t.repo);
  expect(result.commit).toBe((await origin.revparse([`refs/heads/${t.branch}`])).trim());
  expect(await origin.show([`${t.branch}:src/slugify.js`])).toBe(GOOD_SLUGIFY);
  // The model was shown the file it is to change.
  expect(JSON.stringify(model.requestsFor(t.model)[0].body)).toContain('not implemented');
  expect(existsSync(path.join(t.workDir, t.id))).toBe(false);
});

test('a change whose tests fail fails the task, and nothing is pushed', async () => {
  const t = await task('bad');
  model.script(t.model, [answer('function slugify(text) {\n  return text;\n}\n\nmodule.exports = { slugify };\n')]);
  await expect(plain.run(t)).rejects.toThrow(/plain script task bad failed/);

  const branches = await simpleGit(t.repo).branchLocal();
  expect(branches.all).toEqual(['main']);
  expect(readdirSync(t.workDir)).toEqual([]);
});
