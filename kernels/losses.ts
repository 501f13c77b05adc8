// Loss kernels: the elementwise losses (binary_cross_entropy_with_logits, smooth_l1, l1) as one
// generator over a table of (loss, d/dinput, d/dtarget) expressions, cross_entropy as a row kernel
// (stable logsumexp per row, ignore_index) with its elementwise backward. Each has a float64
// reference. Formulas follow PyTorch:
//   bce:       max(x,0) - x*y + log1p(exp(-|x|)),   d/dx = sigmoid(x) - y,   d/dy = -x
//   smooth_l1: |z| < beta ? 0.5 z^2 / beta : |z| - beta/2 (z = x - y),  d/dx = |z| < beta ? z/beta : sign(z)
//   l1:        |z|,  d/dx = sign(z)  (smooth_l1 with beta = 0 is l1, as in torch)
import { F32_BITS, LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock } from './uniforms.js';

export type PointLoss = 'bce' | 'smooth_l1' | 'l1';

interface PointLossDef {
  /** WGSL over x, y, beta. */
  loss: string;
  dx: string;
  dy: string;
  ref: (x: number, y: number, beta: number) => number;
  refDx: (x: number, y: number, beta: number) => number;
}

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

export const POINT_LOSSES: Record<PointLoss, PointLossDef> = {
  bce: {
    loss: 'max(x, 0.0) - x * y + log1p_exp_neg(abs(x))',
    dx: 'sigmoid_t(x) - y',
    dy: '-x',
    ref: (x, y) => Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x))),
    refDx: (x, y) => sigmoid(x) - y,
  },
  smooth_l1: {
    loss: 'select(abs(x - y) - 0.5 * beta, 0.5 * (x - y) * (x - y) / beta, abs(x - y) < beta)',
    dx: 'select(sign(x - y), (x - y) / beta, abs(x - y) < beta)',
    dy: '-(select(sign(x - y), (x - y) / beta, abs(x - y) < beta))',
    ref: (x, y, beta) => {
      const z = Math.abs(x - y);
      return z < beta ? (0.5 * z * z) / beta : z - 0.5 * beta;
    },
    refDx: (x, y, beta) => (Math.abs(x - y) < beta ? (x - y) / beta : Math.sign(x - y)),
  },
  l1: {
    loss: 'abs(x - y)',
    dx: 'sign(x - y)',
    dy: '-sign(x - y)',
    ref: (x, y) => Math.abs(x - y),
    refDx: (x, y) => Math.sign(x - y),
  },
};

const HELPERS = `${F32_BITS}
fn sigmoid_t(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
// log1p(exp(-a)) for a >= 0 without losing exp(-a) when it is below float32 epsilon
// (log(u) * e / (u - 1) corrects the rounding of u = 1 + e).
fn log1p_exp_neg(a: f32) -> f32 {
  let e = exp(-a);
  let u = 1.0 + e;
  if (u == 1.0) { return e; }
  return log(u) * e / (u - 1.0);
}`;

/** sOffset: the gradient scale's offset (0 in the forward). */
export const POINT_LOSS_UNIFORMS = uniformBlock('point_loss', { n: 'u32', xOffset: 'u32', yOffset: 'u32', sOffset: 'u32', beta: 'f32' });

/**
 * 'loss': out[i] = loss(x, y). 'dx' / 'dy': out[i] = d loss / d(x|y) * scale, where scale is
 * s[soff] (perElement false: a reduced loss's gradient, already divided by N for mean) or s[soff + i].
 */
export function pointLossKernel(kind: PointLoss, mode: 'loss' | 'dx' | 'dy', perElement: boolean): { wgsl: string; entry: string } {
  const def = POINT_LOSSES[kind];
  const entry = `${kind}_${mode}`;
  const grad = mode !== 'loss';
  return {
    entry,
    wgsl: `${POINT_LOSS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> ys: array<f32>;
${grad ? '@group(0) @binding(3) var<storage, read> s: array<f32>;' : ''}
@group(0) @binding(${grad ? 4 : 3}) var<storage, read_write> out: array<f32>;
${HELPERS}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let x = xs[u.xOffset + i];
  let y = ys[u.yOffset + i];
  let beta = u.beta;
  ${grad ? `out[i] = (${mode === 'dx' ? def.dx : def.dy}) * s[u.sOffset${perElement ? ' + i' : ''}];` : `out[i] = ${def.loss};`}
}
`,
  };
}

