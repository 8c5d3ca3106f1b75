// A real S3-compatible server for a test file (src/devtools/s3Server.ts: moto's, pinned), with a
// client to look into its buckets; one bucket or more per test file.
import type { S3Client } from '@aws-sdk/client-s3';
import { s3ClientFromEnv } from '../../src/activities/s3Artifacts';
import { startS3Server } from '../../src/devtools/s3Server';

export interface S3Server {
  endpoint: string;
  /** What a worker's environment holds to reach it (the standard AWS_* variables). */
  env: Record<string, string>;
  client: S3Client;
}

/** One server per test file: started before its tests, stopped after. */
export function useS3Server(set: (s: S3Server) => void): void {
  let stop: (() => Promise<void>) | undefined;
  let client: S3Client | undefined;
  beforeAll(async () => {
    const server = await startS3Server();
    stop = server.stop;
    client = s3ClientFromEnv(server.env);
    set({ endpoint: server.endpoint, env: server.env, client });
  }, 240_000);
  afterAll(async () => {
    client?.destroy();
    await stop?.();
  });
}
