// Elementwise kernels, generated from one table: every unary, binary and ternary op is a WGSL
// expression plus its float64 reference. The generator makes one kernel per (op, operand kinds,
// dtypes, collapsed rank) and reads strided or broadcast inputs directly, so views never copy.
import { F32_BITS, LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock, type UniformBlock, type UniformField } from './uniforms.js';

export type WType = 'f32' | 'i32' | 'u32';

export interface EwOp {
  arity: 1 | 2 | 3;
  /**
   * WGSL expression over operands a, b, c and params p0, p1. T( converts to the operand type,
   * F( I( U( to the f32/i32/u32 of the same width: scalars, or vec4s in the 4-wide form.
   */
  wgsl: string;
  /** float64 reference of the same formula. */
  ref: (a: number, b: number, c: number, p: readonly number[]) => number;
  /** Result type: same as the (last value) operand, bool (u32), or a fixed type. */
  out?: 'same' | 'bool' | WType;
  /** Only defined for floating point operands. */
  floatOnly?: boolean;
  /** Number of f32 parameters (p0, p1) the op takes. */
  params?: number;
  /** Has no 4-wide form (its helper is scalar). */
  scalarOnly?: boolean;
}

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
const cmp = (b: boolean): number => (b ? 1 : 0);

// torch.pow semantics for a negative base with an integral exponent; NaN otherwise.
const POW_WGSL = `fn pow_t(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  let r = pow(abs(a), b);
  if (a >= 0.0) { return r; }
  if (floor(b) != b) { return f32_bits(0x7fc00000u); }
  if (fract(b * 0.5) != 0.0) { return -r; }
  return r;
}`;

