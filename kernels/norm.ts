// Normalisation kernels (batch norm, frozen batch norm, group norm) and their float64 references.
//
// Every input is viewed as dense [N, C, L] (L = product of the trailing dims). A "stat" is a set of
// elements sharing one mean/variance: batch norm has one per channel c, group norm one per (n, g).
// Element i sits at n = i / (C*L), c = (i / L) % C, and its stat is s = n * nStat + c / cPerStat
// (batch norm: nStat 0, cPerStat 1; group norm: nStat G, cPerStat C/G).
//
// Row reductions (one workgroup per row) compute the statistics and the backward sums. A row r
// covers the elements r*rowStride + o*outerStride + k for o < O, k < K: a channel is N strided
// chunks of L (O = N, K = L), a (n, group) is one contiguous chunk of (C/G)*L (O = 1).
// Elementwise kernels (one thread per element) apply the normalisation and the input gradient.
import { LINEAR_GROUP, WORKGROUP, isTreeWidth, type RefTensor } from './common.js';
import { uniformBlock } from './uniforms.js';

/**
 * The uniforms of every norm kernel (one layout for the family; a kernel reads the fields it needs).
 * n: rows (reductions) or elements (elementwise); invM: 1 / elements per stat; xOff ... s2Off: the
 * offsets of the inputs, in elements.
 */
export const NORM_UNIFORMS = uniformBlock('norm', {
  n: 'u32',
  O: 'u32',
  K: 'u32',
  rowStride: 'u32',
  outerStride: 'u32',
  L: 'u32',
  C: 'u32',
  nStat: 'u32',
  cPerStat: 'u32',
  eps: 'f32',
  invM: 'f32',
  xOff: 'u32',
  gOff: 'u32',
  meanOff: 'u32',
  rstdOff: 'u32',
  wOff: 'u32',
  bOff: 'u32',
  s1Off: 'u32',
  s2Off: 'u32',
  rOff: 'u32',
  yOff: 'u32',
});

/** r: a residual added before the ReLU; y: a ReLU's saved output, whose sign masks a gradient. */
export type NormInput = 'x' | 'g' | 'mean' | 'rstd' | 'w' | 'b' | 's1' | 's2' | 'r' | 'y';

/** Inputs with one value per element (the others have one per stat or channel). */
const PER_ELEMENT: ReadonlySet<NormInput> = new Set(['x', 'g', 'r', 'y']);

/**
 * Declarations; with `vec4`, the per-element inputs and out are arrays of vec4 (elementwise kernels'
 * vec4 form); with two outputs, out2 is declared as out is.
 */
function header(inputs: readonly NormInput[], vec4 = false, outVec4 = vec4, outputs = 1): string {
  const el = vec4 ? 'vec4<f32>' : 'f32';
  const decls = inputs.map((name, k) => `@group(0) @binding(${k + 1}) var<storage, read> in_${name}: array<${PER_ELEMENT.has(name) ? el : 'f32'}>;`);
  const outType = outVec4 ? 'vec4<f32>' : 'f32';
  return `${NORM_UNIFORMS.wgsl}
${decls.join('\n')}
@group(0) @binding(${inputs.length + 1}) var<storage, read_write> out: array<${outType}>;${
    outputs > 1 ? `\n@group(0) @binding(${inputs.length + 2}) var<storage, read_write> out2: array<${outType}>;` : ''
  }`;
}

const load = (name: NormInput, index: string): string => `in_${name}[u.${name}Off + ${index}]`;
/** A gradient's element, zeroed where the saved ReLU output is not positive when `mask` (relu_grad's rule). */
const gradLoad = (name: NormInput, index: string, mask: boolean): string =>
  mask ? `select(0.0, ${load(name, index)}, ${load('y', index)} > 0.0)` : load(name, index);

/**
 * The loads of an elementwise kernel's body. Scalar form: every input at its element / stat /
 * channel index. vec4 form (`v` is the vec4 index, offsets divide by 4): per-element inputs as one
 * vec4 (4 elements of one channel and stat, as L divides by 4), the others once per 4 elements.
 */
