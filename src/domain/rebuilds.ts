// How many times a task may lose its workspace (its worker's host gone, its disk wiped) within
// one attempt. A loss after the answer is paid costs a re-clone and a re-run, never money: while
// each rebuilt workspace gets the answer applied again before it is lost, nothing bounds the
// rebuilds. Losses in a row where no rebuilt workspace got that far (every host dies before the
// step runs at all) stop the task, saying so.

/** Losses in a row without progress after which the task fails. */
export const MAX_LOSSES_WITHOUT_PROGRESS = 3;

export interface Losses {
  /** Workspaces lost in this attempt loop. */
  total: number;
  /** Losses in a row where the lost workspace had not got the answer applied. */
  withoutProgress: number;
}

/** The count after one more loss; `progressed`: the lost workspace had the answer applied on it. */
export function countLoss(l: Losses, progressed: boolean): Losses {
  return { total: l.total + 1, withoutProgress: progressed ? 0 : l.withoutProgress + 1 };
}

/** Why the task stops after this many losses, or undefined while it keeps rebuilding. */
export function givenUp(l: Losses, lastError: string, attempt: number): string | undefined {
  if (l.withoutProgress < MAX_LOSSES_WITHOUT_PROGRESS) return undefined;
  return (
    `the workspace was lost ${l.withoutProgress} times in a row before the answer could be applied on a rebuilt one ` +
    `(${l.total} lost in attempt ${attempt}; last: ${lastError})`
  );
}
