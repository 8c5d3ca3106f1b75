// Preloaded into the benchmark's worker process and, with the flags, into its threads (the
// workflow thread; plain JS: they inherit --require without tsx's loader). On SIGUSR2 the main
// thread collects garbage and prints `memprobe {"rss",…}` (process.memoryUsage()), then asks every
// thread over a BroadcastChannel to do the same with its own heap: `memprobe-thread {…}`. So the
// harness can tell the JS heaps from the rest of the RSS (native: the Temporal core, malloc).
const { BroadcastChannel, isMainThread, threadId } = require('node:worker_threads');
const v8 = require('node:v8');

const channel = new BroadcastChannel('weaver-memprobe');
channel.unref();
if (isMainThread) {
  process.on('SIGUSR2', () => {
    globalThis.gc?.();
    process.stdout.write(`memprobe ${JSON.stringify(process.memoryUsage())}\n`);
    channel.postMessage('probe');
  });
} else {
  channel.onmessage = () => {
    globalThis.gc?.();
    const h = v8.getHeapStatistics();
    process.stdout.write(`memprobe-thread ${JSON.stringify({ threadId, heapUsed: h.used_heap_size, heapTotal: h.total_heap_size, external: h.external_memory })}\n`);
  };
}
