// Finding the sandbox at worker start: a working bwrap (WEAVER_SANDBOX=required, auto or off),
// the uids a root worker hands out, a cgroup it can make, and whether the worker can put its
// egress proxy in a command's own network namespace (nsenter, as root).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { egressSetting, sandboxEnvAllowlist, sandboxMaxLimits, sandboxUids, type SandboxMode } from '../../config';
import type { SandboxPolicy } from '../../domain/schema';
import { dropPrivileges, NAMESPACES } from './argv';
import { detectCgroup } from './cgroup';
import { attachEgress } from './egress';
import { Control } from './network';
import { NETWORK_ORDER } from './policy';
import type { SandboxSetting } from './setting';
import { isInside } from '../paths';
import { defaultToolchains, toolchainEnv, untraversableAbove } from './root';
import { findOnPath, resolveToolchains } from './toolchains';
import { uidLockDir } from './uids';
import { sleep } from '../processGroups';
import { execFileVia } from '../spawner';

// Through the spawn helper: the worker itself never forks.
const run = execFileVia;

export interface DetectOptions {
  mode: SandboxMode;
  /** Worker paths to hide: workspace root, artifact store, the worker's own directory, its registry and credentials files. */
  hide: string[];
  /** The toolchains lent read-only (WEAVER_SANDBOX_TOOLCHAINS); absent: found on PATH and in the usual places (./root.ts). */
  toolchains?: string[];
  /** More host paths lent read-only (WEAVER_SANDBOX_RO_PATHS). */
  readOnly?: string[];
  /** Where workspaces are made: a root worker gives o+x only from a workspace up to here (./uids.ts). */
  workspaceRoot?: string;
  /**
   * Env: WEAVER_BWRAP, WEAVER_NSENTER, WEAVER_SANDBOX_NETWORK, WEAVER_SANDBOX_UID(_RANGE),
   * WEAVER_SANDBOX_UID_LOCKS, WEAVER_SANDBOX_MAX_LIMITS, WEAVER_SANDBOX_ENV, WEAVER_EGRESS_ALLOW,
   * WEAVER_DEV_EGRESS_ADDRESSES, TEMPORAL_ADDRESS, WEAVER_DEV, WEAVER_CGROUP_PARENT, PATH (and the
   * toolchain homes, for the default toolchains).
   */
  env?: NodeJS.ProcessEnv;
}

export const INSTALL_HINT =
  'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap; Alpine: apk add bubblewrap)';
export const NSENTER_INSTALL_HINT =
  'install nsenter (util-linux; Debian/Ubuntu: apt-get install util-linux; Fedora/RHEL: dnf install util-linux; Alpine: apk add util-linux-misc)';

/**
 * Finds and tries bwrap. `required` without a working one throws, naming the fix; `auto` falls
 * back to no sandbox with a warning; `off` never sandboxes.
 */
