// weaverClient(): the shared connection from TEMPORAL_ADDRESS. A failed connection is not
// cached: a worker or service that started before the server (or with a typo it then fixed)
// connects on a later call instead of failing forever.
import { weaverClient } from '../src/client';
import { testAddress } from './support/temporal';

const saved = process.env.TEMPORAL_ADDRESS;

afterAll(() => {
  if (saved === undefined) delete process.env.TEMPORAL_ADDRESS;
  else process.env.TEMPORAL_ADDRESS = saved;
});

test('a failed connection is retried on the next call, with the address read again', async () => {
  // A malformed address fails at once.
  process.env.TEMPORAL_ADDRESS = 'http://[not-an-address';
  await expect(weaverClient()).rejects.toThrow(/Invalid address/);

  // A closed port fails differently (after the SDK's connect deadline): proof that the second
  // call really connected again instead of returning the first rejection.
  process.env.TEMPORAL_ADDRESS = '127.0.0.1:1';
  await expect(weaverClient()).rejects.toThrow(/Failed to connect|deadline|ECONNREFUSED|UNAVAILABLE/i);

  process.env.TEMPORAL_ADDRESS = testAddress();
  const client = await weaverClient();
  try {
    await expect(client.workflowService.getSystemInfo({})).resolves.toBeDefined();
    // …and a connection that worked is shared.
    expect(await weaverClient()).toBe(client);
  } finally {
    await client.connection.close();
  }
}, 60_000);
