// Data movement built on the strided-copy and fill kernels: fill, copy into a view, pad,
// concatenation and the zero-padding that slice's backward needs.
import { stridedCopyKernel, stridedCopyManyKernel, fillKernel, fillVec4Kernel, fillVec4Invocations, copyUniforms, copyManyUniforms, fillUniforms, COPY_MANY_MAX } from '../../kernels/copy.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr, WGSL_TYPE, type DType } from '../tensor.js';
import { inVec4Binding } from './vec4-binding.js';
import { record } from '../autograd.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

/** Elements of the last dim per invocation of the strided copy (1: one element each; tests set both). */
let COPY_RUN = 4;
export function setCopyRun(run: number): void {
  COPY_RUN = run;
}

let fillScalarOnly = false;
/** Forces the one-element-per-invocation fill (tests compare the two forms). */
export function setFillScalarOnly(on: boolean): void {
  fillScalarOnly = on;
}

/** Fills a dense tensor in place. */
export function fillInPlace(t: Tensor, value: number): Tensor {
  if (t.size === 0) return t;
  if (!t.isContiguous) throw new Error('internal: fillInPlace needs a dense tensor');
  const type = WGSL_TYPE[t.dtype];
  const v = t.dtype === 'bool' ? (value ? 1 : 0) : value;
  const backend = getBackend();
  const buffer = t.storage.buffer;
  // The vec4 form where the range lies within the binding's whole vec4s (pool buffers are multiples
  // of 256 bytes, so nearly always); else one element per invocation.
  const vec4 = inVec4Binding(t) && !fillScalarOnly;
  backend.dispatch({
    kernel: vec4 ? cached(`fill4|${type}`, () => fillVec4Kernel(type)) : cached(`fill|${type}`, () => fillKernel(type)),
    buffers: [buffer],
    uniforms: fillUniforms(type).pack({ n: t.size, offset: t.offset, value: v }),
    workgroups: grid(Math.ceil((vec4 ? fillVec4Invocations(t.size, t.offset) : t.size) / WORKGROUP)),
    label: `fill(${t.dtype}${shapeStr(t.shape)}, ${value})`,
  });
  return t;
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  return fillInPlace(empty(shape, dtype), value);
}

export const zeros = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 1, dtype);
export const zerosLike = (t: Tensor): Tensor => zeros(t.shape, t.dtype);
export const onesLike = (t: Tensor): Tensor => ones(t.shape, t.dtype);

/** A copy's destination and source agree in shape and dtype, else a clear error. */
function checkCopy(dst: Tensor, src: Tensor): void {
  if (dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new Error(`copyInto: shapes differ (${shapeStr(dst.shape)} <- ${shapeStr(src.shape)})`);
  }
  if (dst.dtype !== src.dtype) throw new Error(`copyInto: dtypes differ (${dst.dtype} <- ${src.dtype})`);
}

/** Writes src into the view dst (same shape) in place; no autodiff. */
export function copyInto(dst: Tensor, src: Tensor): void {
  checkCopy(dst, src);
  if (dst.size === 0) return;
  const ndim = dst.ndim;
  const type = WGSL_TYPE[dst.dtype];
  // Runs of COPY_RUN elements of the last dim per invocation where that dim is long enough to fill them.
  const lastDim = dst.shape[ndim - 1] ?? 1;
  const run = ndim > 0 && lastDim >= COPY_RUN ? COPY_RUN : 1;
  const invocations = run > 1 ? (dst.size / lastDim) * Math.ceil(lastDim / run) : dst.size;
  const u = copyUniforms(ndim).pack({
    n: invocations,
    shape: dst.shape,
    srcOffset: src.offset,
    srcStrides: src.strides,
    dstOffset: dst.offset,
    dstStrides: dst.strides,
  });
  getBackend().dispatch({
    kernel: cached(`copy|${type}|${ndim}|${run}`, () => stridedCopyKernel(type, ndim, run)),
    buffers: [src.storage.buffer, dst.storage.buffer],
    uniforms: u,
    workgroups: grid(Math.ceil(invocations / WORKGROUP)),
    label: `copy(${src.dtype}${shapeStr(src.shape)})`,
  });
}

/**
 * copyInto for each [dst, src] pair. Pairs whose destinations are views of one buffer (a cat's
 * output, a canvas) with one dtype and rank go COPY_MANY_MAX to a dispatch (PyTorch's cat is one
 * kernel too); the destinations must not overlap. No autodiff.
 */
