// GPU buffer pool by size class. Requests round up to one of 8 classes per power of two (at most
// ~9% waste), freed buffers wait in their class for reuse (a request whose class has none takes an idle
// buffer up to 1.5x larger before creating one), and unlike TF.js's pool this one shrinks:
// when idle buffers exceed the idle limit the oldest are destroyed, and `trim()` empties it. The
// limit is `maxIdleBytes` or the largest working set seen, whichever is larger: a training step
// frees most of its working set at the end and needs it all again at the next step, and a fixed cap
// below that destroys buffers the next step must create again. The working set is the pool's size
// (live + idle) when the live bytes were at their highest, not the live bytes alone: a step also
// needs buffers that are idle at its peak (other size classes, used before or after it), and with
// the live peak as the limit R50's step destroyed and re-created the same 5 buffers every time.
// Among the idle buffers of a class, a request takes (order 'stable') the one created first: which
// buffer a request gets then depends on the set of idle buffers, not on the order they came back in,
// so a step that makes the same requests as the one before gets the same buffers and the backend's
// kept bind groups (keyed by buffer) serve it again. On CPU adapters (order 'recent') it takes the
// last released instead: there a buffer is host memory, and the one just released is still in the
// CPU's caches; stable order made lavapipe's tiny-cpu step ~10% slower (bench/RESULTS.md), more
// than the bind groups it saves cost.

const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */
const MIN_BYTES = 256;
/**
 * A request its own class cannot serve takes the smallest idle buffer up to this factor larger
 * before a new one is created: sizes that follow RoI counts change a little from step to step, and
 * without this each step created buffers one class up or down from idle ones (8 of the tiny-cpu
 * step's ~730 buffers, ~65 of R50's) while the pool's idle bytes kept growing.
 */
const MAX_FIT = 1.5;

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
  /** Idle buffers per size class, by descending creation serial (pop() takes the oldest), or by release ('recent'). */
  private idle = new Map<number, GPUBuffer[]>();
  /** Creation serial of each buffer the pool made. */
  private serials = new WeakMap<GPUBuffer, number>();
  private nextSerial = 0;
  /** Idle buffers, oldest first (a Set keeps insertion order and deletes in O(1)). */
  private idleOrder = new Set<GPUBuffer>();
  /** The pool's bytes (live + idle) when the live bytes were at their highest (trim() resets it). */
  private workingSetBytes = 0;
  /** The most live bytes held at once since the last trim(). */
  private liveHigh = 0;
  // A released buffer may still be used by recorded but unsubmitted work, so buffers leaving the
  // pool are destroyed only by destroyRetired(), which the backend calls after a submit.
  private retired: GPUBuffer[] = [];
  private stats: PoolStats = { liveBytes: 0, liveBuffers: 0, idleBytes: 0, peakLiveBytes: 0, created: 0, reused: 0 };
  maxIdleBytes = 512 * 1024 * 1024;

  /** Which idle buffer of a class a request takes: see the header. */
  order: 'stable' | 'recent';

  constructor(private readonly device: GPUDevice, order: 'stable' | 'recent' = 'stable') {
    this.order = order;
  }

  /** A buffer of at least `bytes`: an idle one of its class (or up to MAX_FIT larger), else a new one; always new if `fresh`. */
  acquire(bytes: number, fresh = false): GPUBuffer {
    let size = sizeClass(bytes);
    let buffer = fresh ? undefined : (this.idle.get(size)?.pop() ?? this.popLarger(size));
    if (buffer) {
      size = buffer.size;
      this.idleOrder.delete(buffer);
      this.stats.idleBytes -= size;
      this.stats.reused++;
    } else {
      if (size > this.device.limits.maxBufferSize) {
        throw new Error(`buffer of ${bytes} bytes exceeds the device's maxBufferSize ${this.device.limits.maxBufferSize}`);
      }
      buffer = this.device.createBuffer({ size, usage: USAGE });
      this.serials.set(buffer, this.nextSerial++);
      this.stats.created++;
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    if (this.stats.liveBytes >= this.liveHigh) {
      this.liveHigh = this.stats.liveBytes;
      this.workingSetBytes = Math.max(this.workingSetBytes, this.stats.liveBytes + this.stats.idleBytes);
    }
    return buffer;
  }

  /** The smallest idle buffer of a class above `size` and at most MAX_FIT times it, taken from its list. */
  private popLarger(size: number): GPUBuffer | undefined {
    let best: number | undefined;
    for (const [cls, list] of this.idle) {
      if (cls > size && cls <= size * MAX_FIT && list.length > 0 && (best === undefined || cls < best)) best = cls;
    }
    return best === undefined ? undefined : this.idle.get(best)!.pop();
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    let list = this.idle.get(size);
    if (!list) this.idle.set(size, (list = []));
    // 'stable': insert keeping the list sorted by descending serial (binary search; lists are short).
    const serial = this.serials.get(buffer) ?? -1;
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.serials.get(list[mid]!) ?? -1) > serial) lo = mid + 1;
      else hi = mid;
    }
    if (this.order === 'recent') list.push(buffer);
    else list.splice(lo, 0, buffer);
    this.idleOrder.add(buffer);
    this.stats.idleBytes += size;
    const limit = Math.max(this.maxIdleBytes, this.workingSetBytes);
    while (this.stats.idleBytes > limit && this.idleOrder.size > 0) this.destroyOldest();
  }

  /** Retires every idle buffer (live ones are untouched; destroyed at the next flush) and forgets the working set. */
  trim(): void {
    while (this.idleOrder.size > 0) this.destroyOldest();
    this.workingSetBytes = this.liveHigh = this.stats.liveBytes;
  }

  private destroyOldest(): void {
    const buffer = this.idleOrder.values().next().value as GPUBuffer;
    this.idleOrder.delete(buffer);
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
