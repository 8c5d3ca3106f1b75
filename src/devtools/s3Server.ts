// A local S3-compatible server for tests and benchmarks: moto's server (scripts/s3-server.sh
// installs it, pinned, under .tools/), on a free port, in its own process group.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from '../activities/processGroups';
import { freePort, killProcessGroup, stopProcessGroup } from './devServer';

export interface S3ServerProcess {
  endpoint: string;
  /** What a worker's environment holds to reach it (the standard AWS_* variables). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const ROOT = path.resolve(__dirname, '..', '..');

/** Starts the server (installing it first if needed); resolves once it answers. Tries 3 ports. */
export async function startS3Server(): Promise<S3ServerProcess> {
  const bin = execFileSync('bash', [path.join(ROOT, 'scripts', 's3-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const logFile = path.join(mkdtempSync(path.join(tmpdir(), 'weaver-s3-')), 'moto.log');
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort('127.0.0.1');
    const fd = openSync(logFile, 'a');
    const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    let exited = false;
    child.once('exit', () => (exited = true));
    const endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    while (!exited && Date.now() < deadline) {
      if (await fetch(endpoint).then((r) => r.ok, () => false)) {
        const pid = child.pid!;
        // Never left behind by a process that dies without stopping it.
        process.once('exit', () => killProcessGroup(pid, 'SIGKILL'));
        const env = { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'weaver-test', AWS_SECRET_ACCESS_KEY: 'weaver-test-secret', AWS_REGION: 'us-east-1' };
        return { endpoint, env, stop: () => stopProcessGroup(pid) };
      }
      await sleep(200);
    }
    if (child.pid) killProcessGroup(child.pid, 'SIGKILL');
  }
  throw new Error(`the S3 server (${bin}) did not answer; last log lines:\n${readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')}`);
}
