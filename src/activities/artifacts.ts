// Content-addressed artifact store: prompts, raw answers, diffs and test logs live here so
// workflow history carries only references (design rule 3). Same content → same file.
// Text stored here never holds a secret of the worker (design rule 6): `put` masks the worker's
// secret values (the literal values only, so code and change sets keep their bytes otherwise;
// a change set that would hold one is refused before it gets here — llm.ts). Files adopted
// whole (test logs, git bundles) are redacted, or not text, where they are written.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { redactCounted } from '../domain/redact';
import type { ArtifactRef } from '../domain/schema';

export class ArtifactStore {
  /** `secrets`: the worker's secret values (domain/redact.ts secretsFromEnv), masked in every text put here. */
  constructor(
    readonly root: string,
    private readonly secrets: readonly string[] = [],
  ) {}

  pathOf(ref: string): string {
    const m = /^sha256:([0-9a-f]{64})$/.exec(ref);
    if (!m) throw new Error(`not an artifact reference: ${ref}`);
    return path.join(this.root, 'sha256', m[1].slice(0, 2), m[1]);
  }

  async put(kind: string, content: string | Buffer): Promise<ArtifactRef> {
    if (typeof content === 'string' && this.secrets.length) content = this.mask(content);
    const hex = createHash('sha256').update(content).digest('hex');
    const ref = `sha256:${hex}`;
    const file = this.pathOf(ref);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID()}.tmp`;
    await writeFile(tmp, content);
    await rename(tmp, file);
    return { ref, bytes: Buffer.byteLength(content), kind };
  }

  async putJson(kind: string, value: unknown): Promise<ArtifactRef> {
    return this.put(kind, JSON.stringify(value, null, 2));
  }

  /** The worker's secrets masked: as written, and as JSON escapes them (a quote or backslash in one). */
  private mask(text: string): string {
    const escaped = this.secrets.map((s) => JSON.stringify(s).slice(1, -1)).filter((e, i) => e !== this.secrets[i]);
    return redactCounted(text, [...this.secrets, ...escaped], { literalOnly: true }).text;
  }

  /** Moves a file written elsewhere (e.g. a streamed test log) into the store. */
  async adoptFile(kind: string, file: string): Promise<ArtifactRef> {
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash);
    const ref = `sha256:${hash.digest('hex')}`;
    const target = this.pathOf(ref);
    await mkdir(path.dirname(target), { recursive: true });
    const { size } = await stat(file);
    await rename(file, target).catch(async () => {
      // Across file systems: copy, then drop the original.
      await pipeline(createReadStream(file), createWriteStream(target));
      await unlink(file);
    });
    return { ref, bytes: size, kind };
  }

  /** A scratch path on the same file system, for streaming writes before adoptFile. */
  async scratchPath(name: string): Promise<string> {
    const dir = path.join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    return path.join(dir, `${randomUUID()}-${name}`);
  }

  async read(ref: string | ArtifactRef): Promise<string> {
    return readFile(this.pathOf(typeof ref === 'string' ? ref : ref.ref), 'utf8');
  }

  async readJson<T>(ref: string | ArtifactRef): Promise<T> {
    return JSON.parse(await this.read(ref)) as T;
  }
}
