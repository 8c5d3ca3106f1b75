// Issue 8, item 7, end to end: what reaches a provider, and what is stored, is redacted like the
// logs. A real worker on the test dev server, a real repository holding an AWS-style key and a
// `.env`, the real openai SDK over HTTP to the scripted model server (which records every
// request it receives). The rig's worker holds TEST_API_KEY=sk-test-secret-key-123456789.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit } from 'simple-git';
import { ArtifactStore } from '../src/activities/artifacts';
import { lastUserText, type RecordedRequest } from '../src/devtools/scriptedModelServer';
import { REDACTED } from '../src/domain/redact';
import type { CodingTaskResult } from '../src/domain/schema';
import { readRequest, searchReplace } from './support/answers';
import { makeRepo } from './support/repos';
import { useRig, type Rig } from './support/weaver';

let rig: Rig;
useRig((r) => (rig = r));

const WORKER_KEY = 'sk-test-secret-key-123456789';
const AWS_ID = 'AKIAIOSFODNN7EXAMPLE';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const ENV_ONLY = 'db-pass-only-in-dotenv-4711';
const FIX = searchReplace('app/calc.py', '    return a - b\n', '    return a + b\n', 'add adds');

async function secretRepo(name: string): Promise<string> {
  return makeRepo(path.join(rig.tmp, name), {
    'app/__init__.py': '',
    'app/config.py': `"""Deployment settings."""\nAWS_ACCESS_KEY_ID = "${AWS_ID}"\nAWS_SECRET_ACCESS_KEY = "${AWS_SECRET}"\nREGION = "eu-west-1"\n`,
    'app/calc.py': 'def add(a, b):\n    return a - b\n',
    '.env': `TEST_API_KEY=${WORKER_KEY}\nDB_PASSWORD=${ENV_ONLY}\n`,
  });
}

function task(repo: string, model: string, relatedFiles?: string[]) {
  return {
    ...rig.task(repo, [rig.provider(model)]),
    task: { title: 'Fix add', description: 'add(2, 3) must be 5.', ...(relatedFiles ? { relatedFiles } : {}) },
    testCommand: ['python3', '-c', 'from app.calc import add; assert add(2, 3) == 5'],
  };
}

/** Everything a request carried to the provider: its whole JSON body. */
const sent = (r: RecordedRequest) => JSON.stringify(r.body);

async function artifactTexts(result: CodingTaskResult, kind: string): Promise<string[]> {
  const store = new ArtifactStore(rig.artifactDir);
  const refs = [...result.artifacts, ...result.attempts.flatMap((a) => a.artifacts)].filter((a) => a.kind === kind);
  return Promise.all(refs.map((a) => store.read(a)));
}

/** Every file in the artifact store that contains `value`. */
async function storedFilesHolding(value: string): Promise<string[]> {
  const hits: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if ((await readFile(p)).includes(value)) hits.push(p);
    }
  };
  await walk(rig.artifactDir);
  return hits;
}

test('no secret value and no secret file reaches the provider; a READ of .env is refused; the count is in the events', async () => {
  const repo = await secretRepo('secrets-read');
  rig.model.script('sec-read', [{ content: readRequest(['.env'], 'need the env') }, { content: FIX }]);
  const result = await rig.run(task(repo, 'sec-read'));
  expect(result.status).toBe('succeeded');
  const requests = rig.model.requestsFor('sec-read');
  expect(requests).toHaveLength(2);
  // What the fixture server received, and the prompt artifacts: no secret value, no .env contents.
  const prompts = await artifactTexts(result, 'prompt');
  expect(prompts).toHaveLength(2);
  for (const text of [...requests.map(sent), ...prompts]) {
    for (const secret of [WORKER_KEY, AWS_ID, AWS_SECRET, ENV_ONLY]) expect(text).not.toContain(secret);
  }
  // The file that holds the AWS key is shown, readable, with its values masked.
  expect(lastUserText(requests[0])).toContain(`AWS_SECRET_ACCESS_KEY = "${REDACTED}"\nREGION = "eu-west-1"`);
  // The model asked for .env: refused with a note, not served.
  expect(lastUserText(requests[0])).not.toMatch(/^### \.env\b(?!\.)/m);
  expect(lastUserText(requests[1])).toMatch(/^### \.env \(withheld: a dotenv file; secret files are sent only when the task names them\)$/m);
  expect(result.attempts[0].fileRequests).toEqual([['.env']]);
  // The count, on each call's event, in the result and in the events artifact.
  const calls = result.attempts[0].calls;
  expect(calls.map((c) => c.outcome)).toEqual(['needs_files', 'ok']);
  for (const c of calls) expect(c.promptRedactions).toBeGreaterThanOrEqual(2);
  const [events] = await artifactTexts(result, 'events');
  expect(events.split('\n').filter(Boolean).map((l) => JSON.parse(l).promptRedactions)).toEqual(calls.map((c) => c.promptRedactions));
  // Nothing the run stored holds the worker's key.
  expect(await storedFilesHolding(WORKER_KEY)).toEqual([]);
});

test('a .env the task names is sent, the worker\'s key in it masked; an answer that writes the worker\'s key is refused', async () => {
  const repo = await secretRepo('secrets-named');
  const leak = searchReplace('app/calc.py', '    return a - b\n', `    return a + b  # ${WORKER_KEY}\n`, 'add adds');
  rig.model.script('sec-named', [{ content: leak }, { content: FIX }]);
  const result = await rig.run({ ...task(repo, 'sec-named', ['.env']), limits: { maxAttempts: 3 }, push: true });
  expect(result.status).toBe('succeeded');
  const [first, second] = rig.model.requestsFor('sec-named');
  // Named: sent as it is — but for the worker's own key.
  expect(lastUserText(first)).toContain(`### .env\n\`\`\`\nTEST_API_KEY=${REDACTED}\nDB_PASSWORD=${ENV_ONLY}\n\`\`\``);
  for (const r of [first, second]) expect(sent(r)).not.toContain(WORKER_KEY);
  // The answer that wrote the key never applied: refused as an outcome, retried with why.
  expect(result.attempts.map((a) => a.outcome)).toEqual(['schema_violation', 'tests_passed']);
  expect(result.attempts[0].detail).toMatch(/one of the worker's secrets/);
  expect(lastUserText(second)).toMatch(/one of the worker's secrets/);
  const committed = await simpleGit(repo).show([`${result.branch}:app/calc.py`]);
  expect(committed).toBe('def add(a, b):\n    return a + b\n');
  // Stored: the raw answer (redacted), no change set of it, nothing with the key.
  const responses = await artifactTexts(result, 'response');
  expect(responses[0]).toContain(`a + b  # ${REDACTED}`);
  expect(await storedFilesHolding(WORKER_KEY)).toEqual([]);
});
