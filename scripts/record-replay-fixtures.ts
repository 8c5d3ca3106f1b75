/**
 * Records the replay fixtures: test/fixtures/replay/<scenario>.json (plus <scenario>.child-N.json
 * for a parent's or a batch's children) and manifest.json (file → workflow id and type).
 * test/replayFixtures.test.ts replays every one against the current workflow code in CI, so a
 * change that would break workflows already running fails there with a DeterminismViolationError.
 *
 *   npx tsx scripts/record-replay-fixtures.ts                       # every scenario
 *   npx tsx scripts/record-replay-fixtures.ts consensus cancellation # just these (the rest kept)
 *   npx tsx scripts/record-replay-fixtures.ts --list
 *
 * It starts what the tests start (test/globalSetup.ts: a throwaway Temporal dev server and the
 * workflow bundle; test/support/weaver.ts: a real worker, real git repositories, the scripted
 * model server over HTTP), runs one real task per scenario (test/support/replayScenarios.ts),
 * checks that each took its path and that its histories replay against the bundle it ran on,
 * writes them, and stops everything.
 *
 * The fixtures pin the command sequence of runs made by the code of the day they were recorded.
 * Re-record ONLY when an incompatible workflow change is intended and versioned (patched() /
 * deprecatePatch, or a new workflow type) — a replay failure is otherwise the bug, not the
 * fixture. Re-recording adds the new histories; keep the old ones (under another name) while
 * runs started by the old code may still be open.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { historyFileText, REPLAY_FIXTURES_DIR, REPLAY_MANIFEST, type ReplayFixture, type ReplayManifest, type ReplayScenarioRecord } from '../test/support/histories';
import { REPLAY_SCENARIOS, type ReplayScenario } from '../test/support/replayScenarios';
import { workflowBundle } from '../test/support/temporal';
import { closeTestConnections, startRig, type Rig } from '../test/support/weaver';

const CONCURRENCY = 3;
// The SDK's warnings (failed workflows, lost workspaces) are the scenarios working as meant.
process.env.WEAVER_TEST_LOG_LEVEL ??= 'ERROR';

async function readManifest(): Promise<ReplayManifest | undefined> {
  try {
    return JSON.parse(await readFile(REPLAY_MANIFEST, 'utf8')) as ReplayManifest;
  } catch {
    return undefined;
  }
}

async function record(rig: Rig, s: ReplayScenario): Promise<ReplayScenarioRecord> {
  const started = Date.now();
  const ids = await s.run(rig, `replay-${s.name}`);
  const histories: ReplayFixture[] = [];
  for (const [i, kept] of ids.entries()) {
    // `<workflowId>#<runId>`: a run before the latest (one that continued as new).
    const [workflowId, runId] = kept.split('#');
    const handle = rig.client.workflow.getHandle(workflowId, runId);
    const { type } = await handle.describe();
    const history = await handle.fetchHistory();
    // What is saved must replay on the code that made it: a failure here is non-determinism in
    // the workflow code itself (or a history that is not what the scenario claims).
    await Worker.runReplayHistory({ workflowBundle: workflowBundle() }, history, workflowId);
    const file = i === 0 ? `${s.name}.json` : `${s.name}.child-${i}.json`;
    await writeFile(path.join(REPLAY_FIXTURES_DIR, file), historyFileText(history));
    histories.push({ file, workflowId, workflowType: type });
  }
  console.log(`recorded ${s.name}: ${histories.map((h) => h.file).join(', ')} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return { name: s.name, about: s.about, histories };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--list')) {
    for (const s of REPLAY_SCENARIOS) console.log(`${s.name}: ${s.about}`);
    return;
  }
  const unknown = args.filter((a) => !REPLAY_SCENARIOS.some((s) => s.name === a));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (see --list)`);
  const chosen = args.length ? REPLAY_SCENARIOS.filter((s) => args.includes(s.name)) : REPLAY_SCENARIOS;

  const started = Date.now();
  await mkdir(REPLAY_FIXTURES_DIR, { recursive: true });
  await globalSetup();
  const rig = await startRig();
  const recorded: ReplayScenarioRecord[] = [];
  const failed: string[] = [];
  try {
    const queue = [...chosen];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let s = queue.shift(); s; s = queue.shift()) {
          try {
            recorded.push(await record(rig, s));
          } catch (err) {
            failed.push(s.name);
            console.error(`FAILED ${s.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          }
        }
      }),
    );
  } finally {
    await rig.close().catch(() => undefined);
    await closeTestConnections();
    await globalTeardown();
  }

  // Scenarios not recorded this time keep their entries; the order is the scenarios' order.
  const previous = await readManifest();
  const byName = new Map((previous?.scenarios ?? []).map((s) => [s.name, s]));
  for (const r of recorded) byName.set(r.name, r);
  const manifest: ReplayManifest = {
    recordedWith: {
      command: 'npx tsx scripts/record-replay-fixtures.ts',
      sdk: (JSON.parse(await readFile(require.resolve('@temporalio/worker/package.json'), 'utf8')) as { version: string }).version,
      at: new Date().toISOString(),
    },
    scenarios: REPLAY_SCENARIOS.flatMap((s) => byName.get(s.name) ?? []),
  };
  await writeFile(REPLAY_MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`${recorded.length} scenario(s) recorded in ${((Date.now() - started) / 1000).toFixed(0)} s into ${path.relative(process.cwd(), REPLAY_FIXTURES_DIR)}`);
  if (failed.length) {
    console.error(`not recorded: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
