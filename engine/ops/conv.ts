// conv2d and conv_transpose2d (torch.nn.functional semantics, NCHW) on the implicit-GEMM kernels of
// kernels/conv-gemm.ts. Three raw dispatchers (forward, input gradient = transposed convolution,
// weight gradient = split-K GEMM) serve both ops: conv_transpose2d's forward is conv2d's input
// gradient and its input gradient is conv2d's forward.
import { spatialKernel, spatialPlan, spatialSlots, spatialWeightStrides, pickBlock, columnTaps, SPATIAL_WG, SPATIAL_FLAGS, SPATIAL_UNIFORMS, type SpatialSpec } from '../../kernels/conv-gemm.js';
import { weightGradKernel, WEIGHT_GRAD_UNIFORMS, type WeightGradSpec } from '../../kernels/conv-weight-grad.js';
import { spatialQuickKernel, weightGradQuickKernel, QUICK_COLS } from '../../kernels/conv-gemm-quick.js';
import { convOutSize, convTransposeOutSize, type ConvGeom } from '../../kernels/conv.js';
import { weightTextureSize } from '../../kernels/conv-weight-texture.js';
import { weightTextureView, type WeightPacking } from './conv-weight-pack.js';
import { getBackend, type Kernel } from '../backend.js';
import { adapterIsCpu, adapterSubgroupsExactly } from '../device.js';
import { engineTuner } from '../autotune.js';
import { autocastSpec, isAutocastEnabled, underForwardAutocast } from '../autocast.js';
import { timeOnScratch } from '../tune-timing.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { inVec4Binding } from './vec4-binding.js';
import { noGrad, record, isGradEnabled } from '../autograd.js';
import { tidy } from '../scope.js';
import { capacityRows } from '../alloc-hints.js';
import { elementwise as ew, add, mul, relu as reluOp } from './elementwise.js';
import { reshape } from './view.js';
import { sum } from './reduce.js';
import { fillInPlace } from './copy.js';
import { channelScale, channelScaleMasked, channelSum } from './norm.js';
import { ksApplies, convTransposeKsForward, convTransposeKsInputGrad } from './conv-transpose-ks.js';
import { convTensorCoreSpec } from './tensor-cores.js';
import { convSubgroupMatrixKernel, convInputGradSubgroupMatrixKernel, convWeightGradSubgroupMatrixKernel, convWeightGradSplits, convSgmatGrid, convSgmatUniforms, inputGradPhase } from '../../kernels/conv-subgroup-matrix.js';
import type { SubgroupMatrixTileSpec } from '../../kernels/subgroup-matrix-tile.js';

export type IntPair = number | readonly number[];
export type Activation = 'none' | 'relu';

/**
 * What conv2d's kernel applies to its accumulator before the store (and the backward rule undoes):
 * y = activation(conv(x, W) * scale[c] + bias[c] + residual), in that order, each term optional.
 * With `scale` the bias is the shift of an affine that follows the convolution: conv + frozen batch
 * norm is conv2d(x, W, shift, ..., { scale }) with FrozenBatchNorm2d's scale = w * rsqrt(rv + eps)
 * and shift = b - rm * scale (torchvision computes conv, then x * scale + shift, then + identity,
 * then relu: the same operations in the same order). `residual` has the output's shape; it
 * receives the gradient of the sum, as an add would. A scale that requires grad is not fused (the
 * op falls back to separate conv, mul, add and relu, which differentiate it). conv_transpose2d
 * takes the activation only.
 */
export interface ConvOptions {
  activation?: Activation;
  /** Per-output-channel [Cout] factor on the convolution, before the bias (conv2d only). */
  scale?: Tensor | null;
  /** Added after the bias and before the activation (conv2d only; the output's shape). */
  residual?: Tensor | null;
}

/** The scale-and-residual epilogue of a forward dispatch (SpatialShape.epi). */
interface ScaleResidual {
  scale: Tensor | null;
  residual: Tensor | null;
}

const kernels = new Map<string, Kernel>();

