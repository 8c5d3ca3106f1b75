// What the sandbox costs per command: the same command run bare and in bubblewrap (with the
// root worker's hand-over of the workspace), N times each. Prints medians and the ratio.
// Then what measuring a command's resources costs (with vs without): the cgroup's (a cpuacct
// cgroup made and read) and /proc sampling's, per command and in the worker's own CPU time.
// Then what network costs a command: none, vs the egress proxy (its own namespace, the listener
// put there by nsenter), vs sharing the worker's (what slirp4netns replaced cost ~40 ms more).
//   npx tsx scripts/bench-sandbox.ts [runs=20] [files=2000] [network: only the network cases]
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { runCommand } from '../src/activities/commands';
import { detectSandbox, sandboxed, type SandboxSetting } from '../src/activities/sandbox';
import { SandboxPolicySchema } from '../src/domain/schema';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const runs = Number(process.argv[2] ?? 20);
  const files = Number(process.argv[3] ?? 2000);
  const root = sandboxableTempDir('weaver-bench-sandbox-');
  const dir = path.join(root, 'ws', 'repo');
  await mkdir(path.join(dir, '.git'), { recursive: true });
  for (let i = 0; i < files; i++) {
    await mkdir(path.join(dir, `d${i % 50}`), { recursive: true });
    await writeFile(path.join(dir, `d${i % 50}`, `f${i}.txt`), 'x\n');
  }
  const setting = await detectSandbox({ mode: 'required', hide: [path.join(root, 'ws')] });
  const policy = SandboxPolicySchema.parse({});
  const time = async (boxed: boolean, command: string) => {
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const box = await sandboxed({ setting: boxed ? setting : { ...setting, kind: 'none' }, policy, phase: 'test', dir, command, env: process.env, scratchHome: path.join(root, 'home') });
      const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log') });
      await box.finish(r);
      out.push(performance.now() - t);
    }
    return median(out);
  };
  if (process.argv[4] === 'network') {
    await networked(runs, root, dir, setting);
    await rm(root, { recursive: true, force: true });
    return;
  }
  console.log(`sandbox: ${setting.version}, limits by ${setting.cgroup ? `cgroup v${setting.cgroup.version} + rlimit` : 'rlimit'}${setting.runAs !== undefined ? `, root worker → uid ${setting.runAs} (workspace of ${files} files, handed over whole at its first command; later runs reuse its cgroup and hand over nothing)` : ''}`);
  console.log('| command | bare (median ms) | sandboxed (median ms) | overhead |');
  console.log('|---|---|---|---|');
  for (const command of ['true', 'node -e 0']) {
    const bare = await time(false, command);
    const boxed = await time(true, command);
    console.log(`| \`${command}\` | ${bare.toFixed(1)} | ${boxed.toFixed(1)} | +${(boxed - bare).toFixed(1)} ms (×${(boxed / bare).toFixed(2)}) |`);
  }
  await measuring(runs, root, dir, setting);
  await networked(runs, root, dir, setting);
  await rm(root, { recursive: true, force: true });
}

/**
 * Each case run with and without measuring, alternately (load drifts), N times: the median wall
 * time per command, and the worker's own CPU time (this process's: where sampling /proc runs).
 */
