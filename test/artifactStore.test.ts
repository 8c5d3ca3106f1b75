// The artifact store's contract, run against both backends: the local directory and an S3 bucket
// on a real S3-compatible server (moto's, started here). "Another host" is a second store object
// with its own local directory: for S3 nothing is shared but the bucket.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { LocalArtifactStore, type ArtifactStore, type StoredArtifact } from '../src/activities/artifacts';
import { openArtifactStore, S3ArtifactStore } from '../src/activities/s3Artifacts';
import { pruneArtifacts } from '../src/gc';
import { sandboxableTempDir } from '../src/devtools/tempDir';
import { readArtifact, Unavailable } from '../src/inspect';
import { config } from '../src/config';
import { parseS3Url } from '../src/domain/artifactsUrl';
import { useS3Server, type S3Server } from './support/s3';

let s3: S3Server;
useS3Server((s) => (s3 = s));

const SECRET = 'sk-contract-secret-0123456789';
let tmp: string;
beforeAll(() => {
  tmp = sandboxableTempDir('weaver-store-');
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Hosts {
  one: ArtifactStore;
  two: ArtifactStore;
  /** How many stored objects hold this artifact (the one file, or the one key). */
  copies(ref: string): Promise<number>;
}

let seq = 0;
const backends: [string, () => Promise<Hosts>][] = [
  [
    'local directory',
    async () => {
      const dir = path.join(tmp, `local-${++seq}`);
      const one = new LocalArtifactStore(dir, [SECRET]);
      return { one, two: new LocalArtifactStore(dir, [SECRET]), copies: async (ref) => (existsSync(one.pathOf(ref)) ? 1 : 0) };
    },
  ],
  [
    's3',
    async () => {
      const bucket = `contract-${++seq}`;
      const url = `s3://${bucket}/runs/x`;
      const open = (host: string) => openArtifactStore({ artifacts: url, dir: path.join(tmp, `${bucket}-${host}`), env: s3.env }, [SECRET]);
      const one = open('one');
      await one.check();
      const copies = async (ref: string) => {
        const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'runs/x/' }));
        return (listed.Contents ?? []).filter((o) => o.Key === `runs/x/sha256/${ref.slice(7, 9)}/${ref.slice(7)}`).length;
      };
      return { one, two: open('two'), copies };
    },
  ],
];

