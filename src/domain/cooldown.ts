// Per-provider cooldown: after K consecutive failed calls a provider is skipped for T — in
// favour of another provider. It never cuts a wait short: with no other provider to ask (one
// provider, or all failing or cooling), strategies keep retrying it on backoff or Retry-After
// up to `strategy.retry.maxWaitSec` (workflows/strategies.ts). Infrastructure failures (a
// worker stopped or lost mid-call, an answer the store could not keep) are not counted.
// Plain data so a parent can hand its state down to its children.
export interface CooldownSettings {
  failures: number;
  seconds: number;
}

export type CooldownState = Record<string, { consecutive: number; until?: number }>;

export const DEFAULT_COOLDOWN: CooldownSettings = { failures: 3, seconds: 300 };

export function noteFailure(state: CooldownState, id: string, now: number, s: CooldownSettings): void {
  const p = (state[id] ??= { consecutive: 0 });
  p.consecutive += 1;
  if (p.consecutive >= s.failures) {
    p.until = now + s.seconds * 1000;
    p.consecutive = 0;
  }
}

export function noteSuccess(state: CooldownState, id: string): void {
  delete state[id];
}

/** When the provider may be called again, or undefined if it may be called now. */
export function coolingUntil(state: CooldownState, id: string, now: number): number | undefined {
  const until = state[id]?.until;
  return until !== undefined && until > now ? until : undefined;
}