async function measuring(runs: number, root: string, dir: string, setting: SandboxSetting) {
  const policy = SandboxPolicySchema.parse({});
  const noCgroup = { ...setting, cgroup: undefined };
  // Without: the same cgroup minus cpuacct, and nothing sampled (memory limits only, nothing read but the OOM counter).
  const withoutCpuacct = setting.cgroup?.version === 1 ? { ...setting, cgroup: { ...setting.cgroup, cpuacct: undefined } } : setting;
  const cases: { name: string; command: string; without: [SandboxSetting, boolean]; with: [SandboxSetting, boolean] }[] = [];
  for (const command of ['true', `sh -c 'sleep 1 & sleep 1 & node -e "setTimeout(() => 0, 1000)"; wait'`]) {
    cases.push({ name: `no sandbox, /proc sampling: \`${command}\``, command, without: [{ ...setting, kind: 'none' }, false], with: [{ ...setting, kind: 'none' }, true] });
    cases.push({ name: `bwrap rlimit-only, /proc sampling: \`${command}\``, command, without: [noCgroup, false], with: [noCgroup, true] });
    if (setting.cgroup) cases.push({ name: `bwrap cgroup v${setting.cgroup.version}: \`${command}\``, command, without: [withoutCpuacct, false], with: [setting, true] });
  }
  const once = async ([s, measure]: [SandboxSetting, boolean], command: string) => {
    const cpu0 = process.cpuUsage();
    const t = performance.now();
    const box = await sandboxed({ setting: s, policy, phase: 'test', dir, command, env: process.env, scratchHome: path.join(root, 'home') });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log'), sampleUsageMs: measure ? box.sampleUsageMs : undefined });
    const { resources } = await box.finish(r);
    const cpu = process.cpuUsage(cpu0);
    return { ms: performance.now() - t, workerCpuMs: (cpu.user + cpu.system) / 1000, resources };
  };
  console.log('\nmeasuring resources (with vs without), medians:');
  console.log('| case | without: wall ms / worker CPU ms | with: wall ms / worker CPU ms | overhead | measured |');
  console.log('|---|---|---|---|---|');
  for (const c of cases) {
    const w: { ms: number; workerCpuMs: number }[] = [];
    const m: Awaited<ReturnType<typeof once>>[] = [];
    for (let i = 0; i < runs; i++) {
      w.push(await once(c.without, c.command));
      m.push(await once(c.with, c.command));
    }
    const [wm, wc, mm, mc] = [median(w.map((x) => x.ms)), median(w.map((x) => x.workerCpuMs)), median(m.map((x) => x.ms)), median(m.map((x) => x.workerCpuMs))];
    const last = m[m.length - 1].resources;
    console.log(
      `| ${c.name} | ${wm.toFixed(1)} / ${wc.toFixed(1)} | ${mm.toFixed(1)} / ${mc.toFixed(1)} | ${mm - wm >= 0 ? '+' : ''}${(mm - wm).toFixed(1)} ms wall, ` +
        `${mc - wc >= 0 ? '+' : ''}${(mc - wc).toFixed(1)} ms worker CPU | ${last.cpuMs ?? '-'} ms CPU, ${last.peakMemoryMb ?? '-'} MiB (${last.measuredBy}) |`,
    );
  }
}

/**
 * A setup command (`true`, and one HTTP request to a local server) with no network, with the
 * egress proxy, and sharing the worker's network (the unconfined fallback): medians, alternated.
 */
async function networked(runs: number, root: string, dir: string, setting: SandboxSetting) {
  if (!setting.nsenter || !setting.egress) {
    console.log(`\nnetwork: no egress proxy here (${setting.networkWarning ?? 'WEAVER_SANDBOX_NETWORK=none'})`);
    return;
  }
  const server = http.createServer((_req, res) => res.end('ok'));
  // This machine's own address, exempted as a dev address for the benchmark only.
  const external = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(0, external, () => r()));
  const port = (server.address() as { port: number }).port;
  const proxied: SandboxSetting = { ...setting, egress: { ...setting.egress, allow: [`${external}:${port}`], devAddresses: [external] } };
  const shared: SandboxSetting = { ...setting, nsenter: undefined };
  const fetch = `node -e "require('http').get({ host: '127.0.0.1', port: 3128, path: 'http://${external}:${port}/' }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(2))"`;
  const direct = `node -e "require('http').get('http://${external}:${port}/', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(2))"`;
  const once = async (s: SandboxSetting, phase: 'setup' | 'test', command: string) => {
    const t = performance.now();
    const box = await sandboxed({ setting: s, policy: SandboxPolicySchema.parse({}), phase, dir, command, env: process.env, scratchHome: path.join(root, 'home') });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 60, logFile: path.join(root, 'log') });
    await box.finish(r);
    if (r.exitCode !== 0) throw new Error(`bench command failed (${r.exitCode}): ${command}\n${r.tail}`);
    return performance.now() - t;
  };
  const cases: { name: string; run: () => Promise<number> }[] = [
    { name: 'no network (test phase): `true`', run: () => once(setting, 'test', 'true') },
    { name: 'egress proxy (setup phase): `true`', run: () => once(proxied, 'setup', 'true') },
    { name: 'shared host network (setup phase, no nsenter): `true`', run: () => once(shared, 'setup', 'true') },
    { name: 'egress proxy: one HTTP GET through it (node)', run: () => once(proxied, 'setup', fetch) },
    { name: 'shared host network: one direct HTTP GET (node)', run: () => once(shared, 'setup', direct) },
  ];
  const times = cases.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) for (const [k, c] of cases.entries()) times[k].push(await c.run());
  console.log('\nnetwork per command (medians, cases alternated):');
  console.log('| case | median ms |');
  console.log('|---|---|');
  for (const [k, c] of cases.entries()) console.log(`| ${c.name} | ${median(times[k]).toFixed(1)} |`);
  server.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