function elementLoads(vec4: boolean, vecIndex = 'i', index = 'i'): { at: (name: NormInput) => string; grad: (name: NormInput, mask: boolean) => string; zero: string } {
  if (!vec4) {
    return { at: (name) => load(name, PER_ELEMENT.has(name) ? index : name === 'w' || name === 'b' ? 'c' : 's'), grad: (name, mask) => gradLoad(name, index, mask), zero: '0.0' };
  }
  const at = (name: NormInput): string => (PER_ELEMENT.has(name) ? `in_${name}[u.${name}Off / 4u + ${vecIndex}]` : load(name, name === 'w' || name === 'b' ? 'c' : 's'));
  return { at, grad: (name, mask) => (mask ? `select(vec4<f32>(0.0), ${at(name)}, ${at('y')} > vec4<f32>(0.0))` : at(name)), zero: 'vec4<f32>(0.0)' };
}

// Channel and stat of dense element index `e` (a WGSL expression).
const decode = (e: string): string => `let c = (${e} / u.L) % u.C;
    let s = (${e} / (u.L * u.C)) * u.nStat + c / u.cPerStat;`;

/**
 * Row reduction kernels. 'sum': out[r] = the row's sum (a conv bias gradient: dy summed per
 * channel over images and pixels, in one pass). 'stats': out[r] = mean, out[R + r] = biased variance, out[2R + r] = rstd
 * (two passes: the mean, then the sum of squared deviations with the rounding correction of the
 * corrected two-pass algorithm). 'grad': out[r] = sum(g*w[c]), out[R + r] = sum(g*w[c]*xhat) with
 * xhat = (x - mean[s]) * rstd[s]; w is left out when `weight` is false, and with `mask` g is zero
 * where the saved output y of a fused ReLU is not positive. One workgroup of `wg` invocations (a
 * power of two) per row: the engine's reductionWorkgroup().
 */
