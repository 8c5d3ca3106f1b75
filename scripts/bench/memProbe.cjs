// Preloaded into the benchmark's worker process and, with the flags, into its threads (the
// workflow thread; plain JS: they inherit --require without tsx's loader). On SIGUSR2 the main
// thread asks every thread over a BroadcastChannel to collect garbage and print its heap
// (`memprobe-thread {…}`), then collects its own and prints `memprobe {"rss",…}`
// (process.memoryUsage()). So the harness can tell the JS heaps from the rest of the RSS (native:
// the Temporal core, malloc).
const { BroadcastChannel, isMainThread, threadId } = require('node:worker_threads');
const v8 = require('node:v8');
const { setTimeout } = require('node:timers');

// Committed MiB per V8 space (new, old, code, large objects…): which one holds a heap's reserve.
const spaces = () => Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ''), Math.round(s.space_size / 2 ** 20)]));

const channel = new BroadcastChannel('weaver-memprobe');
channel.unref();
if (isMainThread) {
  // The threads collect first, then the main thread: the process RSS it prints is then what every
  // heap retains, not the workflow thread's garbage of the moment.
  process.on('SIGUSR2', () => {
    channel.postMessage('probe');
    setTimeout(() => {
      globalThis.gc?.();
      process.stdout.write(`memprobe ${JSON.stringify({ ...process.memoryUsage(), spaces: spaces() })}\n`);
    }, 500);
  });
} else {
  channel.onmessage = () => {
    globalThis.gc?.();
    const h = v8.getHeapStatistics();
    process.stdout.write(`memprobe-thread ${JSON.stringify({ threadId, heapUsed: h.used_heap_size, heapTotal: h.total_heap_size, external: h.external_memory, spaces: spaces() })}\n`);
  };
}
