// The bwrap command line: namespaces, the mounts (a minimal root from ./root.ts, the workspace
// writable but its .git read-only), rlimits through prlimit, the uid dropped, the cgroup joined
// first. bwrap's options travel in a file (--args). Network, where a command has it, goes
// through the worker's egress proxy (./egress.ts): no resolver is needed inside.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SandboxLimits } from '../../domain/schema';
import type { Cgroup } from './cgroup';
import type { CacheLease } from './cacheLease';
import { MIB } from './limits';
import { shq, type Control } from './network';
import { rootMounts } from './root';
import type { SandboxRunRequest } from './setting';

export const NAMESPACES = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];

export function dropPrivileges(uid: number | undefined): string[] {
  return uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--'];
}

export const HOME_IN_SANDBOX = '/tmp/home';
/** bwrap's own two processes (outside and as the sandbox's init) and a little room, over the pids cgroup's limit. */
const NPROC_MARGIN = 4;
/** Writable tmpfs mounts of the sandbox, each sized; every hiding tmpfs is remounted read-only. */
export const SCRATCH_DIRS = ['/tmp', '/var/tmp', '/dev/shm'];
/**
 * bwrap reads its options from this fd (--args), so they are not its command line: the sandbox's
 * /proc/1/cmdline (bwrap's init) shows `bwrap --args 9 -- <command>`, not the paths it hides.
 */
const ARGS_FD = 9;
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
  /** The repository's cache, held for this command (./cacheLease.ts). */
  lease?: CacheLease;
  /** Gives the workspace's cgroup back for its next command (./cgroupPool.ts). */
  releaseCgroup?: () => Promise<void>;
}

/** Where an injected set-up fault sends bwrap: a folder that is not there, so it dies before the command. */
export const INJECTED_FAULT_DIR = '/weaver-injected-sandbox-fault';

/** Whether this sandbox is one WEAVER_SANDBOX_FAIL_SETUPS makes fail (counted down). */
function injectedFault(setting: SandboxRunRequest['setting']): boolean {
  if (!setting.failSetups) return false;
  setting.failSetups--;
  return true;
}

/** The command line that runs `argv` in the sandbox, and the size of its writable tmpfs. */
export async function sandboxCommand(req: SandboxRunRequest, { limits, uid, network, egress, ctl, cgroup, argv }: Prepared): Promise<{ command: string[]; scratchMb: number }> {
  const { setting } = req;
  const rlimits = [
    // With a pids cgroup, it refuses at the limit and counts the refusals (pids.events): the
    // rlimit, which counts the uid's processes and only fails the fork, stays a few above it.
    `--nproc=${cgroup?.countsForks ? limits.processes + NPROC_MARGIN : limits.processes}`,
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
  const root = rootMounts({ hide: setting.hide, toolchains: setting.readOnly, scratch: Object.fromEntries(SCRATCH_DIRS.map((d) => [d, scratchMb * MIB])) });
  const mounts = root.mounts;
  mounts.push('--dir', HOME_IN_SANDBOX, '--bind', req.dir, req.dir);
  // The repository's own caches, at their host path (the rest of the workspace root stays out of sight).
  if (req.cacheDir) mounts.push('--bind', req.cacheDir, req.cacheDir);
  const git = path.join(req.dir, '.git');
  if (existsSync(git)) mounts.push('--ro-bind', git, git);
  // Last, after the mount points inside them exist: hiding tmpfs, /dev and the root take no writes.
  for (const p of root.remountRo) mounts.push('--remount-ro', p);
  mounts.push('--remount-ro', '/dev', '--remount-ro', '/');
  const options = [...NAMESPACES, ...(network && !egress ? ['--share-net'] : []), ...ctl.bwrapArgs, ...mounts, '--chdir', injectedFault(setting) ? INJECTED_FAULT_DIR : req.dir];
  const argsFile = path.join(ctl.dir, 'bwrap-args');
  await writeFile(argsFile, options.map((a) => `${a}\0`).join(''));
  const bwrap = [setting.bwrap!, '--args', String(ARGS_FD), '--', ...argv];
  const inner = ['prlimit', ...rlimits, '--', ...dropPrivileges(uid), ...bwrap];
  // Joins the cgroup before anything runs, so nothing escapes its limits; the fds bwrap reports on and waits on.
  const command = ['/bin/sh', '-c', `${cgroup ? `${cgroup.attachScript}; ` : ''}exec "$@" ${ctl.redirections} ${ARGS_FD}<${shq(argsFile)}`, 'weaver-sandbox', ...inner];
  return { command, scratchMb };
}