export function normRowsKernel(mode: 'sum' | 'stats' | 'grad', weight: boolean, wg: number = WORKGROUP, mask = false, vec4 = false): { wgsl: string; entry: string; inputs: NormInput[] } {
  if (!isTreeWidth(wg)) throw new Error(`normRowsKernel: workgroup size ${wg} is not a power of two in [2, 256]`);
  const inputs: NormInput[] = mode !== 'grad' ? ['x'] : ['x', 'g', 'mean', 'rstd', ...(weight ? (['w'] as const) : []), ...(mask ? (['y'] as const) : [])];
  const entry = `norm_rows_${mode}${weight ? '_w' : ''}${mask ? '_mask' : ''}${vec4 ? '_v4' : ''}`;
  // The vec4 form (the caller checks that K, L, the strides and the per-element offsets divide by
  // 4): each lane takes 4 elements of one channel and stat at a time, a quarter of the lane loops of
  // the loads on lavapipe; its partial sums add in another order (within float32 rounding).
  const loop = (body: string): string => vec4
    ? `for (var j = lid; j < count / 4u; j += ${wg}u) {
    let o = (4u * j) / u.K;
    let e = row * u.rowStride + o * u.outerStride + (4u * j - o * u.K);
    ${body}
  }`
    : `for (var j = lid; j < count; j += ${wg}u) {
    let o = j / u.K;
    let e = row * u.rowStride + o * u.outerStride + (j - o * u.K);
    ${body}
  }`;
  const ld = elementLoads(vec4, 'e / 4u', 'e');
  // The sum of a loaded value's elements (itself in the scalar form).
  const hsum = (v: string): string => (vec4 ? `dot(${v}, vec4<f32>(1.0))` : v);
  const sq = (v: string): string => (vec4 ? `dot(${v}, ${v})` : `${v} * ${v}`);
  const sumBody = `var acc = 0.0;
  ${loop(`acc += ${hsum(ld.at('x'))};`)}
  let t = wg_sum(vec2<f32>(acc, 0.0), lid).x;
  if (lid == 0u) { out[row] = t; }`;
  const body =
    mode === 'sum'
      ? sumBody
      : mode === 'stats'
      ? `var acc = 0.0;
  ${loop(`acc += ${hsum(ld.at('x'))};`)}
  let m0 = wg_sum(vec2<f32>(acc, 0.0), lid).x / f32(count);
  var d = vec2<f32>(0.0, 0.0);
  ${loop(`let t = ${ld.at('x')} - m0; d += vec2<f32>(${hsum('t')}, ${sq('t')});`)}
  let t = wg_sum(d, lid);
  let v = max((t.y - t.x * t.x / f32(count)) / f32(count), 0.0);
  if (lid == 0u) {
    let R = u.n;
    out[row] = m0 + t.x / f32(count);
    out[R + row] = v;
    out[2u * R + row] = inverseSqrt(v + u.eps);
  }`
      : `var acc = vec2<f32>(0.0, 0.0);
  ${loop(`${decode('e')}
    let gw = ${ld.grad('g', mask)}${weight ? ` * ${ld.at('w')}` : ''};
    let xhat = (${ld.at('x')} - ${ld.at('mean')}) * ${ld.at('rstd')};
    acc += vec2<f32>(${hsum('gw')}, ${vec4 ? 'dot(gw, xhat)' : 'gw * xhat'});`)}
  let t = wg_sum(acc, lid);
  if (lid == 0u) {
    out[row] = t.x;
    out[u.n + row] = t.y;
  }`;
  const wgsl = `${header(inputs, vec4, false)}
var<workgroup> red: array<vec2<f32>, ${wg}>;
fn wg_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var k = ${wg / 2}u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  let r = red[0];
  // Everyone has read red[0] before a second reduction overwrites it.
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${wg})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_GROUP};
  if (row >= u.n) { return; }
  let count = u.O * u.K;
  ${body}
}
`;
  return { wgsl, entry, inputs };
}

export interface ApplySpec {
  mean: boolean;
  rstd: boolean;
  weight: boolean;
  bias: boolean;
  /** The epilogue: + r[i] (a residual), then max(., 0). */
  residual?: boolean;
  relu?: boolean;
  /** x is a gradient, zeroed where the saved ReLU output y is not positive (a fused ReLU's backward). */
  mask?: boolean;
  /** Also writes the masked x itself to a second output, out2 (a conv epilogue's backward needs both
   * the gradient before the scale, for its residual, and after it, for the convolution). */
  maskedOut?: boolean;
}

/**
 * y = relu(((x - mean[s]) * rstd[s]) * w[c] + b[c] + r[i]), each factor and the ReLU present or not.
 * Frozen batch norm is x * scale[c] + shift[c] (weight and bias only), with a block's residual add
 * and ReLU fused in; eval batch norm's input gradient is g*rstd*w, with `mask` the gradient through
 * a fused ReLU as well.
 */
export function normApplyKernel(spec: ApplySpec, vec4 = false): { wgsl: string; entry: string; inputs: NormInput[]; outputs: number } {
  const inputs: NormInput[] = ['x'];
  const ld = elementLoads(vec4);
  let expr = spec.maskedOut ? 'xm' : ld.grad('x', !!spec.mask);
  const terms: [boolean, NormInput, (e: string) => string][] = [
    [spec.mean, 'mean', (e) => `(${e} - ${ld.at('mean')})`],
    [spec.rstd, 'rstd', (e) => `${e} * ${ld.at('rstd')}`],
    [spec.weight, 'w', (e) => `${e} * ${ld.at('w')}`],
    [spec.bias, 'b', (e) => `${e} + ${ld.at('b')}`],
    [!!spec.residual, 'r', (e) => `${e} + ${ld.at('r')}`],
  ];
  for (const [on, name, wrap] of terms) {
    if (!on) continue;
    inputs.push(name);
    expr = wrap(expr);
  }
  if (spec.mask) inputs.push('y');
  if (spec.relu) expr = `max(${expr}, ${ld.zero})`;
  const parts = ['mean', 'rstd', 'weight', 'bias', 'residual', 'relu', 'mask', 'maskedOut'].filter((k) => spec[k as keyof ApplySpec]);
  const entry = `norm_apply_${parts.join('_') || 'copy'}${vec4 ? '_v4' : ''}`;
  const outputs = spec.maskedOut ? 2 : 1;
  const body = spec.maskedOut ? `let xm = ${ld.grad('x', !!spec.mask)};\n  out[i] = ${expr};\n  out2[i] = xm;` : `out[i] = ${expr};`;
  return { wgsl: elementwiseShell(inputs, entry, body, vec4, outputs), entry, inputs, outputs };
}