export async function detectSandbox(opts: DetectOptions): Promise<SandboxSetting> {
  const env = opts.env ?? process.env;
  const maxNetwork = (env.WEAVER_SANDBOX_NETWORK || 'setup') as SandboxPolicy['network'];
  if (!NETWORK_ORDER.includes(maxNetwork)) throw new Error(`WEAVER_SANDBOX_NETWORK must be one of ${NETWORK_ORDER.join(', ')}, got "${maxNetwork}"`);
  const hide = opts.hide.map((p) => path.resolve(p));
  const lent = [...(opts.toolchains ?? defaultToolchains(env, hide)), ...(opts.readOnly ?? [])].map((p) => path.resolve(p));
  const readOnly = [...new Set(lent)].filter((p) => existsSync(p) && !hide.some((h) => isInside(p, h)));
  const base = {
    maxNetwork,
    mode: opts.mode,
    hide,
    readOnly,
    toolchainEnv: toolchainEnv(env, readOnly),
    toolchains: resolveToolchains(env),
    ...(opts.workspaceRoot ? { workspaceRoot: path.resolve(opts.workspaceRoot) } : {}),
    maxLimits: sandboxMaxLimits(env),
    envAllow: sandboxEnvAllowlist(env),
    // Checked even when no command gets network: a bad value stops the start, naming it.
    egress: egressSetting(env),
    ...failSetups(env),
  };
  const unconfined = (why: string): SandboxSetting => ({
    ...base,
    kind: 'none',
    warning: `commands ran without a sandbox (${why}): repository code could read and change anything the worker can`,
  });
  if (opts.mode === 'off') return unconfined('WEAVER_SANDBOX=off');
  const problem = (why: string, fix = `${INSTALL_HINT}; in a container, run the worker with user namespaces allowed (see README "Sandbox")`): SandboxSetting => {
    if (opts.mode === 'required') {
      throw new Error(`WEAVER_SANDBOX=required, but ${why}. Fix: ${fix}. On a development machine WEAVER_SANDBOX=auto runs unconfined instead.`);
    }
    return unconfined(why);
  };
  if (process.platform !== 'linux') return problem(`bubblewrap needs Linux (this is ${process.platform})`);
  const bwrap = env.WEAVER_BWRAP || findOnPath('bwrap', env.PATH);
  if (!bwrap || !existsSync(bwrap)) return problem(`bwrap is not installed${env.WEAVER_BWRAP ? ` (WEAVER_BWRAP=${env.WEAVER_BWRAP} does not exist)` : ''}`);
  const uids = process.getuid?.() === 0 ? sandboxUids(env) : undefined;
  const runAs = uids?.first;
  let version: string;
  try {
    version = (await run(bwrap, ['--version'])).stdout.trim();
    const probe = [...dropPrivileges(runAs), bwrap, ...NAMESPACES, '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true'];
    await probeTries(() => run(probe[0], probe.slice(1), { timeout: 10_000 }));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return problem(`bwrap cannot make a sandbox here: ${(e.stderr || e.message).trim().split('\n').pop()}`);
  }
  // The sandbox's uid (its bwrap binds them) must reach the workspaces and the toolchains: no
  // directory above them is opened up for it (./uids.ts opens only those under the workspace root).
  let toolchainNote: string | undefined;
  if (runAs !== undefined) {
    const closed = base.workspaceRoot && untraversableAbove(base.workspaceRoot);
    if (closed) {
      return problem(
        `the workspace root ${base.workspaceRoot} is out of reach of the sandbox's uids: ${closed} above it lacks o+x (search permission for others)`,
        `chmod o+x ${closed} (never read: nobody can list it), or set WEAVER_WORKSPACE_ROOT under a directory others may pass through (e.g. /srv/weaver)`,
      );
    }
    const unreachable = base.readOnly.filter((p) => untraversableAbove(p));
    if (unreachable.length) {
      base.readOnly = base.readOnly.filter((p) => !unreachable.includes(p));
      base.toolchainEnv = toolchainEnv(env, base.readOnly);
      toolchainNote = `toolchains not lent (a directory above them lacks o+x for the sandbox's uids): ${unreachable.join(', ')}`;
    }
  }
  const setting: SandboxSetting = { ...base, ...(toolchainNote ? { toolchainNote } : {}), kind: 'bubblewrap', bwrap, version, runAs, uids, uidLocks: uids ? uidLockDir(env) : undefined, cgroup: await detectCgroup(env) };
  if (maxNetwork === 'none') return setting;
  // Without the egress proxy, network is the worker's own: 127.0.0.1 (Temporal), the LAN and all.
  const nsenter = env.WEAVER_NSENTER || findOnPath('nsenter', env.PATH);
  const installed = !!nsenter && existsSync(nsenter);
  const why = !installed
    ? `nsenter is not installed${env.WEAVER_NSENTER ? ` (WEAVER_NSENTER=${env.WEAVER_NSENTER} does not exist)` : ''}`
    : runAs === undefined
      ? 'the worker is not root (it joins each sandbox\'s network namespace from outside to put its egress proxy there)'
      : await probeTries(async () => {
          const failed = await probeEgress(bwrap, runAs, nsenter);
          if (failed) throw new Error(failed);
        }).then(
          () => undefined,
          (err: Error) => err.message,
        );
  if (!why) return { ...setting, nsenter };
  if (opts.mode === 'required') {
    const fix = !installed ? NSENTER_INSTALL_HINT : runAs === undefined ? 'run the worker as root' : 'see README "The sandbox"';
    throw new Error(
      `WEAVER_SANDBOX=required, but ${why}: a command given network (WEAVER_SANDBOX_NETWORK=${maxNetwork}) would share the worker's, ` +
        `127.0.0.1 included, without the egress allowlist. Fix: ${fix}; or WEAVER_SANDBOX_NETWORK=none (no command gets network).`,
    );
  }
  return { ...setting, networkWarning: `commands given network share the worker's own (${why}): they can reach services on its 127.0.0.1 and its network, with no egress allowlist` };
}

/** Whether the worker can put a listener in a bwrap sandbox's network namespace here; the reason when not. */
async function probeEgress(bwrap: string, runAs: number | undefined, nsenter: string): Promise<string | undefined> {
  const ctl = await Control.create(os.tmpdir(), true);
  const net = attachEgress(ctl, nsenter, undefined, () => ctl.killSandbox());
  try {
    // The listener (127.0.0.1:3128, 0C38 in hex) must be there inside, or the probe fails.
    const argv = [...dropPrivileges(runAs), bwrap, ...NAMESPACES, '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', ...ctl.bwrapArgs, '--', '/bin/sh', '-c', 'grep -q "0100007F:0C38 " /proc/net/tcp'];
    const failed = await run('/bin/sh', ['-c', `exec "$@" ${ctl.redirections}`, 'weaver-probe', ...argv], { timeout: 20_000 }).then(
      () => undefined,
      (err: { stderr?: string; message: string }) => (err.stderr || err.message).trim().split('\n').pop() || 'no egress listener in the sandbox',
    );
    // After the sandbox is done: it waited for the listener, or was killed when that failed.
    const error = await net.stop();
    return error ? `the egress proxy cannot be attached here: ${error}` : failed && `bwrap with the egress listener failed: ${failed}`;
  } finally {
    await net.stop();
    await ctl.close();
  }
}

/** WEAVER_SANDBOX_FAIL_SETUPS: a whole number of sandboxes to fail in set-up (fault injection). */
function failSetups(env: NodeJS.ProcessEnv): { failSetups?: number } {
  const raw = env.WEAVER_SANDBOX_FAIL_SETUPS?.trim();
  if (!raw) return {};
  if (!/^\d+$/.test(raw)) throw new Error(`WEAVER_SANDBOX_FAIL_SETUPS must be a whole number (sandboxes to fail in set-up, for fault tests), got "${raw}"`);
  return { failSetups: Number(raw) };
}

/** Probes tried before a start is refused: one failed sandbox start (a loaded host) is no reason to stop a worker. */
export const PROBE_TRIES = 3;

/** `probe`, tried up to PROBE_TRIES times a second apart; the last failure if none passed. */
async function probeTries<T>(probe: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await probe();
    } catch (err) {
      if (n >= PROBE_TRIES) throw err;
      const e = err as { stderr?: string; message: string };
      console.warn(`weaver worker: sandbox probe ${n}/${PROBE_TRIES} failed (${(e.stderr || e.message).trim().split('\n').pop()}); trying again`);
      await sleep(1000);
    }
  }
}
