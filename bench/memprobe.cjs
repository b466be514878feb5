// Benchmark helper, preloaded with NODE_OPTIONS=--require: on SIGUSR2 the process writes
// where its memory goes (V8 heap by space, external/array buffers, malloc) to
// $MEMPROBE_OUT as JSON. Measurement only; nothing in the product loads it.
const v8 = require('node:v8');
const fs = require('node:fs');
const MB = (n) => Math.round((n / 1048576) * 10) / 10;
process.on('SIGUSR2', () => {
  const mu = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { usedMB: MB(s.space_used_size), sizeMB: MB(s.space_size) }]));
  const hs = v8.getHeapStatistics();
  fs.writeFileSync(process.env.MEMPROBE_OUT, JSON.stringify({
    rssMB: MB(mu.rss), heapTotalMB: MB(mu.heapTotal), heapUsedMB: MB(mu.heapUsed),
    externalMB: MB(mu.external), arrayBuffersMB: MB(mu.arrayBuffers), mallocedMB: MB(hs.malloced_memory),
    spaces,
  }));
});
