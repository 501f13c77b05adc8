// Normalisation ops: batch_norm (training with batch statistics and the running-stats update, and
// eval), torchvision's FrozenBatchNorm2d, and group_norm; forward and backward each a few dedicated
// kernels (kernels/norm.ts): row reductions for the statistics and sums, elementwise passes for the
// rest. Inputs are [N, C, *]; statistics are float32 two-pass (mean, then squared deviations).
import { normApplyKernel, normGradInputKernel, normRowsKernel, NORM_UNIFORMS, type ApplySpec, type NormInput } from '../../kernels/norm.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import type { BlockValues } from '../../kernels/uniforms.js';
import { getBackend } from '../backend.js';
import { reductionWorkgroup } from '../device.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
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

type Kernel = { wgsl: string; entry: string; inputs: NormInput[] };
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

function run(kernel: Kernel, bound: Partial<Record<NormInput, Tensor>>, out: Tensor, words: Words, workgroups: [number, number], label: string): void {
  const v: NormValues = { ...UNSET, ...words };
  for (const name of kernel.inputs) v[`${name}Off`] = bound[name]!.offset;
  getBackend().dispatch({
    kernel,
    buffers: [...kernel.inputs.map((name) => bound[name]!.storage.buffer), out.storage.buffer],
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
  run(cached(`stats|${reductionWorkgroup()}`, () => normRowsKernel('stats', false, reductionWorkgroup())), { x }, out, { ...rowWords(rows), ...layoutWords(l), eps }, grid(rows.R), `${label} statistics`);
  return out;
}

/** [2 * R]: sum(g * w[c]) and sum(g * w[c] * xhat) of each row (w left out when null). */
function gradSums(x: Tensor, g: Tensor, mean: Tensor, rstd: Tensor, w: Tensor | null, l: Layout, rows: Rows, label: string): Tensor {
  const out = empty([2 * rows.R]);
  const kernel = cached(`grad|${!!w}|${reductionWorkgroup()}`, () => normRowsKernel('grad', !!w, reductionWorkgroup()));
  run(kernel, { x, g, mean, rstd, ...(w ? { w } : {}) }, out, { ...rowWords(rows), ...layoutWords(l) }, grid(rows.R), `${label} backward sums`);
  return out;
}

function apply(x: Tensor, l: Layout, t: { mean?: Tensor; rstd?: Tensor; w?: Tensor | null; b?: Tensor | null }, label: string): Tensor {
  const spec: ApplySpec = { mean: !!t.mean, rstd: !!t.rstd, weight: !!t.w, bias: !!t.b };
  const kernel = cached(`apply|${JSON.stringify(spec)}`, () => normApplyKernel(spec));
  const out = empty(x.shape);
  if (out.size === 0) return out;
  const bound: Partial<Record<NormInput, Tensor>> = { x };
  if (t.mean) bound.mean = t.mean;
  if (t.rstd) bound.rstd = t.rstd;
  if (t.w) bound.w = t.w;
  if (t.b) bound.b = t.b;
  run(kernel, bound, out, { n: out.size, ...layoutWords(l) }, grid(Math.ceil(out.size / WORKGROUP)), label);
  return out;
}

function gradInput(
  x: Tensor, g: Tensor, mean: Tensor, rstd: Tensor, s1: Tensor, s2: Tensor,
  w: Tensor | null, where: 'inner' | 'outer', l: Layout, perStat: number, label: string,
): Tensor {
  const pos = w ? where : 'none';
  const kernel = cached(`gx|${pos}`, () => normGradInputKernel(pos));
  const out = empty(x.shape);
  const bound = { x, g, mean, rstd, s1, s2, ...(w ? { w } : {}) };
  run(kernel, bound, out, { n: out.size, invM: 1 / perStat, ...layoutWords(l) }, grid(Math.ceil(out.size / WORKGROUP)), `${label} backward input`);
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
): Tensor {
  const op = 'batch_norm';
  const l = layoutOf(op, x);
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
    const y = apply(xd, l, { mean, rstd, w, b }, label);
    const needX = x.requiresGrad, needAffine = !!weight?.requiresGrad || !!bias?.requiresGrad;
    record(op, [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])], y, [xd, mean, rstd, ...(w ? [w] : [])], (g, [xs, ms, rs, ws]) => {
      const gd = dense(g);
      // Per-channel sum(g) and sum(g * xhat): the bias and weight gradients, and (training) the
      // terms of the input gradient that flow through the batch statistics.
      if (!(training && needX) && !needAffine) return inOrder(weight, bias, apply(gd, l, { rstd: rs!, w: ws ?? null }, `${label} backward input`), null, null);
      const sums = gradSums(xs!, gd, ms!, rs!, null, l, rows, label);
      const s1 = part(sums, l.C, 0), s2 = part(sums, l.C, l.C);
      let gx: Tensor | null = null;
      if (needX) {
        // Eval: the statistics are constants, so the input gradient is g * rstd * w.
        gx = training ? gradInput(xs!, gd, ms!, rs!, s1, s2, ws ?? null, 'outer', l, M, label) : apply(gd, l, { rstd: rs!, w: ws ?? null }, `${label} backward input`);
      }
      return inOrder(weight, bias, gx, s2, s1);
    });
    return y;
  });
}