function cached(key: string, make: () => Kernel): Kernel {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

/** A fast kernel with its quick variant (engine/tiering.ts), both kept. */
function tiered(key: string, fast: () => Kernel, quickKey: string, quick: () => Kernel): Kernel {
  return cached(key, () => ({ ...fast(), quick: cached(quickKey, quick) }));
}

/** Beyond this many elements the u32 index arithmetic in the kernels could overflow. */
const MAX_INDEX = 2 ** 31;

function pair(v: IntPair, what: string, op: string): [number, number] {
  const p = typeof v === 'number' ? [v, v] : [...v];
  if (p.length === 1) p.push(p[0]!);
  if (p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`${op}: ${what} must be a non-negative integer or a pair, got ${JSON.stringify(v)}`);
  return p as [number, number];
}

/** Dense, offset-0 version of t (t itself when it already is; a copy owned by the current scope otherwise). */
function dense(t: Tensor): Tensor {
  return t.isContiguous && t.offset === 0 ? t : ew('copy', [t]);
}

const describe = (g: ConvGeom): string => `x[${g.N},${g.Cin},${g.H},${g.W}] w[${g.Cout},${g.Cin / g.groups},${g.KH},${g.KW}] -> [${g.OH},${g.OW}]`;

/** The spatial kernel's grid for one output phase: what one dispatch computes, before the block is chosen. */
interface SpatialJob {
  mode: 'fwd' | 'bwdInput';
  g: ConvGeom;
  phase: [number, number];
  srcC: number; srcH: number; srcW: number;
  dstC: number; dstH: number; dstW: number;
  kc: number; nc: number; rows: number; cols: number;
}

function spatialJob(mode: 'fwd' | 'bwdInput', g: ConvGeom, phase: [number, number]): SpatialJob {
  const fwd = mode === 'fwd';
  const [srcC, srcH, srcW] = fwd ? [g.Cin, g.H, g.W] : [g.Cout, g.OH, g.OW];
  const [dstC, dstH, dstW] = fwd ? [g.Cout, g.OH, g.OW] : [g.Cin, g.H, g.W];
  const rows = fwd ? dstH : Math.ceil((dstH - phase[0]) / g.sh);
  const cols = fwd ? dstW : Math.ceil((dstW - phase[1]) / g.sw);
  return { mode, g, phase: fwd ? [0, 0] : phase, srcC, srcH, srcW, dstC, dstH, dstW, kc: srcC / g.groups, nc: dstC / g.groups, rows, cols };
}

/**
 * Register blocks the autotuner times for a job: the fixed choice (pickBlock), half its columns,
 * and twice / half its channels; a name is `${tm}x${tn}`.
 */
function blockCandidates(j: SpatialJob): string[] {
  const { g } = j;
  const { tm, tn } = pickBlock(j.cols, j.nc, columnTaps({ mode: j.mode, KW: g.KW, sw: g.sw, pw: g.pw, dw: g.dw, phase: j.phase }));
  const names = [`${tm}x${tn}`];
  if (tm > 4) names.push(`${tm / 2}x${tn}`);
  if (tn >= 4 && tn * 2 <= Math.max(8, j.nc)) names.push(`${tm}x${tn * 2}`);
  if (tn >= 4) names.push(`${tm}x${tn / 2}`);
  return names;
}

/** Tuning classes: the kernel's geometry, and sizes by power of two. */
function spatialClass(j: SpatialJob): string {
  const p2 = (x: number) => Math.ceil(Math.log2(Math.max(1, x)));
  const { g } = j;
  return `${j.mode} k${g.KH}x${g.KW} s${g.sh}x${g.sw} p${g.ph}x${g.pw} d${g.dh}x${g.dw} ph${j.phase.join('')} ` +
    `n${p2(g.N * j.rows)}c${p2(j.cols)} kc${p2(j.kc)} nc${p2(j.nc)} g${p2(g.groups)}`;
}

let weightTextureForced: boolean | null = null;

/**
 * Forces the spatial kernel's weights from a packed texture on (true) or off (false) wherever the
 * block allows it (tests, benchmarks); null restores the default: on for CPU adapters (lavapipe,
 * where a texel fetch is far cheaper than a storage load: bench/RESULTS.md), off for GPUs.
 */
export function setConvWeightTexture(on: boolean | null): void {
  weightTextureForced = on;
}

let srcVec4Forced: boolean | null = null;

/**
 * Forces the spatial kernel's vec4 source loads (SpatialShape.src4) on or off wherever the source
 * allows them (tests, benchmarks); null restores the default: on for CPU adapters (lavapipe, where
 * a load costs the same per lane whatever its width), off for GPUs (not measured there).
 */
export function setConvSrcVec4(on: boolean | null): void {
  srcVec4Forced = on;
}

/** Whether this dispatch reads src as vec4s: the tensor (dense, offset 0) lies within its binding's whole vec4s. */
function useSrcVec4(src: Tensor): boolean {
  return (srcVec4Forced ?? adapterIsCpu()) && src.offset === 0 && inVec4Binding(src);
}

let weightShareForced: boolean | null = null;

/**
 * Forces the texture-fed spatial kernel's subgroup-shared weight fetches (SpatialShape.wshare) on
 * or off where the adapter allows them (tests, benchmarks); null restores the default: on wherever
 * the adapter's subgroups are exactly 8 wide and the weights come from a texture (lavapipe).
 * Forcing it on is a no-op on adapters without 8-wide subgroups.
 */
export function setConvWeightShare(on: boolean | null): void {
  weightShareForced = on;
}

/** Whether this dispatch reads its weights from a texture: 4-channel texels, within the texture size limit. */
function useWeightTexture(j: SpatialJob, tn: number): boolean {
  if (!(weightTextureForced ?? adapterIsCpu()) || tn % 4 !== 0) return false;
  const [w, h] = weightTextureSize(j.kc, j.nc, j.g.KH * j.g.KW, j.g.groups);
  const max = getBackend().device.limits.maxTextureDimension2D;
  return w <= max && h <= max;
}

/**
 * Whether any dispatch of this mode on g reads its weights from a texture (the forward asks it of
 * the backward's mode, to pack both textures at once).
 */
function weightTextureUsed(mode: 'fwd' | 'bwdInput', g: ConvGeom): boolean {
  if (!(weightTextureForced ?? adapterIsCpu())) return false;
  const [ph, pw] = mode === 'fwd' ? [1, 1] : [g.sh, g.sw];
  for (let rh = 0; rh < ph; rh++) {
    for (let rw = 0; rw < pw; rw++) {
      const j = spatialJob(mode, g, [rh, rw]);
      if (j.rows <= 0 || j.cols <= 0) continue;
      const tn = Number(convBlockChoice(mode, g, [rh, rw]).block.split('x')[1]);
      if (useWeightTexture(j, tn)) return true;
    }
  }
  return false;
}

/** SPATIAL_FLAGS bits of the epilogue terms a dispatch applies. */
function epilogueFlags(bias: boolean, relu: boolean, sr: ScaleResidual | null): number {
  const F = SPATIAL_FLAGS;
  return (bias ? F.bias : 0) | (relu ? F.relu : 0) | (sr?.scale ? F.scale : 0) | (sr?.residual ? F.residual : 0);
}

function dispatchBlock(j: SpatialJob, block: string, buffers: GPUBuffer[], bias: boolean, relu: boolean, label: string, packing: WeightPacking, sr: ScaleResidual | null = null, src4 = false): void {
  const [tm, tn] = block.split('x').map(Number) as [number, number];
  const { g } = j;
  const wtex = useWeightTexture(j, tn);
  const wshare = (weightShareForced ?? adapterIsCpu()) && adapterSubgroupsExactly(8);
  const spec: SpatialSpec = { mode: j.mode, KH: g.KH, KW: g.KW, sh: g.sh, sw: g.sw, ph: g.ph, pw: g.pw, dh: g.dh, dw: g.dw, phase: j.phase, tm, tn, ...autocastSpec(), ...(wtex ? { wtex } : {}), ...(wshare ? { wshare } : {}), ...(src4 ? { src4 } : {}), ...(sr ? { epi: true } : {}) };
  const { shape, geometry } = spatialPlan(spec);
  const r16 = !!shape.roundF16;
  // The quick variant walks the block QUICK_COLS columns at a time (every pickBlock size is a multiple).
  const kernel = tm % QUICK_COLS === 0
    ? tiered(JSON.stringify(shape), () => spatialKernel(shape), `quick spatial ${tn} ${r16}${sr ? ' epi' : ''}`, () => spatialQuickKernel(tn, r16, !!sr))
    : cached(JSON.stringify(shape), () => spatialKernel(shape));
  const blocks = Math.ceil(j.cols / tm), chBlocks = Math.ceil(j.nc / tn);
  const flags = epilogueFlags(bias, relu, sr);
  const { srcC, srcH, srcW, dstC, dstH, dstW, kc, nc, rows, cols } = j;
  const strides = spatialWeightStrides(j.mode, kc, nc, geometry.KHW);
  const sl = spatialSlots(g.N * rows * blocks, chBlocks);
  const u = SPATIAL_UNIFORMS.pack({ N: g.N, srcC, srcH, srcW, dstC, dstH, dstW, kc, nc, rows, blocks, cols, chBlocks, slots: sl.slots, span: sl.span, flags, ...geometry, ...strides });
  const be = getBackend();
  const grid: [number, number, number] = [sl.x, sl.y, g.groups];
  // Until the texture-fed kernel is compiled (engine/tiering.ts), the storage-fed quick variant
  // stands in: same grid, uniforms and buffers, weights read from the buffer, nothing packed.
  if (wtex && kernel.quick && !be.fastKernelReady(kernel)) {
    be.dispatch({ kernel: kernel.quick, buffers, uniforms: u, workgroups: grid, label });
    return;
  }
  const textures = wtex ? [weightTextureView(buffers[1]!, { mode: j.mode, kc, nc, KHW: geometry.KHW, groups: g.groups, roundF16: r16 }, packing, label)] : undefined;
  be.dispatch({ kernel, buffers, textures, uniforms: u, workgroups: grid, label });
}

/** One run of a block on scratch buffers of the job's sizes, timed (the autotuner's timer). */
async function timeBlock(j: SpatialJob, block: string): Promise<number> {
  const { g } = j;
  const sizes = [g.N * j.srcC * j.srcH * j.srcW, g.Cout * (g.Cin / g.groups) * g.KH * g.KW, g.N * j.dstC * j.dstH * j.dstW];
  const flop = 2 * g.N * j.rows * j.cols * j.nc * g.groups * j.kc * g.KH * g.KW;
  return timeOnScratch(sizes, ([src, w, dst]) => dispatchBlock(j, block, [src!, w!, w!, dst!], false, false, `autotune conv ${block}`, { keep: false, alsoOther: false }), flop);
}

/**
 * One spatial-kernel dispatch: dst pixels on the grid (rowOff + rowMul*a, colOff + colMul*b) of one
 * output phase, from src. fwd: src x, dst y. bwdInput: src dy, dst dx. The register block is the
 * autotuner's choice for the class, else pickBlock's.
 */
function dispatchSpatial(mode: 'fwd' | 'bwdInput', g: ConvGeom, src: Tensor, w: Tensor, bias: Tensor | null, relu: boolean, dst: Tensor, phase: [number, number], packBoth = false, sr: ScaleResidual | null = null): void {
  const j = spatialJob(mode, g, phase);
  if (j.rows <= 0 || j.cols <= 0) return;
  // Tensor cores under autocast (groups 1): the forward, and the input gradient phase by phase.
  const tc = g.groups === 1 && isAutocastEnabled() ? convTensorCoreSpec(mode) : null;
  if (tc) return dispatchTensorCores(mode, g, tc, src, w, bias, relu, dst, sr, phase);
  const { block } = convBlockChoice(mode, g, phase);
  const buffers = [src.storage.buffer, w.storage.buffer, (bias ?? w).storage.buffer, dst.storage.buffer];
  // The epilogue's scale and residual (absent terms bind any buffer; their flags are off).
  if (sr) buffers.push((sr.scale ?? w).storage.buffer, (sr.residual ?? w).storage.buffer);
  dispatchBlock(j, block, buffers, !!bias, relu, `conv ${mode} ${describe(g)}`, { keep: true, alsoOther: packBoth }, sr, useSrcVec4(src));
}

/** The forward or input gradient under autocast on tensor cores (engine/ops/tensor-cores.ts): same bindings and epilogue flags. */
function dispatchTensorCores(mode: 'fwd' | 'bwdInput', g: ConvGeom, spec: SubgroupMatrixTileSpec, src: Tensor, w: Tensor, bias: Tensor | null, relu: boolean, dst: Tensor, sr: ScaleResidual | null, phase: [number, number]): void {
  const flags = epilogueFlags(!!bias, relu, sr);
  const fwd = mode === 'fwd';
  const kernel = cached(`sgmat ${mode} ${JSON.stringify(spec)}`, () => (fwd ? convSubgroupMatrixKernel(spec) : convInputGradSubgroupMatrixKernel(spec)));
  const tensors = fwd ? [src, w, bias ?? w, dst, sr?.scale ?? w, sr?.residual ?? w] : [src, w, bias ?? w, dst];
  const label = `conv ${mode} ${describe(g)} (tensor cores)`;
  const ph = fwd ? undefined : (inputGradPhase(g, phase[0], phase[1]) ?? undefined);
  if (!fwd && !ph) return; // a phase without pixels
  getBackend().dispatch({ kernel, buffers: tensors.map((t) => t.storage.buffer), uniforms: convSgmatUniforms(g, flags, 0, ph), workgroups: convSgmatGrid(g, spec, ph), label });
}

/** The weight gradient under autocast on tensor cores: split-K partial sums over the pixels, then their sum. */
function weightGradTensorCores(dy: Tensor, x: Tensor, g: ConvGeom, spec: SubgroupMatrixTileSpec, shape: number[]): Tensor {
  const plan = convWeightGradSplits(g, spec, undefined, undefined, capacityRows(g.N));
  const kernel = cached(`sgmat bwdWeight ${JSON.stringify(spec)}`, () => convWeightGradSubgroupMatrixKernel(spec));
  const run = (out: Tensor): void => getBackend().dispatch({
    kernel,
    buffers: [dy.storage.buffer, x.storage.buffer, out.storage.buffer],
    uniforms: convSgmatUniforms(g, 0, plan.perSplit),
    workgroups: plan.grid,
    label: `conv weight grad ${describe(g)} (tensor cores, ${plan.splits} splits)`,
  });
  return sumOfSplits(shape, plan.splits, plan.splits, run);
}

/** The spatial kernel's register block for one dispatch, its candidates and tuning class (tests, benchmarks). */
export function convBlockChoice(mode: 'fwd' | 'bwdInput', g: ConvGeom, phase: [number, number] = [0, 0]): { block: string; candidates: string[]; shapeClass: string } {
  const j = spatialJob(mode, g, phase);
  const candidates = blockCandidates(j), shapeClass = spatialClass(j);
  return { block: engineTuner.choose('conv-spatial', shapeClass, candidates, candidates[0]!, (b) => timeBlock(j, b)), candidates, shapeClass };
}

/**
 * y = conv2d(x, w) * scale + bias + residual (then relu), all dense and offset 0; scale and residual
 * optional. packBoth: the backward will take the input gradient, so a packed weight texture of its
 * mode is packed now too (engine/ops/conv-weight-pack.ts).
 */
export function conv2dForwardRaw(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, packBoth = false, scale: Tensor | null = null, residual: Tensor | null = null): Tensor {
  const y = empty([g.N, g.Cout, g.OH, g.OW]);
  if (y.size === 0) return y;
  dispatchSpatial('fwd', g, x, w, bias, relu, y, [0, 0], packBoth, scale || residual ? { scale, residual } : null);
  return y;
}

/** dx = the transposed convolution of dy with w (+ bias over dx's channels, for conv_transpose2d): one dispatch per stride phase. */
export function conv2dInputGradRaw(dy: Tensor, w: Tensor, g: ConvGeom, bias: Tensor | null = null, relu = false, packBoth = false): Tensor {
  const dx = empty([g.N, g.Cin, g.H, g.W]);
  if (dx.size === 0) return dx;
  for (let rh = 0; rh < g.sh; rh++) for (let rw = 0; rw < g.sw; rw++) dispatchSpatial('bwdInput', g, dy, w, bias, relu, dx, [rh, rw], packBoth);
  return dx;
}

let shareDyForced: boolean | null = null;

/**
 * Forces the weight gradient's subgroup-shared dy (WeightGradSpec.sgDy) on or off where the adapter
 * and block allow it (tests, benchmarks); null restores the default: on wherever the adapter's
 * subgroups are exactly 8 wide (lavapipe), off elsewhere (GPUs keep the kernel they had).
 */
export function setConvWeightGradSharedDy(on: boolean | null): void {
  shareDyForced = on;
}

function shareDy(valuesPerStep: number): boolean {
  return (shareDyForced ?? adapterIsCpu()) && adapterSubgroupsExactly(8) && valuesPerStep % 8 === 0;
}

/** Invocations to aim for in the weight gradient (split-K adds (image,row) ranges until there are this many). */
const WEIGHT_GRAD_TARGET = 2048;

/** dw = sum over images and output pixels of dy x patches: [Cout, Cin/groups, KH, KW]. */
export function conv2dWeightGradRaw(dy: Tensor, x: Tensor, g: ConvGeom, splitsOverride?: number): Tensor {
  const cinG = g.Cin / g.groups, coutG = g.Cout / g.groups;
  const shape = [g.Cout, cinG, g.KH, g.KW];
  if (g.Cout * cinG * g.KH * g.KW === 0) return empty(shape);
  if (g.N * g.OH * g.OW === 0) return fillInPlace(empty(shape), 0);
  const tensorCores = g.groups === 1 && isAutocastEnabled() && splitsOverride === undefined ? convTensorCoreSpec('bwdWeight') : null;
  if (tensorCores) return weightGradTensorCores(dy, x, g, tensorCores, shape);
  // Register block tm x tc x KW (at most ~128 accumulators); 1x1 gets the widest channel block.
  // 1x1 always takes 8x8 (one pipeline for every 1x1 layer: a 16-row block compiles for ~9 CPU
  // seconds on lavapipe and saves few loads; few output channels waste FMAs on small layers only).
  // Wider kernels take 2 input channels: each lane's x values are its own loads while dy is shared
  // across the subgroup (sgDy), so 16 x 2 loads fewer per FMA than 8 x 4 (the accumulator cap
  // halves tm at 4 channels): tiny-cpu's step 82 -> 69 CPU ms (tools/step-kernels.js
  // --only conv_bwdWeight, alternated; bench/RESULTS.md).
  const tc = Math.min(cinG, g.KW === 1 ? 8 : 2);
  let tm = g.KW === 1 ? 8 : 16;
  while (tm > 1 && tm * tc * g.KW > 128) tm /= 2;
  while (g.KW > 1 && tm > 1 && tm / 2 >= coutG) tm /= 2; // powers of two only: fewer pipelines
  const R = 4;
  const sgDy = shareDy(tm * R);
  const spec: WeightGradSpec = { KW: g.KW, sw: g.KW === 1 ? 0 : g.sw, dw: g.KW === 1 ? 0 : g.dw, tm, tc, R, ...autocastSpec(), ...(sgDy ? { sgDy } : {}) };
  // The quick variant bounds-checks its invocations, so the shared-dy grid (padded to whole subgroups) suits it too.
  const kernel = tiered(`wg${JSON.stringify(spec)}`, () => weightGradKernel(spec), `quick wg ${R} ${!!spec.roundF16}`, () => weightGradQuickKernel(R, !!spec.roundF16));
  const coBlocks = Math.ceil(coutG / tm), ciBlocks = Math.ceil(cinG / tc);
  // Invocations: one per (output block, input block, kernel row); with a shared dy, whole subgroups of 8 per output block.
  const base = sgDy ? coBlocks * Math.ceil((ciBlocks * g.KH) / 8) * 8 : coBlocks * ciBlocks * g.KH;
  const rowsTotal = g.N * g.OH;
  const maxSplits = Math.max(1, Math.min(Math.ceil(WEIGHT_GRAD_TARGET / (base * g.groups)), Math.floor((65535 * SPATIAL_WG) / base)));
  // The split count follows the rows of the batch at its capacity (a row-bounded batch: the mask
  // head's RoIs), so that it is the same on every step; splits past the real rows add zeros.
  const splits = splitsOverride ?? Math.max(1, Math.min(maxSplits, Math.ceil((capacityRows(g.N) * g.OH) / 2)));
  const perSplit = Math.ceil(rowsTotal / splits);
  const run = (out: Tensor): void => {
    const { N, Cin, H, W, Cout, OH, OW, KH, KW, sh, sw, ph, pw, dh } = g;
    const u = WEIGHT_GRAD_UNIFORMS.pack({ N, Cin, H, W, Cout, OH, OW, cinG, coutG, KH, splits, perSplit, base, coBlocks, ciBlocks, sh, sw, ph, pw, dh, tm, tc, KW, dwCol: g.dw });
    getBackend().dispatch({
      kernel,
      buffers: [dy.storage.buffer, x.storage.buffer, out.storage.buffer],
      uniforms: u,
      workgroups: [Math.ceil((base * splits) / SPATIAL_WG), 1, g.groups],
      label: `conv weight grad ${describe(g)}`,
    });
  };
  // The partial sums get a buffer for the most splits this layer can take whatever its rows (a few
  // weight-sized slices): a layer whose rows follow the data (the mask head's RoIs) takes fewer
  // splits on small steps, and a buffer sized by them would differ from step to step.
  return sumOfSplits(shape, splits, maxSplits, run);
}

/**
 * A weight gradient from `run`, which writes `splits` partial sums [splits, ...shape] (dw itself when
 * there is one split): their sum. The partials' buffer holds max(splits, bufferSplits) slices.
 */
function sumOfSplits(shape: number[], splits: number, bufferSplits: number, run: (out: Tensor) => void): Tensor {
  if (splits === 1) {
    const dw = empty(shape);
    run(dw);
    return dw;
  }
  return tidy(() => {
    const store = empty([Math.max(splits, bufferSplits), ...shape]);
    const partial = store.view([splits, ...shape], store.strides, store.offset);
    run(partial);
    return noGrad(() => sum(partial, 0));
  });
}

function checkIndexRange(op: string, g: ConvGeom): void {
  const big = Math.max(g.N * g.Cin * g.H * g.W, g.N * g.Cout * g.OH * g.OW);
  if (big >= MAX_INDEX) throw new Error(`${op}: tensors of ${big} elements are beyond this kernel's u32 index range`);
}

function checkFloat(op: string, ...ts: (Tensor | null)[]): void {
  for (const t of ts) if (t && t.dtype !== 'float32') throw new Error(`${op}: needs float32 tensors, got ${t.dtype}${shapeStr(t.shape)}`);
}

/** torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups), plus a fused activation. */
export function conv2d(
  input: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  stride: IntPair = 1,
  padding: IntPair | 'same' | 'valid' = 0,
  dilation: IntPair = 1,
  groups = 1,
  opts: ConvOptions = {},
): Tensor {
  const op = 'conv2d';
  const scale = opts.scale ?? null, residual = opts.residual ?? null;
  checkFloat(op, input, weight, bias, scale, residual);
  if (input.ndim === 3) {
    // Unbatched input [C, H, W], as torch accepts.
    return tidy(() => {
      const r = residual && reshape(residual, [1, ...residual.shape]);
      const y = conv2d(reshape(input, [1, ...input.shape]), weight, bias, stride, padding, dilation, groups, { ...opts, residual: r });
      return reshape(y, y.shape.slice(1));
    });
  }
  const g = convShape(op, input.shape, weight.shape, stride, padding, dilation, groups);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== g.Cout)) throw new Error(`${op}: bias ${shapeStr(bias.shape)} should be [${g.Cout}] for weight ${shapeStr(weight.shape)}`);
  if (scale && (scale.ndim !== 1 || scale.shape[0] !== g.Cout)) throw new Error(`${op}: scale ${shapeStr(scale.shape)} should be [${g.Cout}] for weight ${shapeStr(weight.shape)}`);
  const outShape = [g.N, g.Cout, g.OH, g.OW];
  if (residual && (residual.ndim !== 4 || residual.shape.some((d, i) => d !== outShape[i]))) throw new Error(`${op}: residual ${shapeStr(residual.shape)} should be the output's shape ${shapeStr(outShape)}`);
  checkIndexRange(op, g);
  const relu = (opts.activation ?? 'none') === 'relu';
  if (scale?.requiresGrad) return conv2dUnfused(input, weight, bias, stride, padding, dilation, groups, scale, residual, relu);
  const packBoth = isGradEnabled() && input.requiresGrad && weightTextureUsed('bwdInput', g);
  const out = noGrad(() => tidy(() => conv2dForwardRaw(dense(input), dense(weight), bias ? dense(bias) : null, g, relu, packBoth, scale && dense(scale), residual && dense(residual))));
  const inputs = [input, weight, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  const saved = [input, weight, ...(relu ? [out] : []), ...(scale ? [scale] : [])];
  record(op, inputs, out, saved, underForwardAutocast((gy, sv) => {
    const [xs, ws] = sv as [Tensor, Tensor];
    const ys = relu ? sv[2]! : null, ss = scale ? sv[relu ? 3 : 2]! : null;
    // gz: the gradient of the sum before the ReLU (the bias's and the residual's); gc: the
    // convolution's, gz * scale[c]. Without a term that needs gz, the scale and the ReLU mask are
    // one dispatch (channelScale reads the mask), as frozen batch norm's backward was.
    // Where both are needed after a ReLU, one dispatch writes both.
    const needZ = !!bias?.requiresGrad || !!residual?.requiresGrad || !ss;
    const needC = input.requiresGrad || weight.requiresGrad;
    let gz: Tensor | null, gc: Tensor | null;
    if (needZ && needC && ss && ys) {
      const both = channelScaleMasked(gy, dense(ss), ys, `${op} scale grad`);
      gz = both.masked;
      gc = both.scaled;
    } else {
      gz = needZ ? dense(ys ? ew('relu_grad', [gy, ys]) : gy) : null;
      gc = !needC ? null : ss ? channelScale(gz ?? gy, dense(ss), gz ? null : ys, `${op} scale grad`) : gz!;
    }
    const gx = input.requiresGrad ? conv2dInputGradRaw(gc!, dense(ws), g) : null;
    const gw = weight.requiresGrad ? conv2dWeightGradRaw(gc!, dense(xs), g) : null;
    const gb = bias?.requiresGrad ? channelSum(gz!, `${op} bias grad`) : null;
    return [gx, gw, ...(bias ? [gb] : []), ...(residual ? [residual.requiresGrad ? gz : null] : [])];
  }));
  return out;
}

