/** Jest global teardown: stop the dev server started by globalSetup (its whole process group). */
import { rmSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

export default async function globalTeardown(): Promise<void> {
  const state = globalThis.__WEAVER_TEST_SERVER__;
  if (!state) return;
  globalThis.__WEAVER_TEST_SERVER__ = undefined;
  signalGroup(state.pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (alive(state.pid) && Date.now() < deadline) await sleep(100);
  if (alive(state.pid)) signalGroup(state.pid, 'SIGKILL');
  if (!process.env.WEAVER_TEST_KEEP_TMP) rmSync(state.dir, { recursive: true, force: true });
}
