// A SampleSource that decodes and transforms COCO samples on a pool of Node worker threads, for
// data/loader.ts's DataLoader. JPEG decoding and resizing are pure-JS CPU work; on the main thread
// they would stall the training loop, here they overlap with it. The worker runs the same
// CocoSampleSource as the in-thread path and each sample depends only on (index, seed), so batches
// are identical whichever path or pool size is used.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { CocoSourceOptions, SampleSource } from '../data/coco-source.js';
import type { Sample } from '../data/transforms.js';

/** What a worker needs to rebuild the source: plain data, since it crosses a thread boundary. */
export interface CocoWorkerSpec extends CocoSourceOptions {
  annotationFile: string;
  /** Only the first worker sends the per-sample file names (for warnings). */
  sendNames?: boolean;
}

export type WorkerRequest = { id: number; index: number; seed: number };
export type WorkerReply =
  | { type: 'ready'; size: number; maxInstances: number; names?: string[] }
  | { type: 'sample'; id: number; sample: Sample }
  | { type: 'error'; id: number; message: string }
  | { type: 'fatal'; message: string };

interface Slot {
  worker: Worker;
  busy: number;
  dead?: Error;
}

export class WorkerPoolSource implements SampleSource {
  private nextId = 0;
  private readonly waiting = new Map<number, { slot: Slot; resolve: (s: Sample) => void; reject: (e: Error) => void }>();
  private closed = false;

  private constructor(
    private readonly slots: Slot[],
    readonly size: number,
    private readonly names: string[],
    readonly maxInstances: number,
  ) {
    for (const slot of slots) {
      slot.worker.on('message', (msg: WorkerReply) => this.onReply(msg));
      slot.worker.on('error', (e) => this.failWorker(slot, e));
      slot.worker.on('exit', (code) => {
        if (!this.closed) this.failWorker(slot, new Error(`data worker exited with code ${code}`));
      });
    }
  }

  /** Starts `workers` threads (default: cores - 1) and waits until each has loaded the dataset. */
  static async create(spec: CocoWorkerSpec, workers = Math.max(1, availableParallelism() - 1)): Promise<WorkerPoolSource> {
    const url = new URL('./worker-loader-worker.js', import.meta.url);
    const started = Array.from({ length: Math.max(1, workers) }, (_, k) => {
      const worker = new Worker(url, { workerData: { ...spec, sendNames: k === 0 } satisfies CocoWorkerSpec });
      return new Promise<{ slot: Slot; ready: Extract<WorkerReply, { type: 'ready' }> }>((resolve, reject) => {
        const onMessage = (msg: WorkerReply): void => {
          worker.off('error', reject);
          worker.off('message', onMessage);
          if (msg.type === 'ready') resolve({ slot: { worker, busy: 0 }, ready: msg });
          else reject(new Error(msg.type === 'fatal' ? msg.message : `unexpected first message ${msg.type}`));
        };
        worker.on('message', onMessage);
        worker.once('error', reject);
      });
    });
    const results = await Promise.allSettled(started);
    const failed = results.find((r) => r.status === 'rejected');
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      await Promise.all(ok.map((r) => r.slot.worker.terminate()));
      throw (failed as PromiseRejectedResult).reason;
    }
    const first = ok[0]!.ready;
    return new WorkerPoolSource(
      ok.map((r) => r.slot),
      first.size,
      first.names ?? [],
      first.maxInstances,
    );
  }

  name(i: number): string {
    return this.names[i] ?? `sample ${i}`;
  }

  load(index: number, seed: number): Promise<Sample> {
    if (this.closed) return Promise.reject(new Error('WorkerPoolSource is closed'));
    // Least-busy live worker: requests arrive in order, so this spreads a batch across the pool.
    let slot: Slot | undefined;
    for (const s of this.slots) if (!s.dead && (!slot || s.busy < slot.busy)) slot = s;
    if (!slot) return Promise.reject(new Error(`all data workers died: ${this.slots[0]?.dead?.message}`));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<Sample>((resolve, reject) => {
      this.waiting.set(id, { slot, resolve, reject });
      slot.worker.postMessage({ id, index, seed } satisfies WorkerRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.values()) w.reject(new Error('WorkerPoolSource closed'));
    this.waiting.clear();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private onReply(msg: WorkerReply): void {
    if (msg.type !== 'sample' && msg.type !== 'error') return;
    const w = this.waiting.get(msg.id);
    if (!w) return;
    this.waiting.delete(msg.id);
    w.slot.busy--;
    if (msg.type === 'sample') w.resolve(msg.sample);
    else w.reject(new Error(msg.message));
  }

  private failWorker(slot: Slot, e: Error): void {
    // A dead worker takes no more requests; its pending ones fail (the loader skips or raises).
    slot.dead ??= e;
    for (const [id, w] of this.waiting) {
      if (w.slot !== slot) continue;
      this.waiting.delete(id);
      w.reject(e);
    }
  }
}
