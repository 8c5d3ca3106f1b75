// The egress proxy: a command with network has a network namespace of its own with only a
// loopback, and on it, at 127.0.0.1:3128, a listener that belongs to the worker. Everything it
// reaches goes through here (HTTP CONNECT and plain HTTP), so there is no other route out.
//
// - The listener is made inside the sandbox's namespace by a short-lived helper (`nsenter --net`
//   on the pid bwrap reports, as root) and handed to the worker over Node's IPC channel; the
//   helper exits before the command is let go (--block-fd). Nothing of it runs in the sandbox:
//   not in its limits, not visible to it, not killable by it, no `node` needed in there.
// - Each target must match the allowlist (the worker's WEAVER_EGRESS_ALLOW, narrowed by the
//   task). The proxy resolves the name itself and connects to the address it checked (no DNS
//   rebinding), never to a loopback, private, link-local, CGNAT, unique-local, multicast or
//   unspecified address (IPv4-mapped and NAT64 forms included), nor to this host's own
//   addresses, nor to the Temporal frontend — whatever the allowlist says.
// - Each refusal (host, port, why) is counted, at most MAX_REFUSALS distinct, for the outcome.
import { spawn, type ChildProcess } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net, { BlockList, type Server, type Socket } from 'node:net';
import os from 'node:os';
import { egressAllows, parseEgressList, type EgressPattern, type EgressRefusal } from '../../domain/egress';
import { sleep } from '../processGroups';
import type { Control } from './network';

