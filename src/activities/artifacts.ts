// Content-addressed artifact store: prompts, raw answers, diffs, test logs, reports and git
// bundles live here so workflow history carries only references (design rule 3). Same content →
// same key, so a write is idempotent and concurrent writers of one content agree.
// Two backends (WEAVER_ARTIFACTS): the local directory (default) and an S3-compatible object
// store (s3Artifacts.ts), which workers on several hosts share; each keeps a local directory
// (WEAVER_ARTIFACT_DIR) for scratch files and, with S3, as a cache of what it read or wrote.
// Text stored here never holds a secret of the worker (design rule 6): `put` masks the worker's
// secret values (the literal values only, so code and change sets keep their bytes otherwise;
// a change set that would hold one is refused before it gets here — llm.ts). Files adopted
// whole (test logs, git bundles) are redacted, or not text, where they are written.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { redactCounted } from '../domain/redact';
import type { ArtifactRef } from '../domain/schema';

export interface ArtifactStore {
  /** Where the artifacts are, for people (the worker's start line, errors). */
  readonly where: string;
  put(kind: string, content: string | Buffer): Promise<ArtifactRef>;
  putJson(kind: string, value: unknown): Promise<ArtifactRef>;
  /** Moves a file written elsewhere (e.g. a streamed test log) into the store; the file is gone after. */
  adoptFile(kind: string, file: string): Promise<ArtifactRef>;
  /** A scratch path on the local cache's file system, for streaming writes before adoptFile. */
  scratchPath(name: string): Promise<string>;
  /** A local file holding the artifact (git and streamed readers need a path): the store's own, or a verified download. */
  localPath(ref: string | ArtifactRef): Promise<string>;
  read(ref: string | ArtifactRef): Promise<string>;
  readJson<T>(ref: string | ArtifactRef): Promise<T>;
  /** Fails, saying why, when the store cannot be reached (checked at worker start). */
  check(): Promise<void>;
  /** Every artifact the store holds, with its size and last write (what `weaver gc` prunes by). */
  list(): AsyncIterable<StoredArtifact>;
  /**
   * Deletes a listed artifact (or scratch file) from the store and the local directory (retention:
   * src/gc); false, deleting nothing, when it was written again since it was listed (a new user).
   */
  remove(entry: StoredArtifact): Promise<boolean>;
  /**
   * Small named records beside the artifacts (not content-addressed: `key` such as
   * `unpushed/<workflowId>/<runId>.json`, see unpushed.ts); a write replaces the record whole.
   */
  putRecord(key: string, text: string): Promise<void>;
  /** The record's text; undefined when there is none. */
  readRecord(key: string): Promise<string | undefined>;
  /** The keys of the records under `prefix` (a key prefix, e.g. `unpushed/`). */
  listRecords(prefix: string): Promise<string[]>;
  /** Deletes the record (none: nothing to do). */
  removeRecord(key: string): Promise<void>;
}

/** A stored artifact: `hex` undefined for a scratch or partial file (`file` says which). */
export interface StoredArtifact {
  hex?: string;
  file: string;
  bytes: number;
  modifiedMs: number;
}

/** A record key: `/`-separated segments, none empty, `.` or `..`, outside the store's own folders. */
export function checkRecordKey(key: string): string {
  const segs = key.split('/');
  if (!key || segs.some((x) => !x || x === '.' || x === '..') || ['sha256', 'tmp'].includes(segs[0]) || key.endsWith('.tmp')) throw new Error(`not a record key: ${key}`);
  return key;
}

/** The hex digest in `sha256:<hex>`; anything else is refused. */
export function hexOf(ref: string | ArtifactRef): string {
  const s = typeof ref === 'string' ? ref : ref.ref;
  const m = /^sha256:([0-9a-f]{64})$/.exec(s);
  if (!m) throw new Error(`not an artifact reference: ${s}`);
  return m[1];
}

/** A missing artifact reads as a missing file (ENOENT) whichever backend holds it. */
export function notFound(ref: string, where: string): Error {
  return Object.assign(new Error(`artifact ${ref} is not in the artifact store (${where})`), { code: 'ENOENT' });
}

/** What both backends share: masking, hashing, and the local directory laid out as `sha256/<2>/<hex>`. */
export abstract class ContentAddressedStore implements ArtifactStore {
  abstract readonly where: string;
  /** `secrets`: the worker's secret values (domain/redact.ts secretsFromEnv), masked in every text put here. */
  constructor(
    readonly root: string,
    private readonly secrets: readonly string[] = [],
  ) {}

  /** Stores `content` under `hex` (the backend may already hold it). */
  protected abstract saveBytes(hex: string, content: Buffer): Promise<void>;
  /** Stores the file under `hex` and takes it away (moved into the local directory, or removed). */
  protected abstract saveFile(hex: string, file: string, bytes: number): Promise<void>;
  abstract localPath(ref: string | ArtifactRef): Promise<string>;
  abstract check(): Promise<void>;

  protected fileOf(hex: string): string {
    return path.join(this.root, 'sha256', hex.slice(0, 2), hex);
  }

  async put(kind: string, content: string | Buffer): Promise<ArtifactRef> {
    if (typeof content === 'string' && this.secrets.length) content = this.mask(content);
    const bytes = Buffer.from(content);
    const hex = createHash('sha256').update(bytes).digest('hex');
    await this.saveBytes(hex, bytes);
    return { ref: `sha256:${hex}`, bytes: bytes.length, kind };
  }

