// Indexing ops with PyTorch semantics: index_select, gather, take, scatter_add, index_add,
// masked_fill, masked_select, nonzero. Gathers and scatter-adds are each one kernel
// (kernels/indexing.ts) and are each other's backward.
//
// Indices are int32 tensors. Out-of-range indices (negative or >= the size of `dim`) are NOT
// validated (that would need a GPU read-back): on the GPU a gather reads 0 for them and a scatter
// skips them, so they never touch memory out of bounds. Float scatter-adds with repeated indices
// sum in an unspecified order (atomics), so they are not bit-reproducible.
//
// masked_select and nonzero have data-dependent output sizes: they are async and read the mask
// back to the CPU (one GPU sync and size*4 bytes), then build the result from the positions.
import { gatherKernel, scatterAddKernel, maskPositions, gatherUniforms, scatterAddUniforms } from '../../kernels/indexing.js';
import { broadcastShapes } from '../../kernels/elementwise.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, fromData, shapeStr, WGSL_TYPE } from '../tensor.js';
import { record } from '../autograd.js';
import { tidy } from '../scope.js';
import { elementwise, where } from './elementwise.js';
import { copyInto, zeros } from './copy.js';
import { expand, normDim, reshape } from './view.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

const desc = (t: Tensor): string => `${t.dtype}${shapeStr(t.shape)}`;

function checkIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'int32') throw new Error(`${op}: index must be int32, got ${desc(index)}`);
}

/** Strides that read a 1-D index along `dim` for every position of an ndim-dim iteration. */
function alongDim(index: Tensor, ndim: number, dim: number): number[] {
  const s = new Array<number>(ndim).fill(0);
  s[dim] = index.ndim === 0 ? 0 : index.strides[0]!;
  return s;
}

/** out[c] = x[c with c[dim] = index[c]] for c over outShape; no autodiff. */
function gatherRaw(x: Tensor, dim: number, index: Tensor, idxStrides: readonly number[], outShape: readonly number[], label: string): Tensor {
  const out = empty(outShape, x.dtype);
  if (out.size === 0) return out;
  const ndim = x.ndim;
  getBackend().dispatch({
    kernel: cached(`gather|${WGSL_TYPE[x.dtype]}|${ndim}|${dim}`, () => gatherKernel(WGSL_TYPE[x.dtype], ndim, dim)),
    buffers: [x.storage.buffer, index.storage.buffer, out.storage.buffer],
    uniforms: gatherUniforms(ndim).pack({
      n: out.size,
      shape: outShape,
      srcOffset: x.offset,
      srcStrides: x.strides,
      idxOffset: index.offset,
      idxStrides,
      dimSize: x.shape[dim]!,
    }),
    workgroups: grid(Math.ceil(out.size / WORKGROUP)),
    label,
  });
  return out;
}

/**
 * A dense copy of base with src[c] added at c[dim] = index[c], for c over iterShape; no autodiff.
 * `own`: base is a fresh dense tensor of the caller's (a zero gradient), added into in place.
 */
function scatterAddRaw(base: Tensor, dim: number, index: Tensor, idxStrides: readonly number[], src: Tensor, iterShape: readonly number[], label: string, own = false): Tensor {
  const type = WGSL_TYPE[base.dtype];
  if (type === 'u32') throw new Error(`${label}: not defined for bool tensors`);
  const out = own ? base : elementwise('copy', [base]);
  const n = iterShape.reduce((a, b) => a * b, 1);
  if (n === 0 || out.size === 0) return out;
  const ndim = base.ndim;
  getBackend().dispatch({
    kernel: cached(`scatter_add|${type}|${ndim}|${dim}`, () => scatterAddKernel(type, ndim, dim)),
    buffers: [src.storage.buffer, index.storage.buffer, out.storage.buffer],
    uniforms: scatterAddUniforms(ndim).pack({
      n,
      shape: iterShape,
      srcOffset: src.offset,
      srcStrides: src.strides,
      idxOffset: index.offset,
      idxStrides,
      dimSize: base.shape[dim]!,
      outStrides: out.strides,
    }),
    workgroups: grid(Math.ceil(n / WORKGROUP)),
    label,
  });
  return out;
}

function normOpDim(op: string, x: Tensor, dim: number): number {
  if (x.ndim === 0) throw new Error(`${op}: needs a tensor with at least one dimension, got ${desc(x)}`);
  return normDim(dim, x.ndim);
}

/** torch.index_select(x, dim, index): the slices x[..., index[k], ...] along dim (index: 1-D int32). */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normOpDim('index_select', x, dim);
  checkIndex('index_select', index);
  if (index.ndim > 1) throw new Error(`index_select: index must be 1-D, got ${desc(index)}`);
  const shape = [...x.shape];
  shape[d] = index.size;
  const label = `index_select(${desc(x)}, dim=${d}, ${desc(index)})`;
  const y = gatherRaw(x, d, index, alongDim(index, x.ndim, d), shape, label);
  record('index_select', [x], y, [index], (g, [idx]) => [
    scatterAddRaw(zeros(x.shape), d, idx!, alongDim(idx!, x.ndim, d), g, g.shape, 'index_select backward', true),
  ]);
  return y;
}

