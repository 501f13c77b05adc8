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
  /**
   * Skipped on the device when a flag is set (torch's fused optimizers' found_inf): one more
   * binding after the tensors' (a GradScaler's state), read at element skipAt; nonzero bits skip
   * the whole update, parameters and momentum buffers untouched.
   */
  skip?: boolean;
}

/**
 * The uniforms of an SGD kernel over `k` tensors: shared keep = 1 - dampening, lr, momentum and
 * weight decay, and skipAt (the skip variant's flag element); per tensor j its size n{j}, offsets
 * (in elements) p{j}, g{j}, b{j} (0 without momentum) and first{j} = 1 when its momentum buffer is
 * initialised from d.
 */
export const sgdUniforms = blockVariants((k: number) => {
  const spec: Record<string, 'u32' | 'f32'> = { lr: 'f32', momentum: 'f32', keep: 'f32', weightDecay: 'f32', skipAt: 'u32' };
  for (let j = 0; j < k; j++) Object.assign(spec, { [`n${j}`]: 'u32', [`p${j}`]: 'u32', [`g${j}`]: 'u32', [`b${j}`]: 'u32', [`first${j}`]: 'u32' });
  return uniformBlock(`sgd${k}`, spec);
});

/** Consecutive elements each invocation updates (dispatch ceil(max n / (WORKGROUP * SGD_PER_THREAD)) x k). */
export const SGD_PER_THREAD = 4;

/** Storage buffers one tensor binds: parameter, gradient, and the momentum buffer with momentum (the skip variant binds one more per dispatch). */
export const sgdBuffersPerTensor = (v: SgdVariant): number => (v.momentum ? 3 : 2);

/**
 * One dispatch updates `k` tensors (torch's foreach SGD): workgroup z = j updates tensor j.
 * Bindings per tensor j, from 1 + j * sgdBuffersPerTensor: param (read_write), grad (read),
 * momentum buffer (read_write, momentum only); then, skip variant only, the flag (read).
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
  if (v.skip) decls.push(`@group(0) @binding(${1 + k * per}) var<storage, read> skipFlag: array<f32>;`);
  const entry = `sgd${v.momentum ? '_momentum' : ''}${v.nesterov ? '_nesterov' : ''}${v.weightDecay ? '_wd' : ''}${v.maximize ? '_max' : ''}${v.skip ? '_skip' : ''}${k > 1 ? `_x${k}` : ''}`;
  const cases = Array.from({ length: k }, (_, j) => update(j));
  const wgsl = `${sgdUniforms(k).wgsl}
${decls.join('\n')}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i0 = (${LINEAR_GROUP} * ${WORKGROUP}u + lid) * ${SGD_PER_THREAD}u;${v.skip ? `
  if (bitcast<u32>(skipFlag[u.skipAt]) != 0u) { return; }` : ''}
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
 * The device state of a GradScaler (engine/optim/grad-scaler.ts): one f32 buffer of SCALER_STATE
 * values. FOUND is 1 when this step's unscaled gradients held inf / NaN (0 otherwise); SCALE the loss
 * scale; TRACKER the clean steps since the scale last changed (torch's _growth_tracker; f32 holds
 * integers exactly up to 2^24). FOUND and SCALE are adjacent so one view reads both back.
 */
export const SCALER_FOUND = 0, SCALER_SCALE = 1, SCALER_TRACKER = 2, SCALER_STATE = 3;

/** WGSL: whether an f32 is inf or NaN (exponent bits all ones; WGSL has no isinf / isnan, and may assume them absent). */
const NON_FINITE_WGSL = 'fn nonFinite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u; }';

/**
 * GradScaler's unscale over up to k tensors per dispatch (torch's
 * _amp_foreach_non_finite_check_and_unscale_): tensor j (workgroup z = j) is multiplied in place by
 * 1 / state[SCALE] (exact for the power-of-two scales the default factors keep; WGSL's division
 * is within 2.5 ulp otherwise), and state[FOUND] = 1 when any unscaled value is inf or NaN (several
 * invocations may store the same 1; nothing else writes it). A tensor with check{j} = 1 is only
 * checked, not scaled or written (the training step's loss values). Per tensor: its size n{j} and
 * offset o{j} in elements. Bindings: 1 = state (read_write), 2 + j = tensor j (read_write).
 */
