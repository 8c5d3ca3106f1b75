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

const compose = parse(readFileSync(path.join(__dirname, '..', 'docker-compose.yml'), 'utf8')) as {
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

test('has a temporal dev server and a worker', () => {
  expect(Object.keys(compose.services).sort()).toEqual(['temporal', 'worker']);
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

test("temporal registers every Weaver search attribute with its type", () => {
  const args = argv(compose.services.temporal.command);
  const registered = args.flatMap((a, i) => (a === '--search-attribute' ? [args[i + 1]] : []));
  const expected = Object.entries(WEAVER_SEARCH_ATTRIBUTES).map(([name, type]) => `${name}=${type}`);
  expect(registered.sort()).toEqual(expected.sort());
});

test('worker runs the project on node 20 against the temporal service', () => {
  const w = compose.services.worker;
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

test('the worker image has bubblewrap, the worker requires the sandbox, and the container allows what bwrap needs, no more', () => {
  const w = compose.services.worker as Service & { security_opt?: string[]; cap_add?: string[] };
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

test('artifacts and workspaces live on a named volume that survives container restarts', () => {
  const w = compose.services.worker;
  const e = env(w);
  const mounts = (w.volumes ?? []).map((v) => v.split(':'));
  for (const dir of [e.WEAVER_ARTIFACT_DIR, e.WEAVER_WORKSPACE_ROOT]) {
    const mount = mounts.find(([src, dst]) => dst && dir?.startsWith(dst) && Object.keys(compose.volumes ?? {}).includes(src));
    expect({ dir, mount }).toEqual({ dir, mount: expect.any(Array) });
  }
});
