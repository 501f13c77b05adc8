// Data-parallel training over a Collective (train/collective.ts), as PyTorch's
// DistributedDataParallel does it: every rank starts from rank 0's model state (broadcast), trains
// on its own share of each batch, and averages gradients before the optimizer step, so every rank
// takes the same step and the replicas stay identical. Gradients are averaged in ~25 MB buckets (DDP's
// bucket_cap_mb) as backward produces them: when a bucket's last gradient is complete, one GPU
// concatenation and one readback are queued right away (the GPU->host copy goes into the command
// stream between the backward kernels), and the allreduce runs on MPI's worker thread while the
// rest of the backward is recorded and computed. Buckets are reduced strictly in bucket order on
// every rank (MPI pairs collectives by order), whatever order their gradients complete in.
// BatchNorm in train mode uses per-rank batch statistics (DDP without SyncBatchNorm); running
// statistics (buffers) are made rank 0's before evaluation, as DDP's broadcast_buffers does.
import { cat, keep, reshape, tensor, tidy, zeros, type Tensor, type nn, type HostTensor } from '../engine/index.js';
import type { FileIO } from '../data/io.js';
import type { Collective } from './collective.js';

/** DDP's default bucket size (bucket_cap_mb = 25). */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

interface Bucket {
  params: Tensor[];
  size: number;
  /** Gradients complete so far in this backward. */
  ready: number;
  /** The readback + allreduce in flight, resolving to the summed gradients. */
  reduced: Promise<Float32Array> | null;
}

/** Averages the trainable parameters' gradients over the ranks, bucket by bucket during backward. */
export class GradientReducer {
  private readonly buckets: Bucket[] = [];
  private readonly bucketOf = new Map<Tensor, number>();
  /** The next bucket to launch (buckets go strictly in order). */
  private next = 0;

  constructor(
    params: readonly Tensor[],
    private readonly collective: Collective,
    bucketBytes = DEFAULT_BUCKET_BYTES,
  ) {
    // Reverse registration order: the head's gradients come first out of backward, the stem's last.
    let cur: Bucket | null = null;
    for (const p of [...params].reverse()) {
      if (!cur || (cur.size > 0 && (cur.size + p.size) * 4 > bucketBytes)) {
        cur = { params: [], size: 0, ready: 0, reduced: null };
        this.buckets.push(cur);
      }
      cur.params.push(p);
      cur.size += p.size;
      this.bucketOf.set(p, this.buckets.length - 1);
    }
  }

  /** Number of buckets (each one allreduce per step). */
  get bucketCount(): number {
    return this.buckets.length;
  }

  /** Pass as backward()'s onLeafGrad on the micro-batch whose gradients complete the step. */
  readonly onLeafGrad = (leaf: Tensor): void => {
    const k = this.bucketOf.get(leaf);
    if (k === undefined) return;
    this.buckets[k]!.ready++;
    this.launchReady(false);
  };

  /**
   * Waits for every bucket and replaces each gradient with the average over the ranks. Buckets
   * whose gradients did not all come (a parameter unused on this rank this step) go now, with
   * zeros for the missing ones, as DDP's find_unused_parameters does.
   */
  async finish(): Promise<void> {
    this.launchReady(true);
    const scale = 1 / this.collective.size;
    for (const b of this.buckets) {
      const sum = await b.reduced!;
      b.reduced = null;
      b.ready = 0;
      for (let i = 0; i < sum.length; i++) sum[i]! *= scale;
      let at = 0;
      for (const p of b.params) {
        const g = keep(tensor(sum.subarray(at, at + p.size), p.shape));
        p.grad?.dispose();
        p.grad = g;
        at += p.size;
      }
    }
    this.next = 0;
  }

  private launchReady(force: boolean): void {
    while (this.next < this.buckets.length) {
      const b = this.buckets[this.next]!;
      if (!force && b.ready < b.params.length) return;
      this.next++;
      let read!: Promise<Float32Array>;
      // The copy to the staging buffer is recorded now (read() records and submits it before it
      // awaits), so the temporary concatenation can go at the end of this scope.
      tidy(() => {
        const flat = cat(b.params.map((p) => (p.grad ? reshape(p.grad, [p.size]) : zeros([p.size]))));
        read = flat.floatData();
      });
      b.reduced = read.then(async (data) => {
        await this.collective.allreduceSum(data);
        return data;
      });
    }
  }
}

/**
 * Makes every rank's model state rank `root`'s (DDP broadcasts parameters and buffers at
 * construction): all tensors of the state dict, or only the buffers (running statistics).
 */
export async function broadcastModelState(c: Collective, model: nn.Module, which: 'all' | 'buffers' = 'all', root = 0): Promise<void> {
  if (c.size === 1) return;
  const params = new Set(model.parameters());
  const entries = Object.entries(model.stateDict()).filter(([, t]) => which === 'all' || !params.has(t));
  const bytes = entries.reduce((a, [, t]) => a + t.size * 4, 0);
  const flat = new Uint8Array(bytes);
  if (c.rank === root) {
    let at = 0;
    for (const [, t] of entries) {
      const d = await t.data();
      flat.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
      at += d.byteLength;
    }
  }
  await c.broadcast(flat, root);
  if (c.rank === root) return;
  const dict: Record<string, HostTensor> = {};
  let at = 0;
  for (const [name, t] of entries) {
    const raw = flat.slice(at, at + t.size * 4).buffer;
    const data = t.dtype === 'float32' ? new Float32Array(raw) : t.dtype === 'int32' ? new Int32Array(raw) : new Uint32Array(raw);
    dict[name] = { dtype: t.dtype, shape: [...t.shape], data };
    at += t.size * 4;
  }
  model.loadStateDict(dict, { strict: false });
}

/** The FileIO of a rank that must not write (every rank but 0): reads pass through, writes do nothing. */
export function readOnlyIO(io: FileIO): FileIO {
  return { ...io, writeBytes: async () => {}, writeText: async () => {}, appendText: async () => {} };
}
