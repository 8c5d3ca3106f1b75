// The artifact store in an S3-compatible object store, shared by workers on several hosts
// (WEAVER_ARTIFACTS=s3://bucket/prefix; endpoint and credentials from the standard AWS_* vars).
// Keys are content addresses (`<prefix>sha256/<2>/<hex>`): a write of content already there is
// skipped, two writers of the same content write the same bytes, and every upload carries its
// SHA-256 (a server that checks it, as AWS S3 does, refuses bytes that do not match their key).
// Reads go through the local directory, a cache: a download is verified against its key first.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { parseS3Url, type S3Location } from '../domain/artifactsUrl';
import type { ArtifactRef } from '../domain/schema';
import { checkRecordKey, ContentAddressedStore, hexOf, LocalArtifactStore, notFound, type ArtifactStore, type StoredArtifact } from './artifacts';

/** A client from the worker's environment: AWS_ENDPOINT_URL(_S3), AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. */
export function s3ClientFromEnv(env: Record<string, string | undefined>): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
  return new S3Client({
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    // Self-hosted stores (SeaweedFS, MinIO, Ceph…) answer on one host name, not per-bucket ones.
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    // Without keys in the env, the SDK's own chain (profiles, instance roles) applies.
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
    // Our own SHA-256 checks every byte each way; the SDK's extra CRC32s are not understood by every S3-compatible store.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export class S3ArtifactStore extends ContentAddressedStore {
  readonly where: string;

  constructor(
    private readonly client: S3Client,
    private readonly at: S3Location,
    cacheDir: string,
    secrets: readonly string[] = [],
  ) {
    super(cacheDir, secrets);
    this.where = `s3://${at.bucket}/${at.prefix}`;
  }

  private keyOf(hex: string): string {
    return `${this.at.prefix}sha256/${hex.slice(0, 2)}/${hex}`;
  }

  protected async saveBytes(hex: string, content: Buffer): Promise<void> {
    await this.upload(hex, content, content.length);
    await this.writeLocal(hex, content);
  }

  /** Streamed from the file (never whole in memory), then kept in the cache. */
  protected async saveFile(hex: string, file: string, bytes: number): Promise<void> {
    await this.upload(hex, createReadStream(file), bytes);
    await this.moveLocal(hex, file);
  }

  private async upload(hex: string, body: Buffer | Readable, bytes: number): Promise<void> {
    // Asking first costs a round trip: worth it only when it may spare a large upload.
    if (bytes >= ASK_FIRST_BYTES && (await this.has(hex))) {
      if (body instanceof Readable) body.destroy();
      // Written again, so young again: retention prunes by last write, and this content has a new user.
      await this.client.send(new CopyObjectCommand({ Bucket: this.at.bucket, Key: this.keyOf(hex), CopySource: `${this.at.bucket}/${this.keyOf(hex)}`, MetadataDirective: 'REPLACE' }));
      return;
    }
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.at.bucket,
        Key: this.keyOf(hex),
        Body: body,
        ContentLength: bytes,
        ChecksumSHA256: Buffer.from(hex, 'hex').toString('base64'),
      }),
    );
  }

  private async has(hex: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.at.bucket, Key: this.keyOf(hex) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async localPath(ref: string | ArtifactRef): Promise<string> {
    const hex = hexOf(ref);
    const file = this.fileOf(hex);
    if (existsSync(file)) {
      // Used: the cache's size cap (src/gc/caches.ts) evicts the least recently used copies first.
      await markUsed(file);
      return file;
    }
    let body: Readable;
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.at.bucket, Key: this.keyOf(hex) }));
      body = got.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw notFound(`sha256:${hex}`, this.where);
      throw err;
    }
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID()}.tmp`;
    const hash = createHash('sha256');
    const hashing = new Transform({ transform: (chunk: Buffer, _e, done) => (hash.update(chunk), done(null, chunk)) });
    try {
      await pipeline(body, hashing, createWriteStream(tmp));
      const got = hash.digest('hex');
      if (got !== hex) throw new Error(`artifact sha256:${hex} from ${this.where} has content sha256:${got}: refused`);
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return file;
  }

  async *list(): AsyncGenerator<StoredArtifact> {
    const prefix = `${this.at.prefix}sha256/`;
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.at.bucket, Prefix: prefix })) {
      for (const o of page.Contents ?? []) {
        const hex = o.Key!.slice(prefix.length + 3);
        if (/^[0-9a-f]{64}$/.test(hex)) yield { hex, file: `${this.where}sha256/${hex.slice(0, 2)}/${hex}`, bytes: o.Size ?? 0, modifiedMs: o.LastModified?.getTime() ?? 0 };
      }
    }
  }

  async remove(entry: StoredArtifact): Promise<boolean> {
    if (!entry.hex) return (await this.removeLocal(entry.file), true);
    // Asked again just before: a listing of a large bucket takes a while, and a writer may have renewed it meanwhile.
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.at.bucket, Key: this.keyOf(entry.hex) })).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    // To the second: a listing may give milliseconds, a HEAD's Last-Modified header never does.
    if (head?.LastModified && Math.floor(head.LastModified.getTime() / 1000) !== Math.floor(entry.modifiedMs / 1000)) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.at.bucket, Key: this.keyOf(entry.hex) }));
    await this.removeLocal(entry.hex);
    return true;
  }

  private recordKey(key: string): string {
    return `${this.at.prefix}${checkRecordKey(key)}`;
  }

  async putRecord(key: string, text: string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.at.bucket, Key: this.recordKey(key), Body: text, ContentType: 'application/json' }));
  }

  async readRecord(key: string): Promise<string | undefined> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.at.bucket, Key: this.recordKey(key) }));
      return await got.Body!.transformToString('utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async listRecords(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.at.bucket, Prefix: `${this.at.prefix}${prefix}` })) {
      for (const o of page.Contents ?? []) keys.push(o.Key!.slice(this.at.prefix.length));
    }
    return keys.sort();
  }

  async removeRecord(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.at.bucket, Key: this.recordKey(key) }));
  }

  /** The bucket reachable with these credentials; created when missing (a fresh compose setup). */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.at.bucket }));
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`the artifact store ${this.where} is not reachable: ${(err as Error).message}`);
      await this.client.send(new CreateBucketCommand({ Bucket: this.at.bucket })).catch((e: Error) => {
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e;
      });
    }
  }
}

/** A cached copy's mtime set to now when older than a minute (not on every read of a hot one). */
async function markUsed(file: string): Promise<void> {
  const st = await stat(file).catch(() => undefined);
  if (st && Date.now() - st.mtimeMs > 60_000) await utimes(file, new Date(), new Date()).catch(() => undefined);
}

/** From this size on, an upload asks whether the content is there already (a bundle, a log) instead of writing it again. */
const ASK_FIRST_BYTES = 256 * 1024;

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.name === 'NoSuchBucket' || e?.$metadata?.httpStatusCode === 404;
}

/**
 * The worker's store: `artifacts` (WEAVER_ARTIFACTS) unset → the local directory `dir`
 * (WEAVER_ARTIFACT_DIR); `s3://bucket/prefix` → that bucket, `dir` its local cache.
 */
export function openArtifactStore(opts: { artifacts?: string; dir: string; env: Record<string, string | undefined> }, secrets: readonly string[] = []): ArtifactStore {
  if (!opts.artifacts) return new LocalArtifactStore(opts.dir, secrets);
  return new S3ArtifactStore(s3ClientFromEnv(opts.env), parseS3Url(opts.artifacts), opts.dir, secrets);
}
