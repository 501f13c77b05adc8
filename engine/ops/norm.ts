// Normalisation ops: batch_norm (training with batch statistics and the running-stats update, and
// eval), torchvision's FrozenBatchNorm2d, and group_norm; forward and backward each a few dedicated
// kernels (kernels/norm.ts): row reductions for the statistics and sums, elementwise passes for the
// rest. Inputs are [N, C, *]; statistics are float32 two-pass (mean, then squared deviations).
// Each op takes an optional epilogue, relu(norm(x) + residual), fused into the kernel that applies
// the normalisation: a ResNet's norm -> relu and norm -> + shortcut -> relu are one dispatch, and
// the backward masks the gradient by the saved output's sign inside the kernels that read it.
import { normApplyKernel, normGradInputKernel, normRowsKernel, NORM_UNIFORMS, type ApplySpec, type NormInput } from '../../kernels/norm.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import type { BlockValues } from '../../kernels/uniforms.js';
import { getBackend } from '../backend.js';
import { reductionWorkgroup } from '../device.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { inVec4Binding } from './vec4-binding.js';
import { record } from '../autograd.js';
import { tidy } from '../scope.js';
import { elementwise as ew } from './elementwise.js';
import { copyInto } from './copy.js';

interface Layout {
  N: number;
  C: number;
  L: number;
  /** Stat of element (n, c): n * nStat + c / cPerStat. */
  nStat: number;
  cPerStat: number;
}

/** Rows of a row reduction: row r covers r*rowStride + o*outerStride + k, o < O, k < K. */
interface Rows {
  R: number;
  O: number;
  K: number;
  rowStride: number;
  outerStride: number;
}

type Kernel = { wgsl: string; entry: string; inputs: NormInput[]; outputs?: number };
type NormValues = { -readonly [K in keyof BlockValues<typeof NORM_UNIFORMS>]: number };
const UNSET = Object.fromEntries(NORM_UNIFORMS.names.map((f) => [f, 0])) as NormValues;
/** The fields an op sets; run() sets the input offsets, and fields a kernel does not read stay 0. */
type Words = Partial<Omit<NormValues, `${NormInput}Off`>>;

