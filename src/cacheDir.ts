// The host-wide cache directory (WEAVER_CACHE_DIR), checked once at worker start: every worker
// process on the host shares it, so a repository one worker mapped is cached for the others.
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * `preferred` when it can be created and written, else `<workspaceRoot>/.cache` (this worker's
 * own, as before the shared one), with a warning naming the setting.
 */
export async function usableCacheDir(preferred: string, workspaceRoot: string): Promise<string> {
  try {
    await mkdir(preferred, { recursive: true });
    await access(preferred, constants.W_OK);
    return preferred;
  } catch (e) {
    const fallback = path.join(workspaceRoot, '.cache');
    console.warn(`WEAVER_CACHE_DIR ${preferred} is not writable (${(e as Error).message}): caching in ${fallback}, not shared with other workers`);
    return fallback;
  }
}
