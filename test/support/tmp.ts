// Temp directories for tests that run a worker with the sandbox: mkdtemp makes them 0700, and a
// root worker's sandbox uids must pass through every directory above the workspace root (the
// worker refuses to start otherwise, naming the directory): o+x, never o+r (nobody can list it).
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export async function sandboxableTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o711);
  return dir;
}
