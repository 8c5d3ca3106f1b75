// The escape suite (issue 8): hostile test commands and hostile model answers against a real
// worker, the real dev server and the real bubblewrap sandbox. Each attack is a task; each
// asserts containment from outside. The totals are printed as a table at the end.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as connectTcp, createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { simpleGit } from 'simple-git';
import type { CodingTaskInput, CodingTaskResult } from '../src/domain/schema';
import { wholeFile } from './support/answers';
import { startRig, useRig, type Rig } from './support/weaver';

const GOOD = `function slugify(t) {\n  return String(t).normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');\n}\nmodule.exports = { slugify };\n`;
const KEY = 'sk-test-secret-key-123456789'; // the rig's worker holds it as TEST_API_KEY

let rig: Rig;
useRig((r) => (rig = r), { sandbox: 'required' });

// A process holding the key in its environ, as the worker's own would in production (the rig's
// worker gets it through deps.env, so jest's environ does not have it).
let holder: ReturnType<typeof spawn>;
beforeAll(() => {
  holder = spawn('sleep', ['600'], { env: { ...process.env, TEST_API_KEY: KEY }, stdio: 'ignore' });
});
afterAll(() => {
  holder.kill('SIGKILL');
});

const totals: { attack: string; contained: boolean; how: string }[] = [];
/** Records one attack's verdict; the test asserts it too. */
function verdict(attack: string, contained: boolean, how: string) {
  totals.push({ attack, contained, how });
  expect({ attack, contained, how }).toEqual({ attack, contained: true, how });
}

afterAll(() => {
  const width = Math.max(...totals.map((t) => t.attack.length), 6);
  const lines = [
    `| ${'attack'.padEnd(width)} | contained | how |`,
    `|${'-'.repeat(width + 2)}|-----------|-----|`,
    ...totals.map((t) => `| ${t.attack.padEnd(width)} | ${t.contained ? 'yes' : 'NO '}       | ${t.how} |`),
    `| ${'total'.padEnd(width)} | ${`${totals.filter((t) => t.contained).length}/${totals.length}`.padEnd(9)} | |`,
  ];
  process.stdout.write(`\nescape suite (bubblewrap):\n${lines.join('\n')}\n`);
});

let seq = 0;
/** One task: the model writes the fix (and `files`); `attack` runs as the test command. */
async function attempt(attack: string, extra: Partial<CodingTaskInput> = {}, files: Record<string, string> = {}, on: Rig = rig): Promise<{ r: CodingTaskResult; repo: string }> {
  const repo = await on.newRepo();
  const id = `m-escape-${++seq}`;
  const answer = Object.entries(files).reduce((text, [p, c]) => `${text}\n${wholeFile(p, c, 'extra')}`, wholeFile('src/slugify.js', GOOD, 'fix slugify'));
  // The same answer however often the workflow asks (a failed attempt may be reviewed).
  on.model.setDefault(id, () => ({ content: answer }));
  const r = await on.run(on.task(repo, [on.provider(id)], { testCommand: ['sh', '-c', attack], limits: { maxAttempts: 1, testTimeoutSec: 60 }, ...extra }));
  return { r, repo };
}

async function artifact(ref: string | undefined, on: Rig = rig): Promise<string> {
  if (!ref) return '';
  const hex = ref.slice('sha256:'.length);
  return readFile(path.join(on.artifactDir, 'sha256', hex.slice(0, 2), hex), 'utf8');
}
const testLog = (r: CodingTaskResult, on: Rig = rig) => artifact(r.attempts[0].tests?.log?.ref, on);

const listing = (dir: string) => readdirSync(dir, { recursive: true }) as string[];
const sha = (file: string) => (existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'absent');

/** Every file on the pushed branch, by path. */
async function branchFiles(repo: string, branch: string): Promise<Record<string, string>> {
  const names = (await simpleGit(repo).raw(['ls-tree', '-r', '--name-only', branch])).split('\n').filter(Boolean);
  return Object.fromEntries(await Promise.all(names.map(async (f) => [f, await simpleGit(repo).show([`${branch}:${f}`])] as const)));
}

const HARVEST = `const fs = require('fs');\nlet all = '';\nfor (const p of fs.readdirSync('/proc')) { try { all += fs.readFileSync('/proc/' + p + '/environ', 'utf8'); } catch {} }\nfs.writeFileSync('leak.txt', all);\nfs.writeFileSync('src/config.txt', all);\n`;