export const EW_OPS = {
  // unary
  neg: { arity: 1, wgsl: '-a', ref: (a) => -a },
  abs: { arity: 1, wgsl: 'abs(a)', ref: (a) => Math.abs(a) },
  sign: { arity: 1, wgsl: 'sign(a)', ref: (a) => Math.sign(a) },
  exp: { arity: 1, wgsl: 'exp(a)', ref: (a) => Math.exp(a), floatOnly: true },
  log: { arity: 1, wgsl: 'log(a)', ref: (a) => Math.log(a), floatOnly: true },
  sqrt: { arity: 1, wgsl: 'sqrt(a)', ref: (a) => Math.sqrt(a), floatOnly: true },
  rsqrt: { arity: 1, wgsl: 'inverseSqrt(a)', ref: (a) => 1 / Math.sqrt(a), floatOnly: true },
  square: { arity: 1, wgsl: 'a * a', ref: (a) => a * a },
  reciprocal: { arity: 1, wgsl: '1.0 / a', ref: (a) => 1 / a, floatOnly: true },
  relu: { arity: 1, wgsl: 'max(a, T(0))', ref: (a) => Math.max(a, 0) },
  sigmoid: { arity: 1, wgsl: 'sigmoid_t(a)', ref: sigmoid, floatOnly: true },
  tanh: { arity: 1, wgsl: 'tanh_t(a)', ref: (a) => Math.tanh(a), floatOnly: true },
  floor: { arity: 1, wgsl: 'floor(a)', ref: (a) => Math.floor(a), floatOnly: true },
  ceil: { arity: 1, wgsl: 'ceil(a)', ref: (a) => Math.ceil(a), floatOnly: true },
  clamp: { arity: 1, wgsl: 'min(max(a, T(p0)), T(p1))', ref: (a, _b, _c, p) => Math.min(Math.max(a, p[0]!), p[1]!), params: 2 },
  copy: { arity: 1, wgsl: 'a', ref: (a) => a },
  to_f32: { arity: 1, wgsl: 'F(a)', ref: (a) => a, out: 'f32' },
  to_i32: { arity: 1, wgsl: 'I(a)', ref: (a) => Math.trunc(a), out: 'i32' },
  to_bool: { arity: 1, wgsl: 'select(U(0), U(1), a != T(0))', ref: (a) => cmp(a !== 0), out: 'bool' },
  logical_not: { arity: 1, wgsl: 'select(U(1), U(0), a != T(0))', ref: (a) => cmp(a === 0), out: 'bool' },
  // binary
  add: { arity: 2, wgsl: 'a + b', ref: (a, b) => a + b },
  sub: { arity: 2, wgsl: 'a - b', ref: (a, b) => a - b },
  mul: { arity: 2, wgsl: 'a * b', ref: (a, b) => a * b },
  div: { arity: 2, wgsl: 'a / b', ref: (a, b) => a / b, floatOnly: true },
  pow: { arity: 2, wgsl: 'pow_t(a, b)', ref: (a, b) => Math.pow(a, b), floatOnly: true, scalarOnly: true },
  minimum: { arity: 2, wgsl: 'min(a, b)', ref: (a, b) => Math.min(a, b) },
  maximum: { arity: 2, wgsl: 'max(a, b)', ref: (a, b) => Math.max(a, b) },
  eq: { arity: 2, wgsl: 'select(U(0), U(1), a == b)', ref: (a, b) => cmp(a === b), out: 'bool' },
  ne: { arity: 2, wgsl: 'select(U(0), U(1), a != b)', ref: (a, b) => cmp(a !== b), out: 'bool' },
  lt: { arity: 2, wgsl: 'select(U(0), U(1), a < b)', ref: (a, b) => cmp(a < b), out: 'bool' },
  le: { arity: 2, wgsl: 'select(U(0), U(1), a <= b)', ref: (a, b) => cmp(a <= b), out: 'bool' },
  gt: { arity: 2, wgsl: 'select(U(0), U(1), a > b)', ref: (a, b) => cmp(a > b), out: 'bool' },
  ge: { arity: 2, wgsl: 'select(U(0), U(1), a >= b)', ref: (a, b) => cmp(a >= b), out: 'bool' },
  logical_and: { arity: 2, wgsl: 'select(U(0), U(1), (a != T(0)) & (b != T(0)))', ref: (a, b) => cmp(a !== 0 && b !== 0), out: 'bool' },
  logical_or: { arity: 2, wgsl: 'select(U(0), U(1), (a != T(0)) | (b != T(0)))', ref: (a, b) => cmp(a !== 0 || b !== 0), out: 'bool' },
  // backward helpers, fused so a backward rule is one kernel: a is the incoming gradient
  relu_grad: { arity: 2, wgsl: 'select(T(0), a, b > T(0))', ref: (g, x) => (x > 0 ? g : 0) },
  sigmoid_grad: { arity: 2, wgsl: 'a * b * (1.0 - b)', ref: (g, y) => g * y * (1 - y), floatOnly: true },
  tanh_grad: { arity: 2, wgsl: 'a * (1.0 - b * b)', ref: (g, y) => g * (1 - y * y), floatOnly: true },
  clamp_grad: { arity: 2, wgsl: 'select(T(0), a, (b >= T(p0)) & (b <= T(p1)))', ref: (g, x, _c, p) => (x >= p[0]! && x <= p[1]! ? g : 0), params: 2 },
  // ternary
  where: { arity: 3, wgsl: 'select(c, b, a != U(0))', ref: (a, b, c) => (a !== 0 ? b : c) },
  // a*b + c, the multiply-add many updates use
  fma: { arity: 3, wgsl: 'a * b + c', ref: (a, b, c) => a * b + c },
  // (a + b) + c: autodiff sums three gradient contributions in one pass, rounding as two adds do
  add3: { arity: 3, wgsl: 'a + b + c', ref: (a, b, c) => a + b + c },
} satisfies Record<string, EwOp>;

export type EwOpName = keyof typeof EW_OPS;

/** Helper functions for element type T (f32 or vec4<f32>); pow_t exists only in scalar form. */
function helpers(T: string): string {
  return `${F32_BITS}
fn sigmoid_t(x: ${T}) -> ${T} {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= ${T}(0.0));
}
fn tanh_t(x: ${T}) -> ${T} {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
${T === 'f32' ? POW_WGSL : ''}`;
}

