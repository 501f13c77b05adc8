// Elementwise ops: broadcasting, dimension collapsing and dispatch of the generated kernels, and
// each op's backward rule next to it. Scalars (JS numbers) travel in the uniforms, never as buffers.
import { EW_OPS, ewHasVec4, ewKernel, ewVec4Invocations, ewResultType, ewUniforms, EW_OPERAND_LETTERS, broadcastShapes, type EwOpName, type EwOperand, type WType } from '../../kernels/elementwise.js';
import type { UniformBlock } from '../../kernels/uniforms.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr, WGSL_TYPE, type DType } from '../tensor.js';
import { record, type BackwardFn } from '../autograd.js';
import { sumToShape } from './reduce.js';

export type Operand = Tensor | number;

const DTYPE_OF: Record<WType, DType> = { f32: 'float32', i32: 'int32', u32: 'bool' };
const kernelCache = new Map<string, { kernel: { wgsl: string; entry: string }; uniforms: UniformBlock }>();

/** Broadcast strides of t against `shape` (0 where t is broadcast). */
export function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const nd = shape.length;
  const out = new Array<number>(nd).fill(0);
  for (let k = 0; k < t.ndim; k++) {
    const d = nd - t.ndim + k;
    out[d] = t.shape[k] === 1 && shape[d] !== 1 ? 0 : t.strides[k]!;
  }
  return out;
}

/** Drops size-1 dimensions and merges dimensions that are adjacent in memory for every operand. */
function collapse(shape: readonly number[], strides: number[][]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((d, i) => i).filter((i) => shape[i] !== 1);
  let outShape = keep.map((i) => shape[i]!);
  let outStrides = strides.map((s) => keep.map((i) => s[i]!));
  for (let d = outShape.length - 2; d >= 0; d--) {
    const inner = outShape[d + 1]!;
    if (outStrides.every((s) => s[d] === s[d + 1]! * inner)) {
      outShape = [...outShape.slice(0, d), outShape[d]! * inner, ...outShape.slice(d + 2)];
      outStrides = outStrides.map((s) => [...s.slice(0, d), s[d + 1]!, ...s.slice(d + 2)]);
    }
  }
  return { shape: outShape, strides: outStrides };
}

function describe(name: string, operands: readonly Operand[]): string {
  return `${name}(${operands.map((o) => (typeof o === 'number' ? String(o) : `${o.dtype}${shapeStr(o.shape)}`)).join(', ')})`;
}

/** Runs one table op on tensors/scalars (no autodiff); the result is a new dense tensor. */
export function elementwise(name: EwOpName, operands: readonly Operand[], params: readonly number[] = []): Tensor {
  const op = EW_OPS[name] as (typeof EW_OPS)[EwOpName] & { floatOnly?: boolean };
  const label = describe(name, operands);
  if (operands.length !== op.arity) throw new Error(`${label}: expects ${op.arity} operands`);
  const nParams = (op as { params?: number }).params ?? 0;
  if (params.length !== nParams) throw new Error(`${label}: expects ${nParams} parameters, got ${params.length}`);
  const tensors = operands.filter((o): o is Tensor => typeof o !== 'number');
  if (tensors.length === 0) throw new Error(`${label}: needs at least one tensor operand`);
  for (const t of tensors) void t.storage; // throws a clear error for disposed inputs
  // Value operands share one dtype; `where`'s condition must be bool.
  const valueTensors = name === 'where' ? tensors.filter((t) => t !== operands[0]) : tensors;
  if (name === 'where' && (typeof operands[0] === 'number' || operands[0]!.dtype !== 'bool')) {
    throw new Error(`${label}: the condition must be a bool tensor`);
  }
  const dtype = valueTensors[0]?.dtype ?? 'float32';
  for (const t of valueTensors) {
    if (t.dtype !== dtype) throw new Error(`${label}: operands have different dtypes (${dtype}, ${t.dtype}); cast one with .float()/.int()`);
  }
  if (op.floatOnly && dtype !== 'float32') throw new Error(`${label}: defined for float32 only, got ${dtype}`);
  const shape = broadcastShapes(tensors.map((t) => t.shape));
  const tensorStrides = tensors.map((t) => broadcastStrides(t, shape));
  const { shape: cshape, strides: cstrides } = collapse(shape, tensorStrides);
  const ndim = cshape.length;
  const dense = (s: number[]): boolean => ndim === 0 || (ndim === 1 && s[0] === 1);

  const T = WGSL_TYPE[dtype];
  let ti = 0;
  const kinds: EwOperand[] = operands.map((o, k) => {
    if (typeof o === 'number') return { kind: 'scalar', type: name === 'where' && k === 0 ? 'u32' : T };
    return { kind: 'tensor', type: WGSL_TYPE[o.dtype], dense: dense(cstrides[ti++]!) };
  });
  // 4-wide form when every tensor operand is dense and 4-aligned (offsets and length).
  const size = shape.reduce((a, b) => a * b, 1);
  const vec4 = ewHasVec4(name) && size % 4 === 0 && size > 0 && kinds.every((k) => k.kind === 'scalar' || k.dense) && tensors.every((t) => t.offset % 4 === 0);
  const key = `${name}|${ndim}|${vec4 ? 'v4' : 's'}|${kinds.map((k) => `${k.kind[0]}${k.type}${k.dense ? 'd' : ''}`).join(',')}`;
  let variant = kernelCache.get(key);
  if (!variant) kernelCache.set(key, (variant = { kernel: ewKernel(name, kinds, ndim, vec4), uniforms: ewUniforms(name, kinds, ndim) }));

  const out = empty(shape, DTYPE_OF[ewResultType(op, kinds)]);
  if (out.size === 0) return out;
  const lanes = vec4 ? 4 : 1;
  // Field names as ewUniforms declares them: operand letters a, b, c.
  const values: Record<string, number | readonly number[]> = { n: out.size / lanes, shape: cshape, params };
  ti = 0;
  operands.forEach((o, k) => {
    const v = EW_OPERAND_LETTERS[k]!;
    if (typeof o === 'number') {
      values[v] = o;
      return;
    }
    const s = cstrides[ti++]!;
    values[`${v}Offset`] = o.offset;
    if (!kinds[k]!.dense) values[`${v}Strides`] = s;
  });
  getBackend().dispatch({
    kernel: variant.kernel,
    buffers: [...tensors.map((t) => t.storage.buffer), out.storage.buffer],
    uniforms: variant.uniforms.pack(values),
    workgroups: grid(Math.ceil((vec4 ? ewVec4Invocations(out.size / 4) : out.size) / WORKGROUP)),
    label,
  });
  return out;
}