test('reading the worker\'s environ through /proc finds no key', async () => {
  const { r } = await attempt(
    `cat /proc/${process.pid}/environ /proc/${holder.pid}/environ >/dev/null 2>&1 && echo WORKER-PROC-VISIBLE; ` +
      `if cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q '^TEST_API_KEY='; then echo KEY-LEAKED; else echo KEY-CONTAINED; fi; node --test test/`,
  );
  const log = await testLog(r);
  expect(log).toContain('KEY-CONTAINED');
  verdict('read the worker environ via /proc', !log.includes('KEY-LEAKED') && !log.includes('WORKER-PROC-VISIBLE') && r.status === 'succeeded', 'fresh /proc in a PID namespace, env allowlist');
  // The record says which sandbox ran it, and the progress query too.
  expect(r.sandbox).toMatchObject({ kind: expect.stringMatching(/^bubblewrap/), policy: { network: 'setup', limits: { memoryMb: 2048 } } });
  expect((await rig.client.workflow.getHandle(r.workflowId).query<{ sandbox?: unknown }>('progress')).sandbox).toEqual(r.sandbox);
  expect(r.warnings ?? []).not.toContainEqual(expect.stringMatching(/without a sandbox/));
});

test('a model answer whose code dumps /proc/*/environ into files gets no key onto the branch', async () => {
  const { r, repo } = await attempt('node harvest.js; node --test test/', { push: true }, { 'harvest.js': HARVEST, 'src/config.txt': 'placeholder\n' });
  expect(r.status).toBe('succeeded');
  const files = await branchFiles(repo, r.branch);
  expect(Object.keys(files)).toContain('harvest.js');
  verdict('environ → file → commit', !('leak.txt' in files) && Object.values(files).every((c) => !c.includes(KEY)), 'keys never in the sandbox; only the change\'s paths committed');
});

test('writing ~/.bashrc changes no home of the worker', async () => {
  const real = path.join(os.homedir(), '.bashrc');
  const before = sha(real);
  const { r } = await attempt(`echo 'echo pwned' >> ~/.bashrc; echo 'echo pwned' >> ${real}; node --test test/`);
  verdict('write ~/.bashrc', sha(real) === before && r.status === 'succeeded', 'private HOME; the real one is not in the minimal root');
});

test('a planted git hook and core.fsmonitor never run when Weaver commits', async () => {
  const marks = path.join(rig.tmp, `hijack-${Date.now()}`);
  const plant = [
    `printf '#!/bin/sh\\ntouch ${marks}-hook\\n' > .git/hooks/pre-commit`,
    'chmod +x .git/hooks/pre-commit',
    `git config core.fsmonitor 'touch ${marks}-fsmonitor; false'`,
  ].join('; ');
  const { r } = await attempt(`${plant}; node --test test/`, { push: true });
  expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
  verdict('plant .git hook + fsmonitor, then commit', !existsSync(`${marks}-hook`) && !existsSync(`${marks}-fsmonitor`), '.git read-only in the sandbox; git runs with hooks and fsmonitor off');
});

test('setsid nohup sleep outlives nothing', async () => {
  const marker = `1000.${Date.now() % 100000}`;
  const { r } = await attempt(`setsid nohup sleep ${marker} >/dev/null 2>&1 & node --test test/`);
  expect(r.status).toBe('succeeded');
  const ps = await new Promise<string>((resolve) => {
    const p = spawn('ps', ['-eo', 'args']);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', () => resolve(out));
  });
  verdict('setsid nohup sleep &', !ps.includes(marker), 'the PID namespace dies with the command');
});

/** This machine's first non-loopback IPv4 address: where "the internet" is for the egress checks. */
function externalIPv4(): string {
  const found = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  // Never a silent skip: without one, egress cannot be shown.
  if (!found) throw new Error('this machine has no non-loopback IPv4 address: the sandbox\'s egress cannot be tested');
  return found.address;
}

