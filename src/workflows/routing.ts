// The attempt's provider order under `strategy.mode: 'cost'` or `strategy.escalate`: decided by
// domain/routing.ts planRoute (the one place provider order is decided), recorded on the
// attempt and shown in `progress`. Other modes, and runs recorded before routing, keep the
// task's order. Every attempt's prompt passes here: another reason to reorder (quota left, a
// provider's rate limit) belongs in planRoute, asked from here behind a patch of its own.
import { patched } from './patches';
import { planRoute, unpricedNote } from '../domain/routing';
import type { AttemptRecord, ProviderSpec } from '../domain/schema';
import type { StrategyEnv } from './providerCall';
import type { TaskRun } from './task';

/** Marks runs whose sequential providers may be reordered by cost or escalation. */
export const COST_ROUTING = 'cost-routing';

/** Providers in the order this call tries them, and what the strategy records of each it calls. */
export type Route = { providers: ProviderSpec[] } & Pick<StrategyEnv, 'firstReason' | 'onRoute'>;

/** The route of one prompt of an attempt (`promptTokens`: its count, for the cost estimates). */
export function routeFor(t: TaskRun, record: AttemptRecord, promptTokens: number): Route {
  const s = t.input.strategy;
  const mode = s?.mode === 'cost' ? 'cost' : (s?.mode ?? 'sequential') === 'sequential' && s?.escalate ? 'sequential' : undefined;
  if (!mode || !patched(COST_ROUTING)) return { providers: t.providers };
  const shadow = new Set(s?.shadow ?? []);
  // Every decided attempt that did not commit failed; a planning round is not one.
  const failedAttempts = t.attempts.filter((a) => a.decision.action === 'retry').length;
  const plan = planRoute(
    t.providers.filter((p) => !shadow.has(p.id)),
    { mode, promptTokens, escalateAfter: s?.escalate?.after, failedAttempts },
  );
  for (const p of plan.unpriced) t.warn(unpricedNote(p));
  // A new prompt of the same attempt (files the model asked for) re-plans; the calls made stay listed.
  const tried = record.routing?.tried ?? [];
  record.routing = { ...plan.record, tried };
  return {
    providers: [...plan.providers, ...t.providers.filter((p) => shadow.has(p.id))],
    firstReason: plan.firstReason,
    onRoute: (spec, reason) => {
      const last = tried[tried.length - 1];
      // A provider waited for and called again for the same reason is one step of the route.
      if (last?.provider === spec.id && last.reason === reason) return;
      const step = { provider: spec.id, model: spec.model, reason };
      tried.push(step);
      t.route = { ...step, attempt: t.attempt };
    },
  };
}
