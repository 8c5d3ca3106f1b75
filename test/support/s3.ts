// A real S3-compatible server for a test file: moto's server (scripts/s3-server.sh installs it,
// pinned, under .tools/), on a free port, in its own process group; one bucket per test file.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { freePort, killProcessGroup, stopProcessGroup } from '../../src/devtools/devServer';
import { s3ClientFromEnv } from '../../src/activities/s3Artifacts';
import { sandboxableTempDir } from '../../src/devtools/tempDir';
import { sleep } from './processes';

export interface S3Server {
  endpoint: string;
  /** What a worker's environment holds to reach it (the standard AWS_* variables). */
  env: Record<string, string>;
  client: S3Client;
  close(): Promise<void>;
}

const ROOT = path.resolve(__dirname, '..', '..');

export async function startS3Server(): Promise<S3Server> {
  const bin = execFileSync('bash', [path.join(ROOT, 'scripts', 's3-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const logFile = path.join(sandboxableTempDir('weaver-s3-'), 'moto.log');
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
        const env = { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'weaver-test', AWS_SECRET_ACCESS_KEY: 'weaver-test-secret', AWS_REGION: 'us-east-1' };
        const client = s3ClientFromEnv(env);
        const pid = child.pid!;
        process.once('exit', () => killProcessGroup(pid, 'SIGKILL'));
        return { endpoint, env, client, close: async () => (client.destroy(), stopProcessGroup(pid)) };
      }
      await sleep(200);
    }
    if (child.pid) killProcessGroup(child.pid, 'SIGKILL');
  }
  throw new Error(`the S3 server (${bin}) did not answer; last log lines:\n${readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')}`);
}

/** One server per test file: started before its tests, stopped after. */
export function useS3Server(set: (s: S3Server) => void): void {
  let server: S3Server | undefined;
  beforeAll(async () => {
    server = await startS3Server();
    set(server);
  }, 240_000);
  afterAll(async () => {
    await server?.close();
  });
}
