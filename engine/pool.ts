// GPU buffer pool by size class. Requests round up to one of 8 classes per power of two (at most
// ~9% waste), freed buffers wait in their class for reuse, and unlike TF.js's pool this one shrinks:
// when idle buffers exceed `maxIdleBytes` the oldest are destroyed, and `trim()` empties it.

const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */
const MIN_BYTES = 256;

/** The size class a request of `bytes` is served from. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BYTES) return MIN_BYTES;
  const octave = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(octave / 8, 256);
  return Math.ceil(bytes / step) * step;
}

export interface PoolStats {
  /** Bytes in buffers handed out and not yet released. */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes in released buffers kept for reuse. */
  idleBytes: number;
  /** Highest liveBytes seen since the last resetPeak(). */
  peakLiveBytes: number;
  created: number;
  reused: number;
}

export class BufferPool {
  private idle = new Map<number, GPUBuffer[]>();
  private idleOrder: GPUBuffer[] = [];
  // A released buffer may still be used by recorded but unsubmitted work, so buffers leaving the
  // pool are destroyed only by destroyRetired(), which the backend calls after a submit.
  private retired: GPUBuffer[] = [];
  private stats: PoolStats = { liveBytes: 0, liveBuffers: 0, idleBytes: 0, peakLiveBytes: 0, created: 0, reused: 0 };
  maxIdleBytes = 512 * 1024 * 1024;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.idle.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.idleOrder.splice(this.idleOrder.indexOf(buffer), 1);
      this.stats.idleBytes -= size;
      this.stats.reused++;
    } else {
      if (size > this.device.limits.maxBufferSize) {
        throw new Error(`buffer of ${bytes} bytes exceeds the device's maxBufferSize ${this.device.limits.maxBufferSize}`);
      }
      buffer = this.device.createBuffer({ size, usage: USAGE });
      this.stats.created++;
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    let list = this.idle.get(size);
    if (!list) this.idle.set(size, (list = []));
    list.push(buffer);
    this.idleOrder.push(buffer);
    this.stats.idleBytes += size;
    while (this.stats.idleBytes > this.maxIdleBytes && this.idleOrder.length > 0) this.destroyOldest();
  }

  /** Retires every idle buffer (live ones are untouched); they are destroyed at the next flush. */
  trim(): void {
    while (this.idleOrder.length > 0) this.destroyOldest();
  }

  private destroyOldest(): void {
    const buffer = this.idleOrder.shift()!;
    const list = this.idle.get(buffer.size)!;
    list.splice(list.indexOf(buffer), 1);
    this.stats.idleBytes -= buffer.size;
    this.retired.push(buffer);
  }

  destroyRetired(): void {
    for (const b of this.retired) b.destroy();
    this.retired.length = 0;
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
  }
}