describe('network', () => {
  let listener: Server;
  let outside: Server;
  let port = 0;
  let outsidePort = 0;
  const external = externalIPv4();
  const listen = async (host: string): Promise<[Server, number]> => {
    const server = createServer((s) => {
      s.on('error', () => undefined); // probes hang up at once
      s.end('hello\n');
    });
    await new Promise<void>((r) => server.listen(0, host, () => r()));
    return [server, (server.address() as { port: number }).port];
  };
  beforeAll(async () => {
    [listener, port] = await listen('127.0.0.1');
    [outside, outsidePort] = await listen(external);
  });
  afterAll(() => Promise.all([listener, outside].map((l) => new Promise<void>((r) => l.close(() => r())))));
  const connect = (p: number, host = '127.0.0.1') => `node -e "require('net').connect(${p}, '${host}').on('connect', () => process.exit(0)).on('error', (e) => { console.error(e.code); process.exit(3) })"`;
  const temporalPort = Number((process.env.WEAVER_TEST_TEMPORAL_ADDRESS ?? 'localhost:7233').split(':').pop());
  const probe = (p: number, host = '127.0.0.1') => `node -e "require('net').connect(${p}, '${host}').on('connect', () => { console.log('CONNECTED-${host}:${p}'); process.exit(0) }).on('error', (e) => console.log('REFUSED-${host}:${p}', e.code))"`;
  /** A CONNECT through the sandbox's proxy (HTTPS_PROXY): prints the proxy's status for the target. */
  const viaProxy = (target: string) =>
    `node -e "const u = new URL(process.env.HTTPS_PROXY); require('http').request({ host: u.hostname, port: u.port, method: 'CONNECT', path: '${target}' }).on('connect', (res, s) => { console.log('PROXY-${target}', res.statusCode); s.destroy() }).on('error', (e) => console.log('PROXY-${target}', e.code)).end()"`;

  test('the setup command has network by default (sandbox.network: setup) — the egress proxy, nothing else —, none with network: none', async () => {
    // Its network is the proxy on its own loopback, named in HTTPS_PROXY; a direct connection has no route.
    const { r } = await attempt('node --test test/', { setupCommand: `test "$HTTPS_PROXY" = http://127.0.0.1:3128 && ${connect(3128)}` });
    expect(r.status).toBe('succeeded');
    const { r: none } = await attempt('node --test test/', { setupCommand: `test -z "$HTTPS_PROXY" && ${connect(outsidePort, external)}`, sandbox: { network: 'none' } as CodingTaskInput['sandbox'] });
    expect(none.status).toBe('failed');
    // Not even a route out: the failure names the missing network.
    expect(none.reason).toMatch(/setup (command|step "setup" \(.*\)) no network in the sandbox[\s\S]*ENETUNREACH/);
  });

  test('the setup command reaches nothing directly — not the outside, not the worker\'s 127.0.0.1, not Temporal — and the proxy refuses what is not allowed', async () => {
    // The setup's findings, in its step's log. The rig's worker has the default allowlist
    // (package registries), none of them reached here: only refusals are asked for.
    const setup = `${probe(outsidePort, external)}; ${probe(port)}; ${probe(temporalPort)}; ${probe(port, '10.0.2.2')}; ${viaProxy(`127.0.0.1:${temporalPort}`)}; ${viaProxy(`${external}:${outsidePort}`)}`;
    const { r } = await attempt('node --test test/', { setupCommand: setup });
    const log = await artifact(r.checks?.setup?.[0].log?.ref);
    expect(r.status === 'succeeded' ? 'succeeded' : r.reason).toBe('succeeded');
    expect(log).toContain(`REFUSED-${external}:${outsidePort} ENETUNREACH`);
    expect(log).toContain(`REFUSED-127.0.0.1:${port}`);
    expect(log).toContain(`REFUSED-127.0.0.1:${temporalPort}`);
    expect(log).toContain(`REFUSED-10.0.2.2:${port} ENETUNREACH`);
    expect(log).toContain(`PROXY-127.0.0.1:${temporalPort} 403`);
    expect(log).toContain(`PROXY-${external}:${outsidePort} 403`);
    // The refusals are on the setup step's outcome.
    expect(r.checks?.setup?.[0].egressRefused).toEqual(
      expect.arrayContaining([
        { host: '127.0.0.1', port: temporalPort, why: expect.stringMatching(/not in the egress allowlist/), times: 1 },
        { host: external, port: outsidePort, why: expect.stringMatching(/not in the egress allowlist/), times: 1 },
      ]),
    );
    verdict(
      'setup command: connect to Temporal, a 127.0.0.1 listener, the LAN',
      r.status === 'succeeded' && !log.includes('CONNECTED-') && !/PROXY-\S+ 200/.test(log),
      'a network namespace with only a loopback; out only through the egress proxy (allowlist)',
    );
  });

  test('the Temporal frontend and a listener on 127.0.0.1 are unreachable from tests', async () => {
    // Even a task asking for network everywhere: the worker's cap (WEAVER_SANDBOX_NETWORK, default setup) holds.
    const { r } = await attempt(`echo "proxy=[$HTTPS_PROXY]"; ${probe(temporalPort)}; ${probe(port)}; ${probe(outsidePort, external)}; ${probe(3128)}; node --test test/`, { sandbox: { network: 'all' } as CodingTaskInput['sandbox'] });
    const log = await testLog(r);
    expect(log).toContain('proxy=[]');
    expect(log).toContain(`REFUSED-127.0.0.1:${port}`);
    expect(log).toContain(`REFUSED-${external}:${outsidePort}`);
    expect(log).toContain('REFUSED-127.0.0.1:3128');
    verdict('connect to Temporal and a 127.0.0.1 listener', !log.includes('CONNECTED-') && log.includes(`REFUSED-127.0.0.1:${temporalPort}`), 'no network at all for tests (sandbox.network: setup)');
  });
});

/**
 * Egress by allowlist, through a real task: a worker whose allowlist names a local HTTP server
 * (on this machine's non-loopback address, exempted from the private-address refusal by the
 * dev-only WEAVER_DEV_EGRESS_ADDRESSES) and 169.254.169.254, and whose Temporal frontend is
 * reachable on that same address (a relay to the dev server).
 */