export interface EwOperand {
  /** A tensor read with strides (after dimension collapsing), or a scalar from the uniforms. */
  kind: 'tensor' | 'scalar';
  type: WType;
  /** Tensor whose strides equal the output's contiguous strides (read at offset + i). */
  dense?: boolean;
}

/** True when the op has a 4-wide form (the engine also needs dense, 4-aligned operands). */
export function ewHasVec4(name: EwOpName): boolean {
  return !(EW_OPS[name] as EwOp).scalarOnly;
}

export function ewResultType(op: EwOp, operands: readonly EwOperand[]): WType {
  const out = op.out ?? 'same';
  if (out === 'same') return operands[operands.length - 1]!.type;
  return out === 'bool' ? 'u32' : out;
}

/** The uniform field prefix of each operand (and its WGSL name). */
export const EW_OPERAND_LETTERS = ['a', 'b', 'c'] as const;
const ewBlocks = new Map<string, UniformBlock>();

/**
 * The uniforms of one elementwise variant: n (in vec4s for the 4-wide form), the collapsed shape,
 * then per operand (letters a, b, c) its value (a scalar) or its offset and, unless dense, its
 * strides; then the op's f32 params.
 */
export function ewUniforms(name: EwOpName, operands: readonly EwOperand[], ndim: number): UniformBlock {
  const key = `${name}|${ndim}|${operands.map((o) => `${o.kind[0]}${o.type}${o.dense ? 'd' : ''}`).join(',')}`;
  let block = ewBlocks.get(key);
  if (block) return block;
  const spec: Record<string, UniformField> = { n: 'u32', shape: ['u32', ndim] };
  operands.forEach((o, k) => {
    const v = EW_OPERAND_LETTERS[k]!;
    if (o.kind === 'scalar') {
      spec[v] = o.type;
      return;
    }
    spec[`${v}Offset`] = 'u32';
    if (!o.dense) spec[`${v}Strides`] = ['u32', ndim];
  });
  spec.params = ['f32', (EW_OPS[name] as EwOp).params ?? 0];
  ewBlocks.set(key, (block = uniformBlock(`ew_${name}_${ewBlocks.size}`, spec)));
  return block;
}

/**
 * vec4s each invocation of the 4-wide form does (grid-strided: invocation i takes i, i + stride, ...;
 * dispatch ewVec4Invocations of them): lavapipe pays per invocation too, not only per load.
 */
export const EW_VEC4S = 4;

/** Invocations of the 4-wide form for n vec4s. */
export const ewVec4Invocations = (n: number): number => Math.ceil(n / EW_VEC4S);