// ---- differentiable ops: forward = one table op, backward = a few table ops ----

const ew = elementwise;

function unaryOp(name: EwOpName, backward: BackwardFn | null, save: 'input' | 'output' = 'input', params: number[] = []) {
  return (x: Tensor): Tensor => {
    const y = ew(name, [x], params);
    if (backward) record(name, [x], y, [save === 'input' ? x : y], backward);
    return y;
  };
}

export const neg = unaryOp('neg', (g) => [ew('neg', [g])]);
export const abs = unaryOp('abs', (g, [x]) => [ew('mul', [g, ew('sign', [x!])])]);
export const exp = unaryOp('exp', (g, [y]) => [ew('mul', [g, y!])], 'output');
export const log = unaryOp('log', (g, [x]) => [ew('div', [g, x!])]);
export const sqrt = unaryOp('sqrt', (g, [y]) => [ew('div', [ew('mul', [g, 0.5]), y!])], 'output');
export const rsqrt = unaryOp('rsqrt', (g, [y]) => [ew('mul', [ew('mul', [g, -0.5]), ew('mul', [y!, ew('square', [y!])])])], 'output');
export const square = unaryOp('square', (g, [x]) => [ew('mul', [ew('mul', [g, 2]), x!])]);
export const reciprocal = unaryOp('reciprocal', (g, [y]) => [ew('neg', [ew('mul', [g, ew('square', [y!])])])], 'output');
export const relu = unaryOp('relu', (g, [x]) => [ew('relu_grad', [g, x!])]);
export const sigmoid = unaryOp('sigmoid', (g, [y]) => [ew('sigmoid_grad', [g, y!])], 'output');
export const tanh = unaryOp('tanh', (g, [y]) => [ew('tanh_grad', [g, y!])], 'output');
export const sign = unaryOp('sign', null);
export const floor = unaryOp('floor', null);
export const ceil = unaryOp('ceil', null);

/** torch.clamp(x, min, max): gradient flows where min <= x <= max. */
export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  const y = ew('clamp', [x], [min, max]);
  record('clamp', [x], y, [x], (g, [xs]) => [ew('clamp_grad', [g, xs!], [min, max])]);
  return y;
}