describe('egress allowlist', () => {
  const external = externalIPv4();
  let egress: Rig;
  let web: HttpServer;
  let webPort = 0;
  const seen: string[] = [];
  let relay: Server;
  let relayPort = 0;
  const temporal = process.env.WEAVER_TEST_TEMPORAL_ADDRESS ?? 'localhost:7233';
  /** Prints how a target fares: directly, by GET through the proxy, by CONNECT through it. */
  const PROBE = [
    "const http = require('http'), net = require('net');",
    "const proxy = new URL(process.env.HTTP_PROXY);",
    'const [mode, target] = process.argv.slice(2);',
    "const i = target.lastIndexOf(':'), host = target.slice(0, i), port = Number(target.slice(i + 1));",
    "const out = (...a) => console.log(mode.toUpperCase(), target, ...a);",
    "if (mode === 'direct') net.connect(port, host).on('connect', () => { out('OPEN'); process.exit(0) }).on('error', (e) => out(e.code));",
    "if (mode === 'get') http.get({ host: proxy.hostname, port: proxy.port, path: `http://${target}/via-get`, agent: false }, (res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => out(res.statusCode, b.trim())) }).on('error', (e) => out(e.code));",
    "if (mode === 'connect') http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: target, agent: false }).on('connect', (res, s) => {",
    '  if (res.statusCode !== 200) { out(res.statusCode); s.destroy(); return }',
    "  let b = ''; s.on('data', (d) => (b += d)); s.on('end', () => out(200, b.split('\\r\\n\\r\\n').pop().trim()));",
    "  s.write(`GET /via-connect HTTP/1.1\\r\\nHost: ${target}\\r\\nConnection: close\\r\\n\\r\\n`);",
    "}).on('error', (e) => out(e.code)).end();",
  ].join('\n');

  beforeAll(async () => {
    web = createHttpServer((req, res) => {
      seen.push(req.url ?? '');
      res.end(`allowed-host-says-hi ${req.url}\n`);
    });
    await new Promise<void>((r) => web.listen(0, external, () => r()));
    webPort = (web.address() as { port: number }).port;
    // The frontend on a non-loopback interface: a TCP relay on this machine's address to the dev server.
    const [th, tp] = [temporal.slice(0, temporal.lastIndexOf(':')), Number(temporal.slice(temporal.lastIndexOf(':') + 1))];
    relay = createServer((c) => {
      const up = connectTcp(tp, th);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((r) => relay.listen(0, external, () => r()));
    relayPort = (relay.address() as { port: number }).port;
    const env = {
      WEAVER_DEV: '1',
      WEAVER_EGRESS_ALLOW: `defaults,${external}:*,169.254.169.254:*`,
      WEAVER_DEV_EGRESS_ADDRESSES: external,
      TEMPORAL_ADDRESS: `${external}:${relayPort}`,
    };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      egress = await startRig({ sandbox: 'required' });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
  afterAll(async () => {
    await egress?.close();
    await Promise.all([web, relay].map((s) => new Promise<void>((r) => (s ? s.close(() => r()) : r()))));
  });

  /** A repository with probe.js committed, and a task whose setup runs `setup`; the setup step's log. */
  async function egressTask(setup: string, extra: Partial<CodingTaskInput> = {}) {
    const repo = await egress.newRepo();
    await writeFile(path.join(repo, 'probe.js'), PROBE);
    await simpleGit(repo).add('probe.js').commit('probe');
    const id = `m-egress-${++seq}`;
    egress.model.setDefault(id, () => ({ content: wholeFile('src/slugify.js', GOOD, 'fix slugify') }));
    const r = await egress.run(egress.task(repo, [egress.provider(id)], { setupCommand: setup, testCommand: ['sh', '-c', 'node --test test/'], limits: { maxAttempts: 1, testTimeoutSec: 60 }, ...extra }));
    return { r, log: await artifact(r.checks?.setup?.[0].log?.ref, egress) };
  }

  test('the relay really is the Temporal frontend, on a non-loopback address', async () => {
    const conn = await Connection.connect({ address: `${external}:${relayPort}` });
    try {
      const info = await conn.workflowService.getSystemInfo({});
      expect(info.serverVersion).toMatch(/\d+\.\d+/);
    } finally {
      await conn.close();
    }
  });

  test('a setup command reaches an allowed host through the proxy; a host not allowed, the Temporal frontend and 169.254.169.254 are refused and reported; direct connections fail', async () => {
    const web = `${external}:${webPort}`;
    const setup = [
      `node probe.js get ${web}`,
      `node probe.js connect ${web}`,
      `node probe.js connect ${external}:${relayPort}`,
      'node probe.js get 169.254.169.254:80',
      'node probe.js connect not-allowed.invalid:443',
      `node probe.js direct ${web}`,
      `node probe.js direct ${external}:${relayPort}`,
    ].join('; ');
    const { r, log } = await egressTask(setup);
    expect(r.status === 'succeeded' ? 'succeeded' : r.reason).toBe('succeeded');
    // Reached, through the proxy (the server saw both requests).
    expect(log).toContain(`GET ${web} 200 allowed-host-says-hi /via-get`);
    expect(log).toContain(`CONNECT ${web} 200 allowed-host-says-hi /via-connect`);
    expect(seen).toEqual(expect.arrayContaining(['/via-get', '/via-connect']));
    // Refused whatever the allowlist says (the frontend's address and 169.254.0.0/16 are in it).
    expect(log).toContain(`CONNECT ${external}:${relayPort} 403`);
    expect(log).toContain('GET 169.254.169.254:80 403');
    expect(log).toContain('CONNECT not-allowed.invalid:443 403');
    // No route but the proxy.
    expect(log).toContain(`DIRECT ${web} ENETUNREACH`);
    expect(log).toContain(`DIRECT ${external}:${relayPort} ENETUNREACH`);
    // Each refusal is on the setup step's outcome, with why.
    const refused = r.checks?.setup?.[0].egressRefused ?? [];
    expect(refused).toEqual([
      { host: external, port: relayPort, why: expect.stringMatching(/^the Temporal frontend/), times: 1 },
      { host: '169.254.169.254', port: 80, why: expect.stringMatching(/^link-local address \(cloud metadata\)/), times: 1 },
      { host: 'not-allowed.invalid', port: 443, why: expect.stringMatching(/^not in the egress allowlist/), times: 1 },
    ]);
    verdict(
      'setup command: the Temporal frontend on a LAN address, 169.254.169.254, a host not allowed',
      refused.length === 3 && !log.includes('OPEN') && !/(CONNECT|GET) (\S+) 200/.test(log.replace(new RegExp(`(GET|CONNECT) ${web.replace(/\./g, '\\.')} 200`, 'g'), '')),
      'egress proxy: allowlist, resolved address checked, private/link-local ranges and the frontend always refused',
    );
  });

  test('a task narrows the allowlist and cannot widen it; a failed setup names what egress refused', async () => {
    const web = `${external}:${webPort}`;
    // Narrowed to the registries: the local server is no longer allowed; a wider entry is dropped, with a note.
    const sandbox = { network: 'setup', egress: ['registry.npmjs.org', '*.invalid'] } as CodingTaskInput['sandbox'];
    const { r, log } = await egressTask(`node probe.js get ${web}`, { sandbox });
    expect(r.status === 'succeeded' ? 'succeeded' : r.reason).toBe('succeeded');
    expect(log).toContain(`GET ${web} 403`);
    expect(r.warnings).toContainEqual("sandbox.egress: *.invalid not allowed: this worker's egress allowlist does not cover it (WEAVER_EGRESS_ALLOW)");
    expect(r.checks?.setup?.[0].egressRefused).toEqual([{ host: external, port: webPort, why: expect.stringMatching(/^not in the egress allowlist/), times: 1 }]);
    const { r: failed } = await egressTask(`node probe.js get ${web}; node probe.js get ${web}; exit 1`, { sandbox });
    expect(failed.status).toBe('failed');
    expect(failed.reason).toMatch(new RegExp(`egress refused ${web.replace(/\./g, '\\.')} \\(not in the egress allowlist [^)]*\\), 2×\\)`));
  });
});

test('another task\'s workspace and the artifact store are not visible', async () => {
  const other = path.join(rig.workspaceRoot, 'other-task', 'repo');
  await mkdir(other, { recursive: true });
  await writeFile(path.join(other, 'secret.txt'), 'OTHER-TASK-SECRET\n');
  const { r } = await attempt(`cat ${other}/secret.txt; ls -R ${rig.artifactDir} 2>&1 | head -20; ls ${rig.tmp}; node --test test/`);
  const log = await testLog(r);
  verdict('read another workspace and the artifact store', !log.includes('OTHER-TASK-SECRET') && !/sha256/.test(log) && r.status === 'succeeded', 'minimal root: the workspace root and artifact store are not in it');
});

describe('what the worker owns', () => {
  // Issue 15 item 7: its registry, git credentials, checkout and store are hidden, not just
  // read-only — also where they lie inside a tree the sandbox is lent (a toolchain), and the
  // sandbox's /proc/1/cmdline (bwrap) names none of them.
  const CANARY = `weaver-canary-${process.pid}-${Date.now()}`;
  let owned: Rig;
  let toolchain: string;
  let files: { registry: string; credentials: string; hiddenDir: string; hiddenFile: string; outside: string };
  const checkoutFile = path.resolve(__dirname, '..', 'package.json');

  beforeAll(async () => {
    // A toolchain under the worker's home, lent read-only, that also holds the worker's files.
    toolchain = await mkdtemp(path.join(os.homedir(), '.weaver-toolchain-'));
    await chmod(toolchain, 0o755);
    await mkdir(path.join(toolchain, 'bin'));
    await writeFile(path.join(toolchain, 'bin', 'tool.txt'), 'TOOLCHAIN-VISIBLE\n');
    files = {
      registry: path.join(toolchain, 'providers.yaml'),
      credentials: path.join(toolchain, 'git-credentials.yaml'),
      hiddenDir: path.join(toolchain, 'private'),
      hiddenFile: path.join(toolchain, 'note.txt'),
      outside: path.join(rig.tmp, 'outside-registry.yaml'),
    };
    await writeFile(files.registry, `providers:\n  ${CANARY}:\n    baseURL: http://127.0.0.1:9/${CANARY}\n    apiKeyEnv: CANARY_API_KEY\n    models: [m]\n`);
    await writeFile(files.credentials, `credentials:\n  "https://git.example.com/acme/":\n    tokenEnv: CANARY_GIT_TOKEN\n    username: ${CANARY}\n`);
    await mkdir(files.hiddenDir);
    await writeFile(path.join(files.hiddenDir, 'key.txt'), `${CANARY}\n`);
    await writeFile(files.hiddenFile, `${CANARY}\n`);
    await writeFile(files.outside, `${CANARY}\n`);
    // Token-holding configs a toolchain tree may carry (npm's prefix etc/npmrc, cargo's credentials): hidden wherever lent.
    await mkdir(path.join(toolchain, 'etc'));
    await writeFile(path.join(toolchain, 'etc', 'npmrc'), `//registry.npmjs.org/:_authToken=${CANARY}\n`);
    await writeFile(path.join(toolchain, 'credentials.toml'), `[registry]\ntoken = "${CANARY}"\n`);
    const env = {
      WEAVER_PROVIDERS: files.registry,
      WEAVER_GIT_CREDENTIALS: files.credentials,
      WEAVER_SANDBOX_RO_PATHS: [process.env.WEAVER_SANDBOX_RO_PATHS, toolchain].filter(Boolean).join(':'),
      WEAVER_SANDBOX_HIDE: `${files.hiddenDir}:${files.hiddenFile}`,
    };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      owned = await startRig({ sandbox: 'required' });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
  afterAll(async () => {
    await owned?.close();
    await rm(toolchain, { recursive: true, force: true });
  });

  test('a test reading the registry, the credentials, the worker\'s checkout and /proc/1/cmdline finds none of them; the canary reaches no result, history or log', async () => {
    const tokens = [path.join(toolchain, 'etc', 'npmrc'), path.join(toolchain, 'credentials.toml')];
    const read = [files.registry, files.credentials, path.join(files.hiddenDir, 'key.txt'), files.hiddenFile, files.outside, checkoutFile, ...tokens].map((f) => `cat ${f} 2>&1`).join('; ');
    const { r } = await attempt(
      `${read}; ls -a ${files.hiddenDir}; cat ${toolchain}/bin/tool.txt; echo "CMDLINE[$(tr '\\0' ' ' < /proc/1/cmdline)]"; ` +
        `echo "USRLOCALETC[$(ls -A /usr/local/etc 2>/dev/null | tr '\\n' ' ')]"; echo "CARGO[$(ls -A ${os.homedir()}/.cargo 2>/dev/null | tr '\\n' ' ')]"; ` +
        `grep -rl ${CANARY.slice(0, 14)} /etc /usr/local/etc ${toolchain} 2>/dev/null | head -3; node --test test/`,
      {},
      {},
      owned,
    );
    const log = await testLog(r, owned);
    const history = JSON.stringify(await owned.client.workflow.getHandle(r.workflowId).fetchHistory());
    // The lent tree is there (so what hides the files is the hiding), and the command did run.
    expect(log).toContain('TOOLCHAIN-VISIBLE');
    expect(log).toContain(`${checkoutFile}: No such file or directory`);
    expect(log).toContain(`${files.outside}: No such file or directory`);
    const cmdline = /CMDLINE\[(.*)\]/.exec(log)?.[1] ?? '';
    expect(cmdline).toMatch(/bwrap --args \d+ -- /);
    // bwrap's mounts, and paths the command itself did not name (it names the files it reads).
    for (const leak of ['--ro-bind', '--tmpfs', '--remount-ro', '--symlink', owned.artifactDir, owned.workspaceRoot, '/usr/lib', os.homedir() + '/.cargo']) expect(cmdline).not.toContain(leak);
    // npm's global config under /usr/local/etc is hidden; of ~/.cargo only bin/ is lent (no credentials, no config).
    expect(log).toContain('USRLOCALETC[]');
    expect(/CARGO\[(.*)\]/.exec(log)?.[1].trim() ?? '').toMatch(/^(bin)?$/);
    expect(log).not.toContain(CANARY);
    expect(JSON.stringify(r)).not.toContain(CANARY);
    expect(history).not.toContain(CANARY);
    verdict(
      "read the worker's registry, credentials, checkout and bwrap's command line",
      r.status === 'succeeded' && !log.includes(CANARY) && !history.includes(CANARY),
      'minimal root; owned files under /dev/null, owned dirs under empty tmpfs; bwrap options via --args',
    );
  });
});

test('printing "No space left on device" and exiting 0 is no disk limit; a /tmp really filled (quietly) is one', async () => {
  const lies = ['No space left on device', 'ENOSPC: no space left on device, write', 'File size limit exceeded', 'CPU time limit exceeded', 'fork: Resource temporarily unavailable', 'Too many open files', 'JavaScript heap out of memory'];
  const { r } = await attempt(`${lies.map((l) => `echo '${l}'`).join('; ')}; node --test test/`);
  expect(r.status).toBe('succeeded');
  expect(r.attempts[0].tests?.limit).toBeUndefined();
  expect(await testLog(r)).toContain('No space left on device');
  // Filled without a word: the sandbox's /tmp is seen full, whatever the command printed.
  const { r: full } = await attempt('head -c 100000000 /dev/zero > /tmp/big 2>/dev/null; sleep 5; exit 1', { sandbox: { limits: { diskMb: 64 } } as CodingTaskInput['sandbox'] });
  expect(full.attempts[0].tests?.limit).toBe("disk limit reached: the sandbox's /tmp (64 MiB) was full (sandbox.limits.diskMb, at most memoryMb)");
  verdict('print "No space left on device", exit 0', r.status === 'succeeded' && r.attempts[0].tests?.limit === undefined, 'limits from the sandbox\'s accounting, never from output');
});

test('a fork bomb is stopped at the process limit and reported; the worker carries on', async () => {
  // `sleep`, not `wait`: the bomb's first pipeline returns at once, so `wait` could end the
  // command (and its PID namespace) before the bomb reached the limit.
  const { r } = await attempt(`bash -c ':(){ :|:& };:; sleep 2'`, { sandbox: { limits: { processes: 128 } } as CodingTaskInput['sandbox'], limits: { maxAttempts: 1, testTimeoutSec: 4 } });
  expect(r.attempts[0].tests?.limit).toBe('process limit 128 reached: new processes were refused');
  // The worker is fine: the next task on it runs normally.
  const { r: next } = await attempt('node --test test/');
  verdict('fork bomb', next.status === 'succeeded', 'pids cgroup / RLIMIT_NPROC, killed whole at the timeout, reported');
});

test('a 4 GB allocation is killed at the memory limit and reported', async () => {
  const { r } = await attempt(`node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 26, 1))"`, { sandbox: { limits: { memoryMb: 256 } } as CodingTaskInput['sandbox'] });
  expect(r.status).toBe('failed');
  expect(r.attempts[0].tests?.limit).toMatch(/memory limit 256 MiB/);
  expect(r.attempts[0].tests?.tail).toMatch(/weaver: .*memory limit 256 MiB/);
  verdict('4 GB allocation', /memory limit/.test(r.attempts[0].tests?.limit ?? ''), 'memory cgroup (OOM kill) or RLIMIT_DATA, reported');
});

test('a 10 GB file write is killed at the file size limit and reported', async () => {
  const { r } = await attempt('head -c 10000000000 /dev/zero > big.bin; node --test test/', { sandbox: { limits: { fileSizeMb: 64 } } as CodingTaskInput['sandbox'] });
  expect(r.attempts[0].tests?.limit).toBe('killed: file size limit 64 MiB');
  // The step passes on its exit status (the suite after the killed write passed); the limit is reported.
  verdict('10 GB file write', r.status === 'succeeded', 'RLIMIT_FSIZE, reported');
});

test('many 1 MB files past the disk limit are killed and reported; /tmp is bounded too; the worker carries on', async () => {
  // /tmp first (full at 64 MiB: ENOSPC), then the workspace, 1 MB at a time until killed.
  const write = [
    'head -c 100000000 /dev/zero > /tmp/big 2>&1 || echo TMP-FULL; df -m /tmp | tail -1; rm -f /tmp/big',
    'i=0; while [ $i -lt 1000 ]; do head -c 1000000 /dev/zero > f$i.bin; i=$((i+1)); [ $((i % 50)) = 0 ] && echo wrote $i; sleep 0.01; done; echo WROTE-ALL',
  ].join('; ');
  const { r } = await attempt(write, { sandbox: { limits: { diskMb: 64 } } as CodingTaskInput['sandbox'] });
  const log = await testLog(r);
  expect(r.status).toBe('failed');
  expect(r.attempts[0].tests?.limit).toMatch(/^killed: disk limit 64 MiB \(the workspace grew by \d+ MiB\)$/);
  expect(r.attempts[0].tests?.tail).toMatch(/weaver: killed: disk limit 64 MiB/);
  expect(log).toContain('TMP-FULL');
  expect(log).toMatch(/tmpfs\s+64\s/);
  const written = Math.max(0, ...[...log.matchAll(/wrote (\d+)/g)].map((m) => Number(m[1])));
  process.stdout.write(`disk limit 64 MiB: killed after ${written}+ files of 1 MB (${r.attempts[0].tests?.limit})\n`);
  // The next task on this worker runs normally.
  const { r: next } = await attempt('node --test test/');
  verdict('1 MB files past the disk limit', !log.includes('WROTE-ALL') && written < 500 && next.status === 'succeeded', 'workspace growth watched (du, ~1 s), sandbox killed; sized /tmp; reported');
});

test('rm -rf ~ / changes nothing outside the workspace', async () => {
  const canary = path.join(rig.tmp, 'canary.txt');
  await writeFile(canary, 'still here\n');
  const home = path.join(os.homedir(), `.weaver-canary-${process.pid}`);
  await writeFile(home, 'still here\n');
  await mkdir(rig.artifactDir, { recursive: true });
  await writeFile(path.join(rig.artifactDir, 'canary.txt'), 'still here\n');
  const artifactsBefore = listing(rig.artifactDir);
  const { r, repo } = await attempt('rm -rf --no-preserve-root ~ / 2>/dev/null; rm -rf ~/ 2>/dev/null; exit 1');
  const intact = existsSync(canary) && existsSync(home) && existsSync(path.join(repo, '.git')) && existsSync(rig.artifactDir) && listing(rig.artifactDir).every((f) => listing(rig.artifactDir).includes(f)) && artifactsBefore.every((f) => existsSync(path.join(rig.artifactDir, f)));
  expect(r.status).toBe('failed');
  verdict('rm -rf ~ /', intact, 'minimal read-only root; only the workspace is writable');
});

test('without a sandbox (WEAVER_SANDBOX=off) a key dumped into files is still never committed, and every result warns', async () => {
  const off = await startRig({ sandbox: 'off' });
  try {
    const { r, repo } = await attempt('node harvest.js; node --test test/', { push: true }, { 'harvest.js': HARVEST, 'src/config.txt': 'placeholder\n' }, off);
    expect(r.sandbox).toMatchObject({ kind: 'none' });
    expect(r.warnings).toContainEqual(expect.stringMatching(/commands ran without a sandbox/));
    const files = await branchFiles(repo, r.branch);
    // leak.txt is not the change's; src/config.txt is, but is committed as the change wrote it.
    // The test step's rewrite of the change's own file is undone right after the step (what the checks and the commit see).
    expect(r.warnings).toContainEqual(expect.stringMatching(/the test step rewrote src\/config\.txt on attempt 1: put back as the change wrote them/));
    expect(r.warnings).toContainEqual(expect.stringMatching(/not committed \(the run wrote or changed them after the change applied\): .*leak\.txt/));
    expect(files['src/config.txt']).toBe('placeholder\n');
    verdict('environ → file → commit, sandbox off', !('leak.txt' in files) && Object.values(files).every((c) => !c.includes(KEY)), 'only the change\'s paths, as the change wrote them, are committed');
    // Without the read-only mount, a change to .git is caught after the command, undone, and refused.
    const marks = path.join(off.tmp, `off-hook-${Date.now()}`);
    const { r: armed, repo: armedRepo } = await attempt(
      `printf '#!/bin/sh\ntouch ${marks}\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; git config core.fsmonitor 'touch ${marks}'; node --test test/`,
      { push: true },
      {},
      off,
    );
    expect(armed.status).toBe('failed');
    expect(armed.attempts[0].tests).toMatchObject({ passed: false, violation: expect.stringMatching(/changed \.git\/config, \.git\/hooks\/pre-commit \(refused and undone/) });
    expect(armed.attempts[0].tests?.tail).toMatch(/^weaver: the command changed/);
    expect(existsSync(marks)).toBe(false);
    expect(armedRepo).toBeTruthy();
  } finally {
    await off.close();
  }
});

test('WEAVER_SANDBOX=required without bwrap stops the worker at start, naming the fix', async () => {
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, '..', 'src', 'worker.ts')], {
    env: { ...process.env, WEAVER_SANDBOX: 'required', WEAVER_BWRAP: '/nonexistent/bwrap', TEMPORAL_ADDRESS: '127.0.0.1:1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  expect(code).not.toBe(0);
  expect(out).toMatch(/WEAVER_SANDBOX=required, but bwrap is not installed[\s\S]*apt-get install bubblewrap/);
});
