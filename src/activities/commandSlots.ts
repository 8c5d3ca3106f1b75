// A per-worker limit on setup and test commands running at once (WEAVER_MAX_COMMANDS).

/**
 * At most `limit` commands at once (WEAVER_MAX_COMMANDS): suites beyond that wait their turn
 * instead of starving each other of CPU, and say so in their heartbeat.
 */
export class CommandSlots {
  private running = 0;
  private readonly waiting: { grant: () => void; tell: () => void }[] = [];

  constructor(readonly limit: number) {}

  load(): { running: number; queued: number; limit: number } {
    return { running: this.running, queued: this.waiting.length, limit: this.limit };
  }

  /**
   * Resolves with a release function once a slot is free; `onWait(ahead)` hears how many
   * commands are ahead while it waits. Rejects with an AbortError if `signal` aborts first.
   */
  acquire(opts: { signal?: AbortSignal; onWait?: (ahead: number) => void } = {}): Promise<() => void> {
    const releaser = () => {
      let done = false;
      return () => {
        if (done) return;
        done = true;
        this.running -= 1;
        this.waiting.shift()?.grant();
        this.waiting.forEach((w) => w.tell());
      };
    };
    if (opts.signal?.aborted) return Promise.reject(abortError());
    if (this.running < this.limit && !this.waiting.length) {
      this.running += 1;
      return Promise.resolve(releaser());
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        this.waiting.forEach((w) => w.tell());
        reject(abortError());
      };
      const entry = {
        grant: () => {
          opts.signal?.removeEventListener('abort', onAbort);
          this.running += 1;
          resolve(releaser());
        },
        tell: () => opts.onWait?.(this.running + this.waiting.indexOf(entry)),
      };
      this.waiting.push(entry);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      entry.tell();
    });
  }
}

function abortError(): Error {
  const err = new Error('cancelled while waiting for a command slot');
  err.name = 'AbortError';
  return err;
}
