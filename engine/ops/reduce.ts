// Reductions over any set of axes, lowered to the row-reduction kernel: the reduced axes are
// permuted last and, when the memory layout allows, read with strides instead of copied.
import { reduceKernel, reduceShortRows, reduceSumColumnsVec4Kernel, REDUCE_UNIFORMS, type ReduceOp } from '../../kernels/reduce.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { reductionWorkgroup } from '../device.js';
import { Tensor, contiguousStrides, empty, shapeStr, sizeOf, WGSL_TYPE } from '../tensor.js';
import { inVec4Binding } from './vec4-binding.js';
import { record } from '../autograd.js';
import { tidy } from '../scope.js';
import { contiguous, elementwise as ew } from './elementwise.js';
import { expand, normDim, permute, registerSumToShape, reshape } from './view.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();

export type Dims = number | readonly number[] | undefined;

/** Normalised, sorted reduced axes (all axes when dims is undefined). */
export function reducedAxes(dims: Dims, ndim: number): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = (typeof dims === 'number' ? [dims] : [...dims]).map((d) => normDim(d, ndim));
  if (new Set(list).size !== list.length) throw new Error(`reduction dims [${list.join(',')}] repeat`);
  return list.sort((a, b) => a - b);
}

function keptShape(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Collapses dims (all with strides) into one strided dim, or null when not uniform. */
function asOneDim(shape: number[], strides: number[]): { n: number; stride: number } | null {
  const dims = shape.map((d, i) => ({ d, s: strides[i]! })).filter((e) => e.d !== 1);
  if (dims.length === 0) return { n: 1, stride: 1 };
  for (let k = 0; k + 1 < dims.length; k++) if (dims[k]!.s !== dims[k + 1]!.s * dims[k + 1]!.d) return null;
  return { n: sizeOf(dims.map((e) => e.d)), stride: dims[dims.length - 1]!.s };
}

/** Runs a row reduction kernel; no autodiff. */
export function reduceRaw(x: Tensor, op: ReduceOp, dims: Dims, keepdim = false): Tensor {
  const axes = reducedAxes(dims, x.ndim);
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = keptShape(x.shape, axes, keepdim);
  const outDtype = op === 'argmax' || op === 'argmin' ? 'int32' : x.dtype === 'bool' ? 'int32' : x.dtype;
  if (x.dtype === 'bool' && op !== 'sum') throw new Error(`${op}: not defined for bool tensors`);
  const R = sizeOf(axes.map((a) => x.shape[a]!));
  if ((op !== 'sum') && R === 0) throw new Error(`${op}: cannot reduce an empty dimension of ${shapeStr(x.shape)}`);
  let rows = asOneDim(kept.map((i) => x.shape[i]!), kept.map((i) => x.strides[i]!));
  let elems = asOneDim(axes.map((i) => x.shape[i]!), axes.map((i) => x.strides[i]!));
  if ((!rows || !elems) && (op === 'sum' || op === 'max' || op === 'min') && x.isContiguous && sizeOf(outShape) > 0) {
    // E.g. a conv bias gradient, dy [N, C, H, W] summed over [0, 2, 3]: reduce the trailing run of
    // reduced axes first (dense rows), then the others, instead of a permuted copy of all of x.
    let k = x.ndim;
    while (k > 0 && axes.includes(k - 1)) k--;
    const inner = axes.filter((a) => a >= k), outer = axes.filter((a) => a < k);
    if (inner.length > 0 && outer.length > 0) {
      const partial = reduceRaw(x, op, inner);
      const y = reduceRaw(partial, op, outer);
      partial.dispose();
      if (!keepdim) return y;
      const shaped = y.view(outShape, contiguousStrides(outShape), 0);
      y.dispose();
      return shaped;
    }
  }
  const out = empty(outShape, outDtype);
  if (out.size === 0) return out;
  let src = x;
  if (!rows || !elems) {
    src = contiguous(permute(x, [...kept, ...axes]));
    rows = { n: out.size, stride: R };
    elems = { n: R, stride: 1 };
  }
  const short = reduceShortRows(out.size, R);
  const type = WGSL_TYPE[x.dtype];
  if (op === 'sum' && short && outDtype === x.dtype && rows.stride === 1 && columnsVec4 && vec4Fits(src, out, R, elems.stride)) {
    getBackend().dispatch({
      kernel: cachedKernel(`sum4|${type}`, () => reduceSumColumnsVec4Kernel(type)),
      buffers: [src.storage.buffer, out.storage.buffer],
      uniforms: REDUCE_UNIFORMS.pack({ M: out.size / 4, R, offset: src.offset / 4, rowStride: 1, elemStride: elems.stride / 4 }),
      workgroups: grid(Math.ceil(out.size / 4 / WORKGROUP)),
      label: `${op}(${x.dtype}${shapeStr(x.shape)}, dims=[${axes.join(',')}])`,
    });
    if (src !== x) src.dispose();
    return out;
  }
  const wg = reductionWorkgroup();
  const key = `${op}|${type}|${short}|${wg}`;
  getBackend().dispatch({
    kernel: cachedKernel(key, () => reduceKernel(op, type, short, wg)),
    buffers: [src.storage.buffer, out.storage.buffer],
    uniforms: REDUCE_UNIFORMS.pack({ M: out.size, R, offset: src.offset, rowStride: rows.stride, elemStride: elems.stride }),
    workgroups: grid(short ? Math.ceil(out.size / WORKGROUP) : out.size),
    label: `${op}(${x.dtype}${shapeStr(x.shape)}, dims=[${axes.join(',')}])`,
  });
  if (src !== x) src.dispose();
  return out;
}

function cachedKernel(key: string, make: () => { wgsl: string; entry: string }): { wgsl: string; entry: string } {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

let columnsVec4 = true;
/** Turns the vec4 form of sums over a leading axis off or on (tests compare the two forms). */
export function setReduceColumnsVec4(on: boolean): void {
  columnsVec4 = on;
}

/**
 * Whether reduceSumColumnsVec4Kernel can serve rows side by side: out.size, the offset and the
 * element stride divide by 4, and both bindings hold whole vec4s up to the last element read or written.
 */
function vec4Fits(src: Tensor, out: Tensor, R: number, elemStride: number): boolean {
  if (out.size % 4 !== 0 || src.offset % 4 !== 0 || elemStride % 4 !== 0 || out.offset % 4 !== 0 || R === 0) return false;
  return inVec4Binding(src, src.offset + (R - 1) * elemStride + out.size) && inVec4Binding(out);
}

/** The gradient g of a reduction, reshaped with the reduced axes as 1 and broadcast to `shape`. */
function broadcastBack(g: Tensor, shape: readonly number[], axes: number[]): Tensor {
  return expand(reshape(g, shape.map((d, i) => (axes.includes(i) ? 1 : d))), shape);
}

export function sum(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  const axes = reducedAxes(dims, x.ndim);
  const y = reduceRaw(x, 'sum', axes, keepdim);
  record('sum', [x], y, [], (g) => [contiguous(broadcastBack(g, x.shape, axes))]);
  return y;
}

export function mean(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  if (x.dtype !== 'float32') throw new Error(`mean: needs float32, got ${x.dtype}`);
  const axes = reducedAxes(dims, x.ndim);
  const n = sizeOf(axes.map((a) => x.shape[a]!));
  const s = reduceRaw(x, 'sum', axes, keepdim);
  const y = ew('mul', [s, 1 / n]);
  s.dispose();
  record('mean', [x], y, [], (g) => [ew('mul', [broadcastBack(g, x.shape, axes), 1 / n])]);
  return y;
}

/** amax/amin: ties share the gradient equally, as torch.amax does. */
function extreme(op: 'max' | 'min') {
  return (x: Tensor, dims?: Dims, keepdim = false): Tensor => {
    const axes = reducedAxes(dims, x.ndim);
    const y = reduceRaw(x, op, axes, keepdim);
    record(op, [x], y, [x, y], (g, [xs, ys]) => {
      const hit = ew('to_f32', [ew('eq', [xs!, broadcastBack(ys!, x.shape, axes)])]);
      const count = reduceRaw(hit, 'sum', axes, true);
      return [ew('mul', [ew('div', [hit, count]), broadcastBack(g, x.shape, axes)])];
    });
    return y;
  };
}
export const max = extreme('max');
export const min = extreme('min');

export const argmax = (x: Tensor, dim?: number, keepdim = false): Tensor =>
  dim === undefined ? reduceRaw(reshape(x, [-1]), 'argmax', 0, false) : reduceRaw(x, 'argmax', dim, keepdim);
export const argmin = (x: Tensor, dim?: number, keepdim = false): Tensor =>
  dim === undefined ? reduceRaw(reshape(x, [-1]), 'argmin', 0, false) : reduceRaw(x, 'argmin', dim, keepdim);

/** Sums a broadcast tensor back down to `shape` (the gradient of broadcasting). */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  return tidy(() => {
    const lead = g.ndim - shape.length;
    const axes: number[] = [];
    for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
    const s = axes.length ? sum(g, axes, true) : g;
    return reshape(s, shape);
  });
}
registerSumToShape(sumToShape);
