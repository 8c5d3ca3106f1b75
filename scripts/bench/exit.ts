// What a bench started, stopped however it exits — Ctrl-C, SIGTERM, a crash, a closed stdout's
// EPIPE: no Temporal server, model server, script process, cgroup or temp dir left behind.
// The 'exit' event allows synchronous work only: processes are killed, not awaited.
import { rmSync } from 'node:fs';
import { killProcessGroup } from '../../src/devtools/devServer';
import type { CpuGroups } from './cgroupCpu';

export interface Started {
  children: ({ kill(): void } | undefined)[];
  serverPid?: number;
  tmp: string;
  groups: CpuGroups | string;
}

/** `started` is read at exit (what exists by then). */
export function stopOnExit(started: () => Started): void {
  process.once('exit', () => {
    const s = started();
    for (const child of s.children) child?.kill();
    if (s.serverPid) killProcessGroup(s.serverPid, 'SIGKILL');
    rmSync(s.tmp, { recursive: true, force: true });
    if (typeof s.groups !== 'string') s.groups.remove();
  });
}
