// Scratch rgba32float textures for kernels that repack an operand before reading it (the texture
// matmul, kernels/matmul-texture.ts: on lavapipe a texel fetch serves 8 lanes x 4 floats as one
// vectorised call where a storage-buffer load is a per-lane loop). A texture is only scratch: the
// op that takes one writes it (a packing dispatch) and reads it in the next dispatch of the same
// recorded stream, so one texture serves every later op of its size: the queue runs them in order.
// Sizes are rounded up (width to 16 texels, height to 64 rows) so that the shapes of a training step
// share a few textures; the least recently used beyond MAX_TEXTURES or MAX_BYTES are destroyed once
// the work recorded so far is submitted (the caller's flush), never while a recorded op refers to it.

/** Kept scratch textures at most, and their total bytes. */
const MAX_TEXTURES = 8;
const MAX_BYTES = 256 << 20;
const TEXEL_BYTES = 16;
// GPUTextureUsage flags, numeric so the engine needs no WebGPU globals.
const USAGE_COPY_DST = 0x2, USAGE_TEXTURE_BINDING = 0x4, USAGE_STORAGE_BINDING = 0x8;

export interface ScratchTexture {
  texture: GPUTexture;
  view: GPUTextureView;
  width: number;
  height: number;
}

export class ScratchTextures {
  /** Most recently used last. */
  private held: ScratchTexture[] = [];
  created = 0;

  constructor(private readonly device: GPUDevice, private readonly flush: () => void) {}

  /** A texture of at least width x height texels (the smallest held one that fits, or a new one). */
  acquire(width: number, height: number): ScratchTexture {
    const max = this.device.limits.maxTextureDimension2D;
    if (width > max || height > max) throw new Error(`scratch texture ${width}x${height} exceeds the device's maxTextureDimension2D ${max}`);
    let best = -1;
    this.held.forEach((t, i) => {
      if (t.width >= width && t.height >= height && (best < 0 || t.width * t.height < this.held[best]!.width * this.held[best]!.height)) best = i;
    });
    if (best >= 0) {
      const t = this.held.splice(best, 1)[0]!;
      this.held.push(t);
      return t;
    }
    const w = Math.min(max, Math.ceil(width / 16) * 16), h = Math.min(max, Math.ceil(height / 64) * 64);
    const texture = this.device.createTexture({ size: [w, h], format: 'rgba32float', usage: USAGE_COPY_DST | USAGE_TEXTURE_BINDING | USAGE_STORAGE_BINDING, label: `scratch ${w}x${h}` });
    const t = { texture, view: texture.createView(), width: w, height: h };
    this.created++;
    this.evict(w * h * TEXEL_BYTES);
    this.held.push(t);
    return t;
  }

  /** Destroys every held texture (after submitting what refers to them). */
  clear(): void {
    this.evict(Infinity);
  }

  /** Drops the least recently used textures until `incoming` more bytes fit the bounds. */
  private evict(incoming: number): void {
    const bytes = () => this.held.reduce((s, t) => s + t.width * t.height * TEXEL_BYTES, 0);
    if (this.held.length < MAX_TEXTURES && bytes() + incoming <= MAX_BYTES) return;
    this.flush();
    while (this.held.length > 0 && (this.held.length >= MAX_TEXTURES || bytes() + incoming > MAX_BYTES)) this.held.shift()!.texture.destroy();
  }
}
