// Preloaded into the benchmark's worker process (node --expose-gc --require …/memProbe.cjs
// src/worker.ts; plain JS: the workflow threads inherit the flag without tsx's loader): on
// SIGUSR2 the main thread collects garbage and prints one line `memprobe {"rss",…}`
// (process.memoryUsage()), so the harness can tell the JS heap from the rest of the RSS.
if (require('node:worker_threads').isMainThread) {
  process.on('SIGUSR2', () => {
    globalThis.gc?.();
    process.stdout.write(`memprobe ${JSON.stringify(process.memoryUsage())}\n`);
  });
}
