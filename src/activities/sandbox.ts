// Confinement for commands that run repository code (design rule 7): bubblewrap on Linux.
//
// Every setup and test command runs as
//   [cgroup attach] prlimit <rlimits> [setpriv <uid>] bwrap <namespaces, mounts> -- <command>
// - bwrap: a minimal read-only root (system directories, part of /etc, the toolchains the
//   worker lends), the workspace writable but its `.git` read-only, a private /tmp and $HOME;
//   what the worker owns (registry, credentials, checkout, store, other workspaces) hidden
//   even inside a lent tree; new user, PID, IPC, UTS and (unless allowed) network namespaces; a fresh /proc;
//   `--die-with-parent`, so killing bwrap (timeout, cancel, the worker dying) kills everything
//   inside, whatever it did with setsid.
// - a root worker runs each workspace's sandbox as its own unprivileged uid (WEAVER_SANDBOX_UID_RANGE):
//   a sandbox mapped to root could still read root's files and write /proc/sys, and one uid for
//   all would share RLIMIT_NPROC (one task's fork bomb would stop another's forks).
// - limits: each at most the worker's cap (WEAVER_SANDBOX_MAX_LIMITS); rlimits always (processes,
//   open files, file size, CPU time; memory as RLIMIT_DATA), and a cgroup for memory and processes
//   when the worker can make one (v1 as root, or a delegated v2 parent named by
//   WEAVER_CGROUP_PARENT), which also tells an OOM kill apart: one per workspace, reused by its
//   commands one after the other. Disk: every writable tmpfs is sized, the other hiding ones
//   read-only, and the workspace's growth is watched (`du`, about every second, from the last
//   command's end measurement when nothing unknown was written since); over `diskMb`, the
//   sandbox is killed.
// - start-up cost: a workspace is handed to its uid whole once; later commands hand over only
//   what the worker wrote since (./sandbox/workspaceState.ts).
// - network for a command that may have it: only through the worker's egress proxy. The
//   command's network namespace has only a loopback; bwrap reports the sandbox's pid
//   (--info-fd) and waits (--block-fd) until the worker has put its proxy's listener there
//   (127.0.0.1:3128, HTTP(S)_PROXY). The proxy lets through the hosts of the allowlist, never a
//   private, loopback or link-local address nor Temporal, and reports what it refused
//   (sandbox/egress.ts). The same pid lets the disk watch kill the sandbox.
// - resources: `finish` says what the command's whole tree used (wall, CPU, peak memory): from
//   the cgroup where it counts them (v1 cpuacct + memory, v2 cpu.stat + memory.peak), else from
//   sampling /proc (../processUsage.ts; runCommand does it when `sampleUsageMs` is set).
//
// The entry point: `sandboxed` wraps one command. Its parts are in ./sandbox/: detect.ts (finding
// bwrap, nsenter, cgroups at start), setting.ts (the setting and the request, in words),
// policy.ts (limits, network and env of a task's policy), argv.ts (the bwrap command line),
// root.ts (the minimal root, the toolchains, what is hidden),
// limits.ts (the disk watch, which limit was hit), cgroup.ts and cgroupPool.ts (a cgroup per
// workspace), workspaceState.ts (what is known between commands), network.ts (the control files),
// egress.ts (the egress proxy), uids.ts (a uid per workspace, a lock file per uid),
// toolchains.ts (the worker's own toolchains, per-repository caches), cacheLease.ts (one uid at a
// time in a repository's cache).
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { HOME_IN_SANDBOX, SCRATCH_DIRS, sandboxCommand, type Prepared } from './sandbox/argv';
import { cgroupFor, releaseCgroup } from './sandbox/cgroupPool';
import { atLimitQuery, DiskWatch, fileAtLimit, limitHit, MIB, size } from './sandbox/limits';
import { attachEgress, EgressProxy, proxyEnv } from './sandbox/egress';
import { Control } from './sandbox/network';
import { effectiveLimits, egressFor, networkFor, sandboxEnv } from './sandbox/policy';
import type { ResourceUsage } from '../domain/schema';
import type { RunCommandResult } from './commands';
import type { SandboxedCommand, SandboxRunRequest, SandboxSetting } from './sandbox/setting';
import { handOver, releaseUid, uidFor } from './sandbox/uids';
import { leaseCache } from './sandbox/cacheLease';
import { diskBaseline, forgetWorkspace, handOverWorkspace, recordDiskUse } from './sandbox/workspaceState';

export { detectSandbox, INSTALL_HINT, NSENTER_INSTALL_HINT, type DetectOptions } from './sandbox/detect';
export { effectiveLimits, sandboxNotes } from './sandbox/policy';
export { describeSandbox, enforcementOf, sandboxDetails, type CgroupSupport, type SandboxedCommand, type SandboxRunRequest, type SandboxSetting } from './sandbox/setting';
export { releaseUid, uidFor } from './sandbox/uids';
export { keptCgroup, sweepCgroups } from './sandbox/cgroupPool';
export { forgetWorkspace, noteWritten, startCounts, trackWrites } from './sandbox/workspaceState';

