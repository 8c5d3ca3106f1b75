// A worker waits for its Temporal server instead of exiting: in a compose file or a fleet the
// server is often still starting (or restarting) when workers come up, and a supervisor
// restarting a crashed worker in a loop says less than a worker saying what it waits for.
import { NativeConnection } from '@temporalio/worker';
import { sleep } from './activities/processGroups';

/** The pause before attempt n+1: 1 s, doubling, at most 15 s (a server back is seen within that). */
export function connectBackoffMs(attempt: number): number {
  return Math.min(15_000, 1000 * 2 ** Math.min(attempt - 1, 4));
}

export interface ConnectOptions {
  address: string;
  /** Give up after this long (WEAVER_CONNECT_WAIT); 0: wait forever. */
  waitMs: number;
  /** Where each failed attempt is said (default: console.warn). */
  log?: (line: string) => void;
}

/** NativeConnection.connect, retried with backoff until it succeeds or `waitMs` has passed. */
export async function connectWithRetry({ address, waitMs, log = (l) => console.warn(l) }: ConnectOptions): Promise<NativeConnection> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await NativeConnection.connect({ address });
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      const pause = connectBackoffMs(attempt);
      if (waitMs > 0 && Date.now() - started + pause > waitMs) {
        throw new Error(`Temporal at ${address} not reachable after ${attempt} attempts over ${Math.round((Date.now() - started) / 1000)} s (WEAVER_CONNECT_WAIT): ${why}`);
      }
      log(`weaver worker: waiting for Temporal at ${address} (attempt ${attempt}: ${why}); next try in ${pause / 1000} s`);
      await sleep(pause);
    }
  }
}
