// Indexing kernels: a strided gather (under index_select, gather and take) and an atomic
// scatter-add (under scatter_add, index_add and their use as the gathers' backward), plus float64
// references of every indexing op. Both kernels read every operand with strides, so views never
// copy; index_select/index_add pass a broadcast index (stride 0 on every dim but `dim`).
//
// Out-of-range indices (negative or >= the size of `dim`) never touch memory out of bounds: a
// gather reads 0 for them and a scatter skips them. They are not validated (that would need a
// read-back of the index); the references follow the same rule so tests pin it down.
//
// WGSL has no float atomics: the f32 scatter adds with an atomicCompareExchangeWeak loop on the
// u32 bit pattern (array<atomic<u32>>); int32 uses atomicAdd. Float sums of colliding indices
// are therefore accumulated in an unspecified order (not bit-reproducible run to run), as with
// PyTorch's CUDA scatter_add/index_add.
import { LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { blockVariants, uniformBlock, type UniformBlock } from './uniforms.js';
import type { WType } from './elementwise.js';

/** The fields both kernels read: n positions over `shape`, the read operand and the index (strided), dimSize along dim. */
const stridedFields = (ndim: number) =>
  ({
    n: 'u32',
    shape: ['u32', ndim],
    srcOffset: 'u32',
    srcStrides: ['u32', ndim],
    idxOffset: 'u32',
    idxStrides: ['u32', ndim],
    dimSize: 'u32',
  }) as const;

/** out[c] = src[c with c[dim] = index[c]] over the output's shape; dimSize: src's size along dim. */
export const gatherUniforms = blockVariants((ndim: number) => uniformBlock(`gather${ndim}`, stridedFields(ndim)));

/** out[c with c[dim] = index[c]] += src[c] over the iteration shape; dimSize: out's size along dim. */
export const scatterAddUniforms = blockVariants((ndim: number) =>
  uniformBlock(`scatter_add${ndim}`, { ...stridedFields(ndim), outStrides: ['u32', ndim] }),
);

type IndexingBlock = UniformBlock<{ shape: readonly ['u32', number] } & Record<string, 'u32' | readonly ['u32', number]>>;

/** Coordinates c0..c{ndim-1} of linear index `i` over the block's `shape`. */
function coords(U: IndexingBlock, ndim: number): string {
  const lines = ['var r = i;'];
  for (let d = ndim - 1; d >= 0; d--) {
    lines.push(`let c${d} = r % ${U.at('shape', d)};`);
    if (d > 0) lines.push(`r = r / ${U.at('shape', d)};`);
  }
  return lines.join('\n  ');
}

/** `u.{operand}Offset + sum_d c_d * u.{operand}Strides[d]` over all dims except `skip`. */
function stridedIndex(U: IndexingBlock, operand: string, ndim: number, skip = -1): string {
  let e = `u.${operand}Offset`;
  for (let d = 0; d < ndim; d++) if (d !== skip) e += ` + c${d} * ${U.at(`${operand}Strides`, d)}`;
  return e;
}

const MAIN = (entry: string) => `@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }`;

/** out[c] = x[c with c[dim] replaced by index[c]] for c over the (dense) output shape. */
export function gatherKernel(type: WType, ndim: number, dim: number): { wgsl: string; entry: string } {
  const U = gatherUniforms(ndim);
  const entry = 'gather';
  return {
    entry,
    wgsl: `${U.wgsl}
@group(0) @binding(1) var<storage, read> x: array<${type}>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<${type}>;
${MAIN(entry)}
  ${coords(U, ndim)}
  let j = index[${stridedIndex(U, 'idx', ndim)}];
  if (j < 0 || u32(j) >= u.dimSize) { out[i] = ${type}(0); return; }
  out[i] = x[${stridedIndex(U, 'src', ndim, dim)} + u32(j) * ${U.at('srcStrides', dim)}];
}
`,
  };
}

/**
 * out[c with c[dim] replaced by index[c]] += src[c] for c over the iteration shape; `out` is dense
 * (offset 0) and already holds the base values.
 */
export function scatterAddKernel(type: 'f32' | 'i32', ndim: number, dim: number): { wgsl: string; entry: string } {
  const U = scatterAddUniforms(ndim);
  let target = '0u';
  for (let d = 0; d < ndim; d++) target += ` + ${d === dim ? 'u32(j)' : `c${d}`} * ${U.at('outStrides', d)}`;
  const entry = `scatter_add_${type}`;
  const add =
    type === 'i32'
      ? 'atomicAdd(&out[t], v);'
      : `var old = atomicLoad(&out[t]);
  loop {
    let res = atomicCompareExchangeWeak(&out[t], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (res.exchanged) { break; }
    old = res.old_value;
  }`;
  return {
    entry,
    wgsl: `${U.wgsl}
@group(0) @binding(1) var<storage, read> src: array<${type}>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<${type === 'f32' ? 'u32' : 'i32'}>>;
${MAIN(entry)}
  ${coords(U, ndim)}
  let j = index[${stridedIndex(U, 'idx', ndim)}];
  if (j < 0 || u32(j) >= u.dimSize) { return; }
  let v = src[${stridedIndex(U, 'src', ndim)}];
  let t = ${target};
  ${add}
}
`,
  };
}

// ---- float64 references (dense row-major; indices as plain numbers) ----

export interface RefIndex {
  shape: number[];
  data: ArrayLike<number>;
}

const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
};