/** A released workspace's sandbox state goes: its uid back to the host's pool, its cgroup removed, what was known of it forgotten. */
export async function releaseSandbox(setting: SandboxSetting, dir: string): Promise<void> {
  releaseUid(setting, dir);
  forgetWorkspace(dir);
  await releaseCgroup(dir);
}
export { describeToolchains, repoCacheDir } from './sandbox/toolchains';

/** The command wrapped in the sandbox the worker has, with its env and its limits. */
export async function sandboxed(req: SandboxRunRequest): Promise<SandboxedCommand> {
  const { setting, policy } = req;
  const { limits } = effectiveLimits(setting, policy.limits);
  const argv = typeof req.command === 'string' ? ['/bin/sh', '-c', req.command] : req.command;
  const boxed = setting.kind === 'bubblewrap';
  if (!boxed) await mkdir(req.scratchHome, { recursive: true });
  const uid = boxed ? uidFor(setting, req.dir) : undefined;
  // A root worker's uid takes the repository's cache only when no other uid's command is using it.
  // Unboxed commands lease it too (as the worker's uid): gc's size cap never evicts a leased cache.
  const lease = req.cacheDir ? leaseCache(req.cacheDir, uid ?? process.getuid?.() ?? 0) : undefined;
  if (uid !== undefined && req.cacheDir && !lease) req = { ...req, cacheDir: path.join(path.dirname(req.dir), '.toolchain-cache') };
  if (req.cacheDir) await mkdir(req.cacheDir, { recursive: true });
  const env = sandboxEnv(req, boxed ? HOME_IN_SANDBOX : req.scratchHome);
  // No sandbox, no limits: only the environment is kept clean (and the process tree sampled).
  if (!boxed) {
    // The cache's lease ends with the command (finish, or dispose when it never ran).
    const dispose = async () => lease?.release();
    const finish = async (r: RunCommandResult) => {
      await dispose();
      return { resources: resourcesOf(r) };
    };
    return { command: argv, env, sampleUsageMs: SAMPLE_MS, finish, dispose };
  }

  try {
    if (uid !== undefined) await handOverWorkspace(req.dir, uid, setting.workspaceRoot);
    // The cache goes to this workspace's uid too, unless this uid was its last user (only what another task's uid left).
    if (uid !== undefined && req.cacheDir && (lease?.lastUid !== uid || (await stat(req.cacheDir)).uid !== uid)) await handOver(req.cacheDir, uid, setting.workspaceRoot);
  } catch (err) {
    lease?.release();
    throw err;
  }
  const network = networkFor(setting, policy, req.phase);
  const egress = network && !!setting.nsenter && !!setting.egress;
  // Whatever the task's sandbox.env said: its HTTP(S) goes to the proxy, and nothing bypasses it.
  if (egress) Object.assign(env, proxyEnv());
  // Beside the workspace, so under the hidden workspace root: the sandbox never sees it.
  const ctl = await Control.create(path.dirname(req.dir), egress).catch((err: unknown) => {
    lease?.release();
    throw err;
  });
  // The workspace's own cgroup, reused from its last command; none when it cannot be made (rlimits only).
  const held = setting.cgroup ? await cgroupFor(setting.cgroup, req.dir, limits).catch(() => undefined) : undefined;
  try {
    return await start(req, { limits, uid, network, egress, ctl, cgroup: held?.cgroup, argv, env, lease, releaseCgroup: held?.done });
  } catch (err) {
    lease?.release();
    await ctl.close();
    await held?.done();
    throw err;
  }
}

