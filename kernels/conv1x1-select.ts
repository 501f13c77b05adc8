// A 1x1 convolution that keeps one output channel per row: out[r, p] = sum_d w[ch[r], d] *
// x[r, d, p] + b[ch[r]], that is conv2d(x, w, b)[r, ch[r]] (the mask head's predictor, whose loss
// and inference read only the logits of each RoI's class: C times fewer FMAs than all C channels,
// and no C-channel tensor). Three kernels, each over `vec` consecutive pixels per invocation (vec4
// where the pixel count and offsets allow it; lavapipe moves a vec4 per lane-varying load or store
// for about the price of a scalar):
//   forward:  one invocation per (row, pixel vector); the row is the workgroup's y, so its channel,
//             weights and bias are the same for every lane (uniform loads)
//   dx:       dx[r, d, p] = g[r, p] * w[ch[r], d], same grid
//   partial:  s[r, d] = sum_p g[r, p] * x[r, d, p] and s[r, D] = sum_p g[r, p], one invocation per
//             (row, d); dw and db are then onehot(ch)^T s, a [C, R] x [R, D + 1] product.
// `roundF16` (autocast): x, w and g rounded to f16 at each load, as autocast's conv2d rounds its
// GEMM operands (the bias and the sum of g for its gradient stay f32, as conv2d's). Float64
// references below.
import { LINEAR_GROUP, type RefTensor } from './common.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';
import { uniformBlock } from './uniforms.js';

export const CONV1X1_SELECT_UNIFORMS = uniformBlock('conv1x1_select', {
  R: 'u32', D: 'u32', C: 'u32',
  /** Pixel vectors per row (pixels / vec). */
  PV: 'u32',
  /** Element offsets of x, g (the output gradient) and the weight / bias / output. */
  xOffset: 'u32', gOffset: 'u32', wOffset: 'u32', bOffset: 'u32',
  /** 1: add the bias. */
  bias: 'u32',
});

/** Workgroup width of the three kernels. */
export const SELECT_WG = 64;

export type SelectKernelMode = 'forward' | 'dx' | 'partial';

/**
 * The kernel of a mode for `vec` (1 or 4) pixels per invocation. Bindings: forward: x, w, b, ch,
 * out; dx: g, w, ch, dx; partial: g, x, s. Offsets of vec4 operands are in elements (multiples of 4).
 * Grids: forward and dx [ceil(PV / SELECT_WG), R]; partial [ceil(R * (D + 1) / SELECT_WG)] (grid()).
 */