const kernels = new Map<string, Kernel>();
function cached(key: string, make: () => Kernel): Kernel {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

const channelRows = (l: Layout): Rows => ({ R: l.C, O: l.N, K: l.L, rowStride: l.L, outerStride: l.C * l.L });
const groupRows = (l: Layout, G: number): Rows => ({ R: l.N * G, O: 1, K: (l.C / G) * l.L, rowStride: (l.C / G) * l.L, outerStride: 0 });

/** t itself when its elements are dense (any offset), else a dense copy (callers run inside tidy). */
function dense(t: Tensor): Tensor {
  return t.isContiguous ? t : ew('copy', [t]);
}

/** A [n] view of `t`'s storage starting `start` elements past its offset. */
function part(t: Tensor, n: number, start: number): Tensor {
  return t.view([n], [1], t.offset + start);
}

function run(kernel: Kernel, bound: Partial<Record<NormInput, Tensor>>, out: Tensor, words: Words, workgroups: [number, number], label: string, out2: Tensor | null = null): void {
  const v: NormValues = { ...UNSET, ...words };
  for (const name of kernel.inputs) v[`${name}Off`] = bound[name]!.offset;
  getBackend().dispatch({
    kernel,
    buffers: [...kernel.inputs.map((name) => bound[name]!.storage.buffer), out.storage.buffer, ...(out2 ? [out2.storage.buffer] : [])],
    uniforms: NORM_UNIFORMS.pack(v),
    workgroups,
    label,
  });
}

const layoutWords = (l: Layout): Words => ({ L: l.L, C: l.C, nStat: l.nStat, cPerStat: l.cPerStat });
const rowWords = (r: Rows): Words => ({ n: r.R, O: r.O, K: r.K, rowStride: r.rowStride, outerStride: r.outerStride });

/** [3 * R]: mean, biased variance, rstd = 1/sqrt(var + eps) of each row of dense x. */
function stats(x: Tensor, l: Layout, rows: Rows, eps: number, label: string): Tensor {
  const out = empty([3 * rows.R]);
  const v4 = rowsVec4Fits(l, rows, [x]);
  run(cached(`stats|${reductionWorkgroup()}|${v4}`, () => normRowsKernel('stats', false, reductionWorkgroup(), false, v4)), { x }, out, { ...rowWords(rows), ...layoutWords(l), eps }, grid(rows.R), `${label} statistics`);
  return out;
}

/** Whether the row kernels' vec4 form fits: every row is runs of 4 elements of one channel, at multiples of 4. */
function rowsVec4Fits(l: Layout, rows: Rows, perElement: (Tensor | null | undefined)[]): boolean {
  return rows.K % 4 === 0 && rows.rowStride % 4 === 0 && rows.outerStride % 4 === 0 && vec4Fits(l, perElement);
}

/**
 * Per-channel sums of a float32 [N, C, *] tensor over the images and trailing dims ([C], no
 * autodiff): a conv bias gradient in one dispatch, where a general sum over [0, 2, 3] takes two.
 */
export function channelSum(x: Tensor, label = 'channel sum'): Tensor {
  const l = layoutOf('channel_sum', x);
  return tidy(() => {
    const out = empty([l.C]);
    const xd = dense(x);
    const rows = channelRows(l);
    const v4 = rowsVec4Fits(l, rows, [xd]);
    run(cached(`sum|${reductionWorkgroup()}|${v4}`, () => normRowsKernel('sum', false, reductionWorkgroup(), false, v4)), { x: xd }, out, { ...rowWords(rows), ...layoutWords(l) }, grid(rows.R), label);
    return out;
  });
}

/**
 * g * scale[c] over a float32 [N, C, *] tensor, zeroed where `mask` (a saved ReLU output) is not
 * positive when given: one dispatch (no autodiff). A conv's fused scale-and-ReLU epilogue
 * (ConvOptions.scale) takes its backward through it, as frozen batch norm's did.
 */
export function channelScale(g: Tensor, scale: Tensor, mask: Tensor | null = null, label = 'channel scale'): Tensor {
  const l = layoutOf('channel_scale', g);
  return tidy(() => apply(dense(g), l, { w: channelVector('channel_scale', 'scale', scale, g, l.C), y: mask && dense(mask) }, label));
}

/**
 * Both g masked by `mask` (a saved ReLU output: zero where it is not positive) and that times
 * scale[c], in one dispatch (no autodiff): the gradient of a conv epilogue's sum before the ReLU (its
 * residual's) and of the convolution.
 */
export function channelScaleMasked(g: Tensor, scale: Tensor, mask: Tensor, label = 'channel scale'): { scaled: Tensor; masked: Tensor } {
  const l = layoutOf('channel_scale', g);
  const masked = empty(g.shape);
  const scaled = tidy(() => apply(dense(g), l, { w: channelVector('channel_scale', 'scale', scale, g, l.C), y: dense(mask) }, label, masked));
  return { scaled, masked };
}

/** [2 * R]: sum(g * w[c]) and sum(g * w[c] * xhat) of each row (w left out when null; g masked by mask > 0 when given). */
function gradSums(x: Tensor, g: Tensor, mean: Tensor, rstd: Tensor, w: Tensor | null, l: Layout, rows: Rows, label: string, mask: Tensor | null = null): Tensor {
  const out = empty([2 * rows.R]);
  const v4 = rowsVec4Fits(l, rows, [x, g, mask]);
  const kernel = cached(`grad|${!!w}|${reductionWorkgroup()}|${!!mask}|${v4}`, () => normRowsKernel('grad', !!w, reductionWorkgroup(), !!mask, v4));
  run(kernel, { x, g, mean, rstd, ...(w ? { w } : {}), ...(mask ? { y: mask } : {}) }, out, { ...rowWords(rows), ...layoutWords(l) }, grid(rows.R), `${label} backward sums`);
  return out;
}

interface ApplyTerms {
  mean?: Tensor;
  rstd?: Tensor;
  w?: Tensor | null;
  b?: Tensor | null;
  /** Added after the affine (dense, x's shape). */
  r?: Tensor | null;
  relu?: boolean;
  /** A saved ReLU output whose sign masks x (x is then a gradient). */
  y?: Tensor | null;
}

let normVec4 = true;
/** Turns the vec4 forms of the norm kernels (elementwise passes and row sums) off or on (tests compare the two forms). */
export function setNormVec4(on: boolean): void {
  normVec4 = on;
}

/**
 * Whether the elementwise kernels' vec4 form fits: L divides by 4 (4 elements share a channel and a
 * stat) and every per-element tensor starts at a multiple of 4 and ends within its binding's whole vec4s.
 */
function vec4Fits(l: Layout, perElement: (Tensor | null | undefined)[]): boolean {
  if (!normVec4 || l.L % 4 !== 0) return false;
  return perElement.every((t) => !t || (t.offset % 4 === 0 && inVec4Binding(t)));
}

/** The normalisation's elementwise pass; with `masked` (x's shape, dense) it also receives the masked x (ApplySpec.maskedOut). */
function apply(x: Tensor, l: Layout, t: ApplyTerms, label: string, masked: Tensor | null = null): Tensor {
  const spec: ApplySpec = { mean: !!t.mean, rstd: !!t.rstd, weight: !!t.w, bias: !!t.b, residual: !!t.r, relu: !!t.relu, mask: !!t.y, ...(masked ? { maskedOut: true } : {}) };
  const out = empty(x.shape);
  if (out.size === 0) return out;
  const v4 = vec4Fits(l, [x, t.r, t.y, out, masked]);
  const kernel = cached(`apply|${JSON.stringify(spec)}|${v4}`, () => normApplyKernel(spec, v4));
  const bound: Partial<Record<NormInput, Tensor>> = { x };
  if (t.mean) bound.mean = t.mean;
  if (t.rstd) bound.rstd = t.rstd;
  if (t.w) bound.w = t.w;
  if (t.b) bound.b = t.b;
  if (t.r) bound.r = t.r;
  if (t.y) bound.y = t.y;
  const n = v4 ? out.size / 4 : out.size;
  run(kernel, bound, out, { n, ...layoutWords(l) }, grid(Math.ceil(n / WORKGROUP)), label, masked);
  return out;
}

function gradInput(
  x: Tensor, g: Tensor, mean: Tensor, rstd: Tensor, s1: Tensor, s2: Tensor,
  w: Tensor | null, where: 'inner' | 'outer', l: Layout, perStat: number, label: string, mask: Tensor | null = null,
): Tensor {
  const pos = w ? where : 'none';
  const out = empty(x.shape);
  const v4 = vec4Fits(l, [x, g, mask, out]);
  const kernel = cached(`gx|${pos}|${!!mask}|${v4}`, () => normGradInputKernel(pos, !!mask, v4));
  const bound = { x, g, mean, rstd, s1, s2, ...(w ? { w } : {}), ...(mask ? { y: mask } : {}) };
  const n = v4 ? out.size / 4 : out.size;
  run(kernel, bound, out, { n, invM: 1 / perStat, ...layoutWords(l) }, grid(Math.ceil(n / WORKGROUP)), `${label} backward input`);
  return out;
}

function layoutOf(op: string, x: Tensor): Layout {
  if (x.dtype !== 'float32') throw new Error(`${op}: needs a float32 input, got ${x.dtype}${shapeStr(x.shape)}`);
  if (x.ndim < 2) throw new Error(`${op}: input ${shapeStr(x.shape)} needs at least 2 dimensions [N, C, ...]`);
  const L = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return { N: x.shape[0]!, C: x.shape[1]!, L, nStat: 0, cPerStat: 1 };
}

/** Checks a per-channel vector and returns it dense. */
function channelVector(op: string, what: string, t: Tensor, x: Tensor, C: number): Tensor {
  if (t.size !== C || t.ndim !== 1) {
    throw new Error(`${op}: ${what} ${shapeStr(t.shape)} does not match input ${shapeStr(x.shape)} with ${C} channels`);
  }
  if (t.dtype !== 'float32') throw new Error(`${op}: ${what} must be float32, got ${t.dtype}`);
  return dense(t);
}

/** Gradients in the order of the recorded inputs (x, then the weight and bias that were given). */
function inOrder(weight: Tensor | null, bias: Tensor | null, gx: Tensor | null, gw: Tensor | null, gb: Tensor | null): (Tensor | null)[] {
  return [gx, ...(weight ? [gw] : []), ...(bias ? [gb] : [])];
}

/**
 * What follows a normalisation inside its kernel: y = relu(norm(x) + residual), each part optional
 * (the residual has x's shape). The residual receives the gradient of the sum, as add's would.
 */
export interface NormEpilogue {
  residual?: Tensor | null;
  relu?: boolean;
}

/** The checked epilogue of an op: the residual as given (a recorded input) or null, and whether a ReLU follows. */
interface Epilogue {
  input: Tensor | null;
  relu: boolean;
}

function epilogueOf(op: string, x: Tensor, e: NormEpilogue): Epilogue {
  const r = e.residual ?? null;
  if (r) {
    if (r.ndim !== x.ndim || r.shape.some((d, i) => d !== x.shape[i])) throw new Error(`${op}: residual ${shapeStr(r.shape)} does not match input ${shapeStr(x.shape)}`);
    if (r.dtype !== 'float32') throw new Error(`${op}: residual must be float32, got ${r.dtype}`);
  }
  return { input: r, relu: !!e.relu };
}

/** The apply kernel's epilogue terms (inside the op's tidy: the residual may need a dense copy). */
const epilogueTerms = (e: Epilogue): ApplyTerms => ({ r: e.input && dense(e.input), relu: e.relu });

/** The recorded inputs after x, weight and bias: the residual, when there is one. */
const epilogueInputs = (e: Epilogue): Tensor[] => (e.input ? [e.input] : []);

/**
 * The gradient reaching the normalisation through the epilogue, from the output's gradient g and
 * (with a ReLU) the saved output y. A residual that needs a gradient gets the ReLU-masked gradient
 * as a tensor of its own (one relu_grad dispatch, shared by both); otherwise the mask is left to
 * the normalisation's backward kernels (`mask`), which read y and skip that dispatch.
 */
function epilogueGrad(e: Epilogue, g: Tensor, y: Tensor | undefined): { g: Tensor; mask: Tensor | null; gr: (Tensor | null)[] } {
  const needR = !!e.input?.requiresGrad;
  if (!e.relu) return { g: dense(g), mask: null, gr: e.input ? [needR ? g : null] : [] };
  if (!needR) return { g: dense(g), mask: y!, gr: e.input ? [null] : [] };
  const gz = ew('relu_grad', [g, y!]);
  return { g: gz, mask: null, gr: [gz] };
}

/**
 * torch.nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps).
 * Training normalises with the batch statistics and, when running stats are given, updates them in
 * place: running = (1 - momentum) * running + momentum * stat, with the unbiased variance. Eval
 * normalises with the running stats. Gradients flow to input, weight and bias.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  training = false,
  momentum = 0.1,
  eps = 1e-5,
  epilogue: NormEpilogue = {},
): Tensor {
  const op = 'batch_norm';
  const l = layoutOf(op, x);
  const e = epilogueOf(op, x, epilogue);
  const M = l.N * l.L;
  const label = `${op}(${shapeStr(x.shape)}, ${training ? 'training' : 'eval'})`;
  if (!training && (!runningMean || !runningVar)) throw new Error(`${op}: eval mode needs running_mean and running_var`);
  if (training && M <= 1) throw new Error(`${op}: expected more than 1 value per channel when training, got input ${shapeStr(x.shape)}`);
  return tidy(() => {
    const rm = runningMean && channelVector(op, 'running_mean', runningMean, x, l.C);
    const rv = runningVar && channelVector(op, 'running_var', runningVar, x, l.C);
    const w = weight && channelVector(op, 'weight', weight, x, l.C);
    const b = bias && channelVector(op, 'bias', bias, x, l.C);
    const xd = dense(x);
    const rows = channelRows(l);
    let mean: Tensor, rstd: Tensor;
    if (training) {
      const st = stats(xd, l, rows, eps, label);
      mean = part(st, l.C, 0);
      rstd = part(st, l.C, 2 * l.C);
      const variance = part(st, l.C, l.C);
      if (runningMean) copyInto(runningMean, ew('fma', [rm!, 1 - momentum, ew('mul', [mean, momentum])]));
      if (runningVar) copyInto(runningVar, ew('fma', [rv!, 1 - momentum, ew('mul', [variance, (momentum * M) / (M - 1)])]));
    } else {
      mean = rm!;
      rstd = ew('rsqrt', [ew('add', [rv!, eps])]);
    }
    const y = apply(xd, l, { mean, rstd, w, b, ...epilogueTerms(e) }, label);
    const needX = x.requiresGrad, needAffine = !!weight?.requiresGrad || !!bias?.requiresGrad;
    const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : []), ...epilogueInputs(e)];
    record(op, inputs, y, [xd, mean, rstd, w ?? xd, ...(e.relu ? [y] : [])], (g, [xs, ms, rs, wsv, ys]) => {
      const ws = w ? wsv! : null;
      const { g: gd, mask, gr } = epilogueGrad(e, g, ys);
      // Eval: the statistics are constants, so the input gradient is g * rstd * w.
      const evalInput = (): Tensor => apply(gd, l, { rstd: rs!, w: ws, y: mask }, `${label} backward input`);
      // Per-channel sum(g) and sum(g * xhat): the bias and weight gradients, and (training) the
      // terms of the input gradient that flow through the batch statistics.
      if (!(training && needX) && !needAffine) return [...inOrder(weight, bias, needX ? evalInput() : null, null, null), ...gr];
      const sums = gradSums(xs!, gd, ms!, rs!, null, l, rows, label, mask);
      const s1 = part(sums, l.C, 0), s2 = part(sums, l.C, l.C);
      let gx: Tensor | null = null;
      if (needX) gx = training ? gradInput(xs!, gd, ms!, rs!, s1, s2, ws, 'outer', l, M, label, mask) : evalInput();
      return [...inOrder(weight, bias, gx, s2, s1), ...gr];
    });
    return y;
  });
}

/**
 * torchvision.ops.FrozenBatchNorm2d's forward: scale = weight * rsqrt(running_var + eps),
 * shift = bias - running_mean * scale, y = x * scale + shift. The statistics and affine are fixed
 * buffers; the gradient flows to the input (and a residual) only.
 */
export function frozenBatchNorm2d(x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-5, epilogue: NormEpilogue = {}): Tensor {
  return tidy(() => {
    const { scale, shift } = frozenBatchNormScaleShift(x, weight, bias, runningMean, runningVar, eps);
    return frozenBatchNormApply(x, scale, shift, epilogue);
  });
}

/**
 * FrozenBatchNorm2d's per-channel [C] scale = weight * rsqrt(running_var + eps) and shift =
 * bias - running_mean * scale, for the C channels of `x` (only its shape is read): constants for
 * as long as the buffers are, so a layer computes them once (nn.FrozenBatchNorm2d caches them).
 */
export function frozenBatchNormScaleShift(x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-5): { scale: Tensor; shift: Tensor } {
  const op = 'frozen_batch_norm';
  const { C } = layoutOf(op, x);
  return tidy(() => {
    const w = channelVector(op, 'weight', weight, x, C);
    const b = channelVector(op, 'bias', bias, x, C);
    const rm = channelVector(op, 'running_mean', runningMean, x, C);
    const rv = channelVector(op, 'running_var', runningVar, x, C);
    const scale = ew('mul', [w, ew('rsqrt', [ew('add', [rv, eps])])]);
    const shift = ew('sub', [b, ew('mul', [rm, scale])]);
    return { scale, shift };
  });
}

/** y = relu(x * scale[c] + shift[c] + residual), one dispatch: FrozenBatchNorm2d with its scale and shift given. */
export function frozenBatchNormApply(x: Tensor, scale: Tensor, shift: Tensor, epilogue: NormEpilogue = {}): Tensor {
  const op = 'frozen_batch_norm';
  const l = layoutOf(op, x);
  const label = `${op}(${shapeStr(x.shape)})`;
  const e = epilogueOf(op, x, epilogue);
  return tidy(() => {
    const sc = channelVector(op, 'scale', scale, x, l.C);
    const sh = channelVector(op, 'shift', shift, x, l.C);
    const y = apply(dense(x), l, { w: sc, b: sh, ...epilogueTerms(e) }, label);
    record(op, [x, ...epilogueInputs(e)], y, [sc, ...(e.relu ? [y] : [])], (g, [scs, ys]) => {
      const { g: gd, mask, gr } = epilogueGrad(e, g, ys);
      return [x.requiresGrad ? apply(gd, l, { w: scs!, y: mask }, `${label} backward`) : null, ...gr];
    });
    return y;
  });
}

/**
 * torch.nn.functional.group_norm(input, num_groups, weight, bias, eps): each sample's channels are
 * split into num_groups groups of consecutive channels, each normalised by its own mean and biased
 * variance; then the per-channel affine. Gradients flow to input, weight and bias.
 */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5, epilogue: NormEpilogue = {}): Tensor {
  const op = 'group_norm';
  const base = layoutOf(op, x);
  const e = epilogueOf(op, x, epilogue);
  const G = numGroups;
  if (!Number.isInteger(G) || G <= 0 || base.C % G !== 0) {
    throw new Error(`${op}: the ${base.C} channels of input ${shapeStr(x.shape)} are not divisible into num_groups=${G} groups`);
  }
  const l: Layout = { ...base, nStat: G, cPerStat: base.C / G };
  const perStat = (l.C / G) * l.L;
  const label = `${op}(${shapeStr(x.shape)}, groups=${G})`;
  return tidy(() => {
    const w = weight && channelVector(op, 'weight', weight, x, l.C);
    const b = bias && channelVector(op, 'bias', bias, x, l.C);
    const xd = dense(x);
    if (xd.size === 0) return empty(x.shape);
    const S = l.N * G;
    const st = stats(xd, l, groupRows(l, G), eps, label);
    const mean = part(st, S, 0), rstd = part(st, S, 2 * S);
    const y = apply(xd, l, { mean, rstd, w, b, ...epilogueTerms(e) }, label);
    const needX = x.requiresGrad, needAffine = !!weight?.requiresGrad || !!bias?.requiresGrad;
    const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : []), ...epilogueInputs(e)];
    record(op, inputs, y, [xd, mean, rstd, w ?? xd, ...(e.relu ? [y] : [])], (g, [xs, ms, rs, wsv, ys]) => {
      const ws = w ? wsv! : null;
      const { g: gd, mask, gr } = epilogueGrad(e, g, ys);
      let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
      if (needX) {
        const sums = gradSums(xs!, gd, ms!, rs!, ws, l, groupRows(l, G), label, mask);
        gx = gradInput(xs!, gd, ms!, rs!, part(sums, S, 0), part(sums, S, S), ws, 'inner', l, perStat, label, mask);
      }
      if (needAffine) {
        // Per-channel sums of g and g * xhat over (n, spatial): the affine gradients.
        const sums = gradSums(xs!, gd, ms!, rs!, null, l, channelRows(l), `${label} affine`, mask);
        gb = part(sums, l.C, 0);
        gw = part(sums, l.C, l.C);
      }
      return [...inOrder(weight, bias, gx, gw, gb), ...gr];
    });
    return y;
  });
}
