/** Jest global teardown: stop the dev server started by globalSetup (its whole process group). */
import { rmSync } from 'node:fs';
import { stopProcessGroup } from '../src/devtools/devServer';

export default async function globalTeardown(): Promise<void> {
  const state = globalThis.__WEAVER_TEST_SERVER__;
  if (!state) return;
  globalThis.__WEAVER_TEST_SERVER__ = undefined;
  await stopProcessGroup(state.pid);
  if (!process.env.WEAVER_TEST_KEEP_TMP) rmSync(state.dir, { recursive: true, force: true });
}
