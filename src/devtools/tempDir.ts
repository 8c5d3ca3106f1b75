// Temp directories for a worker with the sandbox (tests, benchmarks): mkdtemp makes them 0700,
// and a root worker's sandbox uids must pass through every directory above its workspace root
// (the worker refuses to start otherwise, naming the directory): o+x, never o+r.
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function sandboxableTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o711);
  return dir;
}