/**
 * conv2d with a scale that requires grad: the epilogue as separate differentiable ops
 * (relu(conv * scale + bias + residual)), whose backward gives the scale its gradient.
 */
function conv2dUnfused(input: Tensor, weight: Tensor, bias: Tensor | null, stride: IntPair, padding: IntPair | 'same' | 'valid', dilation: IntPair, groups: number, scale: Tensor, residual: Tensor | null, relu: boolean): Tensor {
  return tidy(() => {
    const perChannel = (t: Tensor): Tensor => reshape(t, [t.shape[0]!, 1, 1]);
    let y = mul(conv2d(input, weight, null, stride, padding, dilation, groups), perChannel(scale));
    if (bias) y = add(y, perChannel(bias));
    if (residual) y = add(y, residual);
    return relu ? reluOp(y) : y;
  });
}

/** Validates conv2d arguments and returns the geometry (PyTorch's error cases, with shapes named). */
function convShape(op: string, xs: readonly number[], ws: readonly number[], stride: IntPair, padding: IntPair | 'same' | 'valid', dilation: IntPair, groups: number): ConvGeom {
  if (xs.length !== 4) throw new Error(`${op}: input ${shapeStr(xs)} must be [N, C, H, W] (or [C, H, W])`);
  if (ws.length !== 4) throw new Error(`${op}: weight ${shapeStr(ws)} must be [Cout, Cin/groups, KH, KW]`);
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [Cout, cinG, KH, KW] = ws as [number, number, number, number];
  if (Cin !== cinG * groups) {
    throw new Error(`${op}: input ${shapeStr(xs)} has ${Cin} channels, weight ${shapeStr(ws)} with groups=${groups} expects ${cinG * groups}`);
  }
  if (Cout % groups !== 0) throw new Error(`${op}: weight ${shapeStr(ws)} has ${Cout} output channels, not divisible by groups=${groups}`);
  const [sh, sw] = pair(stride, 'stride', op);
  const [dh, dw] = pair(dilation, 'dilation', op);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) throw new Error(`${op}: stride and dilation must be >= 1`);
  let ph: number, pw: number, OH: number, OW: number;
  if (padding === 'same') {
    if (sh !== 1 || sw !== 1) throw new Error(`${op}: padding='same' is not supported for strided convolutions`);
    // torch pads total d*(k-1), the odd one extra at the bottom/right.
    ph = Math.floor((dh * (KH - 1)) / 2);
    pw = Math.floor((dw * (KW - 1)) / 2);
    OH = H;
    OW = W;
  } else {
    [ph, pw] = padding === 'valid' ? [0, 0] : pair(padding, 'padding', op);
    OH = convOutSize(H, KH, sh, ph, dh);
    OW = convOutSize(W, KW, sw, pw, dw);
  }
  if (OH < 1 || OW < 1) {
    throw new Error(`${op}: input ${shapeStr(xs)} (padded ${H + 2 * ph}x${W + 2 * pw}) is smaller than the dilated kernel ${dh * (KH - 1) + 1}x${dw * (KW - 1) + 1} of weight ${shapeStr(ws)}`);
  }
  return { N, Cin, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups };
}