/**
 * torchvision.ops.FrozenBatchNorm2d's forward: scale = weight * rsqrt(running_var + eps),
 * shift = bias - running_mean * scale, y = x * scale + shift. The statistics and affine are fixed
 * buffers; the gradient flows to the input only.
 */
export function frozenBatchNorm2d(x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-5): Tensor {
  const op = 'frozen_batch_norm';
  const l = layoutOf(op, x);
  const label = `${op}(${shapeStr(x.shape)})`;
  return tidy(() => {
    const w = channelVector(op, 'weight', weight, x, l.C);
    const b = channelVector(op, 'bias', bias, x, l.C);
    const rm = channelVector(op, 'running_mean', runningMean, x, l.C);
    const rv = channelVector(op, 'running_var', runningVar, x, l.C);
    const scale = ew('mul', [w, ew('rsqrt', [ew('add', [rv, eps])])]);
    const shift = ew('sub', [b, ew('mul', [rm, scale])]);
    const y = apply(dense(x), l, { w: scale, b: shift }, label);
    record(op, [x], y, [scale], (g, [sc]) => [apply(dense(g), l, { w: sc! }, `${label} backward`)]);
    return y;
  });
}

/**
 * torch.nn.functional.group_norm(input, num_groups, weight, bias, eps): each sample's channels are
 * split into num_groups groups of consecutive channels, each normalised by its own mean and biased
 * variance; then the per-channel affine. Gradients flow to input, weight and bias.
 */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'group_norm';
  const base = layoutOf(op, x);
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
    const y = apply(xd, l, { mean, rstd, w, b }, label);
    const needX = x.requiresGrad, needAffine = !!weight?.requiresGrad || !!bias?.requiresGrad;
    record(op, [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])], y, [xd, mean, rstd, ...(w ? [w] : [])], (g, [xs, ms, rs, ws]) => {
      const gd = dense(g);
      let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
      if (needX) {
        const sums = gradSums(xs!, gd, ms!, rs!, ws ?? null, l, groupRows(l, G), label);
        gx = gradInput(xs!, gd, ms!, rs!, part(sums, S, 0), part(sums, S, S), ws ?? null, 'inner', l, perStat, label);
      }
      if (needAffine) {
        // Per-channel sums of g and g * xhat over (n, spatial): the affine gradients.
        const sums = gradSums(xs!, gd, ms!, rs!, null, l, channelRows(l), `${label} affine`);
        gb = part(sums, l.C, 0);
        gw = part(sums, l.C, l.C);
      }
      return inOrder(weight, bias, gx, gw, gb);
    });
    return y;
  });
}
