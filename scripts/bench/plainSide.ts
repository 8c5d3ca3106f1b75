// The bench's side of the plain script: one long-lived script process, a task sent to it and its
// result awaited by id. A failed task rejects (the bench exits non-zero on it).
import path from 'node:path';
import { startLineChild, type LineChild } from './children';
import type { LoopBlocks } from './loop';
import type { PlainResult, PlainTask } from './plainTask';

export class PlainSide {
  private waiting = new Map<string, { resolve: (r: PlainResult) => void; reject: (e: Error) => void }>();
  private loopReply?: (blocks: LoopBlocks) => void;

  private constructor(private readonly child: LineChild) {
    child.onMessage((msg) => {
      const m = msg as PlainResult & { crashed?: string; loop?: LoopBlocks };
      if (m.loop) return this.loopReply?.(m.loop);
      if (m.crashed) {
        for (const w of this.waiting.values()) w.reject(new Error(m.crashed));
        this.waiting.clear();
        return;
      }
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (!w) return;
      if (m.ok) w.resolve(m);
      else w.reject(new Error(`plain script task ${m.id} failed: ${m.error}`));
    });
  }

  static async start(modelUrl: string): Promise<PlainSide> {
    // Without what changes the cost of every node process it starts (the test run's two) and that
    // Weaver's sandbox does not pass its commands: NODE_EXTRA_CA_CERTS alone (a CA bundle parsed
    // at every start, set on some machines) doubles `node --test`'s CPU.
    const { NODE_EXTRA_CA_CERTS: _ca, NODE_OPTIONS: _opts, ...env } = process.env;
    const child = startLineChild(path.join(__dirname, 'plainScript.ts'), [], { ...env, OPENAI_BASE_URL: modelUrl, OPENAI_API_KEY: 'bench' });
    await child.ready;
    return new PlainSide(child);
  }

  get pid(): number {
    return this.child.pid;
  }

  run(task: PlainTask): Promise<PlainResult> {
    return new Promise((resolve, reject) => {
      this.waiting.set(task.id, { resolve, reject });
      this.child.send(task);
    });
  }

  /** The script's event loop: watched from now on ... */
  loopReset(): void {
    this.child.send({ loop: 'reset' });
  }

  /** ... its blocks since. */
  loopRead(): Promise<LoopBlocks> {
    return new Promise((resolve) => {
      this.loopReply = resolve;
      this.child.send({ loop: 'read' });
    });
  }

  stop(): Promise<void> {
    return this.child.stop();
  }

  kill(): void {
    this.child.kill();
  }
}