export const CROSS_ENTROPY_UNIFORMS = uniformBlock('cross_entropy', { N: 'u32', C: 'u32', xOffset: 'u32', ignoreIndex: 'i32', tOffset: 'u32' });
/** count = N*C; perRow: 1 when the scale is per row (reduction none). */
export const CROSS_ENTROPY_GRAD_UNIFORMS = uniformBlock('cross_entropy_grad', {
  count: 'u32',
  C: 'u32',
  xOffset: 'u32',
  ignoreIndex: 'i32',
  sOffset: 'u32',
  perRow: 'u32',
  tOffset: 'u32',
});

/**
 * Cross entropy forward, one thread per row of logits [N, C]: out[r] = lse - x[t] (0 when t is the
 * ignore index, NaN for a target outside [0, C)), out[N + r] = lse, out[2N + r] = 1 if counted.
 */
export function crossEntropyKernel(): { wgsl: string; entry: string } {
  const entry = 'cross_entropy';
  return {
    entry,
    wgsl: `${CROSS_ENTROPY_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${F32_BITS}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  let N = u.N;
  if (r >= N) { return; }
  let C = u.C;
  let base = u.xOffset + r * C;
  var m = f32_bits(0xff800000u);
  for (var c = 0u; c < C; c++) { m = max(m, x[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < C; c++) { s += exp(x[base + c] - m); }
  let lse = m + log(s);
  let t = tgt[u.tOffset + r];
  let ignore = u.ignoreIndex;
  var loss = 0.0;
  var counted = 0.0;
  if (t != ignore) {
    counted = 1.0;
    if (t < 0 || u32(t) >= C) { loss = f32_bits(0x7fc00000u); } else { loss = lse - x[base + u32(t)]; }
  }
  out[r] = loss;
  out[N + r] = lse;
  out[2u * N + r] = counted;
}
`,
  };
}

/**
 * Cross entropy backward: gx[r, c] = (exp(x - lse[r]) - [c == t]) * scale (0 for ignored rows), with
 * scale = s[soff] (mean/sum: already divided by the count) or s[soff + r] (reduction none).
 */
export function crossEntropyGradKernel(): { wgsl: string; entry: string } {
  const entry = 'cross_entropy_grad';
  return {
    entry,
    wgsl: `${CROSS_ENTROPY_GRAD_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<i32>;
@group(0) @binding(3) var<storage, read> fwd: array<f32>;
@group(0) @binding(4) var<storage, read> s: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.count) { return; }
  let C = u.C;
  let r = i / C;
  let c = i % C;
  let N = u.count / C;
  let t = tgt[u.tOffset + r];
  if (t == u.ignoreIndex) { gx[i] = 0.0; return; }
  let p = exp(x[u.xOffset + i] - fwd[N + r]);
  let scale = s[u.sOffset + select(0u, r, u.perRow != 0u)];
  gx[i] = (p - select(0.0, 1.0, i32(c) == t)) * scale;
}
`,
  };
}

// ---------------------------------------------------------------- float64 references

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(values: number[], reduction: Reduction, count = values.length): number[] {
  if (reduction === 'none') return values;
  const s = values.reduce((a, b) => a + b, 0);
  return [reduction === 'sum' ? s : s / count];
}

export function pointLossReference(kind: PointLoss, x: ArrayLike<number>, y: ArrayLike<number>, reduction: Reduction, beta = 1): number[] {
  const def = POINT_LOSSES[kind === 'smooth_l1' && beta === 0 ? 'l1' : kind];
  return reduce(Array.from(x, (v, i) => def.ref(v, y[i]!, beta)), reduction);
}

/** float64 cross entropy over logits [N, C] (ignored rows contribute 0 and are not counted). */
export function crossEntropyReference(x: ArrayLike<number>, target: ArrayLike<number>, N: number, C: number, reduction: Reduction, ignoreIndex = -100): number[] {
  const rows: number[] = [];
  let count = 0;
  for (let r = 0; r < N; r++) {
    const t = target[r]!;
    if (t === ignoreIndex) {
      rows.push(0);
      continue;
    }
    count++;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[r * C + c]! - m);
    rows.push(m + Math.log(s) - x[r * C + t]!);
  }
  return reduce(rows, reduction, count);
}
