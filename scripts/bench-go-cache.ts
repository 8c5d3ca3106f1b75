// What the per-repository toolchain caches buy (issue 18 item 5): `go test ./...` of a small Go
// module in the sandbox with a cold cache (a repository never seen on this host), warm (the
// repository's cache, in the same checkout and in a new task's checkout), and outside the
// sandbox (the worker's own env and Go caches, same and new checkout). Medians over the runs.
//   npx tsx scripts/bench-go-cache.ts [runs=5] [coldRuns=2]
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { runCommand } from '../src/activities/commands';
import { detectSandbox, repoCacheDir, sandboxed, uidFor, releaseUid } from '../src/activities/sandbox';
import { SandboxPolicySchema } from '../src/domain/schema';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const COMMAND = 'go test ./...';

const MODULE: Record<string, string> = {
  'go.mod': 'module example.com/bench\n\ngo 1.21\n',
  'slug/slug.go': 'package slug\n\nimport (\n\t"regexp"\n\t"strings"\n)\n\nvar nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)\n\nfunc Slug(s string) string {\n\treturn strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(s), "-"), "-")\n}\n',
  'slug/slug_test.go': 'package slug\n\nimport "testing"\n\nfunc TestSlug(t *testing.T) {\n\tif got := Slug("Hello, World!"); got != "hello-world" {\n\t\tt.Fatalf("Slug = %q", got)\n\t}\n}\n',
  'store/store.go': 'package store\n\nimport (\n\t"encoding/json"\n\t"fmt"\n\t"net/http"\n\t"sort"\n)\n\ntype Item struct{ Name string `json:"name"` }\n\nfunc Encode(items []Item) (string, error) {\n\tsort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })\n\tb, err := json.Marshal(items)\n\treturn fmt.Sprint(string(b)), err\n}\n\nvar _ = http.StatusOK\n',
  'store/store_test.go': 'package store\n\nimport (\n\t"net/http/httptest"\n\t"testing"\n)\n\nfunc TestEncode(t *testing.T) {\n\t_ = httptest.NewRecorder()\n\tif s, _ := Encode([]Item{{"b"}, {"a"}}); s != `[{"name":"a"},{"name":"b"}]` {\n\t\tt.Fatal(s)\n\t}\n}\n',
};

async function main() {
  const runs = Number(process.argv[2] ?? 5);
  const coldRuns = Number(process.argv[3] ?? 2);
  const root = sandboxableTempDir('weaver-bench-gocache-');
  const workspaceRoot = path.join(root, 'ws');
  const setting = await detectSandbox({ mode: 'required', hide: [workspaceRoot], workspaceRoot, env: { ...process.env, WEAVER_SANDBOX_NETWORK: 'none' } });
  const policy = SandboxPolicySchema.parse({});
  let seq = 0;
  /** A fresh checkout of the module: a task's workspace. */
  const checkout = async () => {
    const dir = path.join(workspaceRoot, `task-${++seq}`, 'bench');
    for (const [name, text] of Object.entries(MODULE)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), text);
    }
    return dir;
  };
  const inSandbox = async (dir: string, repo: string) => {
    const t = performance.now();
    const box = await sandboxed({ setting, policy, phase: 'test', dir, command: COMMAND, env: process.env, scratchHome: path.join(dir, '..', 'home'), cacheDir: repoCacheDir(workspaceRoot, repo) });
    const r = await runCommand({ command: box.command, env: box.env, cwd: dir, timeoutSec: 1200, logFile: path.join(dir, '..', 'log') });
    await box.finish(r);
    if (uidFor(setting, dir) !== undefined) releaseUid(setting, dir);
    if (r.exitCode !== 0) throw new Error(`go test failed in the sandbox: ${r.tail}`);
    return performance.now() - t;
  };
  const outside = async (dir: string) => {
    const t = performance.now();
    const r = await runCommand({ command: ['/bin/sh', '-c', COMMAND], env: process.env, cwd: dir, timeoutSec: 1200, logFile: path.join(dir, '..', 'log') });
    if (r.exitCode !== 0) throw new Error(`go test failed outside: ${r.tail}`);
    return performance.now() - t;
  };
  const times = async (n: number, one: (i: number) => Promise<number>) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await one(i));
    return median(out);
  };

  // Outside first, warmed once: the worker's own Go caches as a developer's would be.
  const mine = await checkout();
  await outside(mine);
  const outSame = await times(runs, () => outside(mine));
  const outNew = await times(runs, async () => outside(await checkout()));
  // Cold: a repository this host has not seen (its own empty cache) — what every command was before.
  const cold = await times(coldRuns, async (i) => inSandbox(await checkout(), `https://example.com/cold-${i}.git`));
  // Warm: the repository's cache, filled once.
  const repo = 'https://example.com/bench.git';
  const same = await checkout();
  await inSandbox(same, repo);
  const warmSame = await times(runs, () => inSandbox(same, repo));
  const warmNew = await times(runs, async () => inSandbox(await checkout(), repo));

  console.log(`\`${COMMAND}\` of a 2-package module (regexp, encoding/json, net/http, testing); ${setting.version}${setting.runAs !== undefined ? ', root worker → a uid per workspace' : ''}; medians of ${runs} runs (cold: ${coldRuns})`);
  console.log('| case | outside (ms) | sandbox (ms) | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| cold cache (a new repository), new checkout | ${outNew.toFixed(0)} | ${cold.toFixed(0)} | ×${(cold / outNew).toFixed(2)} |`);
  console.log(`| warm cache, a new task's checkout | ${outNew.toFixed(0)} | ${warmNew.toFixed(0)} | ×${(warmNew / outNew).toFixed(2)} |`);
  console.log(`| warm cache, same checkout (results cached) | ${outSame.toFixed(0)} | ${warmSame.toFixed(0)} | ×${(warmSame / outSame).toFixed(2)} |`);
  await rm(root, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
