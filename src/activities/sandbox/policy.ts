// What a task's sandbox policy becomes on this worker: its limits lowered to the worker's caps,
// the network a command of each phase gets, and the env it sees (WEAVER_SANDBOX_ENV allowlist,
// never a secret); what was changed, said once per workspace.
import { SANDBOX_LIMIT_CAPS } from '../../config';
import { narrowEgress } from '../../domain/egress';
import { SandboxLimitsSchema, type SandboxLimits, type SandboxPolicy } from '../../domain/schema';
import type { SandboxRunRequest, SandboxSetting } from './setting';
import { cacheEnv } from './toolchains';

export const NETWORK_ORDER: SandboxPolicy['network'][] = ['none', 'setup', 'all'];

/** The task's limits, each lowered to the worker's cap; which were lowered, for the notes. */
export function effectiveLimits(setting: SandboxSetting, asked: Partial<SandboxLimits>): { limits: SandboxLimits; lowered: string[] } {
  const caps = setting.maxLimits ?? SANDBOX_LIMIT_CAPS;
  // A policy recorded before a limit existed (diskMb) gets its default.
  const want: SandboxLimits = { ...SandboxLimitsSchema.parse({}), ...asked };
  const limits = { ...want };
  const lowered: string[] = [];
  for (const k of Object.keys(want) as (keyof SandboxLimits)[]) {
    if (want[k] > caps[k]) {
      limits[k] = caps[k];
      lowered.push(`sandbox.limits.${k} ${want[k]} lowered to ${caps[k]}, the most this worker allows (WEAVER_SANDBOX_MAX_LIMITS)`);
    }
  }
  return { limits, lowered };
}

/** The network a command of `phase` gets: at most what the worker allows (asking for `all` does not lift the cap). */
export function networkFor(setting: SandboxSetting, policy: SandboxPolicy, phase: 'setup' | 'test'): boolean {
  const allowed = NETWORK_ORDER[Math.min(NETWORK_ORDER.indexOf(policy.network), NETWORK_ORDER.indexOf(setting.maxNetwork ?? 'setup'))];
  return allowed === 'all' || (allowed === 'setup' && phase === 'setup');
}

/** The hosts a command of this task may reach: the worker's allowlist, narrowed by the task's `sandbox.egress` (never widened). */
export function egressFor(setting: SandboxSetting, policy: SandboxPolicy): { allow: string[]; dropped: string[] } {
  return narrowEgress(setting.egress?.allow ?? [], policy.egress);
}

/** `NODE_*` → /^NODE_.*$/ (names are letters, digits and `_`: nothing else to escape). */
const globRe = (glob: string) => new RegExp(`^${glob.replace(/\*/g, '.*').replace(/\?/g, '.')}$`);

/** Names of the policy's `sandbox.env` this worker does not let in (WEAVER_SANDBOX_ENV). */
export function envRefused(setting: SandboxSetting, policy: SandboxPolicy): string[] {
  if (setting.envAllow === undefined) return [];
  const allow = setting.envAllow.map(globRe);
  return policy.env.filter((name) => !allow.some((re) => re.test(name)));
}

/**
 * What the worker changes in a task's policy, said once per workspace (WorkspaceHandle.sandboxNotes):
 * limits lowered to its caps, `sandbox.env` names it does not allow, `sandbox.egress` hosts
 * outside its allowlist, network shared with it.
 */
export function sandboxNotes(setting: SandboxSetting, policy: SandboxPolicy): string[] {
  const notes: string[] = [];
  if (setting.kind === 'bubblewrap') notes.push(...effectiveLimits(setting, policy.limits).lowered);
  const refused = envRefused(setting, policy);
  if (refused.length) notes.push(`sandbox.env: ${refused.join(', ')} not passed: this worker does not allow ${refused.length > 1 ? 'them' : 'it'} (WEAVER_SANDBOX_ENV)`);
  const { dropped } = egressFor(setting, policy);
  if (setting.kind === 'bubblewrap' && setting.egress && dropped.length) {
    notes.push(`sandbox.egress: ${dropped.join(', ')} not allowed: this worker's egress allowlist does not cover ${dropped.length > 1 ? 'them' : 'it'} (WEAVER_EGRESS_ALLOW)`);
  }
  if (setting.kind === 'bubblewrap' && setting.networkWarning && (networkFor(setting, policy, 'setup') || networkFor(setting, policy, 'test'))) {
    notes.push(setting.networkWarning);
  }
  return notes;
}

/** PATH, locale and time zone from the worker, a private HOME, CI=true, and what the policy names and the worker allows — never a secret. */
export function sandboxEnv(req: SandboxRunRequest, home: string): Record<string, string> {
  const out: Record<string, string> = {};
  const never = new Set([...(req.secretEnvNames ?? []), ...envRefused(req.setting, req.policy)]);
  for (const [name, value] of Object.entries(req.env)) {
    if (value === undefined || never.has(name)) continue;
    if (/^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM)$/.test(name) || req.policy.env.includes(name)) out[name] = value;
  }
  // Only where the worker's env does not already say (and only what a lent toolchain needs).
  for (const [name, value] of Object.entries(req.setting.toolchainEnv ?? {})) out[name] ??= value;
  // The repository's caches, unless the task set a variable itself (GOCACHE=off, its own MAVEN_OPTS).
  if (req.cacheDir) for (const [name, value] of Object.entries(cacheEnv(req.cacheDir))) out[name] ??= value;
  out.HOME = home;
  out.TMPDIR = req.setting.kind === 'bubblewrap' ? '/tmp' : home;
  out.CI = 'true';
  return out;
}
