// The scripted model server as its own process (argv: the answer delays in ms), so that serving
// either side's requests is counted in neither side's CPU. Prints {"url"} once listening; every
// model `bench-<delay>ms` answers the benchmark's change after that delay.
import { ScriptedModelServer } from '../demo/scriptedModelServer';
import { benchModel, goodAnswer } from './answer';

async function main(): Promise<void> {
  const server = await ScriptedModelServer.start();
  for (const delayMs of process.argv.slice(2).map(Number)) {
    server.setDefault(benchModel(delayMs), () => ({ content: goodAnswer(), delayMs }));
  }
  process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
  process.once('SIGTERM', () => void server.close().finally(() => process.exit(0)));
}

void main();
