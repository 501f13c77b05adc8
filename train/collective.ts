// The collective operations data-parallel training needs (as torch.distributed offers them): every
// rank calls the same operations in the same order. Buffers live in host memory: WebGPU buffers
// cannot be handed to a communication library, so gradients are read back, reduced, and uploaded.
// `singleProcess` is the 1-rank case (every operation a no-op), so the training loop has one code
// path; native/mpi/collective.ts implements this over Open MPI for `mpirun ... node cli/train.js --distributed`.
// No Node built-ins here (train/ is browser-safe).

export interface Collective {
  /** This process's rank, 0 .. size - 1; rank 0 writes files and prints. */
  readonly rank: number;
  /** Number of ranks (processes). */
  readonly size: number;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
  /** Overwrites `buf` on every rank with root's `buf` (same length everywhere). */
  broadcast(buf: Float32Array | Uint8Array, root: number): Promise<void>;
  /** Element-wise sum over ranks, in place (same length everywhere). */
  allreduceSum(buf: Float32Array | Float64Array): Promise<void>;
  /** Every rank's `values` (same length everywhere), concatenated in rank order. */
  allgather(values: Float64Array): Promise<Float64Array>;
  /** Every rank's bytes (any length), in rank order. */
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
}

/** One process: nothing to communicate. */
export const singleProcess: Collective = {
  rank: 0,
  size: 1,
  barrier: async () => {},
  broadcast: async () => {},
  allreduceSum: async () => {},
  allgather: async (values) => values.slice(),
  allgatherBytes: async (bytes) => [bytes.slice()],
};

/** Broadcasts a JSON value from `root` (its length first, then its bytes). */
export async function broadcastJSON<T>(c: Collective, value: T, root = 0): Promise<T> {
  if (c.size === 1) return value;
  const mine = c.rank === root ? new TextEncoder().encode(JSON.stringify(value)) : new Uint8Array(0);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, mine.length);
  await c.broadcast(len, root);
  const buf = c.rank === root ? mine : new Uint8Array(new DataView(len.buffer).getUint32(0));
  await c.broadcast(buf, root);
  return JSON.parse(new TextDecoder().decode(buf)) as T;
}

/** Every rank's JSON value, in rank order. */
export async function allgatherJSON<T>(c: Collective, value: T): Promise<T[]> {
  const parts = await c.allgatherBytes(new TextEncoder().encode(JSON.stringify(value)));
  return parts.map((p) => JSON.parse(new TextDecoder().decode(p)) as T);
}
