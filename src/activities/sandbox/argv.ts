// The bwrap command line: namespaces, the mounts (a read-only host, worker paths hidden under
// sized or read-only tmpfs, the workspace writable but its .git read-only, resolv.conf for a
// command sharing the worker's network), rlimits through prlimit, the uid dropped, the cgroup joined first.
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SandboxLimits } from '../../domain/schema';
import { isInside } from '../paths';
import { MIB, type Cgroup } from './limits';
import type { Control } from './network';
import type { SandboxRunRequest, SandboxSetting } from './setting';

export const NAMESPACES = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];

export function dropPrivileges(uid: number | undefined): string[] {
  return uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--'];
}

/** Worker-side paths no command may see, on top of the setting's own. */
function hiddenPaths(s: SandboxSetting): string[] {
  const all = ['/tmp', '/var/tmp', '/run', '/root', '/home', '/mnt', '/media', '/srv', '/dev/shm', os.homedir(), process.cwd(), ...s.hide];
  const unique = [...new Set(all.map((p) => path.resolve(p)))].filter((p) => {
    try {
      return lstatSync(p).isDirectory(); // symlinks (/var/run → /run) are covered by their target
    } catch {
      return false;
    }
  });
  // Shallow first: a tmpfs over a parent would cover one mounted over its child.
  return unique.sort((a, b) => a.split('/').length - b.split('/').length);
}

export const HOME_IN_SANDBOX = '/tmp/home';
/** Writable tmpfs mounts of the sandbox, each sized; every other hiding tmpfs is remounted read-only. */
const SCRATCH = new Set(['/tmp', '/var/tmp', '/dev/shm']);
export interface Prepared {
  limits: SandboxLimits;
  uid?: number;
  network: boolean;
  /** Network only through the worker's egress proxy (a namespace of its own, only a loopback). */
  egress?: boolean;
  ctl: Control;
  cgroup?: Cgroup;
  argv: string[];
  env: Record<string, string>;
}

/** The command line that runs `argv` in the sandbox, and the size of its writable tmpfs. */
export async function sandboxCommand(req: SandboxRunRequest, { limits, uid, network, egress, ctl, cgroup, argv }: Prepared): Promise<{ command: string[]; scratchMb: number }> {
  const { setting } = req;
  const rlimits = [
    `--nproc=${limits.processes}`,
    `--nofile=${limits.openFiles}`,
    `--fsize=${limits.fileSizeMb * MIB}`,
    // Soft below hard: at the limit SIGXCPU (which limitHit names), SIGKILL a second later only
    // for a process that ignores it. Equal soft and hard would SIGKILL at once, named by nothing.
    `--cpu=${limits.cpuSec}:${limits.cpuSec + 1}`,
    '--core=0',
    // Without a memory cgroup, private writable memory is capped (address space would break V8/JVM reservations).
    ...(cgroup?.limitsMemory ? [] : [`--data=${limits.memoryMb * MIB}`]),
  ];
  // tmpfs is memory: no bigger than the memory limit either.
  const scratchMb = Math.min(limits.diskMb, limits.memoryMb);
  const mounts: string[] = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];
  const hidden = hiddenPaths(setting);
  for (const p of hidden) mounts.push(...(SCRATCH.has(p) ? ['--size', String(scratchMb * MIB)] : []), '--tmpfs', p);
  for (const p of setting.readOnly) if (existsSync(p) && hidden.some((h) => isInside(p, h))) mounts.push('--ro-bind', p, p);
  // Through the proxy, names are resolved by the worker: the sandbox needs no resolver.
  if (network && !egress) mounts.push(...resolvConf(hidden));
  mounts.push('--dir', HOME_IN_SANDBOX, '--bind', req.dir, req.dir);
  const git = path.join(req.dir, '.git');
  if (existsSync(git)) mounts.push('--ro-bind', git, git);
  // Last, after the mount points inside them exist: hiding tmpfs and /dev take no writes.
  for (const p of hidden) if (!SCRATCH.has(p)) mounts.push('--remount-ro', p);
  mounts.push('--remount-ro', '/dev');
  const bwrap = [setting.bwrap!, ...NAMESPACES, ...(network && !egress ? ['--share-net'] : []), ...ctl.bwrapArgs, ...mounts, '--chdir', req.dir, '--', ...argv];
  const inner = ['prlimit', ...rlimits, '--', ...dropPrivileges(uid), ...bwrap];
  // Joins the cgroup before anything runs, so nothing escapes its limits; the fds bwrap reports on and waits on.
  const command = ['/bin/sh', '-c', `${cgroup ? `${cgroup.attachScript}; ` : ''}exec "$@" ${ctl.redirections}`, 'weaver-sandbox', ...inner];
  return { command, scratchMb };
}
/** /etc/resolv.conf often links into /run, which is hidden: keep the target readable when there is network. */
function resolvConf(hidden: string[]): string[] {
  try {
    const target = realpathSync('/etc/resolv.conf');
    return hidden.some((h) => isInside(target, h)) ? ['--ro-bind', target, target] : [];
  } catch {
    return [];
  }
}
