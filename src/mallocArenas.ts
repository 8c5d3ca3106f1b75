// glibc gives each thread that contends for malloc an arena of its own (up to 8 per core) and
// keeps them: in the worker, the Temporal core's threads, Node's and V8's hold ≈ 60 MiB of them,
// an amount that drifts with the run (scripts/bench-batch.ts: 32 MiB at start, 54–71 after 50
// tasks, 59–67 after 500). MALLOC_ARENA_MAX=2 caps them: 19 MiB, flat, throughput unchanged within
// the noise. glibc reads it at process start only, so it is set where the worker is started (npm
// run worker, the image, the compose file) and the banner says whether it is.

/** The banner's line about it: the cap in force, or what to set (nothing on a libc other than glibc). */
export function describeMallocArenas(env: NodeJS.ProcessEnv = process.env, glibc = isGlibc()): string {
  if (!glibc) return 'malloc: not glibc (MALLOC_ARENA_MAX does not apply)';
  const tunable = /(?:^|:)glibc\.malloc\.arena_max=(\d+)/.exec(env.GLIBC_TUNABLES ?? '')?.[1];
  const max = env.MALLOC_ARENA_MAX?.trim() || tunable;
  return max && Number(max) > 0
    ? `malloc arenas: at most ${max} (${env.MALLOC_ARENA_MAX?.trim() ? 'MALLOC_ARENA_MAX' : 'GLIBC_TUNABLES'})`
    : `malloc arenas: glibc's default, up to 8 per core — set MALLOC_ARENA_MAX=2 for a flat RSS (README "Batches of thousands")`;
}

function isGlibc(): boolean {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return !!header?.glibcVersionRuntime;
}