export function copyManyInto(pairs: readonly (readonly [Tensor, Tensor])[]): void {
  for (const [dst, src] of pairs) checkCopy(dst, src);
  const live = pairs.filter(([dst]) => dst.size > 0);
  const first = live[0]?.[0];
  const batchable = !!first && live.every(([dst]) => dst.storage.buffer === first.storage.buffer && dst.dtype === first.dtype && dst.ndim === first.ndim);
  if (!batchable || live.length === 1) {
    for (const [dst, src] of live) copyInto(dst, src);
    return;
  }
  const ndim = first.ndim, type = WGSL_TYPE[first.dtype];
  // k sources and the destination within the device's storage-buffer bindings.
  const most = Math.max(1, Math.min(COPY_MANY_MAX, getBackend().device.limits.maxStorageBuffersPerShaderStage - 1));
  for (let at = 0; at < live.length; at += most) {
    const part = live.slice(at, at + most);
    if (part.length === 1) {
      copyInto(part[0]![0], part[0]![1]);
      continue;
    }
    const values: Record<string, number | number[]> = {};
    let total = 0;
    part.forEach(([dst, src], j) => {
      Object.assign(values, {
        [`n${j}`]: dst.size, [`start${j}`]: total, [`shape${j}`]: dst.shape,
        [`srcOffset${j}`]: src.offset, [`srcStrides${j}`]: src.strides, [`dstOffset${j}`]: dst.offset, [`dstStrides${j}`]: dst.strides,
      });
      total += dst.size;
    });
    values.total = total;
    getBackend().dispatch({
      kernel: cached(`copy_many|${type}|${ndim}|${part.length}`, () => stridedCopyManyKernel(type, ndim, part.length)),
      buffers: [...part.map(([, src]) => src.storage.buffer), first.storage.buffer],
      uniforms: copyManyUniforms(`${ndim}x${part.length}`).pack(values),
      workgroups: grid(Math.ceil(total / WORKGROUP)),
      label: `copy ${part.length} (${part.map(([, src]) => `${src.dtype}${shapeStr(src.shape)}`).join(', ')})`,
    });
  }
}

/** Zeros of `shape` with g written at positions start, start+step, ... along dim (slice backward). */
export function padInto(g: Tensor, shape: readonly number[], dim: number, start: number, step: number): Tensor {
  const out = zeros(shape, g.dtype);
  const strides = [...out.strides];
  strides[dim] = out.strides[dim]! * step;
  const region = out.view(g.shape, strides, start * out.strides[dim]!);
  copyInto(region, g);
  region.dispose();
  return out;
}

/** torch.nn.functional.pad with constant value; `pads` = [lastLeft, lastRight, prevLeft, prevRight, ...]. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim) throw new Error(`pad: ${pads.length} pad values do not fit shape ${shapeStr(x.shape)}`);
  if (pads.some((p) => p < 0 || !Number.isInteger(p))) throw new Error('pad: negative or fractional padding is not supported');
  const shape = [...x.shape];
  const start = new Array<number>(x.ndim).fill(0);
  for (let k = 0; k < pads.length / 2; k++) {
    const d = x.ndim - 1 - k;
    shape[d] = shape[d]! + pads[2 * k]! + pads[2 * k + 1]!;
    start[d] = pads[2 * k]!;
  }
  const out = full(shape, value, x.dtype);
  const offset = start.reduce((acc, s, d) => acc + s * out.strides[d]!, 0);
  const region = out.view(x.shape, out.strides, offset);
  copyInto(region, x);
  region.dispose();
  record('pad', [x], out, [], (g) => {
    const o = start.reduce((acc, s, d) => acc + s * g.strides[d]!, g.offset);
    return [g.view(x.shape, g.strides, o)];
  });
  return out;
}

/** torch.cat along dim. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: needs at least one tensor');
  const first = tensors[0]!;
  const d = dim < 0 ? dim + first.ndim : dim;
  if (d < 0 || d >= first.ndim) throw new Error(`cat: dim ${dim} out of range for ${shapeStr(first.shape)}`);
  tensors.forEach((t, i) => {
    if (t.dtype !== first.dtype) throw new Error(`cat: tensor ${i} is ${t.dtype}, tensor 0 is ${first.dtype}`);
    if (t.ndim !== first.ndim || t.shape.some((s, k) => k !== d && s !== first.shape[k])) {
      throw new Error(`cat: tensor ${i} has shape ${shapeStr(t.shape)}, incompatible with ${shapeStr(first.shape)} along dim ${d}`);
    }
  });
  const shape = [...first.shape];
  shape[d] = tensors.reduce((acc, t) => acc + t.shape[d]!, 0);
  const out = empty(shape, first.dtype);
  let at = 0;
  const starts: number[] = [];
  const regions: Tensor[] = [];
  for (const t of tensors) {
    starts.push(at);
    regions.push(out.view(t.shape, out.strides, at * out.strides[d]!));
    at += t.shape[d]!;
  }
  copyManyInto(regions.map((r, i) => [r, tensors[i]!] as const));
  regions.forEach((r) => r.dispose());
  record('cat', [...tensors], out, [], (g) =>
    tensors.map((t, i) => g.view(t.shape, g.strides, g.offset + starts[i]! * g.strides[d]!)),
  );
  return out;
}
