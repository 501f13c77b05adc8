// Row reductions: out[r] = reduce_k x[offset + r*rowStride + k*elemStride] for r < M, k < R.
// Any-axes reductions are lowered to this by permuting the reduced axes last (engine/ops/reduce.ts).
// Long rows get a workgroup each (tree in workgroup memory); short rows get one thread each.
import { F32_BITS, LINEAR_GROUP, WORKGROUP, isTreeWidth, type RefTensor } from './common.js';
import { uniformBlock } from './uniforms.js';
import type { WType } from './elementwise.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

/** Rows at most this long are reduced by a single thread each. */
export const SHORT_ROW = 256;
/** With at least this many rows, rows up to LONG_ROW are a thread each too. */
export const MANY_ROWS = 4096;
export const LONG_ROW = 4096;

/**
 * Thread per row, or workgroup per row? A workgroup per row of 256 lanes only pays when rows are
 * long and few: for short rows most lanes idle, and a split-K partial sum (thousands of rows of a
 * few dozen) launched thousands of mostly idle workgroups (3 ms each on lavapipe).
 */
export function reduceShortRows(rows: number, rowLength: number): boolean {
  return rowLength <= SHORT_ROW || (rows >= MANY_ROWS && rowLength <= LONG_ROW);
}

const INIT: Record<ReduceOp, (t: WType) => string> = {
  sum: (t) => `${t}(0)`,
  max: (t) => (t === 'f32' ? 'f32_bits(0xff800000u)' : t === 'i32' ? '(-2147483647 - 1)' : '0u'),
  min: (t) => (t === 'f32' ? 'f32_bits(0x7f800000u)' : t === 'i32' ? '2147483647' : '4294967295u'),
  argmax: (t) => INIT.max(t),
  argmin: (t) => INIT.min(t),
};

/** M rows of R elements each: x[offset + row * rowStride + k * elemStride]. */
export const REDUCE_UNIFORMS = uniformBlock('reduce', { M: 'u32', R: 'u32', offset: 'u32', rowStride: 'u32', elemStride: 'u32' });

/** Long rows: a workgroup of `wg` invocations each. */
export function reduceKernel(op: ReduceOp, type: WType, shortRows: boolean, wg: number = WORKGROUP): { wgsl: string; entry: string } {
  if (!shortRows && !isTreeWidth(wg)) throw new Error(`reduceKernel: workgroup size ${wg} is not a power of two in [2, 256]`);
  const arg = op === 'argmax' || op === 'argmin';
  const better = op === 'argmax' || op === 'max' ? '>' : '<';
  const outType = arg ? 'i32' : type;
  const entry = `reduce_${op}_${shortRows ? 'short' : 'wg'}`;
  // NaN propagates through max/min as in PyTorch: a NaN candidate always wins.
  const combine = (acc: string, v: string): string =>
    op === 'sum' ? `${acc} = ${acc} + ${v};` : `if (${v} ${better} ${acc} || nan_t(${v})) { ${acc} = ${v}; }`;
  // NaN test by bits: lavapipe (LLVM) folds v != v to false, which lost NaNs in max/min/argmax.
  const nanFn = type === 'f32' ? 'return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;' : 'return false;';
  const head = `${REDUCE_UNIFORMS.wgsl}
${F32_BITS}
fn nan_t(v: ${type}) -> bool { ${nanFn} }
@group(0) @binding(1) var<storage, read> x: array<${type}>;
@group(0) @binding(2) var<storage, read_write> out: array<${outType}>;`;
  const load = 'x[u.offset + row * u.rowStride + k * u.elemStride]';
  if (shortRows) {
    return {
      entry,
      wgsl: `${head}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (row >= u.M) { return; }
  var acc: ${type} = ${INIT[op](type)};
  var best: i32 = 0;
  for (var k = 0u; k < u.R; k++) {
    let v = ${load};
    ${arg ? `if (v ${better} acc || (nan_t(v) && !nan_t(acc))) { acc = v; best = i32(k); }` : combine('acc', 'v')}
  }
  out[row] = ${arg ? 'best' : 'acc'};
}
`,
    };
  }
  return {
    entry,
    wgsl: `${head}
var<workgroup> sv: array<${type}, ${wg}>;
var<workgroup> si: array<i32, ${wg}>;
@compute @workgroup_size(${wg})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_GROUP};
  var acc: ${type} = ${INIT[op](type)};
  var best: i32 = 2147483647;
  if (row < u.M) {
    for (var k = lid; k < u.R; k += ${wg}u) {
      let v = ${load};
      ${arg ? `if (v ${better} acc || (nan_t(v) && !nan_t(acc)) || best == 2147483647) { acc = v; best = i32(k); }` : combine('acc', 'v')}
    }
  }
  sv[lid] = acc;
  si[lid] = best;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let v = sv[lid + s];
      ${
        arg
          ? `let j = si[lid + s];
      let a = sv[lid];
      let i = si[lid];
      // Ties and NaNs resolve to the lowest index, as torch.argmax documents.
      if (j != 2147483647 && (i == 2147483647 || v ${better} a || (nan_t(v) && !nan_t(a)) || ((v == a || (nan_t(v) && nan_t(a))) && j < i))) { sv[lid] = v; si[lid] = j; }`
          : combine('sv[lid]', 'v')
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u && row < u.M) { out[row] = ${arg ? 'si[0]' : 'sv[0]'}; }
}
`,
  };
}

/**
 * Sums of short rows that lie side by side (rowStride 1: a sum over a leading axis, such as the
 * split-K partials of a conv weight gradient or a bias gradient [N, C] -> [C]), 4 rows per
 * invocation as vec4 loads and one vec4 store. On lavapipe a load from a lane-varying address is a
 * loop over the SIMD lanes, so this takes a quarter of the lane loops of reduceKernel's short form;
 * each component adds in the same order, so the sums are the same bits. Uniforms: REDUCE_UNIFORMS
 * with M, offset and elemStride in vec4s (the caller checks that all three divide by 4 and that
 * both bindings hold whole vec4s up to their last element).
 */
export function reduceSumColumnsVec4Kernel(type: WType): { wgsl: string; entry: string } {
  const entry = 'reduce_sum_short_v4';
  return {
    entry,
    wgsl: `${REDUCE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<vec4<${type}>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<${type}>>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let q = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (q >= u.M) { return; }
  var acc = vec4<${type}>(${type}(0));
  for (var k = 0u; k < u.R; k++) { acc = acc + x[u.offset + q + k * u.elemStride]; }
  out[q] = acc;
}
`,
  };
}

/** float64 reference over the trailing `r` elements of each of the leading rows of x (dense). */
export function reduceRowsReference(op: ReduceOp, x: RefTensor, rowLen: number): Float64Array {
  const rows = rowLen === 0 ? x.data.length : x.data.length / rowLen;
  const out = new Float64Array(rowLen === 0 ? 0 : rows);
  for (let r = 0; r < out.length; r++) {
    let acc = op === 'sum' ? 0 : op === 'max' || op === 'argmax' ? -Infinity : Infinity;
    let best = 0;
    for (let k = 0; k < rowLen; k++) {
      const v = x.data[r * rowLen + k]!;
      if (op === 'sum') acc += v;
      else if (Number.isNaN(v) ? !Number.isNaN(acc) : (op === 'max' || op === 'argmax' ? v > acc : v < acc)) {
        acc = v;
        best = k;
      }
    }
    out[r] = op === 'argmax' || op === 'argmin' ? best : acc;
  }
  return out;
}
