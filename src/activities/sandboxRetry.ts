// A sandbox that fails before its command runs (bwrap, its network or its cgroup set-up; told
// apart by bwrap's status, ./sandbox.ts) is the worker's trouble, not the command's outcome: the
// command is run again here a few times, then the activity fails retryably (`SandboxFailed`),
// so Temporal tries it again — never a failed setup, check or attempt.
import { ApplicationFailure, log } from '@temporalio/activity';
import { sleep } from './processGroups';

/** Runs of one command whose sandbox failed before it, in one activity attempt. */
export const SANDBOX_TRIES = 3;

/** `once` until its sandbox set itself up (at most SANDBOX_TRIES times); `note` says each retry in the heartbeat. */
export async function withSandboxRetries<T extends { sandboxFailed?: string; log: { ref: string } }>(once: () => Promise<T>, note: (details: string) => void): Promise<T> {
  for (let n = 1; ; n++) {
    const out = await once();
    if (!out.sandboxFailed) return out;
    if (n >= SANDBOX_TRIES) {
      throw ApplicationFailure.create({ type: 'SandboxFailed', nonRetryable: false, message: `${out.sandboxFailed}, ${n} times (log ${out.log.ref})` });
    }
    const why = `sandbox set-up failed before the command (try ${n}/${SANDBOX_TRIES}): ${out.sandboxFailed}; trying again`;
    log.warn(why);
    note(why);
    await sleep(500 * n);
  }
}
