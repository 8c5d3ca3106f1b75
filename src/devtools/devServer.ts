// Start and stop a throwaway Temporal dev server (used by test/globalSetup.ts,
// test/globalTeardown.ts and scripts/bench.ts).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { SearchAttributeType } from '@temporalio/common';
import { killGroup, sleep } from '../activities/processGroups';
import { WEAVER_SEARCH_ATTRIBUTES } from '../domain/searchAttributes';

// Same from src/devtools and dist/devtools.
const ROOT = path.resolve(__dirname, '..', '..');

// The CLI's spelling of the SDK's search attribute types.
const CLI_TYPE: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** Weaver's search attributes as the CLI takes them: name → type (e.g. WeaverStatus → Keyword). */
export const DEV_SERVER_SEARCH_ATTRIBUTES: Record<string, string> = Object.fromEntries(
  WEAVER_SEARCH_ATTRIBUTES.map((k) => [k.name, CLI_TYPE[k.type]]),
);


/** Absolute path of the `temporal` binary from scripts/temporal-cli.sh (may install it; progress on stderr). */
export function temporalCliPath(): string {
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'temporal-cli.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const cli = out.trim().split('\n').pop() ?? '';
  if (!cli || !existsSync(cli)) throw new Error(`scripts/temporal-cli.sh printed no usable path (got ${JSON.stringify(out)})`);
  return cli;
}

export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function healthy(cli: string, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(cli, ['operator', 'cluster', 'health', '--address', address, '--command-timeout', '3s'], { timeout: 5000 }, (err) =>
      resolve(!err),
    );
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signal a process group (falling back to the process alone); no-op if gone. */
export function killProcessGroup(pid: number, signal: NodeJS.Signals): void {
  if (killGroup(pid, signal)) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** SIGTERM the group, wait up to graceMs for its leader to exit, then SIGKILL. */
export async function stopProcessGroup(pid: number, graceMs = 5000): Promise<void> {
  killProcessGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) killProcessGroup(pid, 'SIGKILL');
}

export interface StartDevServerOptions {
  cli: string;
  /** Server output is appended here. */
  logFile: string;
  dynamicConfig?: Record<string, unknown>;
  /** This port (tried once) instead of a free one: a server started where a worker already waits. */
  port?: number;
}

/**
 * Headless `temporal server start-dev` on a free 127.0.0.1 port with Weaver's
 * search attributes, in its own process group (stop it with stopProcessGroup).
 * Resolves once healthy; tries 3 ports, 60 s each.
 */
export async function startDevServer(opts: StartDevServerOptions): Promise<{ pid: number; address: string }> {
  const { cli, logFile, dynamicConfig = {} } = opts;
  const host = '127.0.0.1';
  for (let attempt = 1; attempt <= (opts.port ? 1 : 3); attempt++) {
    const port = opts.port ?? (await freePort(host));
    const address = `${host}:${port}`;
    const args = ['server', 'start-dev', '--headless', '--ip', host, '--port', String(port), '--log-level', 'warn'];
    for (const [name, type] of Object.entries(DEV_SERVER_SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
    for (const [key, value] of Object.entries(dynamicConfig)) args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);

    const fd = openSync(logFile, 'a');
    const child = spawn(cli, args, { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    let exited = false;
    child.once('exit', () => (exited = true));
    child.once('error', () => (exited = true));
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not spawn ${cli}`);

    const deadline = Date.now() + 60_000;
    while (!exited && Date.now() < deadline) {
      if (await healthy(cli, address)) return { pid, address };
      await sleep(200);
    }
    killProcessGroup(pid, 'SIGKILL');
    // Most likely cause of an early exit: the port was taken between freePort() and start-dev binding it.
  }
  const tail = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  throw new Error(`Temporal dev server did not become healthy; last log lines:\n${tail}`);
}
