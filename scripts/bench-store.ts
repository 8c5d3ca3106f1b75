// Benchmark of the artifact store's two backends (a benchmark, not a test: prints figures).
//
//   npx tsx scripts/bench-store.ts [--small N] [--mb M]
//
// Local directory against S3 (moto's server, started here: src/devtools/s3Server.ts). Figures:
// N (default 200) puts of a 4 KiB prompt-like text, one at a time (median and worst); a
// streamed M MiB (default 40) file adopted (a git bundle, a test log); its first read on
// "another host" (an empty cache: a verified download) and a second read (from the cache);
// the worker's peak memory growth while adopting (streamed: far below M).
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { LocalArtifactStore, type ArtifactStore } from '../src/activities/artifacts';
import { openArtifactStore } from '../src/activities/s3Artifacts';
import { startS3Server } from '../src/devtools/s3Server';
import { sandboxableTempDir } from '../src/devtools/tempDir';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const timed = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;

async function bench(name: string, one: ArtifactStore, two: ArtifactStore, small: number, mb: number): Promise<void> {
  await one.check();
  const puts: number[] = [];
  for (let i = 0; i < small; i++) puts.push(await timed(() => one.put('prompt', `prompt ${i} ${'x'.repeat(4096)}`)));
  puts.sort((a, b) => a - b);
  const file = await one.scratchPath('big');
  const chunk = randomBytes(1 << 20);
  await pipeline((function* () { for (let i = 0; i < mb; i++) yield Buffer.concat([chunk, Buffer.from(String(i))]); })(), createWriteStream(file));
  let ref!: Awaited<ReturnType<ArtifactStore['adoptFile']>>;
  // Peak resident memory above the start while the file goes in: streamed, it stays far below its size.
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const adopt = await timed(async () => (ref = await one.adoptFile('git-bundle', file)));
  clearInterval(sampler);
  const cold = await timed(() => two.localPath(ref));
  const warm = await timed(() => two.localPath(ref));
  console.log(`${name.padEnd(6)} put 4 KiB: median ${ms(puts[puts.length >> 1])}, worst ${ms(puts[puts.length - 1])} | adopt ${mb} MiB: ${ms(adopt)} (memory +${((peak - base) / 2 ** 20).toFixed(0)} MiB) | first read elsewhere: ${ms(cold)} | cached: ${ms(warm)}`);
}

async function main(): Promise<void> {
  const small = arg('--small', 200);
  const mb = arg('--mb', 40);
  const tmp = sandboxableTempDir('weaver-bench-store-');
  const server = await startS3Server();
  try {
    await bench('local', new LocalArtifactStore(path.join(tmp, 'local')), new LocalArtifactStore(path.join(tmp, 'local')), small, mb);
    const open = (host: string) => openArtifactStore({ artifacts: 's3://bench/artifacts', dir: path.join(tmp, host), env: server.env });
    await bench('s3', open('a'), open('b'), small, mb);
  } finally {
    await server.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