export function conv1x1SelectKernel(mode: SelectKernelMode, vec: 1 | 4, roundF16 = false): { wgsl: string; entry: string } {
  const T = vec === 4 ? 'vec4<f32>' : 'f32';
  const U = `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${CONV1X1_SELECT_UNIFORMS.wgsl}`;
  const off = (name: string) => (vec === 4 ? `(u.${name} / 4u)` : `u.${name}`);
  /** A load of a pixel-vector operand (T) and of a weight (f32), rounded under roundF16. */
  const ldv = (e: string): string => f16Load(e, roundF16, vec === 4);
  const ldw = (e: string): string => f16Load(e, roundF16);
  const entry = `conv1x1_select_${mode}${vec === 4 ? '_v4' : ''}${roundF16 ? '_f16' : ''}`;
  const head = (bindings: string[]): string =>
    `${U}\n${bindings.map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b};`).join('\n')}\n@compute @workgroup_size(${SELECT_WG})`;
  if (mode === 'forward') {
    return {
      entry,
      wgsl: `${head([`read> x: array<${T}>`, 'read> w: array<f32>', 'read> b: array<f32>', 'read> ch: array<i32>', `read_write> out: array<${T}>`])}
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = wid.x * ${SELECT_WG}u + lid;
  let r = wid.y;
  if (p >= u.PV) { return; }
  let c = u32(ch[r]);
  let wrow = u.wOffset + c * u.D;
  var acc = ${T}(select(0.0, b[u.bOffset + c], u.bias == 1u));
  var xi = ${off('xOffset')} + r * u.D * u.PV + p;
  for (var d = 0u; d < u.D; d++) {
    acc = fma(${ldv('x[xi]')}, ${T}(${ldw('w[wrow + d]')}), acc);
    xi += u.PV;
  }
  out[r * u.PV + p] = acc;
}
`,
    };
  }
  if (mode === 'dx') {
    return {
      entry,
      wgsl: `${head([`read> g: array<${T}>`, 'read> w: array<f32>', 'read> ch: array<i32>', `read_write> dx: array<${T}>`])}
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = wid.x * ${SELECT_WG}u + lid;
  let r = wid.y;
  if (p >= u.PV) { return; }
  let wrow = u.wOffset + u32(ch[r]) * u.D;
  let gv = ${ldv(`g[${off('gOffset')} + r * u.PV + p]`)};
  var o = r * u.D * u.PV + p;
  for (var d = 0u; d < u.D; d++) {
    dx[o] = gv * ${ldw('w[wrow + d]')};
    o += u.PV;
  }
}
`,
    };
  }
  const dot = vec === 4 ? 'dot(acc, vec4<f32>(1.0))' : 'acc';
  return {
    entry,
    wgsl: `${head([`read> g: array<${T}>`, `read> x: array<${T}>`, 'read_write> s: array<f32>'])}
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${SELECT_WG}u + lid;
  let D1 = u.D + 1u;
  if (i >= u.R * D1) { return; }
  let r = i / D1;
  let d = i % D1;
  let gb = ${off('gOffset')} + r * u.PV;
  var acc = ${T}(0.0);
  if (d == u.D) {
    for (var p = 0u; p < u.PV; p++) { acc += g[gb + p]; }
  } else {
    let xb = ${off('xOffset')} + (r * u.D + d) * u.PV;
    for (var p = 0u; p < u.PV; p++) { acc = fma(${ldv('g[gb + p]')}, ${ldv('x[xb + p]')}, acc); }
  }
  s[i] = ${dot};
}
`,
  };
}

/** float64 reference of the forward: x [R, D, P], w [C, D], b [C] or null -> [R, P] (x and w already rounded for roundF16). */
export function conv1x1SelectReference(x: RefTensor, w: RefTensor, b: RefTensor | null, ch: ArrayLike<number>): RefTensor {
  const [R, D, P] = x.shape as [number, number, number];
  const out = new Float64Array(R * P);
  for (let r = 0; r < R; r++) {
    const c = ch[r]!;
    for (let p = 0; p < P; p++) {
      let acc = b ? b.data[c]! : 0;
      for (let d = 0; d < D; d++) acc += w.data[c * D + d]! * x.data[(r * D + d) * P + p]!;
      out[r * P + p] = acc;
    }
  }
  return { shape: [R, P], data: out };
}

/** float64 reference of the backward for the output gradient g [R, P]: dx [R, D, P], dw [C, D], db [C]. */
export function conv1x1SelectBackwardReference(x: RefTensor, w: RefTensor, ch: ArrayLike<number>, g: RefTensor): { dx: RefTensor; dw: RefTensor; db: RefTensor } {
  const [R, D, P] = x.shape as [number, number, number];
  const C = w.shape[0]!;
  const dx = new Float64Array(R * D * P), dw = new Float64Array(C * D), db = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    const c = ch[r]!;
    for (let p = 0; p < P; p++) {
      const gv = g.data[r * P + p]!;
      db[c] += gv;
      for (let d = 0; d < D; d++) {
        dx[(r * D + d) * P + p] = gv * w.data[c * D + d]!;
        dw[c * D + d] += gv * x.data[(r * D + d) * P + p]!;
      }
    }
  }
  return { dx: { shape: [R, D, P], data: dx }, dw: { shape: [C, D], data: dw }, db: { shape: [C], data: db } };
}
