// The approval gate before a push (requireApproval): one decision, checked the same way
// whether it comes as an Update or as a Signal, recorded with who, when and the commit it was
// about; decisions that came too early, twice, malformed, or naming another commit than the
// one awaiting approval are refused and recorded as such.
import { condition, log, setHandler } from '@temporalio/workflow';
import { patched } from './patches';
import type { Phase, TaskStatus } from '../domain/schema';
import { approvePushSignal, approvePushUpdate, type PushDecision } from './messages';

export interface ApprovalRecord extends PushDecision {
  /** Workflow time of the decision (ISO). */
  at: string;
  via: 'update' | 'signal';
}

export interface RefusedApproval {
  at: string;
  via: 'signal';
  reason: string;
  by?: string;
}

/** What the gate needs to know of its task at the moment a decision arrives. */
export interface GateState {
  required: boolean;
  pushes: boolean;
  phase: Phase;
  status?: TaskStatus;
  /** The commit awaiting approval (set once the task has committed). */
  commit?: string;
}

const MAX_REFUSALS_KEPT = 20;

export class ApprovalGate {
  decision?: ApprovalRecord;
  readonly refused: RefusedApproval[] = [];

  constructor(private readonly state: () => GateState) {
    setHandler(approvePushUpdate, (d) => this.accept(d, 'update'), {
      // Rejected before it enters history: the caller gets the reason at once.
      validator: (d) => {
        const why = this.check(d, true);
        if (why) throw new Error(why);
      },
    });
    setHandler(approvePushSignal, (d) => {
      // Runs started before the gate checked signals took the first one as it came.
      if (!patched('approval-signal-checked')) {
        this.decision ??= { ...d, at: new Date().toISOString(), via: 'signal' };
        return;
      }
      // Runs started before a decision could name its commit took one that did as if it did not.
      const why = this.check(d, d?.commit !== undefined && patched('approval-names-commit'));
      if (!why) return void this.accept(d, 'signal');
      log.warn('approvePush signal refused', { reason: why });
      if (this.refused.length < MAX_REFUSALS_KEPT) {
        this.refused.push({ at: new Date().toISOString(), via: 'signal', reason: why, by: typeof d?.by === 'string' ? d.by.slice(0, 100) : undefined });
      }
    });
  }

  /** Why a decision cannot be taken now (undefined: it can). `byCommit`: check the commit it names. */
  check(d: PushDecision | undefined, byCommit: boolean): string | undefined {
    const s = this.state();
    if (!s.required) return 'this task does not require approval (requireApproval is not set)';
    if (!s.pushes) return 'this task does not push (push is not set)';
    if (this.decision) return `already ${this.decision.approved ? 'approved' : 'rejected'}${this.decision.by ? ` by ${this.decision.by}` : ''}`;
    if (s.status) return `the task has already finished (${s.status})`;
    // Only a reviewed commit can be approved: not before the tests pass and it exists.
    if (s.phase !== 'awaiting_approval') return `nothing to approve yet: the task is ${s.phase}`;
    if (typeof d?.approved !== 'boolean') return 'approved must be true or false';
    if (byCommit && d.commit !== undefined) {
      if (typeof d.commit !== 'string' || !/^[0-9a-f]{7,40}$/i.test(d.commit)) return 'commit must be the SHA of the commit awaiting approval (7 to 40 hex digits)';
      if (!s.commit?.startsWith(d.commit.toLowerCase())) return `the decision names commit ${d.commit}, but the commit awaiting approval is ${s.commit ?? '(none)'}`;
    }
    return undefined;
  }

  private accept(d: PushDecision, via: ApprovalRecord['via']): string {
    this.decision = {
      approved: d.approved,
      by: typeof d.by === 'string' ? d.by.slice(0, 100) : undefined,
      comment: typeof d.comment === 'string' ? d.comment.slice(0, 500) : undefined,
      at: new Date().toISOString(),
      via,
      // The commit that was awaiting approval, whether or not the decision named it.
      commit: this.state().commit,
    };
    return d.approved ? 'approved: pushing now' : 'rejected: the commit stays in the workspace, nothing is pushed';
  }

  /** Waits for the decision; undefined when `timeoutMs` passed first (a durable timer). */
  async wait(timeoutMs?: number): Promise<ApprovalRecord | undefined> {
    if (timeoutMs === undefined) await condition(() => this.decision !== undefined);
    // Labelled: the Web UI's timeline names the timer instead of showing a bare duration.
    else await condition(() => this.decision !== undefined, timeoutMs, { summary: `waiting for approval to push (approvePush), up to ${formatWait(timeoutMs)}` });
    return this.decision;
  }
}

function formatWait(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${s} s`;
}