/**
 * Input gradient of a normalisation through its batch statistics:
 *   gx = rstd[s] * (g*wIn - (s1[s] + xhat * s2[s]) * invM) * wOut
 * where s1 = sum(g*wIn) and s2 = sum(g*wIn*xhat) over the stat. Batch norm applies its weight
 * outside (it is constant over a channel, and its sums double as the weight/bias gradients);
 * group norm inside (the weight varies over a group). With `mask`, g is zero where the saved
 * output y of a fused ReLU is not positive.
 */
export function normGradInputKernel(weight: 'inner' | 'outer' | 'none', mask = false, vec4 = false): { wgsl: string; entry: string; inputs: NormInput[] } {
  const inputs: NormInput[] = ['x', 'g', 'mean', 'rstd', 's1', 's2', ...(weight !== 'none' ? (['w'] as const) : []), ...(mask ? (['y'] as const) : [])];
  const entry = `norm_grad_input_${weight}${mask ? '_mask' : ''}${vec4 ? '_v4' : ''}`;
  const ld = elementLoads(vec4);
  const body = `let r = ${ld.at('rstd')};
  let xhat = (${ld.at('x')} - ${ld.at('mean')}) * r;
  let gw = ${ld.grad('g', mask)}${weight === 'inner' ? ` * ${ld.at('w')}` : ''};
  out[i] = r * (gw - (${ld.at('s1')} + xhat * ${ld.at('s2')}) * u.invM)${weight === 'outer' ? ` * ${ld.at('w')}` : ''};`;
  return { wgsl: elementwiseShell(inputs, entry, body, vec4), entry, inputs };
}

/**
 * One invocation per element, or with `vec4` per 4 elements (u.n then counts vec4s; the caller
 * checks that L and every per-element offset divide by 4). On lavapipe each load from a lane-varying
 * address is a loop over the SIMD lanes: the vec4 form takes a quarter of them for the per-element
 * inputs and loads each stat/channel value once per 4 elements.
 */
function elementwiseShell(inputs: NormInput[], entry: string, body: string, vec4 = false, outputs = 1): string {
  return `${header(inputs, vec4, vec4, outputs)}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  ${decode(vec4 ? '4u * i' : 'i')}
  ${body}
}
`;
}

// ---------------------------------------------------------------------------------------------
// float64 references, written from the PyTorch / torchvision definitions.

function ncl(shape: readonly number[]): { N: number; C: number; L: number } {
  const L = shape.slice(2).reduce((a, b) => a * b, 1);
  return { N: shape[0]!, C: shape[1]!, L };
}

/**
 * torch.nn.functional.batch_norm. Training: normalise with the batch mean and biased variance per
 * channel, and return running stats updated as (1 - momentum) * running + momentum * batch_stat with
 * the UNBIASED batch variance. Eval: normalise with the running stats.
 */
