// Path containment, shared by the sandbox's mounts and the repository-root policy.
import path from 'node:path';

/** Whether `p` is `root` or lies under it (both absolute and normalised). */
export function isInside(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}
