// Shared pieces of kernel generation: workgroup grids past the 65535-per-dimension limit, positional
// uniform packing (see kernels/uniforms.ts for the named blocks every other kernel uses), and the
// float64 reference tensor type that every kernel's reference uses.

/** A dense row-major float64 tensor: what kernel references compute on. */
export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

export function refTensor(shape: readonly number[], data?: ArrayLike<number>): RefTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = data ? Float64Array.from(data) : new Float64Array(n);
  if (d.length !== n) throw new Error(`refTensor: ${d.length} values for shape [${shape.join(',')}]`);
  return { shape: [...shape], data: d };
}

export const WORKGROUP = 256;

/** Whether `wg` can be the width of a workgroup-memory tree reduction (halving to 1: a power of two >= 2, at most 256). */
export function isTreeWidth(wg: number): boolean {
  return Number.isInteger(wg) && wg >= 2 && wg <= 256 && (wg & (wg - 1)) === 0;
}
export const MAX_GROUPS_PER_DIM = 65535;

/** Workgroup counts covering `groups` workgroups, folded into 2D when over the per-dimension limit. */
export function grid(groups: number): [number, number] {
  if (groups <= MAX_GROUPS_PER_DIM) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / y), y];
}

/** WGSL expression for the linear workgroup index under grid(). */
export const LINEAR_GROUP = '(wid.y * nwg.x + wid.x)';

/**
 * Builds a uniform block of u32 words positionally; floats are stored by bit pattern. Superseded by
 * the named declarations of kernels/uniforms.ts (kernel and op cannot drift apart); only the class
 * channel selection still uses it.
 */
export class Uniforms {
  private words: number[] = [];
  private f32 = new Float32Array(1);
  private u32 = new Uint32Array(this.f32.buffer);

  u(...values: number[]): this {
    for (const v of values) this.words.push(v >>> 0);
    return this;
  }

  i(...values: number[]): this {
    for (const v of values) this.words.push(v | 0);
    return this;
  }

  f(...values: number[]): this {
    for (const v of values) {
      this.f32[0] = v;
      this.words.push(this.u32[0]!);
    }
    return this;
  }

  /** Pads to a multiple of 4 words (one vec4). */
  align(): this {
    while (this.words.length % 4 !== 0) this.words.push(0);
    return this;
  }

  get length(): number {
    return this.words.length;
  }

  bytes(): Uint32Array {
    this.align();
    return Uint32Array.from(this.words);
  }
}

/** Declares the uniform block as an array of vec4<u32> named `u` with `n` vec4s. */
export function uniformDecl(nVec4: number): string {
  return `@group(0) @binding(0) var<uniform> u: array<vec4<u32>, ${Math.max(nVec4, 1)}>;`;
}

/** WGSL accessor for word k of the uniform block `u`. */
export function uword(k: number): string {
  return `u[${k >> 2}][${k & 3}]`;
}

/**
 * WGSL helper that makes an f32 from its bits at run time. Infinities and NaN written as constant
 * expressions are compile errors in WGSL; a call of a user function is not constant-evaluated.
 */
export const F32_BITS = 'fn f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }';