async function start(req: SandboxRunRequest, prepared: Prepared): Promise<SandboxedCommand> {
  const { limits, network, egress, ctl, cgroup, env } = prepared;
  const { command, scratchMb } = await sandboxCommand(req, prepared);

  const kill = async () => {
    await ctl.killSandbox();
    await cgroup?.killAll();
  };
  const proxy = egress ? new EgressProxy(egressFor(req.setting, req.policy).allow, req.setting.egress!) : undefined;
  const net = egress ? attachEgress(ctl, req.setting.nsenter!, proxy, kill) : undefined;
  const startedAt = Date.now();
  // The repository's cache is written by the command too: its growth counts against the same limit.
  // The last command's end measurement, when nothing unknown was written since: no walk at the start.
  const cache = req.cacheDir ? { dir: req.cacheDir, ino: (await stat(req.cacheDir)).ino, lease: prepared.lease } : undefined;
  const disk = await DiskWatch.start([req.dir, ...(cache ? [cache.dir] : [])], limits.diskMb, kill, { exclude: [path.join(req.dir, '.git')], base: diskBaseline(req.dir, cache) });
  disk.watchScratch(async () => (await ctl.info())?.pid, SCRATCH_DIRS);
  let done = false;
  let recorded = false;
  const dispose = async () => {
    if (done) return;
    done = true;
    disk.stop();
    // Never measured at the end (the command did not run): nothing to start the next one from.
    if (!recorded) recordDiskUse(req.dir, undefined, cache);
    prepared.lease?.release();
    await net?.stop();
    await ctl.close();
    await prepared.releaseCgroup?.();
  };
  return {
    command,
    env,
    dispose,
    ...(cgroup?.measuresAll ? {} : { sampleUsageMs: SAMPLE_MS }),
    finish: async (r) => {
      disk.stop();
      // The walk that measures a small tree also looks for a file stopped at the size limit.
      const grown = disk.killedAt ?? (await disk.measure(atLimitQuery(req.dir, limits.fileSizeMb * MIB, startedAt)));
      // Before the cache is given back: whether another command used it meanwhile is asked under its lease.
      recordDiskUse(req.dir, disk.killedAt === undefined ? disk.measured : undefined, cache);
      recorded = true;
      const netError = await net?.stop();
      const hit =
        disk.killedAt !== undefined
          ? `killed: disk limit ${size(limits.diskMb)} (the workspace grew by ${size(Math.ceil(grown / MIB))})`
          : grown > limits.diskMb * MIB
            ? `disk limit ${size(limits.diskMb)} exceeded: the workspace grew by ${size(Math.ceil(grown / MIB))}`
            : netError
              ? `killed: the sandbox's egress proxy could not be set up (${netError})`
              : await limitHit(r, limits, cgroup, network, scratchMb, { scratchFull: disk.scratchFull, fileAtLimit: disk.atLimit !== undefined ? (disk.atLimit ?? undefined) : await fileAtLimit(req.dir, limits.fileSizeMb * MIB, startedAt) });
      // bwrap, its network or its cgroup failed before the command ran: the sandbox's failure
      // (an infrastructure error, retried), never the command's outcome. A timeout or a cancel
      // kills bwrap itself; the disk watch kills only a command that ran.
      // A limit the command's tree hit (the OOM killer ending bwrap too) stays the command's.
      // bwrap's own "execvp <program>: …" is the command's program missing or not runnable: the
      // sandbox was set up, so that is the command's outcome (a check's missing tool), not ours.
      const execFailed = !netError && /^bwrap: execvp /m.test(r.tail);
      const sandboxFailed =
        !r.timedOut && !r.cancelled && disk.killedAt === undefined && !execFailed && (!!netError || !hit) && !(await ctl.commandRan()) ? setupFailure(r, netError) : undefined;
      // Before dispose: the cgroup's counters are the next command's baseline after it.
      const resources = resourcesOf(r, cgroup && { ...(await cgroup.usage()), by: cgroup.kind });
      await dispose();
      const refused = proxy?.refused() ?? [];
      if (sandboxFailed) return { sandboxFailed, resources };
      return { ...(hit ? { limit: hit } : {}), resources, ...(refused.length ? { egressRefused: refused } : {}) };
    },
  };
}

/** What failed before the command: the egress set-up's error, else bwrap's (or prlimit's, setpriv's) last words. */
function setupFailure(r: RunCommandResult, netError: string | undefined): string {
  if (netError) return `the egress proxy could not be set up (${netError})`;
  const said = r.tail.trim().split('\n').filter((l) => /^(bwrap|prlimit|setpriv|\/bin\/sh):/.test(l)).pop() ?? r.tail.trim().split('\n').pop() ?? '';
  return `the sandbox failed before the command started (exit ${r.exitCode ?? r.signal}${said ? `: ${said.slice(0, 300)}` : ''})`;
}

/** How often a command's process tree is sampled from /proc when no cgroup counts for it. */
const SAMPLE_MS = 100;

/** The cgroup's figures where it has them, the /proc samples' for the rest; the wall time runCommand took. */
function resourcesOf(r: RunCommandResult, counted?: { cpuMs?: number; peakMemoryMb?: number; by: string }): ResourceUsage {
  const cpu = counted?.cpuMs !== undefined ? { cpuMs: counted.cpuMs, by: counted.by } : r.usage && { cpuMs: r.usage.cpuMs, by: '/proc sampling' };
  const mem = counted?.peakMemoryMb !== undefined ? { peakMemoryMb: counted.peakMemoryMb, by: counted.by } : r.usage && { peakMemoryMb: r.usage.peakMemoryMb, by: '/proc sampling' };
  const by = [...new Set([cpu?.by, mem?.by].filter(Boolean))];
  return {
    wallMs: r.durationMs,
    ...(cpu ? { cpuMs: cpu.cpuMs } : {}),
    ...(mem ? { peakMemoryMb: mem.peakMemoryMb } : {}),
    // Mixed (a v1 cgroup without cpuacct): which figure came from where.
    measuredBy: by.length === 2 ? `${cpu!.by} (CPU), ${mem!.by} (memory)` : (by[0] ?? 'wall clock only'),
  };
}
