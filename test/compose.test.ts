/** docker-compose.yml stays in line with what the worker and the workflows expect. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { WEAVER_SEARCH_ATTRIBUTES } from './support/temporal';

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | null> | string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string };
}

// Merge keys: the two workers share one definition (`<<: *worker`), as docker compose reads it.
const compose = parse(readFileSync(path.join(__dirname, '..', 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};

function env(service: Service): Record<string, string | null> {
  const e = service.environment ?? {};
  if (!Array.isArray(e)) return e;
  return Object.fromEntries(e.map((kv) => (kv.includes('=') ? [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] : [kv, null])));
}

function argv(cmd: string | string[] | undefined): string[] {
  if (cmd === undefined) return [];
  return Array.isArray(cmd) ? cmd.map(String) : cmd.split(/\s+/).filter(Boolean);
}

const WORKERS = ['worker-a', 'worker-b'];

test('has a temporal dev server, an object store, two workers and Prometheus', () => {
  expect(Object.keys(compose.services).sort()).toEqual(['prometheus', 'store', 'temporal', ...WORKERS]);
});

test('temporal runs start-dev on all interfaces with the Web UI and a persistent db', () => {
  const t = compose.services.temporal;
  expect(t.image).toMatch(/^temporalio\/(temporal|admin-tools)(:|$)/);
  const args = argv(t.command);
  expect(args.slice(0, 2)).toEqual(['server', 'start-dev']);
  expect(args[args.indexOf('--ip') + 1]).toBe('0.0.0.0');
  expect(args).not.toContain('--headless');
  expect(args).toContain('--db-filename');
  expect(t.ports).toEqual(expect.arrayContaining(['7233:7233', '8233:8233']));
  expect(argv(t.healthcheck?.test)).toEqual(expect.arrayContaining(['operator', 'cluster', 'health']));
});

test("temporal gives each task queue one partition, so a provider's rate limit is not split", () => {
  const args = argv(compose.services.temporal.command);
  const values = args.flatMap((a, i) => (a === '--dynamic-config-value' ? [args[i + 1]] : []));
  expect(values).toEqual(expect.arrayContaining(['matching.numTaskqueueReadPartitions=1', 'matching.numTaskqueueWritePartitions=1']));
});

test("temporal registers every Weaver search attribute with its type", () => {
  const args = argv(compose.services.temporal.command);
  const registered = args.flatMap((a, i) => (a === '--search-attribute' ? [args[i + 1]] : []));
  const expected = Object.entries(WEAVER_SEARCH_ATTRIBUTES).map(([name, type]) => `${name}=${type}`);
  expect(registered.sort()).toEqual(expected.sort());
});

test.each(WORKERS)('%s runs the project on node 20 against the temporal service', (name) => {
  const w = compose.services[name];
  expect(readFileSync(path.join(__dirname, '..', dockerfile(w)), 'utf8')).toMatch(/^FROM node:20/m);
  // The worker as the container's main process (exec), so SIGTERM reaches it and it drains.
  expect(argv(w.command).join(' ')).toMatch(/npm ci && exec node --import tsx src\/worker\.ts/);
  const e = env(w);
  expect(e.TEMPORAL_ADDRESS).toBe('temporal:7233');
  expect(e.WEAVER_ARTIFACT_DIR).toMatch(/^\//);
  expect(e.WEAVER_WORKSPACE_ROOT).toMatch(/^\//);
  // Passed through from the host, never written into the file.
  expect(Object.keys(e)).toContain('OPENAI_API_KEY');
  expect(e.OPENAI_API_KEY ?? '').toMatch(/^(\$\{OPENAI_API_KEY(:?-)?\})?$/);
  const deps = w.depends_on;
  expect(Array.isArray(deps) ? deps : Object.keys(deps ?? {})).toContain('temporal');
});

function dockerfile(w: Service): string {
  const build = w.build as { context?: string; dockerfile?: string } | undefined;
  expect(build?.dockerfile).toBeTruthy();
  return path.join(build?.context ?? '.', build!.dockerfile!);
}

test.each(WORKERS)('the %s image has bubblewrap, the worker requires the sandbox, and the container allows what bwrap needs, no more', (name) => {
  const w = compose.services[name] as Service & { security_opt?: string[]; cap_add?: string[] };
  const file = readFileSync(path.join(__dirname, '..', dockerfile(w)), 'utf8');
  expect(file).toMatch(/apt-get install[^\n]*\bbubblewrap\b/);
  expect(env(w).WEAVER_SANDBOX).toBe('required');
  // Docker's default seccomp profile (it allows namespaces and mounts to a container with
  // CAP_SYS_ADMIN); AppArmor's default denies every mount; a fresh /proc needs Docker's /proc
  // masks gone. Each exception is explained beside it in the file.
  expect(w.security_opt ?? []).not.toContainEqual(expect.stringMatching(/^seccomp[=:]/));
  expect(w.cap_add).toEqual(['SYS_ADMIN']);
  expect(w.security_opt).toEqual(expect.arrayContaining(['apparmor=unconfined', 'systempaths=unconfined']));
  expect(w.security_opt).toHaveLength(2);
  const yaml = readFileSync(path.join(__dirname, '..', 'docker-compose.yml'), 'utf8');
  expect(yaml).toMatch(/docker-default\) has `deny mount,`/);
  expect(yaml).toMatch(/mount_too_revealing/);
});

test.each(WORKERS)('%s: its artifact cache and workspaces live on a named volume that survives container restarts', (name) => {
  const w = compose.services[name];
  const e = env(w);
  const mounts = (w.volumes ?? []).map((v) => v.split(':'));
  for (const dir of [e.WEAVER_ARTIFACT_DIR, e.WEAVER_WORKSPACE_ROOT]) {
    const mount = mounts.find(([src, dst]) => dst && dir?.startsWith(dst) && Object.keys(compose.volumes ?? {}).includes(src));
    expect({ dir, mount }).toEqual({ dir, mount: expect.any(Array) });
  }
});

const namedVolumes = (s: Service) => (s.volumes ?? []).map((v) => v.split(':')[0]).filter((src) => Object.keys(compose.volumes ?? {}).includes(src));

test('the two workers share only Temporal and the object store: no volume in common, artifacts in the store', () => {
  const [a, b] = WORKERS.map((n) => compose.services[n]);
  expect(namedVolumes(a).filter((v) => namedVolumes(b).includes(v))).toEqual([]);
  for (const w of [a, b]) {
    const e = env(w);
    expect(e.WEAVER_ARTIFACTS).toMatch(/^s3:\/\/[a-z0-9.-]+(\/|$)/);
    expect(e.AWS_ENDPOINT_URL).toMatch(/^http:\/\/store:\d+$/);
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) expect(Object.keys(e)).toContain(k);
    const deps = w.depends_on as Record<string, { condition?: string }>;
    expect(deps.store?.condition).toBe('service_healthy');
    expect(deps.temporal?.condition).toBe('service_healthy');
  }
});

test('the object store is a pinned S3-compatible server with its data on a named volume and a health check', () => {
  const store = compose.services.store;
  expect(store.image).toMatch(/^[\w./-]+:\d[\w.-]*$/);
  expect(namedVolumes(store)).toHaveLength(1);
  const port = /:(\d+)$/.exec(env(compose.services[WORKERS[0]]).AWS_ENDPOINT_URL ?? '')?.[1];
  expect(argv(store.command).join(' ')).toContain(`-s3.port=${port}`);
  expect(argv(store.healthcheck?.test).join(' ')).toContain(`:${port}/`);
});

test("Prometheus (pinned) scrapes every worker's metrics endpoint at the port the worker serves it on", () => {
  const prom = compose.services.prometheus;
  expect(prom.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
  // Its config is the file in the repository, mounted where --config.file says.
  const configArg = argv(prom.command).find((a) => a.startsWith('--config.file='))!.split('=')[1];
  const mount = (prom.volumes ?? []).map((v) => v.split(':')).find(([, dst]) => dst === configArg);
  expect(mount).toBeDefined();
  const scrape = parse(readFileSync(path.join(__dirname, '..', mount![0]), 'utf8')) as {
    scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = scrape.scrape_configs.flatMap((j) => j.static_configs.flatMap((c) => c.targets));
  for (const name of WORKERS) {
    // The worker serves on all interfaces at the port the scrape names.
    const address = env(compose.services[name]).WEAVER_METRICS_ADDRESS ?? '';
    expect(address).toMatch(/^0\.0\.0\.0:\d+$/);
    expect(targets).toContain(`${name}:${address.split(':')[1]}`);
  }
  for (const job of scrape.scrape_configs) expect(job.metrics_path ?? '/metrics').toBe('/metrics');
});

test.each(WORKERS)('%s: two glibc malloc arenas, in the compose file and in its image (a flat RSS over long batches)', (name) => {
  const w = compose.services[name];
  expect(env(w).MALLOC_ARENA_MAX).toBe('2');
  expect(readFileSync(path.join(__dirname, '..', dockerfile(w)), 'utf8')).toMatch(/^ENV MALLOC_ARENA_MAX=2$/m);
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts.worker).toMatch(/^MALLOC_ARENA_MAX=\$\{MALLOC_ARENA_MAX:-2\} /);
});
