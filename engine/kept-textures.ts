// Textures packed from a buffer and kept while the buffer is unchanged: the conv weight textures of
// CPU adapters (engine/ops/conv-weight-pack.ts), which a scratch texture (engine/textures.ts) would
// repack before every convolution although a weight changes once per step (a frozen one never).
// A kept texture is current while its buffer's write stamp (WebGPUBackend.writeStamp: bumped by
// every dispatch that binds the buffer read_write, every write() and every copy into it) is the
// one it was packed at; a stale one is repacked in place, so a training step creates none. When
// the buffer is freed (its tensor disposed) its textures go idle, to be reused by a later buffer's
// textures of the same size (per-step temporaries create none either); idle ones past a bound are
// destroyed after the next submit (recorded work may still read them).

/** Kept and idle textures' bytes at most; beyond it an op packs into a scratch texture instead. */
const MAX_BYTES = 1 << 30;
/** Idle textures kept for reuse at most, and their bytes. */
const MAX_IDLE = 16;
const MAX_IDLE_BYTES = 64 << 20;
const TEXEL_BYTES = 16;
// GPUTextureUsage flags, numeric so the engine needs no WebGPU globals (COPY_SRC: tests read them back).
const USAGE_COPY_SRC = 0x1, USAGE_TEXTURE_BINDING = 0x4, USAGE_STORAGE_BINDING = 0x8;

export interface KeptTexture {
  readonly texture: GPUTexture;
  readonly view: GPUTextureView;
  readonly width: number;
  readonly height: number;
  /** The buffer's write stamp when this was packed; -1 before the first pack. */
  stamp: number;
}

const bytesOf = (t: { width: number; height: number }): number => t.width * t.height * TEXEL_BYTES;

export class KeptTextures {
  private byBuffer = new Map<GPUBuffer, Map<string, KeptTexture>>();
  private idle: KeptTexture[] = [];
  private retired: GPUTexture[] = [];
  private bytes = 0;
  /** Textures created (the backend's texturesCreated counter). */
  created = 0;

  constructor(private readonly device: GPUDevice, private readonly stampOf: (buffer: GPUBuffer) => number) {}

  /**
   * The texture kept for `buffer` under `key` (one packed layout of it), width x height texels: an
   * existing one, an idle one of that size, or a new one; null when the bound on bytes is reached.
   */
  get(buffer: GPUBuffer, key: string, width: number, height: number): KeptTexture | null {
    let forBuffer = this.byBuffer.get(buffer);
    const held = forBuffer?.get(key);
    if (held) return held;
    const i = this.idle.findIndex((t) => t.width === width && t.height === height);
    let t: KeptTexture;
    if (i >= 0) {
      t = this.idle.splice(i, 1)[0]!;
      t.stamp = -1;
    } else {
      if (this.bytes + bytesOf({ width, height }) > MAX_BYTES) return null;
      const texture = this.device.createTexture({ size: [width, height], format: 'rgba32float', usage: USAGE_COPY_SRC | USAGE_TEXTURE_BINDING | USAGE_STORAGE_BINDING, label: `kept ${key}` });
      t = { texture, view: texture.createView(), width, height, stamp: -1 };
      this.created++;
      this.bytes += bytesOf(t);
    }
    if (!forBuffer) this.byBuffer.set(buffer, (forBuffer = new Map()));
    forBuffer.set(key, t);
    return t;
  }

  /** Whether t holds what its buffer holds now (packed since the buffer's last write). */
  isCurrent(buffer: GPUBuffer, t: KeptTexture): boolean {
    return t.stamp === this.stampOf(buffer);
  }

  /** Notes that t has just been packed (recorded) from the buffer's present contents. */
  packed(buffer: GPUBuffer, t: KeptTexture): void {
    t.stamp = this.stampOf(buffer);
  }

  /** Every kept texture with its buffer and key, in the order they were first kept. */
  *entries(): IterableIterator<[GPUBuffer, string, KeptTexture]> {
    for (const [buffer, forBuffer] of this.byBuffer) for (const [key, t] of forBuffer) yield [buffer, key, t];
  }

  /** The buffer is freed: its textures go idle (within the bounds), the rest are retired. */
  release(buffer: GPUBuffer): void {
    const forBuffer = this.byBuffer.get(buffer);
    if (!forBuffer) return;
    this.byBuffer.delete(buffer);
    for (const t of forBuffer.values()) this.idle.push(t);
    let idleBytes = this.idle.reduce((s, t) => s + bytesOf(t), 0);
    while (this.idle.length > MAX_IDLE || idleBytes > MAX_IDLE_BYTES) {
      const t = this.idle.shift()!;
      idleBytes -= bytesOf(t);
      this.retire(t);
    }
  }

  /** Retires every idle texture (kept ones stay with their buffers). */
  trim(): void {
    for (const t of this.idle.splice(0)) this.retire(t);
  }

  /** Retires every texture, kept and idle. */
  clear(): void {
    for (const forBuffer of this.byBuffer.values()) for (const t of forBuffer.values()) this.retire(t);
    this.byBuffer.clear();
    this.trim();
  }

  /** Destroys the retired textures: call after submitting the work recorded so far. */
  destroyRetired(): void {
    for (const t of this.retired.splice(0)) t.destroy();
  }

  /** Textures held (kept and idle) and their bytes. */
  stats(): { textures: number; idle: number; bytes: number } {
    let textures = this.idle.length;
    for (const m of this.byBuffer.values()) textures += m.size;
    return { textures, idle: this.idle.length, bytes: this.bytes };
  }

  private retire(t: KeptTexture): void {
    this.bytes -= bytesOf(t);
    this.retired.push(t.texture);
  }
}