export const unscaleUniforms = blockVariants((k: number) => {
  const spec: Record<string, 'u32'> = {};
  for (let j = 0; j < k; j++) Object.assign(spec, { [`n${j}`]: 'u32', [`o${j}`]: 'u32', [`check${j}`]: 'u32' });
  return uniformBlock(`unscale${k}`, spec);
});

export function unscaleKernel(k = 1): { wgsl: string; entry: string } {
  if (!Number.isInteger(k) || k < 1) throw new Error(`unscaleKernel: ${k} tensors per dispatch`);
  const entry = `unscale${k > 1 ? `_x${k}` : ''}`;
  const cases = Array.from({ length: k }, (_, j) => `case ${j}u: {
      for (var i = i0; i < min(i0 + ${SGD_PER_THREAD}u, u.n${j}); i++) {
        let raw = g${j}[u.o${j} + i];
        if (u.check${j} != 0u) { bad = bad || nonFinite(raw); continue; }
        let v = raw * inv;
        g${j}[u.o${j} + i] = v;
        bad = bad || nonFinite(v);
      }
    }`);
  const decls = Array.from({ length: k }, (_, j) => `@group(0) @binding(${2 + j}) var<storage, read_write> g${j}: array<f32>;`);
  const wgsl = `${unscaleUniforms(k).wgsl}
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
${decls.join('\n')}
${NON_FINITE_WGSL}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i0 = (${LINEAR_GROUP} * ${WORKGROUP}u + lid) * ${SGD_PER_THREAD}u;
  let inv = 1.0 / state[${SCALER_SCALE}];
  var bad = false;
  switch wid.z {
    ${cases.join('\n    ')}
    default: {}
  }
  if (bad) { state[${SCALER_FOUND}] = 1.0; }
}
`;
  return { wgsl, entry };
}

/**
 * GradScaler's update on the device (torch's _amp_update_scale_), one invocation. setScale = 0:
 * found: scale *= backoff and the tracker restarts; else the tracker counts the clean step and on
 * reaching interval the scale grows by growth (only if that is finite, as torch) and the tracker
 * restarts. setScale = 1: scale = newScale, the tracker untouched (torch's update(new_scale)). Then
 * found is cleared for the next step. Binding 1 = state.
 */
export const SCALER_UPDATE_UNIFORMS = uniformBlock('scalerUpdate', { growth: 'f32', backoff: 'f32', interval: 'f32', setScale: 'u32', newScale: 'f32' });

export function scalerUpdateKernel(): { wgsl: string; entry: string } {
  const wgsl = `${SCALER_UPDATE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
${NON_FINITE_WGSL}
@compute @workgroup_size(1)
fn scaler_update() {
  let scale = state[${SCALER_SCALE}];
  if (u.setScale != 0u) {
    state[${SCALER_SCALE}] = u.newScale;
  } else if (bitcast<u32>(state[${SCALER_FOUND}]) != 0u) {
    state[${SCALER_SCALE}] = scale * u.backoff;
    state[${SCALER_TRACKER}] = 0.0;
  } else {
    let t = state[${SCALER_TRACKER}] + 1.0;
    if (t >= u.interval) {
      let grown = scale * u.growth;
      if (!nonFinite(grown)) { state[${SCALER_SCALE}] = grown; }
      state[${SCALER_TRACKER}] = 0.0;
    } else {
      state[${SCALER_TRACKER}] = t;
    }
  }
  state[${SCALER_FOUND}] = 0.0;
}
`;
  return { wgsl, entry: 'scaler_update' };
}

/**
 * Reference of update (f32 arithmetic as the kernel): the next [scale, tracker] from this step's
 * flag. setScale: the new scale, tracker unchanged.
 */
export function scalerUpdateReference(scale: number, tracker: number, found: boolean, o: { growth: number; backoff: number; interval: number; newScale?: number }): { scale: number; tracker: number } {
  if (o.newScale !== undefined) return { scale: Math.fround(o.newScale), tracker };
  if (found) return { scale: Math.fround(scale * Math.fround(o.backoff)), tracker: 0 };
  if (tracker + 1 < o.interval) return { scale, tracker: tracker + 1 };
  const grown = Math.fround(scale * Math.fround(o.growth));
  return { scale: Number.isFinite(grown) ? grown : scale, tracker: 0 };
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