export function batchNormReference(
  x: RefTensor,
  runningMean: RefTensor | null,
  runningVar: RefTensor | null,
  weight: RefTensor | null,
  bias: RefTensor | null,
  training: boolean,
  momentum = 0.1,
  eps = 1e-5,
): { y: RefTensor; runningMean: RefTensor | null; runningVar: RefTensor | null } {
  const { N, C, L } = ncl(x.shape);
  const M = N * L;
  const y = new Float64Array(x.data.length);
  const rm = runningMean ? Float64Array.from(runningMean.data) : null;
  const rv = runningVar ? Float64Array.from(runningVar.data) : null;
  for (let c = 0; c < C; c++) {
    const at = (n: number, l: number): number => (n * C + c) * L + l;
    let mean: number, variance: number;
    if (training) {
      let s = 0;
      for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) s += x.data[at(n, l)]!;
      mean = s / M;
      let q = 0;
      for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) q += (x.data[at(n, l)]! - mean) ** 2;
      variance = q / M;
      if (rm) rm[c] = (1 - momentum) * rm[c]! + momentum * mean;
      if (rv) rv[c] = (1 - momentum) * rv[c]! + momentum * (q / (M - 1));
    } else {
      mean = runningMean!.data[c]!;
      variance = runningVar!.data[c]!;
    }
    const rstd = 1 / Math.sqrt(variance + eps);
    const w = weight ? weight.data[c]! : 1;
    const b = bias ? bias.data[c]! : 0;
    for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) y[at(n, l)] = (x.data[at(n, l)]! - mean) * rstd * w + b;
  }
  return {
    y: { shape: [...x.shape], data: y },
    runningMean: rm && { shape: [C], data: rm },
    runningVar: rv && { shape: [C], data: rv },
  };
}

/** torchvision.ops.FrozenBatchNorm2d: scale = w * rsqrt(rv + eps), shift = b - rm * scale, y = x * scale + shift. */
export function frozenBatchNormReference(x: RefTensor, weight: RefTensor, bias: RefTensor, runningMean: RefTensor, runningVar: RefTensor, eps = 1e-5): RefTensor {
  const { N, C, L } = ncl(x.shape);
  const y = new Float64Array(x.data.length);
  for (let c = 0; c < C; c++) {
    const scale = weight.data[c]! / Math.sqrt(runningVar.data[c]! + eps);
    const shift = bias.data[c]! - runningMean.data[c]! * scale;
    for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) {
      const i = (n * C + c) * L + l;
      y[i] = x.data[i]! * scale + shift;
    }
  }
  return { shape: [...x.shape], data: y };
}

/** The fused epilogue of a normalisation's output y: relu(y + residual), each part optional (PyTorch's separate add and relu). */
export function normEpilogueReference(y: RefTensor, residual: RefTensor | null, relu: boolean): RefTensor {
  const data = y.data.map((v, i) => {
    const z = v + (residual ? residual.data[i]! : 0);
    return relu ? Math.max(z, 0) : z;
  });
  return { shape: [...y.shape], data };
}

/**
 * torch.nn.functional.group_norm: per sample, the C channels are split into G groups of C/G
 * consecutive channels; each group is normalised by its own mean and biased variance, then the
 * per-channel affine (weight, bias) applies.
 */
export function groupNormReference(x: RefTensor, numGroups: number, weight: RefTensor | null, bias: RefTensor | null, eps = 1e-5): RefTensor {
  const { N, C, L } = ncl(x.shape);
  const per = (C / numGroups) * L;
  const y = new Float64Array(x.data.length);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < numGroups; g++) {
      const start = (n * numGroups + g) * per;
      let s = 0;
      for (let k = 0; k < per; k++) s += x.data[start + k]!;
      const mean = s / per;
      let q = 0;
      for (let k = 0; k < per; k++) q += (x.data[start + k]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(q / per + eps);
      for (let k = 0; k < per; k++) {
        const i = start + k;
        const c = Math.floor(i / L) % C;
        y[i] = (x.data[i]! - mean) * rstd * (weight ? weight.data[c]! : 1) + (bias ? bias.data[c]! : 0);
      }
    }
  }
  return { shape: [...x.shape], data: y };
}
