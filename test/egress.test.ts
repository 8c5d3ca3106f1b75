// The egress proxy's rules (issue 15 item 3), outside a sandbox: the address ranges it never
// reaches (IPv4-mapped and NAT64 forms included), a task narrowing the worker's allowlist and
// never widening it, the worker's settings, and a name that resolves to a refused address (the
// proxy checks the address it will connect to, not the name). The sandboxed runs, through real
// tasks, are in sandbox.test.ts ("egress allowlist").
import http from 'node:http';
import net from 'node:net';
import { EgressProxy, refusedRange } from '../src/activities/sandbox/egress';
import { egressSetting } from '../src/config';
import { DEFAULT_EGRESS_ALLOW, egressAllows, narrowEgress, parseEgressList, parseEgressPattern } from '../src/domain/egress';
import { SandboxPolicySchema } from '../src/domain/schema';

test('private, loopback, link-local, CGNAT and unspecified addresses are refused in every spelling; public ones are not', () => {
  for (const ip of ['127.0.0.1', '127.9.9.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::10.0.0.1', '224.0.0.1']) {
    expect({ ip, why: refusedRange(ip) }).toEqual({ ip, why: expect.any(String) });
  }
  expect(refusedRange('169.254.169.254')).toBe('link-local address (cloud metadata)');
  expect(refusedRange('::ffff:a9fe:a9fe')).toBe('link-local address (cloud metadata)');
  for (const ip of ['192.0.2.2', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2001:db8::1', '::ffff:8.8.8.8']) expect({ ip, why: refusedRange(ip) }).toEqual({ ip, why: undefined });
});

test('patterns: a host means ports 80 and 443, *.domain its subdomains only, :* any port', () => {
  const p = parseEgressList(['registry.npmjs.org', '*.pypi.org', 'example.test:8080', '[2001:db8::1]:*'], 'test');
  expect(egressAllows(p, 'registry.npmjs.org', 443)).toBe(true);
  expect(egressAllows(p, 'registry.npmjs.org', 22)).toBe(false);
  expect(egressAllows(p, 'files.pypi.org', 443)).toBe(true);
  expect(egressAllows(p, 'pypi.org', 443)).toBe(false);
  expect(egressAllows(p, 'evilpypi.org', 443)).toBe(false);
  expect(egressAllows(p, 'example.test', 8080)).toBe(true);
  expect(egressAllows(p, 'example.test', 443)).toBe(false);
  expect(egressAllows(p, '2001:db8::1', 9)).toBe(true);
  for (const bad of ['http://x.org', 'x.org/path', '*.1.2.3.4', 'x.org:99999', '*', 'a b']) expect(typeof parseEgressPattern(bad)).toBe('string');
  // The task schema says which entry is wrong.
  const parsed = SandboxPolicySchema.safeParse({ egress: ['registry.npmjs.org', 'https://evil.example/'] });
  expect(parsed.success).toBe(false);
  expect(parsed.error?.issues[0]).toMatchObject({ path: ['egress', 1], message: expect.stringMatching(/not a host pattern/) });
});

test('a task narrows the worker\'s allowlist and never widens it', () => {
  const worker = ['registry.npmjs.org', '*.pypi.org', 'git.example.test:*'];
  expect(narrowEgress(worker)).toEqual({ allow: worker, dropped: [] });
  expect(narrowEgress(worker, [])).toEqual({ allow: [], dropped: [] });
  expect(narrowEgress(worker, ['registry.npmjs.org', 'files.pypi.org', '*.cdn.pypi.org', 'git.example.test:22', 'git.example.test'])).toEqual({
    allow: ['registry.npmjs.org', 'files.pypi.org', '*.cdn.pypi.org', 'git.example.test:22', 'git.example.test'],
    dropped: [],
  });
  expect(narrowEgress(worker, ['registry.npmjs.org:*', '*.org', 'pypi.org', 'evil.example', '*.npmjs.org']).dropped).toEqual(['registry.npmjs.org:*', '*.org', 'pypi.org', 'evil.example', '*.npmjs.org']);
});

test('the worker\'s settings: defaults, `defaults` plus more, `none`; the dev-only exemption needs WEAVER_DEV', () => {
  expect(egressSetting({}).allow).toEqual([...DEFAULT_EGRESS_ALLOW]);
  expect(egressSetting({}).allow).toEqual(expect.arrayContaining(['registry.npmjs.org', 'pypi.org', 'files.pythonhosted.org', 'proxy.golang.org', 'sum.golang.org', 'crates.io', 'static.crates.io', 'index.crates.io', 'repo.maven.apache.org', 'repo1.maven.org', 'deb.debian.org']));
  expect(egressSetting({ WEAVER_EGRESS_ALLOW: 'defaults,git.example.test' }).allow).toEqual([...DEFAULT_EGRESS_ALLOW, 'git.example.test']);
  expect(egressSetting({ WEAVER_EGRESS_ALLOW: 'none' }).allow).toEqual([]);
  expect(egressSetting({ TEMPORAL_ADDRESS: 'temporal:7233' }).temporal).toBe('temporal:7233');
  expect(() => egressSetting({ WEAVER_EGRESS_ALLOW: 'https://x.org' })).toThrow(/WEAVER_EGRESS_ALLOW: "https:\/\/x.org" is not a host pattern/);
  expect(() => egressSetting({ WEAVER_DEV_EGRESS_ADDRESSES: '127.0.0.1' })).toThrow(/needs WEAVER_DEV=1/);
  expect(() => egressSetting({ WEAVER_DEV: '1', WEAVER_DEV_EGRESS_ADDRESSES: 'localhost' })).toThrow(/not an IP address or CIDR/);
  expect(egressSetting({ WEAVER_DEV: '1', WEAVER_DEV_EGRESS_ADDRESSES: '127.0.0.1,10.0.0.0/8' }).devAddresses).toEqual(['127.0.0.1', '10.0.0.0/8']);
});

describe('the proxy (served on a loopback listener of the test)', () => {
  let target: http.Server;
  let targetPort = 0;
  let listener: net.Server;
  let proxy: EgressProxy;
  let proxyPort = 0;
  const start = async (allow: string[], devAddresses?: string[]) => {
    proxy = new EgressProxy(allow, { temporal: 'localhost:1', devAddresses });
    listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    proxyPort = (listener.address() as net.AddressInfo).port;
    proxy.serve(listener);
  };
  beforeAll(async () => {
    target = http.createServer((req, res) => res.end(`target ${req.url}`));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    targetPort = (target.address() as net.AddressInfo).port;
  });
  afterEach(() => {
    proxy.close();
    listener.close();
  });
  afterAll(() => new Promise<void>((r) => target.close(() => r())));
  const get = (url: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: proxyPort, path: url, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });

  test('a name on the allowlist that resolves to a loopback address is refused: the address is checked, not the name', async () => {
    await start([`localhost:${targetPort}`]);
    const r = await get(`http://localhost:${targetPort}/x`);
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/refused localhost:\d+: loopback address/);
    expect(proxy.refused()).toEqual([{ host: 'localhost', port: targetPort, why: expect.stringMatching(/^loopback address/), times: 1 }]);
  });

  test('with the dev exemption the same target is reached, and refusals are bounded: 20 distinct, the rest counted', async () => {
    await start([`localhost:${targetPort}`], ['127.0.0.1', '::1']);
    expect(await get(`http://localhost:${targetPort}/x`)).toEqual({ status: 200, body: 'target /x' });
    for (let i = 0; i < 30; i++) expect((await get(`http://h${i}.invalid/`)).status).toBe(403);
    await get('http://h0.invalid/');
    const refused = proxy.refused();
    expect(refused).toHaveLength(21);
    expect(refused[0]).toMatchObject({ host: 'h0.invalid', times: 2 });
    expect(refused[20]).toEqual({ host: '(others)', port: 0, why: 'more refusals than are listed', times: 10 });
  });

  test('an upstream answering a status Node cannot write (099) gets the command a 502, and the worker lives on', async () => {
    const bad = net.createServer((c) => c.once('data', () => c.end('HTTP/1.1 099 Weird\r\nContent-Length: 0\r\n\r\n')));
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', () => r()));
    try {
      const badPort = (bad.address() as net.AddressInfo).port;
      await start([`127.0.0.1:*`], ['127.0.0.1']);
      const r = await get(`http://127.0.0.1:${badPort}/`).catch((err: Error) => ({ status: 0, body: err.message }));
      // Either a 502 or a closed connection: never an exception out of the proxy (that would end this process).
      expect([0, 502]).toContain(r.status);
      expect(await get(`http://127.0.0.1:${targetPort}/still`)).toEqual({ status: 200, body: 'target /still' });
    } finally {
      bad.close();
    }
  });

  test('a command holds at most 128 connections through its proxy at once', async () => {
    await start([`127.0.0.1:*`], ['127.0.0.1']);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 200; i++) sockets.push(net.connect(proxyPort, '127.0.0.1').on('error', () => undefined));
    await new Promise((r) => setTimeout(r, 500));
    const open = await new Promise<number>((resolve) => listener.getConnections((_e, n) => resolve(n)));
    expect(open).toBeLessThanOrEqual(128);
    for (const so of sockets) so.destroy();
  });

  test('the Temporal frontend is refused even when allowed and exempt', async () => {
    proxy = new EgressProxy([`127.0.0.1:*`], { temporal: `127.0.0.1:${targetPort}`, devAddresses: ['127.0.0.1'] });
    listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    proxyPort = (listener.address() as net.AddressInfo).port;
    proxy.serve(listener);
    const r = await get(`http://127.0.0.1:${targetPort}/`);
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/the Temporal frontend/);
  });
});