function binaryOp(name: EwOpName, grads: (g: Tensor, a: Operand, b: Operand, out: Tensor) => [Tensor | null, Tensor | null], saveOut = false) {
  return (a: Operand, b: Operand): Tensor => {
    const out = ew(name, [a, b]);
    const inputs = [a, b].filter((o): o is Tensor => typeof o !== 'number');
    const saved = [...inputs, ...(saveOut ? [out] : [])];
    record(name, inputs, out, saved, (g, s) => {
      let k = 0;
      const av = typeof a === 'number' ? a : s[k++]!;
      const bv = typeof b === 'number' ? b : s[k++]!;
      const [ga, gb] = grads(g, av, bv, saveOut ? s[k]! : out);
      const res: (Tensor | null)[] = [];
      if (typeof a !== 'number') res.push(ga && reduceTo(ga, a.shape));
      if (typeof b !== 'number') res.push(gb && reduceTo(gb, b.shape));
      return res;
    });
    return out;
  };
}

/** Sums a broadcast gradient back to an input's shape (backward rules run inside a scope). */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  return sumToShape(g, shape);
}

export const add = binaryOp('add', (g) => [g, g]);
export const sub = binaryOp('sub', (g) => [g, ew('neg', [g])]);
export const mul = binaryOp('mul', (g, a, b) => [ew('mul', [g, b]), ew('mul', [g, a])]);
export const div = binaryOp(
  'div',
  (g, _a, b, out) => [ew('div', [g, b]), typeof b === 'number' ? null : ew('neg', [ew('div', [ew('mul', [g, out]), b])])],
  true,
);
export const pow = binaryOp(
  'pow',
  (g, a, b, out) => [
    ew('mul', [ew('mul', [g, b]), ew('pow', [a, typeof b === 'number' ? b - 1 : ew('sub', [b, 1])])]),
    typeof b === 'number' ? null : ew('mul', [ew('mul', [g, out]), ew('log', [a])]),
  ],
  true,
);
// Ties split the gradient in half, as PyTorch does for maximum/minimum.
const tieSplit = (g: Tensor, a: Operand, b: Operand, win: 'gt' | 'lt'): [Tensor, Tensor] => {
  const half = ew('mul', [g, 0.5]);
  const ga = ew('where', [ew(win, [a, b]), g, ew('where', [ew('eq', [a, b]), half, 0])]);
  const gb = ew('where', [ew(win, [b, a]), g, ew('where', [ew('eq', [a, b]), half, 0])]);
  return [ga, gb];
};
export const maximum = binaryOp('maximum', (g, a, b) => tieSplit(g, a, b, 'gt'));
export const minimum = binaryOp('minimum', (g, a, b) => tieSplit(g, a, b, 'lt'));

// Comparisons and logic: no gradient.
export const eq = (a: Operand, b: Operand): Tensor => ew('eq', [a, b]);
export const ne = (a: Operand, b: Operand): Tensor => ew('ne', [a, b]);
export const lt = (a: Operand, b: Operand): Tensor => ew('lt', [a, b]);
export const le = (a: Operand, b: Operand): Tensor => ew('le', [a, b]);
export const gt = (a: Operand, b: Operand): Tensor => ew('gt', [a, b]);
export const ge = (a: Operand, b: Operand): Tensor => ew('ge', [a, b]);
export const logicalAnd = (a: Operand, b: Operand): Tensor => ew('logical_and', [a, b]);
export const logicalOr = (a: Operand, b: Operand): Tensor => ew('logical_or', [a, b]);
export const logicalNot = (a: Tensor): Tensor => ew('logical_not', [a]);

/** torch.where(cond, a, b) with broadcasting; gradients flow to a and b. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const out = ew('where', [cond, a, b]);
  const inputs = [a, b].filter((o): o is Tensor => typeof o !== 'number');
  record('where', inputs, out, [cond], (g, [c]) => {
    const res: Tensor[] = [];
    if (typeof a !== 'number') res.push(reduceTo(ew('where', [c!, g, 0]), a.shape));
    if (typeof b !== 'number') res.push(reduceTo(ew('where', [c!, 0, g]), b.shape));
    return res;
  });
  return out;
}

/** Converts to another dtype (float -> int truncates toward zero, as torch). Gradient passes for float->float. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x.view(x.shape, x.strides, x.offset);
  return ew(dtype === 'float32' ? 'to_f32' : dtype === 'int32' ? 'to_i32' : 'to_bool', [x]);
}

/** x as a new dense view when it is dense, else a dense copy; no autodiff (for ops that record their own node). */
export function denseView(x: Tensor): Tensor {
  return x.isContiguous ? x.view(x.shape, x.strides, x.offset) : ew('copy', [x]);
}

/** A dense copy of any view; gradient passes through. */
export function contiguous(x: Tensor): Tensor {
  const y = ew('copy', [x]);
  record('contiguous', [x], y, [], (g) => [g]);
  return y;
}
