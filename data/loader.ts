// Batches of transformed samples, produced ahead of consumption, in an order that is a pure
// function of (seed, epoch). The state to checkpoint is just {epoch, index}: restoring it replays
// exactly the batches an uninterrupted run would have produced, because every sample's augmentation
// seed is derived from (seed, epoch, position) and not from a shared, order-dependent RNG stream.
import { epochPermutation, mixSeed } from './rng.js';
import type { SampleSource } from './coco-source.js';
import { batchImages, type ImageBatch, type Sample } from './transforms.js';

export type { SampleSource } from './coco-source.js';

/** Where the loader stands: `index` positions of epoch `epoch`'s order have been consumed. */
export interface LoaderPosition {
  epoch: number;
  index: number;
}

export interface LoaderOptions {
  batchSize: number;
  seed: number;
  /** Reshuffle every epoch (training); false keeps dataset order (evaluation). Default true. */
  shuffle?: boolean;
  /** Drop an epoch's last incomplete batch, as PyTorch's drop_last. Default false. Batches still
   *  come out smaller when samples fail to load (the loader never borrows from the dropped tail, so
   *  that positions stay a pure function of the epoch). */
  dropLast?: boolean;
  /** Batches being prepared ahead of the one consumed. Default 2. */
  prefetch?: number;
  /** A sample that fails to load is skipped with a warning ('skip', default) or fails the batch. */
  onError?: 'skip' | 'raise';
  warn?: (message: string) => void;
  /** Resume from a saved position (default {epoch: 0, index: 0}). */
  start?: LoaderPosition;
  /** Stop after this many epochs (default: never). */
  maxEpochs?: number;
  /** Padding multiple of the batched images (32 for FPN with 5 levels). */
  sizeDivisible?: number;
  /**
   * Data-parallel training: this rank's share of each epoch (PyTorch DistributedSampler semantics:
   * the same (seed, epoch) order on every rank, disjoint shares of equal size, the epoch padded with
   * its first samples to a multiple of `size`). The order is cut into global batches of
   * batchSize x size positions and rank r takes the r-th block of batchSize of each (the last one
   * split evenly), so that `size` ranks at batch B compute what one process computes at batch B
   * with `size` accumulated micro-batches (DistributedSampler strides instead: same sets per epoch,
   * another grouping). `start` and `position` count global positions, so a checkpoint resumes on any
   * number of ranks (with another number, the rest of that epoch is re-cut from the saved position).
   */
  shard?: { rank: number; size: number };
}

export interface Batch extends ImageBatch {
  /** Transformed samples (targets at the resized, unpadded size), in batch order. */
  samples: Sample[];
  epoch: number;
  /** Dataset indices in the batch. */
  indices: number[];
  /** The position right after this batch: save it to resume with the following batch. */
  next: LoaderPosition;
}

type Outcome = { ok: true; sample: Sample } | { ok: false; error: unknown };

export class DataLoader implements AsyncIterable<Batch> {
  private consumed: LoaderPosition;
  /** Next position not yet handed to the source. */
  private scheduled: LoaderPosition;
  private readonly pending = new Map<string, Promise<Outcome>>();
  private readonly orders = new Map<number, Int32Array>();
  private readonly opts: Required<Omit<LoaderOptions, 'start' | 'shard'>>;
  private readonly rank: number;
  private readonly world: number;
  /** With shards: the global position the first epoch's share starts from (the resumed position). */
  private readonly startEpoch: number;
  private readonly startOrigin: number;

  constructor(
    readonly source: SampleSource,
    options: LoaderOptions,
  ) {
    if (source.size === 0) throw new Error(`the dataset is empty${source.whyEmpty ? `: ${source.whyEmpty()}` : ''}`);
    if (!(options.batchSize >= 1)) throw new Error('DataLoader: batchSize must be >= 1');
    this.opts = {
      shuffle: true,
      dropLast: false,
      prefetch: 2,
      onError: 'skip',
      warn: (m) => console.warn(m),
      maxEpochs: Infinity,
      sizeDivisible: 32,
      ...options,
    };
    if (this.epochLength === 0) throw new Error('DataLoader: dropLast with fewer samples than one batch');
    this.rank = options.shard?.rank ?? 0;
    this.world = options.shard?.size ?? 1;
    if (!Number.isInteger(this.world) || this.world < 1 || !Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.world) {
      throw new Error(`DataLoader: bad shard ${JSON.stringify(options.shard)} (rank must be in 0 .. size - 1)`);
    }
    if (this.world > 1 && this.opts.dropLast) throw new Error('DataLoader: dropLast is not supported with shards');
    let start = options.start ?? { epoch: 0, index: 0 };
    this.startEpoch = this.startOrigin = 0;
    if (this.world > 1) {
      // Local positions from here on: the start epoch's share begins at the saved global position.
      const n = this.source.size;
      if (start.index >= n) start = { epoch: start.epoch + Math.floor(start.index / n), index: start.index % n };
      this.startEpoch = start.epoch;
      this.startOrigin = start.index;
      start = { epoch: start.epoch, index: 0 };
    }
    this.consumed = this.normalise({ ...start });
    this.scheduled = { ...this.consumed };
  }

  /** The position to save in a checkpoint: the next batch starts here (global with shards: every rank's batches of the step consumed). */
  get position(): LoaderPosition {
    const { epoch, index } = this.consumed;
    return this.world === 1 ? { epoch, index } : { epoch, index: this.origin(epoch) + index * this.world };
  }

  /** Number of batches an epoch yields. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.epochLength / this.opts.batchSize);
  }

  /** Positions used per epoch: all samples, or whole batches only with dropLast. */
  get epochLength(): number {
    const n = this.source.size;
    return this.opts.dropLast ? n - (n % this.opts.batchSize) : n;
  }