const sha256 = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe.each(backends)('%s', (name, make) => {
  let h: Hosts;
  beforeAll(async () => {
    h = await make();
  });

  test('put: the reference is the content\'s hash, masked of the worker\'s secrets, readable from another host', async () => {
    const ref = await h.one.put('prompt', `hello ${name} with ${SECRET}`);
    const text = await h.two.read(ref);
    expect(text).not.toContain(SECRET);
    expect(text.startsWith(`hello ${name} with `)).toBe(true);
    expect(ref).toEqual({ ref: sha256(text), bytes: Buffer.byteLength(text), kind: 'prompt' });
    expect(await h.one.put('prompt', `hello ${name} with ${SECRET}`)).toEqual(ref);
  });

  test('putJson and readJson round trip', async () => {
    const value = { answer: 42, files: ['a.js'], name };
    const ref = await h.one.putJson('answer', value);
    expect(await h.two.readJson(ref)).toEqual(value);
  });

  test('adoptFile moves a file in (gone from scratch) and another host reads it', async () => {
    const file = await h.one.scratchPath('test.log');
    await writeFile(file, `log of ${name}\n`.repeat(1000));
    const ref = await h.one.adoptFile('test-log', file);
    expect(existsSync(file)).toBe(false);
    expect(ref.ref).toBe(sha256(`log of ${name}\n`.repeat(1000)));
    expect(await h.two.read(ref)).toBe(`log of ${name}\n`.repeat(1000));
  });

  test('put and adoptFile write an artifact whose directory is gone (gc emptied it): made again, then read', async () => {
    const text = `again ${name}\n`;
    const ref = await h.one.put('prompt', text);
    const dir = path.dirname(await h.one.localPath(ref));
    await rm(dir, { recursive: true, force: true });
    expect(await h.one.put('prompt', text)).toEqual(ref);
    expect(existsSync(await h.one.localPath(ref))).toBe(true);
    await rm(dir, { recursive: true, force: true });
    const file = await h.one.scratchPath('again.log');
    await writeFile(file, text);
    expect((await h.one.adoptFile('prompt', file)).ref).toBe(ref.ref);
    expect(existsSync(file)).toBe(false);
    expect(await h.two.read(ref)).toBe(text);
  });

  test('a large file goes in streamed and comes back whole on another host', async () => {
    const file = await h.one.scratchPath('big.bundle');
    const chunk = randomBytes(1 << 20);
    const hash = createHash('sha256');
    await pipeline(
      (async function* () {
        for (let i = 0; i < 40; i++) {
          const c = Buffer.concat([chunk, Buffer.from(String(i))]);
          hash.update(c);
          yield c;
        }
      })(),
      createWriteStream(file),
    );
    const expected = `sha256:${hash.digest('hex')}`;
    const ref = await h.one.adoptFile('git-bundle', file);
    expect(ref.ref).toBe(expected);
    expect(ref.bytes).toBeGreaterThan(40 << 20);
    const local = await h.two.localPath(ref);
    const back = createHash('sha256');
    await pipeline(createReadStream(local), back);
    expect(`sha256:${back.digest('hex')}`).toBe(expected);
  });

  /** The listed entry of `ref` (its size and last write), if the store lists it. */
  async function listed(store: ArtifactStore, ref: { ref: string }): Promise<StoredArtifact | undefined> {
    for await (const e of store.list()) if (e.hex === ref.ref.slice(7)) return e;
    return undefined;
  }

  test('list shows an artifact with its size; remove takes it from the store (no host reads it after)', async () => {
    const ref = await h.one.put('note', `listed ${name} ${Date.now()}`);
    const entry = await listed(h.two, ref);
    expect(entry).toMatchObject({ hex: ref.ref.slice(7), bytes: ref.bytes });
    await h.one.remove(entry!);
    expect(await listed(h.one, ref)).toBeUndefined();
    await expect(h.one.read(ref)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(h.two.read(ref)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('content written again is young again (retention prunes by last write), even when its upload is skipped', async () => {
    const big = randomBytes(300 << 10); // past the size from which S3 asks first and skips the upload
    const ref = await h.one.put('git-bundle', big);
    const before = (await listed(h.one, ref))!.modifiedMs;
    if (h.one instanceof LocalArtifactStore) {
      const old = new Date(before - 8 * 86_400_000);
      await utimes(h.one.pathOf(ref), old, old);
    } else await new Promise((r) => setTimeout(r, 1100)); // S3 dates objects to the second
    const aged = (await listed(h.one, ref))!.modifiedMs;
    await h.two.put('git-bundle', big);
    expect((await listed(h.one, ref))!.modifiedMs).toBeGreaterThan(aged);
  });

  test('remove deletes nothing when the artifact was written again since it was listed (a new user)', async () => {
    const content = `renewed ${name} ${Date.now()}`;
    const ref = await h.one.put('note', content);
    const entry = (await listed(h.one, ref))!;
    if (!(h.one instanceof LocalArtifactStore)) await new Promise((r) => setTimeout(r, 1100)); // S3 dates objects to the second
    await h.two.put('note', content);
    expect(await h.one.remove(entry)).toBe(false);
    expect(await h.two.read(ref)).toBe(content);
    expect(await h.one.remove((await listed(h.one, ref))!)).toBe(true);
  });

  test('concurrent writers of the same content agree on one reference and one stored copy', async () => {
    const content = `same content ${name} ${Date.now()}`;
    const files = await Promise.all([h.one, h.two].map(async (s, i) => {
      const f = await s.scratchPath(`same-${i}`);
      await writeFile(f, content);
      return f;
    }));
    const refs = await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => (i % 2 ? h.one : h.two).put('diff', content)),
      h.one.adoptFile('diff', files[0]),
      h.two.adoptFile('diff', files[1]),
    ]);
    expect(new Set(refs.map((r) => r.ref))).toEqual(new Set([sha256(content)]));
    expect(await h.copies(refs[0].ref)).toBe(1);
    expect(await h.two.read(refs[0])).toBe(content);
  });

  test('a reference the store does not hold reads as a missing file (ENOENT)', async () => {
    await expect(h.two.read(sha256(`never stored ${name}`))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(h.two.read('not-a-ref')).rejects.toThrow(/not an artifact reference/);
  });
});

describe('s3 only', () => {
  test('a download whose bytes do not match its key is refused, and not cached', async () => {
    const store = openArtifactStore({ artifacts: 's3://tampered', dir: path.join(tmp, 'tampered'), env: s3.env });
    await store.check();
    const ref = sha256('the real content');
    await s3.client.send(new PutObjectCommand({ Bucket: 'tampered', Key: `sha256/${ref.slice(7, 9)}/${ref.slice(7)}`, Body: 'other bytes' }));
    await expect(store.read(ref)).rejects.toThrow(/refused/);
    expect(existsSync(path.join(tmp, 'tampered', 'sha256', ref.slice(7, 9), ref.slice(7)))).toBe(false);
  });

  test('check() creates a missing bucket; the prefix keeps keys under it', async () => {
    const store = openArtifactStore({ artifacts: 's3://made-by-check/team/a/', dir: path.join(tmp, 'made'), env: s3.env });
    expect(store).toBeInstanceOf(S3ArtifactStore);
    expect(store.where).toBe('s3://made-by-check/team/a/');
    await store.check();
    await expect(s3.client.send(new HeadBucketCommand({ Bucket: 'made-by-check' }))).resolves.toBeDefined();
    const ref = await store.put('report', 'under a prefix');
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: 'made-by-check', Key: `team/a/sha256/${ref.ref.slice(7, 9)}/${ref.ref.slice(7)}` }));
    expect(head.ContentLength).toBe(ref.bytes);
  });

  test('an endpoint where no store answers: check() says the store is not reachable', async () => {
    const store = openArtifactStore({ artifacts: 's3://made-by-check', dir: path.join(tmp, 'bad'), env: { ...s3.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
    await expect(store.check()).rejects.toThrow(/not reachable/);
  });
});

test('weaver diff / logs read an artifact from the workers\' bucket (WEAVER_ARTIFACTS), and say which setting when it is not there', async () => {
  const config = { artifacts: 's3://cli-reads/p', artifactDir: path.join(tmp, 'cli-cache') };
  const worker = openArtifactStore({ artifacts: config.artifacts, dir: path.join(tmp, 'cli-worker'), env: s3.env });
  await worker.check();
  const ref = await worker.put('diff', 'diff --git a/x b/x\n');
  expect(await readArtifact(ref, config, s3.env)).toBe('diff --git a/x b/x\n');
  const missing = { ...ref, ref: sha256('not there') };
  await expect(readArtifact(missing, config, s3.env)).rejects.toThrow(Unavailable);
  await expect(readArtifact(missing, config, s3.env)).rejects.toThrow(/s3:\/\/cli-reads\/p\/.*WEAVER_ARTIFACTS/);
});

test('retention on S3: an unreferenced artifact goes from the bucket and this host\'s cache; a referenced one stays in both; old scratch goes', async () => {
  const store = openArtifactStore({ artifacts: 's3://gc-prune/p', dir: path.join(tmp, 'gc-cache'), env: s3.env }) as S3ArtifactStore;
  await store.check();
  const [kept, dropped] = await Promise.all([store.put('git-bundle', 'a bundle an open run holds'), store.put('log', 'a log nobody refers to')]);
  const scratch = await store.scratchPath('crashed.log');
  await writeFile(scratch, 'left by a writer that died\n');
  // S3 dates objects itself: a cutoff ahead of now makes everything old, instead of waiting.
  const report = await pruneArtifacts(store, new Map([[kept.ref, 'open run x']]), Date.now() + 60_000);
  expect(report.removed.map((r) => [r.what, r.from]).sort()).toEqual([[dropped.ref, 'store'], [scratch, 'cache']].sort());
  expect(report.kept.map((k) => k.what)).toEqual([kept.ref]);
  const other = openArtifactStore({ artifacts: 's3://gc-prune/p', dir: path.join(tmp, 'gc-other'), env: s3.env });
  await expect(other.read(dropped)).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await other.read(kept)).toBe('a bundle an open run holds');
  const cached = (r: { ref: string }) => existsSync(path.join(tmp, 'gc-cache', 'sha256', r.ref.slice(7, 9), r.ref.slice(7)));
  expect([cached(kept), cached(dropped), existsSync(scratch)]).toEqual([true, false, false]);
});

test('WEAVER_ARTIFACTS: s3://bucket[/prefix] or nothing; anything else stops the start naming the variable', () => {
  expect(parseS3Url('s3://team-bucket/a/b/')).toEqual({ bucket: 'team-bucket', prefix: 'a/b/' });
  expect(parseS3Url('s3://team-bucket')).toEqual({ bucket: 'team-bucket', prefix: '' });
  expect(config({ WEAVER_ARTIFACTS: 's3://team-bucket/x' }).artifacts).toBe('s3://team-bucket/x');
  expect(config({}).artifacts).toBeUndefined();
  for (const bad of ['/shared/artifacts', 'http://store:8333/b', 's3://', 's3://Upper_Case']) expect(() => config({ WEAVER_ARTIFACTS: bad })).toThrow(/WEAVER_ARTIFACTS must be s3:\/\/bucket/);
});
