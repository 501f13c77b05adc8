// Optimizer update kernels: one fused kernel per parameter tensor that reads the gradient and
// updates the parameter (and its momentum buffer) in place, plus the float64 reference of the same
// rule. The rule is torch.optim.SGD's (_single_tensor_sgd in torch/optim/sgd.py):
//   d = grad (negated when maximize);  d += weightDecay * p
//   momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d
//             d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
import { LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock } from './uniforms.js';

/** Compile-time variant of the SGD kernel (each flag removes work rather than multiplying by 0). */
export interface SgdVariant {
  momentum: boolean;
  nesterov: boolean;
  weightDecay: boolean;
  maximize: boolean;
}

/**
 * keep = 1 - dampening; first = 1 when the momentum buffer is initialised from d. Offsets in
 * elements (bufOffset 0 without momentum).
 */
export const SGD_UNIFORMS = uniformBlock('sgd', {
  n: 'u32',
  pOffset: 'u32',
  gOffset: 'u32',
  bufOffset: 'u32',
  lr: 'f32',
  momentum: 'f32',
  keep: 'f32',
  weightDecay: 'f32',
  first: 'u32',
});

/** Consecutive elements each invocation updates (dispatch ceil(n / (WORKGROUP * SGD_PER_THREAD))). */
export const SGD_PER_THREAD = 4;

/**
 * Bindings: 1 = param (read_write), 2 = grad (read), 3 = momentum buffer (read_write, momentum only).
 */
export function sgdKernel(v: SgdVariant): { wgsl: string; entry: string } {
  if (v.nesterov && !v.momentum) throw new Error('sgdKernel: nesterov needs momentum');
  const body: string[] = [`var d = ${v.maximize ? '-' : ''}g[u.gOffset + i];`, `let pi = u.pOffset + i;`];
  if (v.weightDecay) body.push(`d = d + u.weightDecay * p[pi];`);
  if (v.momentum) {
    body.push(
      `let bi = u.bufOffset + i;`,
      // The first step copies d into the buffer (torch clones the gradient), so no garbage is read.
      `var b = d;`,
      `if (u.first == 0u) { b = buf[bi] * u.momentum + u.keep * d; }`,
      `buf[bi] = b;`,
      v.nesterov ? `d = d + u.momentum * b;` : `d = b;`,
    );
  }
  body.push(`p[pi] = p[pi] - u.lr * d;`);
  const entry = `sgd${v.momentum ? '_momentum' : ''}${v.nesterov ? '_nesterov' : ''}${v.weightDecay ? '_wd' : ''}${v.maximize ? '_max' : ''}`;
  const wgsl = `${SGD_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
${v.momentum ? '@group(0) @binding(3) var<storage, read_write> buf: array<f32>;' : ''}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i0 = (${LINEAR_GROUP} * ${WORKGROUP}u + lid) * ${SGD_PER_THREAD}u;
  for (var i = i0; i < min(i0 + ${SGD_PER_THREAD}u, u.n); i++) {
    ${body.join('\n    ')}
  }
}
`;
  return { wgsl, entry };
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * float64 reference of one SGD step for one parameter. `buf` is the momentum buffer or null before
 * the first step; returns the new parameter and buffer (null when momentum is 0), inputs untouched.
 */
export function sgdReference(
  p: ArrayLike<number>,
  grad: ArrayLike<number>,
  buf: ArrayLike<number> | null,
  h: SgdHyper,
): { p: Float64Array; buf: Float64Array | null } {
  const n = p.length;
  const outP = new Float64Array(n);
  const outBuf = h.momentum !== 0 ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    let d = h.maximize ? -grad[i]! : grad[i]!;
    if (h.weightDecay !== 0) d += h.weightDecay * p[i]!;
    if (outBuf) {
      const b = buf ? h.momentum * buf[i]! + (1 - h.dampening) * d : d;
      outBuf[i] = b;
      d = h.nesterov ? d + h.momentum * b : b;
    }
    outP[i] = p[i]! - h.lr * d;
  }
  return { p: outP, buf: outBuf };
}

/**
 * GradScaler's unscale (torch's _amp_foreach_non_finite_check_and_unscale_): g *= invScale in place,
 * and found[0] = 1 when any unscaled value is inf or NaN (several invocations may store the same 1;
 * nothing else writes it). Bindings: 1 = grad (read_write), 2 = found (read_write, one f32).
 */
export const UNSCALE_UNIFORMS = uniformBlock('unscale', { n: 'u32', offset: 'u32', invScale: 'f32' });

export function unscaleKernel(): { wgsl: string; entry: string } {
  const wgsl = `${UNSCALE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> found: array<f32>;
@compute @workgroup_size(${WORKGROUP})
fn unscale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i0 = (${LINEAR_GROUP} * ${WORKGROUP}u + lid) * ${SGD_PER_THREAD}u;
  var bad = false;
  for (var i = i0; i < min(i0 + ${SGD_PER_THREAD}u, u.n); i++) {
    let v = g[u.offset + i] * u.invScale;
    g[u.offset + i] = v;
    // inf and NaN are the values whose exponent bits are all ones (WGSL has no isinf / isnan).
    bad = bad || (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
  }
  if (bad) { found[0] = 1.0; }
}
`;
  return { wgsl, entry: 'unscale' };
}

/**
 * Reference of unscale: the unscaled gradient and whether any value of it is non-finite. The
 * product is rounded to f32 (the kernel's type), so what overflows f32 is inf as in the kernel.
 */
export function unscaleReference(grad: ArrayLike<number>, invScale: number): { grad: Float64Array; foundInf: boolean } {
  const inv = Math.fround(invScale);
  const out = Float64Array.from(grad, (g) => Math.fround(g * inv));
  return { grad: out, foundInf: out.some((v) => !Number.isFinite(v)) };
}