/** Where a command finds the proxy (HTTP_PROXY): on its own loopback. */
export const EGRESS_PORT = 3128;
export const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_PORT}`;
const MAX_REFUSALS = 20;
/** A hostile command's CONNECT line can be long: what is kept of a refused host. */
const MAX_HOST_CHARS = 255;

/** What the worker decides about egress, at start. */
export interface EgressSetting {
  /** Host patterns (WEAVER_EGRESS_ALLOW; default DEFAULT_EGRESS_ALLOW). */
  allow: string[];
  /** Temporal's frontend (TEMPORAL_ADDRESS): always refused. */
  temporal: string;
  /** WEAVER_DEV_EGRESS_ADDRESSES (only with WEAVER_DEV): addresses exempt from the range refusal (tests' local servers). */
  devAddresses?: string[];
}

/** Ranges never reached, whatever the allowlist says, and why. */
const RANGES: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified address ("this host")'],
  ['127.0.0.0', 8, 'ipv4', 'loopback address'],
  ['10.0.0.0', 8, 'ipv4', 'private address'],
  ['172.16.0.0', 12, 'ipv4', 'private address'],
  ['192.168.0.0', 16, 'ipv4', 'private address'],
  ['169.254.0.0', 16, 'ipv4', 'link-local address (cloud metadata)'],
  ['100.64.0.0', 10, 'ipv4', 'shared (CGNAT) address'],
  ['224.0.0.0', 3, 'ipv4', 'multicast or reserved address'],
  ['::', 128, 'ipv6', 'unspecified address ("this host")'],
  ['::1', 128, 'ipv6', 'loopback address'],
  ['fc00::', 7, 'ipv6', 'unique local (private) address'],
  ['fe80::', 10, 'ipv6', 'link-local address'],
  ['ff00::', 8, 'ipv6', 'multicast address'],
];

/** An IPv4 address hidden in an IPv6 one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64 `64:ff9b::/96`). */
function embeddedIPv4(ip: string): string | undefined {
  const m = /^(?:::ffff:(?:0:)?|::|64:ff9b::)((?:\d+\.){3}\d+)$/i.exec(ip);
  if (m) return m[1];
  const hex = /^(?:::ffff:(?:0:)?|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
  if (!hex) return undefined;
  const [a, b] = [parseInt(hex[1], 16), parseInt(hex[2], 16)];
  return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
}

/** Why `ip` is never reached (a range above), or undefined. */
export function refusedRange(ip: string): string | undefined {
  const v4 = net.isIPv6(ip) ? embeddedIPv4(ip) : ip;
  if (v4 && net.isIPv4(v4)) {
    for (const [base, bits, family, why] of RANGES) if (family === 'ipv4' && inSubnet(v4, base, bits, 'ipv4')) return why;
    return undefined;
  }
  for (const [base, bits, family, why] of RANGES) if (family === 'ipv6' && inSubnet(ip, base, bits, 'ipv6')) return why;
  return undefined;
}
function inSubnet(ip: string, base: string, bits: number, family: 'ipv4' | 'ipv6'): boolean {
  const b = new BlockList();
  b.addSubnet(base, bits, family);
  return b.check(ip, family);
}

/** `10.1.2.3`, `192.0.2.0/24`, `::1` → a BlockList of the dev exemptions. */
function devList(entries: string[] = []): BlockList {
  const b = new BlockList();
  for (const e of entries) {
    const [ip, bits] = e.split('/');
    const family = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
    if (bits === undefined) b.addAddress(ip, family);
    else b.addSubnet(ip, Number(bits), family);
  }
  return b;
}

/** The host:port of `TEMPORAL_ADDRESS` (`[::1]:7233`, `temporal:7233`, `localhost`). */
function splitHostPort(address: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(address) ?? /^([^:]+)(?::(\d+))?$/.exec(address);
  if (!m) return { host: address, port: defaultPort };
  return { host: m[1].toLowerCase(), port: m[2] ? Number(m[2]) : defaultPort };
}

/** Connections one command may hold through its proxy at once (each costs the worker descriptors). */
const MAX_CONNECTIONS = 128;
/** A connection with nothing sent either way for this long is closed. */
const IDLE_MS = 60_000;
/** Distinct names one command may have looked up. */
const MAX_NAMES = 256;

/** This host's own interface addresses (a service on 0.0.0.0 answers on each). */
function ownAddresses(): Set<string> {
  return new Set(
    Object.values(os.networkInterfaces())
      .flat()
      .filter((a): a is os.NetworkInterfaceInfo => !!a)
      .map((a) => a.address.toLowerCase()),
  );
}

const normaliseIp = (ip: string) => (net.isIPv6(ip) ? (embeddedIPv4(ip) ?? ip.toLowerCase()) : ip);

/** One command's proxy: its allowlist, what it refused, the connections it holds. */
export class EgressProxy {
  private readonly allow: EgressPattern[];
  private readonly dev: BlockList;
  private readonly refusals = new Map<string, EgressRefusal>();
  private dropped = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: http.Server;
  private temporal?: Promise<{ addresses: Set<string>; port: number; anyOwn: boolean }>;
  private readonly own = ownAddresses();

  constructor(
    allow: string[],
    private readonly setting: Pick<EgressSetting, 'temporal' | 'devAddresses'>,
  ) {
    this.allow = parseEgressList(allow, 'egress allowlist');
    this.dev = devList(setting.devAddresses);
    this.server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000 });
    // Nothing a command or an upstream sends may throw out of a handler: that would end the
    // worker and every task on it. A failure ends that one connection.
    this.server.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.tunnel(req, socket, head).catch(() => socket.destroy());
    });
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.forward(req, res).catch(() => res.destroy());
    });
    this.server.on('clientError', (_err, socket: Socket) => socket.destroy());
  }

  /** Serves the connections a listener (the one made in the sandbox's namespace) accepts. */
  serve(listener: Server): void {
    // Each connection costs the worker a descriptor or two: a command gets a bounded number.
    listener.maxConnections = MAX_CONNECTIONS;
    listener.on('connection', (s: Socket) => {
      this.track(s);
      this.server.emit('connection', s);
    });
  }

  /** The refusals so far: at most MAX_REFUSALS distinct (host, port, why), each counted; one more entry counts the rest. */
  refused(): EgressRefusal[] {
    const list = [...this.refusals.values()];
    return this.dropped ? [...list, { host: '(others)', port: 0, why: 'more refusals than are listed', times: this.dropped }] : list;
  }

  /** Ends every connection (the command is over). */
  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.server.close();
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    // An idle connection (client or upstream) is closed: held ones would pin the worker's descriptors.
    s.setTimeout(IDLE_MS, () => s.destroy());
    return s;
  }

  private refuse(host: string, port: number, why: string): string {
    const key = `${host}\0${port}\0${why}`;
    const r = this.refusals.get(key);
    if (r) r.times++;
    else if (this.refusals.size < MAX_REFUSALS) this.refusals.set(key, { host: host.slice(0, MAX_HOST_CHARS), port, why, times: 1 });
    else this.dropped++;
    return `weaver egress: refused ${host.slice(0, MAX_HOST_CHARS)}:${port}: ${why}\n`;
  }

  private temporalTargets() {
    this.temporal ??= (async () => {
      const { host, port } = splitHostPort(this.setting.temporal, 7233);
      const found = net.isIP(host) ? [host] : await lookup(host, { all: true }).then((a) => a.map((x) => x.address), () => [] as string[]);
      const addresses = new Set(found.map(normaliseIp));
      // Temporal on this host: any of its addresses reaches it (a frontend on 0.0.0.0).
      const anyOwn = [...addresses].some((a) => this.own.has(a) || refusedRange(a) === 'loopback address' || refusedRange(a)?.startsWith('unspecified'));
      return { addresses, port, anyOwn };
    })();
    return this.temporal;
  }

  /** Whether `ip:port` may be reached; why not otherwise. The Temporal frontend is never exempt. */
  private async addressRefused(ip: string, port: number): Promise<string | undefined> {
    const a = normaliseIp(ip);
    const t = await this.temporalTargets();
    if (port === t.port && (t.addresses.has(a) || (t.anyOwn && (this.own.has(a) || this.own.has(ip.toLowerCase()) || refusedRange(a) !== undefined)))) {
      return 'the Temporal frontend';
    }
    const exempt = this.dev.check(a, net.isIPv6(a) ? 'ipv6' : 'ipv4');
    if (exempt) return undefined;
    const range = refusedRange(a);
    if (range) return range;
    if (this.own.has(a) || this.own.has(ip.toLowerCase())) return "an address of the worker's own host";
    return undefined;
  }

  /**
   * A name's addresses, looked up once per command (lookups run on libuv's small thread pool,
   * shared with the worker's file I/O: a command asking for the same name in a loop must not
   * fill it).
   */
  private resolve(host: string): Promise<string[]> {
    let r = this.lookups.get(host);
    if (!r) {
      if (this.lookups.size >= MAX_NAMES) return Promise.reject(Object.assign(new Error('too many names looked up'), { code: 'ETOOMANYNAMES' }));
      r = lookup(host, { all: true }).then((list) => list.map((a) => a.address));
      r.catch(() => this.lookups.delete(host));
      this.lookups.set(host, r);
    }
    return r;
  }
  private readonly lookups = new Map<string, Promise<string[]>>();

  /** The address to connect to for `host:port`, or the refusal (recorded) / failure. */
  private async decide(rawHost: string, port: number): Promise<{ address: string } | { status: number; text: string }> {
    const host = rawHost.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return { status: 400, text: this.refuse(host || '(none)', port || 0, 'not a host and port') };
    if (!egressAllows(this.allow, host, port)) return { status: 403, text: this.refuse(host, port, 'not in the egress allowlist (WEAVER_EGRESS_ALLOW, sandbox.egress)') };
    let addresses: string[];
    try {
      addresses = net.isIP(host) ? [host] : await this.resolve(host);
    } catch (err) {
      return { status: 502, text: `weaver egress: ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})\n` };
    }
    // Connect to an address checked here, never to a name resolved again (DNS rebinding).
    let first: string | undefined;
    for (const address of addresses) {
      const why = await this.addressRefused(address, port);
      if (!why) return { address };
      first ??= `${why} (${address})`;
    }
    return { status: 403, text: this.refuse(host, port, first ?? 'no address') };
  }

  private async tunnel(req: http.IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    const { host, port } = splitHostPort(req.url ?? '', 443);
    const d = await this.decide(host, port);
    if ('status' in d) {
      client.end(`HTTP/1.1 ${d.status} ${http.STATUS_CODES[d.status]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(d.text)}\r\nConnection: close\r\n\r\n${d.text}`);
      return;
    }
    const upstream = this.track(net.connect({ host: d.address, port }));
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (client.writable && !upstream.readable) client.end(`HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nweaver egress: ${host}:${port}: ${err.code ?? err.message}\n`);
      else client.destroy();
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('weaver egress: a proxy request needs an absolute http:// URL\n');
      return;
    }
    if (url.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`weaver egress: ${url.protocol} through CONNECT only\n`);
      return;
    }
    const port = url.port ? Number(url.port) : 80;
    const d = await this.decide(url.hostname, port);
    if ('status' in d) {
      res.writeHead(d.status, { 'content-type': 'text/plain' }).end(d.text);
      return;
    }
    // Hop-by-hop and proxy headers stay here; Host is the URL's, whatever the client said.
    const headers = { ...req.headers };
    for (const h of ['proxy-connection', 'proxy-authorization', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer']) delete headers[h];
    headers.host = url.host;
    const upstream = http.request({ host: d.address, port, method: req.method, path: `${url.pathname}${url.search}`, headers, setHost: false, agent: false });
    upstream.on('socket', (s: Socket) => this.track(s));
    upstream.on('response', (r) => {
      // A status Node will not write (an upstream's 099, 700) is the upstream's fault: a 502.
      const status = r.statusCode && r.statusCode >= 100 && r.statusCode <= 599 ? r.statusCode : 502;
      try {
        res.writeHead(status, r.headers);
      } catch {
        res.destroy();
        r.destroy();
        return;
      }
      r.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`weaver egress: ${url.host}: ${err.code ?? err.message}\n`);
      else res.destroy();
    });
    req.pipe(upstream);
  }
}

/**
 * The helper that makes the listener inside the sandbox's network namespace and hands it over.
 * It waits for the worker to have it before exiting, so no connection lands in the helper.
 * It first waits for bwrap's own network set-up to be done — the loopback up with 127.0.0.1,
 * the last thing bwrap does to the namespace (loopback_setup) — so nothing of the worker's
 * touches the namespace while bwrap configures it (with slirp4netns attached meanwhile, bwrap
 * failed "loopback: Failed RTM_NEWADDR" under load). os.networkInterfaces() lists an
 * interface only once it is up and running.
 */
const HELPER = `const up = () => (require('os').networkInterfaces().lo || []).some((a) => a.address === '127.0.0.1');
const listen = () => {
  const s = require('net').createServer();
  s.on('error', (e) => process.send({ error: e.code || e.message }, () => process.exit(1)));
  s.listen(${EGRESS_PORT}, '127.0.0.1', () => process.send({ ok: true }, s, () => process.exit(0)));
};
(function wait() { if (up()) listen(); else setTimeout(wait, 2); })();`;

/**
 * Puts `proxy` in the sandbox's network once bwrap says its pid, then lets the command go.
 * `ready` resolves with what went wrong (the sandbox is then killed), or undefined.
 */
export function attachEgress(ctl: Control, nsenter: string, proxy: EgressProxy | undefined, kill?: () => Promise<void>): { ready: Promise<string | undefined>; stop(): Promise<string | undefined> } {
  let stopped = false;
  let helper: ChildProcess | undefined;
  let listener: Server | undefined;
  const ready = (async (): Promise<string | undefined> => {
    let info = await ctl.info();
    for (const started = Date.now(); !info; info = await ctl.info()) {
      if (stopped) return undefined; // the command never got to bwrap
      await sleep(Date.now() - started < 1000 ? 5 : 50, { unref: true });
    }
    // By path: the root worker may join any namespace; the sandbox's pid is its first process.
    helper = spawn(nsenter, [`--net=/proc/${info.pid}/ns/net`, '--', process.execPath, '-e', HELPER], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    helper.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const error = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve('the egress listener was not ready within 10 s'), 10_000);
      let got = false;
      helper!.on('message', (m: { ok?: boolean; error?: string }, handle?: Server) => {
        if (m.ok && handle) {
          got = true;
          listener = handle;
          if (proxy) proxy.serve(handle);
          else handle.on('connection', (s: Socket) => s.destroy());
        } else if (m.error) {
          clearTimeout(timer);
          resolve(`the egress listener failed: ${m.error}`);
        }
      });
      // Released only once the helper is gone: from then on the worker alone accepts. On 'close',
      // not 'exit': that can come before the message with the listener (seen under load).
      helper!.once('close', (code, sig) => (clearTimeout(timer), resolve(got && code === 0 ? undefined : `nsenter exited (${sig ?? code}): ${stderr.trim().split('\n').slice(-2).join('; ')}`)));
      helper!.once('error', (err) => (clearTimeout(timer), resolve(`nsenter: ${err.message}`)));
    });
    if (error) await kill?.();
    else await ctl.release();
    return error;
  })();
  return {
    ready,
    /** Closes the listener and the proxy's connections; what went wrong setting them up, if anything. */
    stop: async () => {
      stopped = true;
      const error = await ready.catch((err: Error) => err.message);
      if (helper && helper.exitCode === null && helper.signalCode === null) {
        const exited = new Promise((r) => helper!.once('exit', r));
        helper.kill('SIGKILL');
        await exited;
      }
      listener?.close();
      proxy?.close();
      return error;
    },
  };
}

/** The environment that sends a command's HTTP(S) through the proxy (and nothing around it). */
export function proxyEnv(): Record<string, string> {
  return { HTTP_PROXY: EGRESS_PROXY_URL, HTTPS_PROXY: EGRESS_PROXY_URL, http_proxy: EGRESS_PROXY_URL, https_proxy: EGRESS_PROXY_URL, NO_PROXY: '', no_proxy: '' };
}
