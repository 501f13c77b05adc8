// Optimizer update kernels: one fused kernel that reads the gradients of up to k parameter tensors
// and updates them (and their momentum buffers) in place, plus the float64 reference of the same
// rule. The rule is torch.optim.SGD's (_single_tensor_sgd in torch/optim/sgd.py):
//   d = grad (negated when maximize);  d += weightDecay * p
//   momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d
//             d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
import { LINEAR_GROUP, WORKGROUP } from './common.js';
import { blockVariants, uniformBlock } from './uniforms.js';

/** Compile-time variant of the SGD kernel (each flag removes work rather than multiplying by 0). */
export interface SgdVariant {
  momentum: boolean;
  nesterov: boolean;
  weightDecay: boolean;
  maximize: boolean;
}

/**
 * The uniforms of an SGD kernel over `k` tensors: shared keep = 1 - dampening, lr, momentum and
 * weight decay; per tensor j its size n{j}, offsets (in elements) p{j}, g{j}, b{j} (0 without
 * momentum) and first{j} = 1 when its momentum buffer is initialised from d.
 */
export const sgdUniforms = blockVariants((k: number) => {
  const spec: Record<string, 'u32' | 'f32'> = { lr: 'f32', momentum: 'f32', keep: 'f32', weightDecay: 'f32' };
  for (let j = 0; j < k; j++) Object.assign(spec, { [`n${j}`]: 'u32', [`p${j}`]: 'u32', [`g${j}`]: 'u32', [`b${j}`]: 'u32', [`first${j}`]: 'u32' });
  return uniformBlock(`sgd${k}`, spec);
});

/** Consecutive elements each invocation updates (dispatch ceil(max n / (WORKGROUP * SGD_PER_THREAD)) x k). */
export const SGD_PER_THREAD = 4;

/** Storage buffers one tensor binds: parameter, gradient, and the momentum buffer with momentum. */
export const sgdBuffersPerTensor = (v: SgdVariant): number => (v.momentum ? 3 : 2);

/**
 * One dispatch updates `k` tensors (torch's foreach SGD): workgroup z = j updates tensor j.
 * Bindings per tensor j, from 1 + j * sgdBuffersPerTensor: param (read_write), grad (read),
 * momentum buffer (read_write, momentum only).
 */
export function sgdKernel(v: SgdVariant, k = 1): { wgsl: string; entry: string } {
  if (v.nesterov && !v.momentum) throw new Error('sgdKernel: nesterov needs momentum');
  if (!Number.isInteger(k) || k < 1) throw new Error(`sgdKernel: ${k} tensors per dispatch`);
  const per = sgdBuffersPerTensor(v);
  const update = (j: number): string => {
    const body: string[] = [`var d = ${v.maximize ? '-' : ''}g${j}[u.g${j} + i];`, `let pi = u.p${j} + i;`];
    if (v.weightDecay) body.push(`d = d + u.weightDecay * p${j}[pi];`);
    if (v.momentum) {
      body.push(
        `let bi = u.b${j} + i;`,
        // The first step copies d into the buffer (torch clones the gradient), so no garbage is read.
        `var b = d;`,
        `if (u.first${j} == 0u) { b = buf${j}[bi] * u.momentum + u.keep * d; }`,
        `buf${j}[bi] = b;`,
        v.nesterov ? `d = d + u.momentum * b;` : `d = b;`,
      );
    }
    body.push(`p${j}[pi] = p${j}[pi] - u.lr * d;`);
    return `case ${j}u: {
      for (var i = i0; i < min(i0 + ${SGD_PER_THREAD}u, u.n${j}); i++) {
        ${body.join('\n        ')}
      }
    }`;
  };
  const decls: string[] = [];
  for (let j = 0; j < k; j++) {
    const at = 1 + j * per;
    decls.push(`@group(0) @binding(${at}) var<storage, read_write> p${j}: array<f32>;`, `@group(0) @binding(${at + 1}) var<storage, read> g${j}: array<f32>;`);
    if (v.momentum) decls.push(`@group(0) @binding(${at + 2}) var<storage, read_write> buf${j}: array<f32>;`);
  }
  const entry = `sgd${v.momentum ? '_momentum' : ''}${v.nesterov ? '_nesterov' : ''}${v.weightDecay ? '_wd' : ''}${v.maximize ? '_max' : ''}${k > 1 ? `_x${k}` : ''}`;
  const cases = Array.from({ length: k }, (_, j) => update(j));
  const wgsl = `${sgdUniforms(k).wgsl}
${decls.join('\n')}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i0 = (${LINEAR_GROUP} * ${WORKGROUP}u + lid) * ${SGD_PER_THREAD}u;
  switch wid.z {
    ${cases.join('\n    ')}
    default: {}
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
