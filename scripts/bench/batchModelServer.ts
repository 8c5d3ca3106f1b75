// The batch benchmark's scripted model server as its own process, so that the requests it keeps
// count in neither the worker's memory nor the harness's. Prints {"url"} once listening; model
// `bb` answers every request with the change that makes module `a`'s one-line check pass.
import { ScriptedModelServer } from '../demo/scriptedModelServer';
import { fix } from '../../test/support/modules';

async function main(): Promise<void> {
  const server = await ScriptedModelServer.start();
  server.setDefault('bb', fix('a'));
  process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
  process.once('SIGTERM', () => void server.close().finally(() => process.exit(0)));
}

void main();
