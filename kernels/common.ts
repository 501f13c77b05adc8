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
 * WGSL helper that makes an f32 from its bits at run time. Infinities and NaN written as constant
 * expressions are compile errors in WGSL; a call of a user function is not constant-evaluated.
 */
export const F32_BITS = 'fn f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }';
