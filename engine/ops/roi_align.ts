// torchvision.ops.roi_align and the FPN multi-level pooler (torchvision's MultiScaleRoIAlign with its
// LevelMapper, or Detectron2's level formula). Boxes are [K, 5] rows (batch index, x1, y1, x2, y2)
// in image coordinates, or a list of per-image [L_i, 4] tensors. Gradients flow to the feature maps
// (not to the boxes, as in torchvision).
import { roiAlignKernel, roiAlignInvocations, roiChannels, levelMapperKernel, packRoiAlignUniforms, LEVEL_MAPPER_UNIFORMS, type RoiAlignParams, type LevelMapperParams } from '../../kernels/roi_align.js';
import { roiAlignRowsBackwardKernel, roiAlignRowInvocations } from '../../kernels/roi_align_rows.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend, type Kernel } from '../backend.js';
import { adapterIsCpu } from '../device.js';
import { Tensor, contiguousStrides, empty, fromData, shapeStr } from '../tensor.js';
import { noGrad, record } from '../autograd.js';
import { contiguous } from './elementwise.js';
import { copyInto, zeros } from './copy.js';

const kernels = new Map<string, Kernel>();
function cached(key: string, make: () => Kernel): Kernel {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

/** The kernel with its quick variant (engine/tiering.ts: a loop over the channel block, quick to compile). */
function tieredRoiAlign(L: number, backward: boolean, cb: number): Kernel {
  return { ...roiAlignKernel(L, backward, cb), quick: roiAlignKernel(L, backward, cb, true) };
}

/** The backward's row form (kernels/roi_align_rows.ts) with its quick variant. */
function tieredRowsBackward(L: number, cb: number): Kernel {
  return { ...roiAlignRowsBackwardKernel(L, cb), quick: roiAlignRowsBackwardKernel(L, cb, true) };
}

/**
 * Channels per invocation: roiChannels(), or 1 for single-channel maps (the mask targets: RoIAlign
 * of each image's 0/1 instance masks), where a block would compute the one channel 8 or 16 times
 * over (channels past C repeat the last one).
 */
function channelBlock(C: number, backward: boolean): number {
  return C === 1 ? 1 : roiChannels(backward);
}

let rowsForced: boolean | null = null;

/**
 * Forces the backward's row form on or off (tests, benchmarks); null restores the default: on for
 * CPU adapters (lavapipe: a third to a half of the float atomic adds, which are most of the
 * backward's time there), off for GPUs (its per-invocation accumulators would live in slow private
 * memory; not measured there).
 */
export function setRoiAlignBackwardRows(on: boolean | null): void {
  rowsForced = on;
}

export interface RoiAlignOptions {
  /** Pooled size [h, w] (a number means square). */
  outputSize: number | readonly [number, number];
  spatialScale?: number;
  /** <= 0 (default -1, as torchvision): adaptive ceil(roi_size / output_size) samples per bin side. */
  samplingRatio?: number;
  aligned?: boolean;
}

function pooled(o: RoiAlignOptions['outputSize']): [number, number] {
  const [h, w] = typeof o === 'number' ? [o, o] : o;
  if (!(h >= 1 && w >= 1 && Number.isInteger(h) && Number.isInteger(w))) throw new Error(`roi_align: output size [${h},${w}] must be positive integers`);
  return [h, w];
}

/** [K, 5] rois from a [K, 5] tensor or a list of per-image [L_i, 4] boxes (batch index = list position). */
export function toRois(boxes: Tensor | readonly Tensor[], op = 'roi_align'): Tensor {
  if (!Array.isArray(boxes)) {
    const b = boxes as Tensor;
    if (b.ndim !== 2 || b.shape[1] !== 5 || b.dtype !== 'float32') throw new Error(`${op}: boxes must be float32 [K,5] (batch_index, x1, y1, x2, y2), got ${b.dtype}${shapeStr(b.shape)}`);
    return b.view(b.shape, b.strides, b.offset);
  }
  const list = boxes as readonly Tensor[];
  list.forEach((b, i) => {
    if (b.ndim !== 2 || b.shape[1] !== 4 || b.dtype !== 'float32') throw new Error(`${op}: boxes[${i}] must be float32 [L,4], got ${b.dtype}${shapeStr(b.shape)}`);
  });
  if (list.length === 0) return empty([0, 5]);
  // The batch-index column is known on the host: upload it with zeros for the boxes, then copy each
  // image's boxes into its rows (one dispatch per image; boxes get no gradient).
  const K = list.reduce((a, b) => a + b.shape[0]!, 0);
  const host = new Float32Array(K * 5);
  let row = 0;
  list.forEach((b, i) => {
    for (let k = 0; k < b.shape[0]!; k++) host[(row + k) * 5] = i;
    row += b.shape[0]!;
  });
  const rois = fromData(host, [K, 5]);
  row = 0;
  noGrad(() => {
    for (const b of list) {
      const n = b.shape[0]!;
      if (n > 0) copyInto(rois.view([n, 4], [5, 1], rois.offset + row * 5 + 1), b);
      row += n;
    }
  });
  return rois;
}

function denseInput(t: Tensor): Tensor {
  return t.isContiguous ? t.view(t.shape, t.strides, t.offset) : contiguous(t);
}

function checkFeatures(op: string, features: readonly Tensor[]): void {
  if (features.length === 0) throw new Error(`${op}: needs at least one feature map`);
  const [N, C] = features[0]!.shape;
  features.forEach((f, i) => {
    if (f.ndim !== 4 || f.dtype !== 'float32') throw new Error(`${op}: feature ${i} must be float32 NCHW, got ${f.dtype}${shapeStr(f.shape)}`);
    if (f.shape[0] !== N || f.shape[1] !== C) throw new Error(`${op}: feature ${i} ${shapeStr(f.shape)} differs from feature 0 ${shapeStr(features[0]!.shape)} in batch or channels`);
    if (f.shape[2] === 0 || f.shape[3] === 0) throw new Error(`${op}: feature ${i} ${shapeStr(f.shape)} is empty`);
  });
}

/**
 * The pooling kernel over any number of levels (levels: int32 [K] level per box, or null with one
 * feature map). Records one node whose gradient goes to every feature map. Batch indices are trusted
 * to lie in [0, N) as in torchvision.
 */
function poolLevels(op: string, features: readonly Tensor[], rois: Tensor, levels: Tensor | null, scales: readonly number[], p: RoiAlignParams): Tensor {
  checkFeatures(op, features);
  const K = rois.shape[0]!, C = features[0]!.shape[1]!;
  const out = empty([K, C, p.pooledH, p.pooledW]);
  if (out.size === 0) {
    record(op, [...features], out, [], () => features.map((f) => zeros(f.shape)));
    return out;
  }
  const feats = features.map(denseInput);
  const r = denseInput(rois);
  const L = features.length;
  const uniforms = (n: number, roiOffset: number, offsets: readonly number[]): Uint32Array => {
    return packRoiAlignUniforms(n, K, C, p, roiOffset, feats.map((t, l) => ({ shape: t.shape, scale: scales[l]!, offset: offsets[l]! })));
  };
  const lv = levels ? [levels.storage.buffer] : [];
  const cf = channelBlock(C, false);
  const nf = roiAlignInvocations(K, C, p, cf);
  getBackend().dispatch({
    kernel: cached(`f${L}c${cf}`, () => tieredRoiAlign(L, false, cf)),
    buffers: [r.storage.buffer, ...lv, ...feats.map((t) => t.storage.buffer), out.storage.buffer],
    uniforms: uniforms(nf, r.offset, feats.map((t) => t.offset)),
    workgroups: grid(Math.ceil(nf / WORKGROUP)),
    label: `${op}(${feats.map((t) => shapeStr(t.shape)).join(', ')}, rois ${shapeStr(rois.shape)})`,
  });
  feats.forEach((t) => t.dispose());
  const saved = levels ? [r, levels] : [r];
  record(op, [...features], out, saved, (g, [rs, ls]) => {
    // Every level's gradient in one zeroed buffer (one fill), each level a view at its offset.
    const offsets: number[] = [];
    let total = 0;
    for (const f of features) offsets.push(total), (total += f.size);
    const all = zeros([total]);
    const grads = features.map((f, l) => all.view(f.shape, contiguousStrides(f.shape), offsets[l]!));
    all.dispose();
    const rows = rowsForced ?? adapterIsCpu();
    const cb = channelBlock(C, true);
    const nb = (rows ? roiAlignRowInvocations : roiAlignInvocations)(K, C, p, cb);
    const gd = g.isContiguous && g.offset === 0 ? g : contiguous(g);
    getBackend().dispatch({
      kernel: rows ? cached(`r${L}c${cb}`, () => tieredRowsBackward(L, cb)) : cached(`b${L}c${cb}`, () => tieredRoiAlign(L, true, cb)),
      buffers: [rs!.storage.buffer, ...(ls ? [ls.storage.buffer] : []), gd.storage.buffer, grads[0]!.storage.buffer],
      uniforms: uniforms(nb, rs!.offset, offsets),
      workgroups: grid(Math.ceil(nb / WORKGROUP)),
      label: `${op} backward (rois ${shapeStr(rois.shape)})`,
    });
    if (gd !== g) gd.dispose();
    return grads;
  });
  r.dispose();
  return out;
}

/**
 * torchvision.ops.roi_align(input, boxes, output_size, spatial_scale=1, sampling_ratio=-1, aligned=False).
 * input NCHW float32; boxes [K,5] or a list of per-image [L,4]; result [K, C, h, w].
 */
export function roiAlign(input: Tensor, boxes: Tensor | readonly Tensor[], opts: RoiAlignOptions): Tensor {
  const [pooledH, pooledW] = pooled(opts.outputSize);
  const p: RoiAlignParams = { pooledH, pooledW, samplingRatio: opts.samplingRatio ?? -1, aligned: opts.aligned ?? false };
  const rois = toRois(boxes);
  const out = poolLevels('roi_align', [input], rois, null, [opts.spatialScale ?? 1], p);
  rois.dispose();
  return out;
}

export type LevelMapperOptions = Partial<LevelMapperParams> & { kMin: number; kMax: number };

/** Defaults per variant: torchvision LevelMapper (224, 4, eps 1e-6) or Detectron2 (224, 4, 1e-8). */
function mapperParams(o: LevelMapperOptions): LevelMapperParams {
  const variant = o.variant ?? 'torchvision';
  return {
    kMin: o.kMin,
    kMax: o.kMax,
    canonicalScale: o.canonicalScale ?? 224,
    canonicalLevel: o.canonicalLevel ?? 4,
    eps: o.eps ?? (variant === 'torchvision' ? 1e-6 : 1e-8),
    variant,
  };
}

/**
 * FPN level of each box, as an index into the levels (level - kMin), int32 [K]: torchvision's
 * LevelMapper floor(4 + log2(sqrt(area) / 224) + 1e-6), or Detectron2's floor(4 + log2(sqrt(area) / 224 + 1e-8)),
 * clamped to [kMin, kMax]. Accepts [K,4] boxes or [K,5] rois.
 */
export function mapLevels(boxes: Tensor, opts: LevelMapperOptions): Tensor {
  if (boxes.ndim !== 2 || (boxes.shape[1] !== 4 && boxes.shape[1] !== 5) || boxes.dtype !== 'float32') {
    throw new Error(`mapLevels: boxes must be float32 [K,4] or [K,5], got ${boxes.dtype}${shapeStr(boxes.shape)}`);
  }
  const m = mapperParams(opts);
  if (m.kMax < m.kMin) throw new Error(`mapLevels: kMax ${m.kMax} < kMin ${m.kMin}`);
  const K = boxes.shape[0]!;
  const out = empty([K], 'int32');
  if (K === 0) return out;
  const b = denseInput(boxes);
  const cols = boxes.shape[1]!;
  getBackend().dispatch({
    kernel: cached(`map|${m.variant}`, () => levelMapperKernel(m.variant)),
    buffers: [b.storage.buffer, out.storage.buffer],
    uniforms: LEVEL_MAPPER_UNIFORMS.pack({
      K,
      boxesOffset: b.offset,
      cols,
      first: cols - 4,
      kMin: m.kMin,
      kMax: m.kMax,
      s0: m.canonicalScale,
      l0: m.canonicalLevel,
      eps: m.eps,
    }),
    workgroups: grid(Math.ceil(K / WORKGROUP)),
    label: `mapLevels(${shapeStr(boxes.shape)})`,
  });
  b.dispose();
  return out;
}

export interface MultiScaleRoiAlignOptions {
  outputSize: number | readonly [number, number];
  samplingRatio?: number;
  /** Spatial scale of each feature map (e.g. 1/4, 1/8, 1/16, 1/32), powers of two. */
  scales: readonly number[];
  aligned?: boolean;
  /** Level formula (default torchvision). */
  mapper?: 'torchvision' | 'detectron2';
  canonicalScale?: number;
  canonicalLevel?: number;
  eps?: number;
}

/**
 * torchvision.ops.MultiScaleRoIAlign's forward: each box is pooled from the level the mapper
 * assigns (kMin = -log2(scales[0]), kMax = -log2(scales[last])); result [K, C, h, w] in box order.
 * One level: plain roi_align at that scale, as torchvision does.
 */
export function multiScaleRoiAlign(features: readonly Tensor[], boxes: Tensor | readonly Tensor[], opts: MultiScaleRoiAlignOptions): Tensor {
  if (opts.scales.length !== features.length) throw new Error(`multiScaleRoiAlign: ${features.length} feature maps but ${opts.scales.length} scales`);
  const [pooledH, pooledW] = pooled(opts.outputSize);
  const p: RoiAlignParams = { pooledH, pooledW, samplingRatio: opts.samplingRatio ?? -1, aligned: opts.aligned ?? false };
  const rois = toRois(boxes, 'multiScaleRoiAlign');
  if (features.length === 1) {
    const out = poolLevels('multi_scale_roi_align', features, rois, null, opts.scales, p);
    rois.dispose();
    return out;
  }
  const kMin = Math.round(-Math.log2(opts.scales[0]!));
  const kMax = Math.round(-Math.log2(opts.scales[opts.scales.length - 1]!));
  if (kMax - kMin + 1 !== features.length) {
    throw new Error(`multiScaleRoiAlign: scales [${opts.scales.join(', ')}] are not ${features.length} consecutive powers of two`);
  }
  const levels = mapLevels(rois, { kMin, kMax, variant: opts.mapper, canonicalScale: opts.canonicalScale, canonicalLevel: opts.canonicalLevel, eps: opts.eps });
  const out = poolLevels('multi_scale_roi_align', features, rois, levels, opts.scales, p);
  levels.dispose();
  rois.dispose();
  return out;
}

/**
 * torchvision's MultiScaleRoIAlign scale inference (_infer_scale): per feature map, 2 ** round(log2(size /
 * image size)) for h and for w, in float32 with round-half-to-even as torch does, and the h-based scale
 * is used (torchvision does not check that the w-based one agrees).
 */
export function inferScales(featureShapes: readonly (readonly number[])[], imageSize: readonly [number, number]): number[] {
  return featureShapes.map((s) => {
    const l = Math.fround(Math.log2(Math.fround(s[s.length - 2]! / imageSize[0])));
    const r = Math.round(l);
    // Math.round rounds halves up; torch.round rounds them to even.
    return 2 ** (r - l === 0.5 && r % 2 !== 0 ? r - 1 : r);
  });
}