  /** Dataset index at a position of an epoch. */
  indexAt(epoch: number, index: number): number {
    if (!this.opts.shuffle) return index;
    let order = this.orders.get(epoch);
    if (!order) {
      order = epochPermutation(this.source.size, this.opts.seed, epoch);
      this.orders.set(epoch, order);
      // Only the consumed and the prefetching epoch are ever needed.
      for (const e of this.orders.keys()) if (e < this.consumed.epoch) this.orders.delete(e);
    }
    return order[index]!;
  }

  /** With shards: where epoch `epoch`'s shares start (global position). */
  private origin(epoch: number): number {
    return epoch === this.startEpoch ? this.startOrigin : 0;
  }

  /** Positions this loader reads in an epoch (its share with shards). */
  private lengthOf(epoch: number): number {
    return this.world === 1 ? this.epochLength : Math.ceil((this.source.size - this.origin(epoch)) / this.world);
  }

  /** The global position of this rank's local position `q` (the identity without shards). */
  private globalPosition(epoch: number, q: number): number {
    if (this.world === 1) return q;
    const B = this.opts.batchSize, W = this.world;
    const o = this.origin(epoch);
    const padded = this.lengthOf(epoch) * W;
    const full = Math.floor(padded / (B * W));
    if (q < full * B) return o + Math.floor(q / B) * B * W + this.rank * B + (q % B);
    const tail = (padded - full * B * W) / W;
    return o + full * B * W + this.rank * tail + (q - full * B);
  }

  /** Dataset index at local position `q`; positions past the epoch's end wrap to its start (padding). */
  private datasetIndex(epoch: number, q: number): number {
    const g = this.globalPosition(epoch, q);
    const n = this.source.size;
    return this.indexAt(epoch, g < n ? g : (g - n) % n);
  }

  /** The augmentation seed of a position (pure, so worker threads agree with the main thread). */
  sampleSeed(epoch: number, index: number): number {
    return mixSeed(this.opts.seed, epoch, index);
  }

  /** Next batch, or null once maxEpochs are done. */
  async next(): Promise<Batch | null> {
    let emptyEpochs = 0;
    for (;;) {
      const { epoch } = this.consumed;
      if (epoch >= this.opts.maxEpochs) return null;
      const n = this.lengthOf(epoch);
      this.fill();
      const samples: Sample[] = [];
      const indices: number[] = [];
      let pos = this.consumed.index;
      // A batch never spans two epochs (as with PyTorch's DataLoader).
      while (samples.length < this.opts.batchSize && pos < n) {
        const key = `${epoch}:${pos}`;
        const outcome = await this.pending.get(key)!;
        this.pending.delete(key);
        const i = this.datasetIndex(epoch, pos);
        pos++;
        this.consumed = this.normalise({ epoch, index: pos });
        this.fill();
        if (outcome.ok) {
          samples.push(outcome.sample);
          indices.push(i);
        } else {
          const msg = `${this.source.name(i)}: ${(outcome.error as Error)?.message ?? String(outcome.error)}`;
          if (this.opts.onError === 'raise') throw outcome.error instanceof Error ? outcome.error : new Error(msg);
          this.opts.warn(`warning: skipping sample ${i} (${msg})`);
        }
      }
      if (samples.length === 0) {
        // Everything left in the epoch failed to load: move on, but not forever.
        if (++emptyEpochs > 1) throw new Error('DataLoader: no sample of a whole epoch could be loaded');
        continue;
      }
      const batch = batchImages(samples, this.opts.sizeDivisible);
      return { ...batch, samples, epoch, indices, next: this.position };
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    for (;;) {
      const b = await this.next();
      if (!b) return;
      yield b;
    }
  }

  /** Releases the source (worker threads); prefetched samples are dropped. */
  async close(): Promise<void> {
    this.pending.clear();
    await this.source.close?.();
  }

  /** Starts loads until `prefetch` batches beyond the one being consumed are in flight. */
  private fill(): void {
    const ahead = (this.opts.prefetch + 1) * this.opts.batchSize;
    while (this.distance(this.consumed, this.scheduled) < ahead && this.scheduled.epoch < this.opts.maxEpochs) {
      const { epoch, index } = this.scheduled;
      const i = this.datasetIndex(epoch, index);
      const seed = this.sampleSeed(epoch, this.globalPosition(epoch, index));
      // Settled into an Outcome right away: a failure must not become an unhandled rejection while
      // it waits in the queue.
      const p = Promise.resolve()
        .then(() => this.source.load(i, seed))
        .then(
          (sample): Outcome => ({ ok: true, sample }),
          (error): Outcome => ({ ok: false, error }),
        );
      this.pending.set(`${epoch}:${index}`, p);
      this.scheduled = this.normalise({ epoch, index: index + 1 });
    }
  }

  private distance(a: LoaderPosition, b: LoaderPosition): number {
    let d = b.index - a.index;
    for (let e = a.epoch; e < b.epoch; e++) d += this.lengthOf(e);
    return d;
  }

  private normalise(p: LoaderPosition): LoaderPosition {
    if (!Number.isInteger(p.epoch) || !Number.isInteger(p.index) || p.epoch < 0 || p.index < 0) {
      throw new Error(`DataLoader: bad position ${JSON.stringify(p)}`);
    }
    if (this.world === 1) {
      const n = this.epochLength;
      return p.index >= n ? { epoch: p.epoch + Math.floor(p.index / n), index: p.index % n } : p;
    }
    let { epoch, index } = p;
    while (index >= this.lengthOf(epoch)) index -= this.lengthOf(epoch++);
    return { epoch, index };
  }
}