  async putJson(kind: string, value: unknown): Promise<ArtifactRef> {
    return this.put(kind, JSON.stringify(value, null, 2));
  }

  /** The worker's secrets masked: as written, and as JSON escapes them (a quote or backslash in one). */
  private mask(text: string): string {
    const escaped = this.secrets.map((s) => JSON.stringify(s).slice(1, -1)).filter((e, i) => e !== this.secrets[i]);
    return redactCounted(text, [...this.secrets, ...escaped], { literalOnly: true }).text;
  }

  async adoptFile(kind: string, file: string): Promise<ArtifactRef> {
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash);
    const hex = hash.digest('hex');
    const { size } = await stat(file);
    await this.saveFile(hex, file, size);
    return { ref: `sha256:${hex}`, bytes: size, kind };
  }

  async scratchPath(name: string): Promise<string> {
    const dir = path.join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    return path.join(dir, `${randomUUID()}-${name}`);
  }

  async read(ref: string | ArtifactRef): Promise<string> {
    return readFile(await this.localPath(ref), 'utf8');
  }

  async readJson<T>(ref: string | ArtifactRef): Promise<T> {
    return JSON.parse(await this.read(ref)) as T;
  }

  /**
   * What the local directory holds: the artifacts under sha256/, and scratch files (tmp/) and
   * partial writes (`*.tmp`) left by writers that crashed, with no hex.
   */
  async *localEntries(): AsyncGenerator<StoredArtifact> {
    const dirs = [path.join(this.root, 'tmp')];
    for (const two of await readdir(path.join(this.root, 'sha256')).catch(() => [] as string[])) dirs.push(path.join(this.root, 'sha256', two));
    for (const dir of dirs) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const file = path.join(dir, name);
        const st = await stat(file).catch(() => undefined);
        if (!st) continue; // gone meanwhile
        yield { hex: /^[0-9a-f]{64}$/.test(name) ? name : undefined, file, bytes: st.size, modifiedMs: st.mtimeMs };
      }
    }
  }

  /** Removes the local copy of `hex` (or a scratch file by its path). */
  async removeLocal(hexOrFile: string): Promise<void> {
    await rm(/^[0-9a-f]{64}$/.test(hexOrFile) ? this.fileOf(hexOrFile) : hexOrFile, { force: true, recursive: true });
  }

  abstract list(): AsyncIterable<StoredArtifact>;
  abstract remove(entry: StoredArtifact): Promise<boolean>;
  abstract putRecord(key: string, text: string): Promise<void>;
  abstract readRecord(key: string): Promise<string | undefined>;
  abstract listRecords(prefix: string): Promise<string[]>;
  abstract removeRecord(key: string): Promise<void>;

  /** Writes `content` at the local file of `hex`, whole or not at all (a reader never sees half). */
  protected async writeLocal(hex: string, content: Buffer): Promise<void> {
    const file = this.fileOf(hex);
    const tmp = `${file}.${randomUUID()}.tmp`;
    // Its directory is there but for the first artifact of its prefix (or after gc emptied it):
    // made only then, not asked for at every write.
    await writeFile(tmp, content).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(tmp, content);
    });
    await rename(tmp, file);
  }

  /** Moves `file` to the local file of `hex` (copied across file systems). */
  protected async moveLocal(hex: string, file: string): Promise<void> {
    const target = this.fileOf(hex);
    // As in writeLocal: the directory made only when the move finds it missing.
    if (await rename(file, target).then(() => true, () => false)) return;
    await mkdir(path.dirname(target), { recursive: true });
    await rename(file, target).catch(async () => {
      const tmp = `${target}.${randomUUID()}.tmp`;
      await pipeline(createReadStream(file), createWriteStream(tmp));
      await rename(tmp, target);
      await unlink(file);
    });
  }
}

/** The local directory: the store of a single host, or of hosts sharing a file system. */
export class LocalArtifactStore extends ContentAddressedStore {
  get where(): string {
    return this.root;
  }

  pathOf(ref: string | ArtifactRef): string {
    return this.fileOf(hexOf(ref));
  }

  protected saveBytes(hex: string, content: Buffer): Promise<void> {
    return this.writeLocal(hex, content);
  }

  protected saveFile(hex: string, file: string): Promise<void> {
    return this.moveLocal(hex, file);
  }

  async localPath(ref: string | ArtifactRef): Promise<string> {
    return this.pathOf(ref);
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  list(): AsyncIterable<StoredArtifact> {
    return this.localEntries();
  }

  async remove(entry: StoredArtifact): Promise<boolean> {
    const now = await stat(entry.file).catch(() => undefined);
    if (now && now.mtimeMs !== entry.modifiedMs) return false;
    await this.removeLocal(entry.hex ?? entry.file);
    return true;
  }

  private recordFile(key: string): string {
    return path.join(this.root, checkRecordKey(key));
  }

  async putRecord(key: string, text: string): Promise<void> {
    const file = this.recordFile(key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID()}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, file);
  }

  async readRecord(key: string): Promise<string | undefined> {
    return readFile(this.recordFile(key), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  }

  async listRecords(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const e of await readdir(path.join(this.root, rel), { withFileTypes: true }).catch(() => [])) {
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(key);
        else if (!e.name.endsWith('.tmp') && key.startsWith(prefix)) keys.push(key);
      }
    };
    // From the deepest folder the prefix names whole: `unpushed/a/` walks `unpushed/a`.
    await walk(prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '');
    return keys.sort();
  }

  async removeRecord(key: string): Promise<void> {
    await rm(this.recordFile(key), { force: true });
  }
}
