// An event loop's blocks, watched with perf_hooks.monitorEventLoopDelay. Its histogram records
// the interval between runs of its own 10 ms timer, so a block is that interval minus 10 ms. On
// a loaded machine a block also counts the time the process waited for a core.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

export interface LoopBlocks {
  maxMs: number;
  p99Ms: number;
}

export function watchLoop(): { reset(): void; read(): LoopBlocks } {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  const block = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  return { reset: () => h.reset(), read: () => ({ maxMs: block(h.max), p99Ms: block(h.percentile(99)) }) };
}
