// A kernel profiler on GPU timestamp queries: while it runs, every dispatch gets a compute pass of
// its own whose start and end times are written to a query set; each submitted batch resolves its
// queries into a buffer that is read back when the profile stops. Rows sum the time per kernel
// entry point and op. Separate passes cost a little, so profiled runs are slightly slower.
// Needs the device feature 'timestamp-query' (engine/device.ts asks for it where offered).

export interface ProfileRow {
  /** Kernel entry point. */
  entry: string;
  /** The op's name (the dispatch label up to its first parenthesis). */
  op: string;
  count: number;
  ms: number;
}

const USAGE_QUERY_RESOLVE = 0x200, USAGE_COPY_SRC = 0x4, USAGE_COPY_DST = 0x8, USAGE_MAP_READ = 0x1, MAP_MODE_READ = 0x1;

export class KernelProfiler {
  private readonly querySet: GPUQuerySet;
  private labels: string[] = [];
  private pending: { staging: GPUBuffer; labels: string[] }[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly capacity: number,
  ) {
    if (!device.features.has('timestamp-query')) {
      throw new Error("profiler: this device has no 'timestamp-query' feature (Dawn: pass the adapter toggle or use a browser flag that exposes it)");
    }
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * capacity });
  }

  /** The pass descriptor of the next dispatch (in the current batch, at most `capacity` of them). */
  passFor(label: string, entry: string): GPUComputePassDescriptor {
    const i = this.labels.length;
    if (i >= this.capacity) throw new Error(`profiler: more than ${this.capacity} dispatches in one batch`);
    this.labels.push(`${entry}\u0000${label}`);
    return { timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** Records the resolve of this batch's queries into `encoder` (before it is finished). */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.labels.length;
    if (!n) return;
    const bytes = 16 * n;
    const resolved = this.device.createBuffer({ size: bytes, usage: USAGE_QUERY_RESOLVE | USAGE_COPY_SRC });
    const staging = this.device.createBuffer({ size: bytes, usage: USAGE_MAP_READ | USAGE_COPY_DST });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    this.pending.push({ staging, labels: this.labels });
    this.labels = [];
    // Destroying after the submit is allowed: the GPU keeps it alive for the work using it.
    queueMicrotask(() => resolved.destroy());
  }

  /**
   * Reads every resolved batch and sums per (entry, op), or per (entry, whole label: shapes
   * included) with `byLabel`, slowest first. Call after the last submit.
   */
  async collect(byLabel = false): Promise<ProfileRow[]> {
    const rows = new Map<string, ProfileRow>();
    for (const { staging, labels } of this.pending) {
      await staging.mapAsync(MAP_MODE_READ);
      const t = new BigUint64Array(staging.getMappedRange());
      labels.forEach((key, i) => {
        const [entry, label] = key.split('\u0000') as [string, string];
        const op = byLabel ? label : label.split('(')[0]!;
        const row = rows.get(`${entry} ${op}`) ?? { entry, op, count: 0, ms: 0 };
        row.count++;
        row.ms += Number(t[2 * i + 1]! - t[2 * i]!) / 1e6;
        rows.set(`${entry} ${op}`, row);
      });
      staging.destroy();
    }
    this.pending = [];
    this.querySet.destroy();
    return [...rows.values()].sort((a, b) => b.ms - a.ms);
  }
}