/** Calls fn(linear, coords) for every element of `shape` in row-major order. */
function forEachCoord(shape: readonly number[], fn: (i: number, c: number[]) => void): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(i, c);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++c[d]! < shape[d]!) break;
      c[d] = 0;
    }
  }
}

const dot = (c: number[], s: number[]): number => c.reduce((acc, v, d) => acc + v * s[d]!, 0);
const inRange = (j: number, n: number): boolean => Number.isInteger(j) && j >= 0 && j < n;

/** torch.gather: out[c] = x[c with c[dim] = index[c]]; out-of-range indices give 0. */
export function gatherReference(x: RefTensor, dim: number, index: RefIndex): RefTensor {
  const xs = stridesOf(x.shape);
  const out = new Float64Array(index.data.length);
  forEachCoord(index.shape, (i, c) => {
    const j = index.data[i]!;
    out[i] = inRange(j, x.shape[dim]!) ? x.data[dot(c, xs) + (j - c[dim]!) * xs[dim]!]! : 0;
  });
  return { shape: [...index.shape], data: out };
}

/** torch.index_select with a 1-D index; out-of-range indices give 0. */
export function indexSelectReference(x: RefTensor, dim: number, index: ArrayLike<number>): RefTensor {
  const shape = [...x.shape];
  shape[dim] = index.length;
  const full = new Float64Array(shape.reduce((a, b) => a * b, 1));
  forEachCoord(shape, (i, c) => (full[i] = index[c[dim]!]!));
  return gatherReference(x, dim, { shape, data: full });
}

/** torch.scatter_add (out of place): out = dst; out[c with c[dim] = index[c]] += src[c]. */
export function scatterAddReference(dst: RefTensor, dim: number, index: RefIndex, src: RefTensor): RefTensor {
  const out = Float64Array.from(dst.data);
  const os = stridesOf(dst.shape), ss = stridesOf(src.shape);
  forEachCoord(index.shape, (i, c) => {
    const j = index.data[i]!;
    if (inRange(j, dst.shape[dim]!)) out[dot(c, os) + (j - c[dim]!) * os[dim]!]! += src.data[dot(c, ss)]!;
  });
  return { shape: [...dst.shape], data: out };
}

/** torch.index_add (out of place): out = x; out[..., index[k], ...] += src[..., k, ...]. */
export function indexAddReference(x: RefTensor, dim: number, index: ArrayLike<number>, src: RefTensor): RefTensor {
  const full = new Float64Array(src.data.length);
  forEachCoord(src.shape, (i, c) => (full[i] = index[c[dim]!]!));
  return scatterAddReference(x, dim, { shape: [...src.shape], data: full }, src);
}

/** torch.take: x viewed as 1-D, read at each index; out-of-range indices give 0. */
export function takeReference(x: RefTensor, index: RefIndex): RefTensor {
  return { shape: [...index.shape], data: Float64Array.from(index.data, (j) => (inRange(j, x.data.length) ? x.data[j]! : 0)) };
}

/** Row-major positions where a (dense) mask is non-zero. */
export function maskPositions(mask: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) out.push(i);
  return out;
}

/** torch.masked_select with x and mask of the same shape: the selected values, row-major. */
export function maskedSelectReference(x: RefTensor, mask: ArrayLike<number>): RefTensor {
  const pos = maskPositions(mask);
  return { shape: [pos.length], data: Float64Array.from(pos, (p) => x.data[p]!) };
}

/** torch.nonzero: [k, ndim] coordinates of the non-zero elements, row-major order. */
export function nonzeroReference(shape: readonly number[], values: ArrayLike<number>): { shape: number[]; data: number[] } {
  const data: number[] = [];
  let k = 0;
  forEachCoord(shape, (i, c) => {
    if (values[i] !== 0) {
      data.push(...c);
      k++;
    }
  });
  return { shape: [k, shape.length], data };
}