export function ewKernel(name: EwOpName, operands: readonly EwOperand[], ndim: number, vec4 = false): { wgsl: string; entry: string } {
  // The 4-wide form: every tensor operand dense and 4-aligned; each invocation does 4 elements with
  // vector loads (CPU drivers such as lavapipe pay per load, not per element).
  if (vec4 && (ndim > 1 || operands.some((o) => o.kind === 'tensor' && !o.dense))) throw new Error('internal: ewKernel vec4 needs dense operands');
  const V = (t: string): string => (vec4 ? `vec4<${t}>` : t);
  const op: EwOp = EW_OPS[name];
  const outType = ewResultType(op, operands);
  const U = ewUniforms(name, operands, ndim);
  const lines: string[] = [];
  const decls: string[] = [];
  let binding = 1;
  // Coordinates of the output element, decomposed from the last dimension.
  const coord: string[] = [];
  if (operands.some((o) => o.kind === 'tensor' && !o.dense) && ndim > 0) {
    lines.push('var r = i;');
    for (let d = ndim - 1; d >= 0; d--) {
      lines.push(`let c${d} = r % ${U.at('shape', d)};`);
      if (d > 0) lines.push(`r = r / ${U.at('shape', d)};`);
      coord[d] = `c${d}`;
    }
  }
  operands.forEach((o, k) => {
    const v = EW_OPERAND_LETTERS[k]!;
    if (o.kind === 'scalar') {
      lines.push(`let ${v} = ${vec4 ? `${V(o.type)}(u.${v})` : `u.${v}`};`);
      return;
    }
    decls.push(`@group(0) @binding(${binding}) var<storage, read> in${k}: array<${V(o.type)}>;`);
    binding++;
    let index = `u.${v}Offset`;
    if (vec4) index = `${index} / 4u + i`;
    else if (o.dense) index += ' + i';
    else for (let d = 0; d < ndim; d++) index += ` + ${coord[d]} * ${U.at(`${v}Strides`, d)}`;
    lines.push(`let ${v} = in${k}[${index}];`);
  });
  for (let p = 0; p < (op.params ?? 0); p++) lines.push(`let p${p} = ${U.at('params', p)};`);
  const T = operands[operands.length - 1]!.type;
  const expr = op.wgsl
    .replace(/\bT\(/g, `${V(T)}(`)
    .replace(/\bF\(/g, `${V('f32')}(`)
    .replace(/\bI\(/g, `${V('i32')}(`)
    .replace(/\bU\(/g, `${V('u32')}(`);
  const entry = vec4 ? `ew4_${name}` : `ew_${name}`;
  // One element (a vec4 in the 4-wide form) at index i; past the end, the invocation is done.
  const body = `if (i >= u.n) { return; }
  ${lines.join('\n  ')}
  out[i] = ${expr};`;
  const wgsl = `${U.wgsl}
${decls.join('\n')}
@group(0) @binding(${binding}) var<storage, read_write> out: array<${V(outType)}>;
${helpers(V('f32'))}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${
    vec4
      ? `let i0 = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  let stride = nwg.x * nwg.y * ${WORKGROUP}u;
  for (var t = 0u; t < ${EW_VEC4S}u; t++) {
  let i = i0 + t * stride;
  ${body}
  }`
      : `let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  ${body}`
  }
}
`;
  return { wgsl, entry };
}

/** float64 reference: applies the op to broadcast reference operands (numbers are scalars). */
export function ewReference(name: EwOpName, values: readonly (number | { shape: number[]; data: Float64Array })[], params: readonly number[] = []) {
  const op: EwOp = EW_OPS[name];
  const shapes = values.map((v) => (typeof v === 'number' ? [] : v.shape));
  const shape = broadcastShapes(shapes);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const readers = values.map((v) => (typeof v === 'number' ? () => v : broadcastReader(v, shape)));
  for (let i = 0; i < n; i++) {
    const a = readers[0]!(i), b = readers[1]?.(i) ?? 0, c = readers[2]?.(i) ?? 0;
    out[i] = op.ref(a, b, c, params);
  }
  return { shape, data: out };
}

/** numpy-style broadcast of shapes; throws naming both shapes when they do not broadcast. */
export function broadcastShapes(shapes: readonly (readonly number[])[]): number[] {
  const ndim = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(ndim).fill(1);
  for (const s of shapes) {
    for (let k = 0; k < s.length; k++) {
      const d = ndim - s.length + k;
      const v = s[k]!;
      if (v === out[d] || v === 1) continue;
      if (out[d] === 1) out[d] = v;
      else throw new Error(`shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} do not broadcast`);
    }
  }
  return out;
}

function broadcastReader(t: { shape: number[]; data: Float64Array }, shape: number[]): (i: number) => number {
  const ndim = shape.length;
  const strides = new Array<number>(ndim).fill(0);
  let s = 1;
  for (let k = t.shape.length - 1; k >= 0; k--) {
    const d = ndim - t.shape.length + k;
    strides[d] = t.shape[k] === 1 ? 0 : s;
    s *= t.shape[k]!;
  }
  return (i) => {
    let idx = 0;
    for (let d = ndim - 1; d >= 0; d--) {
      const c = i % shape[d]!;
      i = (i - c) / shape[d]!;
      idx += c * strides[d]!;
    }
    return t.data[idx]!;
  };
}
