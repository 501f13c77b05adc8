// Views: new shape/strides/offset over the same storage, no kernel runs (reshape copies only when
// the data is not laid out for it). Each records its backward rule.
import { Tensor, shapeStr, sizeOf, contiguousStrides } from '../tensor.js';
import { record } from '../autograd.js';
import { contiguous } from './elementwise.js';
import { padInto } from './copy.js';

export function normDim(dim: number, ndim: number, what = 'dim'): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) throw new Error(`${what} ${dim} is out of range for a tensor with ${ndim} dimensions`);
  return d;
}

/** Resolves one -1 entry and checks the element count. */
function inferShape(x: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (free >= 0) {
    const known = sizeOf(out.filter((_, i) => i !== free));
    out[free] = known === 0 ? 0 : x.size / known;
  }
  if (sizeOf(out) !== x.size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot view ${x.dtype}${shapeStr(x.shape)} (${x.size} elements) as ${shapeStr(shape)}`);
  }
  return out;
}

/**
 * Strides for viewing x as `shape` without copying, or null when its layout does not allow it.
 * Walks old dims from the innermost, cutting them into chunks that are contiguous in memory; each
 * chunk must be covered exactly by consecutive new dims (PyTorch's view rule).
 */
function viewStrides(x: Tensor, shape: number[]): number[] | null {
  if (x.isContiguous || x.size === 0) return contiguousStrides(shape);
  const oldShape = x.shape, oldStrides = x.strides;
  const strides = new Array<number>(shape.length).fill(1);
  let v = shape.length - 1;
  let chunkStride = oldStrides[oldStrides.length - 1]!;
  let chunkSize = 1;
  let viewSize = 1;
  for (let t = oldShape.length - 1; t >= 0; t--) {
    chunkSize *= oldShape[t]!;
    const chunkEnds = t === 0 || (oldShape[t - 1] !== 1 && oldStrides[t - 1] !== chunkSize * chunkStride);
    if (!chunkEnds) continue;
    while (v >= 0 && (viewSize < chunkSize || shape[v] === 1)) {
      strides[v] = viewSize * chunkStride;
      viewSize *= shape[v]!;
      v--;
    }
    if (viewSize !== chunkSize) return null;
    if (t > 0) {
      chunkStride = oldStrides[t - 1]!;
      chunkSize = 1;
      viewSize = 1;
    }
  }
  return v === -1 ? strides : null;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(x, shape);
  const strides = viewStrides(x, target);
  let y: Tensor;
  if (strides) {
    y = x.view(target, strides, x.offset);
  } else {
    const dense = contiguous(x);
    y = dense.view(target, contiguousStrides(target), 0);
    dense.dispose();
  }
  record('reshape', [x], y, [], (g) => [reshape(g, x.shape)]);
  return y;
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) throw new Error(`permute: ${dims.length} dims given for a tensor of shape ${shapeStr(x.shape)}`);
  const d = dims.map((k) => normDim(k, x.ndim));
  if (new Set(d).size !== d.length) throw new Error(`permute: dims [${dims.join(',')}] repeat`);
  const y = x.view(
    d.map((k) => x.shape[k]!),
    d.map((k) => x.strides[k]!),
    x.offset,
  );
  const inverse = new Array<number>(d.length);
  d.forEach((k, i) => (inverse[k] = i));
  record('permute', [x], y, [], (g) => [permute(g, inverse)]);
  return y;
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normDim(dim0, x.ndim), b = normDim(dim1, x.ndim);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** x[start:end:step] along dim (negative indices count from the end, clamped like Python). */
export function slice(x: Tensor, dim: number, start = 0, end = Infinity, step = 1): Tensor {
  const d = normDim(dim, x.ndim);
  const n = x.shape[d]!;
  if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number): number => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start), e = Math.max(clampIdx(end), s);
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[d] = len;
  const strides = [...x.strides];
  strides[d] = x.strides[d]! * step;
  const y = x.view(shape, strides, x.offset + s * x.strides[d]!);
  record('slice', [x], y, [], (g) => [padInto(g, x.shape, d, s, step)]);
  return y;
}

/** torch.narrow: `length` entries from `start` along dim. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  return slice(x, dim, start, start + length);
}

/** Broadcasts size-1 dims (and new leading dims) to `shape` without copying; -1 keeps a dim. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) throw new Error(`expand: target ${shapeStr(shape)} has fewer dims than ${shapeStr(x.shape)}`);
  const lead = shape.length - x.ndim;
  const outShape: number[] = [];
  const strides: number[] = [];
  shape.forEach((want, i) => {
    const k = i - lead;
    const have = k >= 0 ? x.shape[k]! : 1;
    const w = want === -1 ? have : want;
    if (have !== w && have !== 1) throw new Error(`expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    outShape.push(w);
    strides.push(k >= 0 && have === w ? x.strides[k]! : 0);
  });
  const y = x.view(outShape, strides, x.offset);
  record('expand', [x], y, [], (g) => [sumToShapeLazy(g, x.shape)]);
  return y;
}

// Imported lazily through a setter to avoid a cycle with reduce.ts (which uses views).
let sumToShapeLazy: (g: Tensor, shape: readonly number[]) => Tensor = () => {
  throw new Error('internal: sumToShape not registered');
};
export function registerSumToShape(fn: (g: Tensor, shape: readonly number[]) => Tensor): void {
  sumToShapeLazy = fn;
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + x.ndim + 1 : dim;
  if (d < 0 || d > x.ndim) throw new Error(`unsqueeze: dim ${dim} out of range for ${shapeStr(x.shape)}`);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

/** Removes the given size-1 dim, or all size-1 dims. */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim(dim, x.ndim);
  if (x.shape[d] !== 1) return reshape(x, x.shape);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const a = normDim(startDim, x.ndim), b = normDim(endDim, x.ndim);
  const shape = [...x.shape.slice(0, a), sizeOf(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)];
  return reshape(x, shape);
}
