// The strategies that call several providers at once: parallel-any, parallel-all and consensus,
// over one fan-out that reserves in provider order, awaits (and so books) every call, and
// cancels the rest once the strategy has what it needs. Sequential routes are strategies.ts.
import { CancellationScope, isCancellation } from '@temporalio/workflow';
import { coolingUntil } from '../domain/cooldown';
import type { ProviderSpec, Selection, Strategy } from '../domain/schema';
import { alternativeOf, isValid, type Call, type Failed } from './providerCall';
import { callWithRetries, track, type RunEnv } from './providerWaits';
import type { StrategyOutcome } from './strategies';

/** parallel-any: first valid answer wins, the rest are cancelled. parallel-all: all, first valid in order (then checked: candidates.ts). */
export async function parallel(primary: ProviderSpec[], env: RunEnv, mode: 'parallel-any' | 'parallel-all'): Promise<StrategyOutcome> {
  let winner: number | undefined;
  const results = await fanOut(primary, env, mode, isValid, (rs, i) => {
    if (winner === undefined && isValid(rs[i])) winner = i;
    return mode === 'parallel-any' && winner !== undefined;
  });
  if (mode === 'parallel-all') winner = results.findIndex(isValid);
  const selection: Selection = { strategy: mode, durationMs: 0 };
  if (winner !== undefined && winner >= 0) {
    const w = results[winner] as Extract<Call, { kind: 'answer' }>;
    selection.chosen = w.spec.id;
    selection.alternatives = results
      .filter((r, i): r is Extract<Call, { kind: 'answer' }> => i !== winner && isValid(r))
      .map(alternativeOf);
    return { kind: 'answer', result: w.result, spec: w.spec, selection, ...(mode === 'parallel-all' ? { all: results } : {}) };
  }
  return noValidAnswer(results, selection);
}

export async function consensus(voters: ProviderSpec[], strategy: Strategy | undefined, env: RunEnv): Promise<StrategyOutcome> {
  const quorum = strategy?.quorum ?? Math.floor(voters.length / 2) + 1;
  const selection: Selection = { strategy: 'consensus', voters: voters.map((v) => v.id), durationMs: 0 };
  const isVote = (r: Call | undefined) => r?.kind === 'answer' && r.result.outcome === 'ok';
  const results = await fanOut(voters, env, 'consensus', isVote, (rs) => largestGroup(rs).size >= quorum);
  const valid = results.filter((r): r is Extract<Call, { kind: 'answer' }> => r?.kind === 'answer' && r.result.outcome === 'ok');
  if (!valid.length) return noValidAnswer(results, selection);
  const group = largestGroup(results);
  selection.voteShare = group.size / voters.length;
  selection.confidence = group.size / valid.length;
  selection.alternatives = valid
    .filter((r) => r.result.changeDigest !== group.digest)
    .map(alternativeOf);
  if (group.size < quorum) {
    return {
      kind: 'no_consensus',
      detail: `largest agreeing group ${group.size} of ${valid.length} valid answers from ${voters.length} voters; quorum is ${quorum}`,
      selection,
    };
  }
  const w = results[group.first] as Extract<Call, { kind: 'answer' }>;
  selection.chosen = w.spec.id;
  return { kind: 'answer', result: w.result, spec: w.spec, selection };
}

/** Groups valid change sets by digest; the largest wins, ties go to the earliest provider. */
function largestGroup(results: (Call | undefined)[]): { digest?: string; size: number; first: number } {
  const groups = new Map<string, { size: number; first: number }>();
  results.forEach((r, i) => {
    if (r?.kind !== 'answer' || r.result.outcome !== 'ok' || !r.result.changeDigest) return;
    const g = groups.get(r.result.changeDigest);
    if (g) g.size += 1;
    else groups.set(r.result.changeDigest, { size: 1, first: i });
  });
  let best: { digest?: string; size: number; first: number } = { size: 0, first: -1 };
  for (const [digest, g] of groups) {
    if (g.size > best.size || (g.size === best.size && g.first < best.first)) best = { digest, ...g };
  }
  return best;
}

export function votersOf(primary: ProviderSpec[], strategy: Strategy | undefined): ProviderSpec[] {
  // N samples of one provider: same spec, distinct ids so events and votes stay apart.
  if (primary.length === 1 && strategy?.samples) {
    return Array.from({ length: strategy.samples }, (_, i) => ({ ...primary[0], id: `${primary[0].id}#${i + 1}` }));
  }
  return primary;
}

function noValidAnswer(results: (Call | undefined)[], selection: Selection): StrategyOutcome {
  const refused = results.find((r) => r?.kind === 'refused');
  const answered = results.find((r) => r?.kind === 'answer');
  if (answered?.kind === 'answer') return { kind: 'answer', result: answered.result, spec: answered.spec, selection };
  const failed = results.filter((r): r is Failed => r?.kind === 'failed');
  if (failed.length) {
    const last = failed[failed.length - 1];
    return { kind: 'failed', family: last.family, message: failed.map((f) => f.message).join(' | '), selection };
  }
  if (refused?.kind === 'refused') return { kind: 'budget', detail: refused.detail, selection };
  return { kind: 'failed', family: 'none', message: 'no provider answered', selection };
}

/**
 * Calls every provider at once inside one cancellation scope; `done` is asked after each
 * result and, once true, cancels the calls still running (the activities see the abort and
 * close their HTTP requests). Reservations are made in provider order before anything runs.
 * A provider out of tries keeps waiting for its next try only while no other gave an answer
 * that `counts` (there is nothing to fall back on yet).
 */
async function fanOut(
  specs: ProviderSpec[],
  env: RunEnv,
  strategy: string,
  counts: (r: Call | undefined) => boolean,
  done: (results: (Call | undefined)[], index: number) => boolean,
): Promise<(Call | undefined)[]> {
  const results: (Call | undefined)[] = specs.map(() => undefined);
  let stopped = false;
  const scope = new CancellationScope();
  const othersAnswered = (i: number) => () => results.some((r, j) => j !== i && counts(r));
  const othersFree = (i: number) => () => specs.some((s, j) => j !== i && coolingUntil(env.cooldowns, s.id, Date.now()) === undefined);
  // allSettled: every call is awaited (and booked) before anything propagates.
  const settled = await scope.run(() =>
    Promise.allSettled(
      specs.map(async (spec, i) => {
        try {
          results[i] = await callWithRetries(track(spec), env, strategy, { othersAnswered: othersAnswered(i), othersFree: othersFree(i) });
          if (!stopped && done(results, i)) {
            stopped = true;
            scope.cancel();
          }
        } catch (err) {
          // Our own early stop is expected; anything else (e.g. the task was cancelled) goes up.
          if (!(stopped && isCancellation(err))) throw err;
        }
      }),
    ),
  );
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return results;
}