/**
 * torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
 * with weight [Cin, Cout/groups, KH, KW]; plus a fused activation.
 */
export function convTranspose2d(
  input: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  stride: IntPair = 1,
  padding: IntPair = 0,
  outputPadding: IntPair = 0,
  groups = 1,
  dilation: IntPair = 1,
  opts: ConvOptions = {},
): Tensor {
  const op = 'conv_transpose2d';
  checkFloat(op, input, weight, bias);
  if (opts.scale || opts.residual) throw new Error(`${op}: takes no scale or residual epilogue (conv2d does)`);
  const xs = input.shape, ws = weight.shape;
  if (xs.length !== 4) throw new Error(`${op}: input ${shapeStr(xs)} must be [N, C, H, W]`);
  if (ws.length !== 4) throw new Error(`${op}: weight ${shapeStr(ws)} must be [Cin, Cout/groups, KH, KW]`);
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [wCin, coutG, KH, KW] = ws as [number, number, number, number];
  if (Cin !== wCin) throw new Error(`${op}: input ${shapeStr(xs)} has ${Cin} channels, weight ${shapeStr(ws)} expects ${wCin}`);
  if (Cin % groups !== 0) throw new Error(`${op}: ${Cin} input channels are not divisible by groups=${groups}`);
  const [sh, sw] = pair(stride, 'stride', op);
  const [ph, pw] = pair(padding, 'padding', op);
  const [oph, opw] = pair(outputPadding, 'output_padding', op);
  const [dh, dw] = pair(dilation, 'dilation', op);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) throw new Error(`${op}: stride and dilation must be >= 1`);
  if ((oph >= sh && oph >= dh) || (opw >= sw && opw >= dw)) {
    throw new Error(`${op}: output_padding (${oph}, ${opw}) must be smaller than either stride (${sh}, ${sw}) or dilation (${dh}, ${dw})`);
  }
  const Cout = coutG * groups;
  const OH = convTransposeOutSize(H, KH, sh, ph, dh, oph), OW = convTransposeOutSize(W, KW, sw, pw, dw, opw);
  if (OH < 1 || OW < 1) throw new Error(`${op}: input ${shapeStr(xs)} with weight ${shapeStr(ws)} gives an empty output ${OH}x${OW}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== Cout)) throw new Error(`${op}: bias ${shapeStr(bias.shape)} should be [${Cout}] for weight ${shapeStr(ws)} and groups=${groups}`);
  // The conv2d whose input gradient this is: it maps [N, Cout, OH, OW] to [N, Cin, H, W].
  const g: ConvGeom = { N, Cin: Cout, H: OH, W: OW, Cout: Cin, KH, KW, OH: H, OW: W, sh, sw, ph, pw, dh, dw, groups };
  checkIndexRange(op, g);
  const relu = (opts.activation ?? 'none') === 'relu';
  // Kernel = stride (the mask head's 2x2 deconv): one dispatch each way (conv-transpose-ks.ts).
  const ks = ksApplies(g, [oph, opw]);
  const packBoth = !ks && isGradEnabled() && input.requiresGrad && weightTextureUsed('fwd', g);
  const out = noGrad(() => tidy(() => (ks
    ? convTransposeKsForward(dense(input), dense(weight), bias ? dense(bias) : null, relu, g)
    : conv2dInputGradRaw(dense(input), dense(weight), g, bias ? dense(bias) : null, relu, packBoth))));
  const inputs = bias ? [input, weight, bias] : [input, weight];
  record(op, inputs, out, relu ? [input, weight, out] : [input, weight], underForwardAutocast((gy, saved) => {
    const [xsv, wsv, ys] = saved as [Tensor, Tensor, Tensor | undefined];
    const gyd = dense(ys ? ew('relu_grad', [gy, ys]) : gy);
    const gx = input.requiresGrad ? (ks ? convTransposeKsInputGrad(gyd, dense(wsv), g) : conv2dForwardRaw(gyd, dense(wsv), null, g)) : null;
    const gw = weight.requiresGrad ? conv2dWeightGradRaw(dense(xsv), gyd, g) : null;
    const gb = bias?.requiresGrad ? channelSum(gyd, `${op} bias grad`) : null;
    return [gx, gw, gb];
  }));
  return out;
}