/** torch.gather(x, dim, index): out[c] = x[c with c[dim] = index[c]]; out has index's shape. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normOpDim('gather', x, dim);
  checkIndex('gather', index);
  if (index.ndim !== x.ndim || index.shape.some((s, k) => k !== d && s > x.shape[k]!)) {
    throw new Error(`gather: index ${shapeStr(index.shape)} must have the rank of input ${shapeStr(x.shape)} and no larger size except along dim ${d}`);
  }
  const y = gatherRaw(x, d, index, index.strides, index.shape, `gather(${desc(x)}, dim=${d}, ${desc(index)})`);
  record('gather', [x], y, [index], (g, [idx]) => [scatterAddRaw(zeros(x.shape), d, idx!, idx!.strides, g, idx!.shape, 'gather backward', true)]);
  return y;
}

/** torch.take(x, index): x read as if flattened (row-major) at each index; out has index's shape. */
export function take(x: Tensor, index: Tensor): Tensor {
  checkIndex('take', index);
  return tidy(() => reshape(gather(reshape(x, [-1]), 0, reshape(index, [-1])), index.shape));
}

/**
 * torch.scatter_add(dst, dim, index, src), out of place: a copy of dst with src[c] added at
 * c[dim] = index[c] for c over index's shape. Gradients flow to dst (identity) and src (gather).
 */
export function scatterAdd(dst: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const d = normOpDim('scatter_add', dst, dim);
  checkIndex('scatter_add', index);
  const label = `scatter_add(${desc(dst)}, dim=${d}, ${desc(index)}, ${desc(src)})`;
  if (src.dtype !== dst.dtype) throw new Error(`${label}: src and dst dtypes differ`);
  if (index.ndim !== dst.ndim || src.ndim !== dst.ndim || index.shape.some((s, k) => s > src.shape[k]! || (k !== d && s > dst.shape[k]!))) {
    throw new Error(`${label}: index must have the rank of dst and src, be no larger than src, and no larger than dst except along dim ${d}`);
  }
  const y = scatterAddRaw(dst, d, index, index.strides, src, index.shape, label);
  record('scatter_add', [dst, src], y, [index], (g, [idx]) => {
    const picked = gatherRaw(g, d, idx!, idx!.strides, idx!.shape, 'scatter_add backward');
    return [g, fitInto(picked, src.shape)];
  });
  return y;
}

/** t placed at the start of zeros(shape) (t's shape fits inside), for src larger than index. */
function fitInto(t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.every((s, k) => s === shape[k])) return t;
  const out = zeros(shape, t.dtype);
  const region = out.view(t.shape, out.strides, 0);
  copyInto(region, t);
  region.dispose();
  return out;
}

/**
 * torch.index_add(x, dim, index, src), out of place: a copy of x with src[..., k, ...] added at
 * x[..., index[k], ...]. Gradients flow to x (identity) and src (index_select).
 */
export function indexAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const d = normOpDim('index_add', x, dim);
  checkIndex('index_add', index);
  const label = `index_add(${desc(x)}, dim=${d}, ${desc(index)}, ${desc(src)})`;
  if (index.ndim > 1) throw new Error(`${label}: index must be 1-D`);
  if (src.dtype !== x.dtype) throw new Error(`${label}: src and x dtypes differ`);
  if (src.ndim !== x.ndim || src.shape.some((s, k) => s !== (k === d ? index.size : x.shape[k]))) {
    throw new Error(`${label}: src must have x's shape with dim ${d} of size ${index.size}`);
  }
  const y = scatterAddRaw(x, d, index, alongDim(index, x.ndim, d), src, src.shape, label);
  record('index_add', [x, src], y, [index], (g, [idx]) => [g, gatherRaw(g, d, idx!, alongDim(idx!, x.ndim, d), src.shape, 'index_add backward')]);
  return y;
}

/** torch.masked_fill(x, mask, value): value where the bool mask (broadcast to x) is set. Differentiable wrt x (and a tensor value). */
export function maskedFill(x: Tensor, mask: Tensor, value: number | Tensor): Tensor {
  if (mask.dtype !== 'bool') throw new Error(`masked_fill: mask must be bool, got ${desc(mask)}`);
  const fits = mask.ndim <= x.ndim && mask.shape.every((s, k) => s === 1 || s === x.shape[x.ndim - mask.ndim + k]);
  if (!fits) throw new Error(`masked_fill: mask ${shapeStr(mask.shape)} does not broadcast to input ${shapeStr(x.shape)}`);
  if (typeof value !== 'number' && value.size !== 1) throw new Error(`masked_fill: value must be a number or a one-element tensor, got ${desc(value)}`);
  return tidy(() => where(mask, typeof value === 'number' ? value : reshape(value, []), x));
}

/**
 * torch.masked_select(x, mask): 1-D tensor of the elements of x where the bool mask is set (x and
 * mask broadcast together), row-major. Async: reads the mask back. Differentiable wrt x.
 */
export async function maskedSelect(x: Tensor, mask: Tensor): Promise<Tensor> {
  if (mask.dtype !== 'bool') throw new Error(`masked_select: mask must be bool, got ${desc(mask)}`);
  const shape = broadcastShapes([x.shape, mask.shape]);
  const m = expand(mask, shape);
  const bits = await m.data();
  m.dispose();
  const pos = maskPositions(bits);
  return tidy(() => {
    const index = fromData(pos, [pos.length], 'int32');
    return gather(reshape(expand(x, shape), [-1]), 0, index);
  });
}

/**
 * torch.nonzero(x): int32 [k, ndim] coordinates of the non-zero elements of x, row-major order.
 * Async: reads x back. (torch returns int64; int32 is this engine's index type.)
 */
export async function nonzero(x: Tensor): Promise<Tensor> {
  const values = await x.data();
  const pos = maskPositions(values);
  const coords = new Int32Array(pos.length * x.ndim);
  pos.forEach((p, k) => {
    for (let d = x.ndim - 1; d >= 0; d--) {
      coords[k * x.ndim + d] = p % x.shape[d]!;
      p = Math.floor(p / x.shape[d]!);
    }
  });
  return fromData(coords, [pos.length, x.ndim], 'int32');
}
