// A process that builds repository maps (tests of what several worker processes share):
//   node --import tsx test/support/buildMapProcess.ts <cacheDir> <repo>...
// Prints one JSON line per repository: the map's text, ranking and build counts.
import { buildRepoMap } from '../../src/activities/repomap';

async function main(): Promise<void> {
  const [cacheDir, ...repos] = process.argv.slice(2);
  for (const dir of repos) {
    const m = await buildRepoMap({ dir, cacheDir, mentionedFiles: [], mentionedIdents: [], tokenBudget: 4096 });
    console.log(JSON.stringify({ dir, text: m.text, ranked: m.ranked, parsed: m.stats.parsed, fromCache: m.stats.fromCache, files: m.stats.files }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
