// V8's memory reducer: some 8 s after a busy spell it runs full GCs of every heap (the main
// thread's, the workflow thread's) to give memory back — up to three in a row, with V8's helper
// threads marking beside them. In a worker the first gives back all there is (main heap
// 111 → 102 MB, the next 102.2 → 101.7) and the rest is CPU spent for nothing: a quiet spell
// (after the start, after a busy spell) cost 340–520 ms of CPU, 130–220 ms with one GC, the RSS
// after it the same (scripts/bench-idle.ts, README "Idle burn"). The flag is process-wide: set
// at run time, before the workers start, it measured as on node's command line, for every
// isolate (the workflow threads' too).
import { setFlagsFromString } from 'node:v8';

let set = false;

/** One memory-reducer GC per quiet spell rather than up to three. */
export function oneReducerGc(): void {
  if (set) return;
  setFlagsFromString('--memory-reducer-single-gc');
  set = true;
}
