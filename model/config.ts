// The typed configuration of a Mask R-CNN: every knob where torchvision 0.14 and Detectron2 differ,
// or that a small CPU-trainable model needs to shrink. Named presets live in presets.ts; this file
// has the types, the derived quantities (blocks per stage, channels per level) and validation with
// errors that name the offending field.
import type { AnchorConfig } from './anchors.js';
import type { Normalization, SizeRounding } from '../data/transforms.js';

export type NormKind = 'frozen_bn' | 'bn' | 'gn';
/**
 * Norm after the convs of the FPN and the RoI heads: none (convs with bias), GroupNorm (Detectron2's
 * GN recipes) or BatchNorm2d (torchvision's v2 models: batch statistics in training, running ones in
 * eval); with a norm the convs have no bias, as torchvision's Conv2dNormActivation.
 */
export type HeadNorm = 'none' | 'gn' | 'bn';
export type ResNetDepth = 18 | 34 | 50 | 101;

export interface BackboneConfig {
  /** 18/34 use BasicBlock, 50/101 Bottleneck (expansion 4), as torchvision's resnet*(). */
  depth: ResNetDepth;
  /** Output channels of the 7x7 stem conv (torchvision 64). */
  stemChannels: number;
  /** `planes` of layer1..layer4 (torchvision [64, 128, 256, 512]); Bottleneck outputs 4x that. */
  stageWidths: [number, number, number, number];
  /**
   * ResNeXt (Xie et al. 2017) cardinality and width: a Bottleneck's 3x3 conv has `groups` groups and
   * width floor(planes * widthPerGroup / 64) * groups (torchvision's groups / width_per_group;
   * ResNet 1 / 64, ResNeXt-101 32x8d 32 / 8). BasicBlock needs 1 / 64.
   */
  groups: number;
  widthPerGroup: number;
  /** Normalisation after every conv: FrozenBatchNorm2d (imported weights), BatchNorm2d, GroupNorm. */
  norm: NormKind;
  /** Groups of GroupNorm (Detectron2 32); must divide every normalised channel count. */
  gnGroups: number;
  /** eps of every norm layer (torch default 1e-5). */
  normEps: number;
  /** Detectron2's MSRA weights put a Bottleneck's stride in the first 1x1 conv; torchvision in the 3x3. */
  strideIn1x1: boolean;
  /**
   * torchvision's trainable_layers (0..5): how many of layer4, layer3, layer2, layer1, conv1 (in that
   * order) train; the others are frozen (requiresGrad false). 3 = "stem + layer1 frozen"
   * (Detectron2 FREEZE_AT 2); 5 trains everything (from scratch).
   */
  trainableLayers: number;
}

export interface FpnConfig {
  /** Channels of every pyramid level (256). */
  outChannels: number;
  /** Norm in the lateral and output convs (Detectron2 GN variants, torchvision v2 BN). */
  norm: HeadNorm;
  gnGroups: number;
}

export interface BoxLossConfig {
  /** 'smooth_l1' with beta (torchvision 1/9), or plain 'l1' (Detectron2: smooth-L1 with beta 0). */
  kind: 'smooth_l1' | 'l1';
  beta: number;
}

export interface RpnConfig {
  /** Convs of the RPN head before the two predictors (torchvision RPNHead conv_depth=1). */
  convDepth: number;
  /** Proposals kept per level before NMS, and per image after it. */
  preNmsTopNTrain: number;
  preNmsTopNTest: number;
  postNmsTopNTrain: number;
  postNmsTopNTest: number;
  nmsThresh: number;
  /** Proposals with objectness probability below this are dropped (torchvision 0). */
  scoreThresh: number;
  /** Proposals with a side shorter than this are dropped (torchvision 1e-3, Detectron2 0). */
  minSize: number;
  /** Anchor matcher thresholds; low-quality matches are allowed (both libraries). */
  fgIouThresh: number;
  bgIouThresh: number;
  batchSizePerImage: number;
  positiveFraction: number;
  boxCoderWeights: [number, number, number, number];
  boxLoss: BoxLossConfig;
  /**
   * What the RPN losses are divided by: 'sampled' = the number of sampled anchors (torchvision: BCE
   * mean over them, box loss sum / count); 'batch_size' = batchSizePerImage * images (Detectron2).
   */
  lossNormalization: 'sampled' | 'batch_size';
}

export interface PoolerConfig {
  /** Output height = width (7 for boxes, 14 for masks). */
  outputSize: number;
  /** Bilinear samples per bin side (torchvision 2); 0 = adaptive ceil(bin size) (Detectron2). */
  samplingRatio: number;
  /** Half-pixel shift of box corners (Detectron2 ROIAlignV2); torchvision false. */
  aligned: boolean;
}

export type BoxHeadConfig =
  /** torchvision TwoMLPHead: flatten -> fc6 -> relu -> fc7 -> relu. */
  | { kind: 'two_mlp'; representationSize: number }
  /** Detectron2 FastRCNNConvFCHead with convs (e.g. the GN "4conv1fc" head), then fcs. */
  | { kind: 'conv_fc'; numConvs: number; convChannels: number; numFcs: number; representationSize: number; norm: HeadNorm; gnGroups: number };

export interface MaskHeadConfig {
  /** Output channels of each 3x3 conv (torchvision [256, 256, 256, 256]). */
  convChannels: number[];
  dilation: number;
  norm: HeadNorm;
  gnGroups: number;
  /** Channels of the 2x2 stride-2 deconv in the predictor (torchvision 256). */
  predictorChannels: number;
}

export interface RoiHeadsConfig {
  /** Level mapping of RoIs onto P2..P5 (canonical 224 / level 4; the eps differs slightly). */
  levelMapper: 'torchvision' | 'detectron2';
  boxPooler: PoolerConfig;
  maskPooler: PoolerConfig;
  boxHead: BoxHeadConfig;
  maskHead: MaskHeadConfig;
  /** Proposal matcher (no low-quality matches) and sampler. */
  fgIouThresh: number;
  bgIouThresh: number;
  batchSizePerImage: number;
  positiveFraction: number;
  /** Ground-truth boxes join the proposals in training (both libraries). */
  addGtAsProposals: boolean;
  boxCoderWeights: [number, number, number, number];
  boxLoss: BoxLossConfig;
  /** Postprocessing. */
  scoreThresh: number;
  nmsThresh: number;
  detectionsPerImage: number;
  /** Paste masks with torchvision's expand-and-resize method or Detectron2's grid sample. */
  maskPaste: 'torchvision' | 'detectron2';
  /** Threshold for binary masks (RLE output). */
  maskThreshold: number;
}

export interface InputConfig {
  /** Shorter-side sizes; training picks one at random (torchvision: the same list, (800,)). */
  minSizesTrain: number[];
  minSizeTest: number;
  maxSize: number;
  rounding: SizeRounding;
  normalization: Normalization;
  /** Batched images are zero-padded to a multiple of this (32). */
  sizeDivisible: number;
  flipProb: number;
}

export interface MaskRCNNConfig {
  /** The preset this came from (informational). */
  name: string;
  /** Including background (index 0, torchvision convention): COCO 91. */
  numClasses: number;
  /**
   * Whether the mask branch exists (Detectron2 MODEL.MASK_ON): false is Faster R-CNN (torchvision
   * FasterRCNN: no roi_heads.mask_* tensors, no loss_mask, detections without masks).
   */
  maskOn: boolean;
  backbone: BackboneConfig;
  fpn: FpnConfig;
  anchors: AnchorConfig;
  rpn: RpnConfig;
  roiHeads: RoiHeadsConfig;
  input: InputConfig;
}

/** Blocks per stage of torchvision's resnet18/34/50/101. */
export function stageBlocks(depth: ResNetDepth): [number, number, number, number] {
  switch (depth) {
    case 18: return [2, 2, 2, 2];
    case 34: return [3, 4, 6, 3];
    case 50: return [3, 4, 6, 3];
    case 101: return [3, 4, 23, 3];
    default: throw new Error(`backbone.depth must be 18, 34, 50 or 101, got ${String(depth)}`);
  }
}

/** 4 for Bottleneck (50/101), 1 for BasicBlock (18/34). */
export function blockExpansion(depth: ResNetDepth): number {
  return depth >= 50 ? 4 : 1;
}

/** Channels of a Bottleneck's 3x3 conv (torchvision: int(planes * (width_per_group / 64.)) * groups). */
export function bottleneckWidth(b: Pick<BackboneConfig, 'groups' | 'widthPerGroup'>, planes: number): number {
  return Math.floor((planes * b.widthPerGroup) / 64) * b.groups;
}

/** Output channels of layer1..layer4 (C2..C5), the FPN's in_channels_list. */
export function stageOutChannels(b: BackboneConfig): number[] {
  return b.stageWidths.map((w) => w * blockExpansion(b.depth));
}

export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A copy of cfg with overrides merged in (objects merge key by key; arrays and scalars replace). */
export function withOverrides(cfg: MaskRCNNConfig, overrides: DeepPartial<MaskRCNNConfig> = {}): MaskRCNNConfig {
  const merge = (base: unknown, over: unknown, path: string): unknown => {
    if (over === undefined) return structuredClone(base);
    if (isPlainObject(base) && isPlainObject(over)) {
      // A box head of another kind replaces the whole object rather than mixing fields.
      if ('kind' in over && over.kind !== base.kind) return structuredClone(over);
      const out: Record<string, unknown> = structuredClone(base);
      for (const [k, v] of Object.entries(over)) {
        if (!(k in base)) throw new Error(`config override: unknown field '${path ? `${path}.` : ''}${k}'`);
        out[k] = merge(base[k], v, path ? `${path}.${k}` : k);
      }
      return out;
    }
    return structuredClone(over);
  };
  const out = merge(cfg, overrides, '') as MaskRCNNConfig;
  validateConfig(out);
  return out;
}

/** Throws an error naming the field for anything the model cannot be built from. */
export function validateConfig(c: MaskRCNNConfig): void {
  const fail = (field: string, why: string): never => {
    throw new Error(`config '${c.name}': ${field} ${why}`);
  };
  const posInt = (field: string, v: number): void => {
    if (!Number.isInteger(v) || v <= 0) fail(field, `must be a positive integer, got ${v}`);
  };
  const frac = (field: string, v: number): void => {
    if (!(v >= 0 && v <= 1)) fail(field, `must be in [0, 1], got ${v}`);
  };
  posInt('numClasses', c.numClasses);
  if (c.numClasses < 2) fail('numClasses', `counts the background too and must be >= 2, got ${c.numClasses}`);
  const b = c.backbone;
  stageBlocks(b.depth);
  posInt('backbone.stemChannels', b.stemChannels);
  if (b.stageWidths.length !== 4) fail('backbone.stageWidths', `needs 4 entries, got ${b.stageWidths.length}`);
  b.stageWidths.forEach((w, i) => posInt(`backbone.stageWidths[${i}]`, w));
  posInt('backbone.groups', b.groups);
  posInt('backbone.widthPerGroup', b.widthPerGroup);
  if (blockExpansion(b.depth) === 1 && (b.groups !== 1 || b.widthPerGroup !== 64)) {
    fail('backbone.groups', `and widthPerGroup must be 1 and 64 for a BasicBlock ResNet (depth ${b.depth}), got ${b.groups} and ${b.widthPerGroup}`);
  }
  b.stageWidths.forEach((w, i) => posInt(`backbone: stage ${i + 1} bottleneck width floor(stageWidths[${i}] * widthPerGroup / 64) * groups`, bottleneckWidth(b, w)));
  if (!['frozen_bn', 'bn', 'gn'].includes(b.norm)) fail('backbone.norm', `must be 'frozen_bn', 'bn' or 'gn', got '${b.norm}'`);
  if (!Number.isInteger(b.trainableLayers) || b.trainableLayers < 0 || b.trainableLayers > 5) {
    fail('backbone.trainableLayers', `must be an integer in 0..5, got ${b.trainableLayers}`);
  }
  if (b.norm === 'gn') {
    const widths = blockExpansion(b.depth) === 4 ? b.stageWidths.map((w) => bottleneckWidth(b, w)) : b.stageWidths;
    const chans = [b.stemChannels, ...widths, ...stageOutChannels(b)];
    for (const ch of chans) if (ch % b.gnGroups !== 0) fail('backbone.gnGroups', `(${b.gnGroups}) must divide every channel count, not ${ch}`);
  }
  posInt('fpn.outChannels', c.fpn.outChannels);
  const headNorm = (field: string, v: HeadNorm): void => {
    if (!['none', 'gn', 'bn'].includes(v)) fail(field, `must be 'none', 'gn' or 'bn', got '${String(v)}'`);
  };
  headNorm('fpn.norm', c.fpn.norm);
  if (c.fpn.norm === 'gn' && c.fpn.outChannels % c.fpn.gnGroups !== 0) fail('fpn.gnGroups', `(${c.fpn.gnGroups}) must divide fpn.outChannels ${c.fpn.outChannels}`);
  if (c.anchors.sizes.length !== 5) fail('anchors.sizes', `needs one group per pyramid level (P2..P6: 5), got ${c.anchors.sizes.length}`);
  const perLoc = c.anchors.sizes.map((s, l) => s.length * (c.anchors.aspectRatios[l] ?? c.anchors.aspectRatios[0] ?? []).length);
  if (perLoc.some((n) => n !== perLoc[0] || n === 0)) fail('anchors', `must give every level the same, non-zero number of anchors per location (the RPN head is shared), got ${perLoc.join(', ')}`);
  const r = c.rpn;
  for (const k of ['preNmsTopNTrain', 'preNmsTopNTest', 'postNmsTopNTrain', 'postNmsTopNTest', 'batchSizePerImage', 'convDepth'] as const) posInt(`rpn.${k}`, r[k]);
  for (const k of ['nmsThresh', 'fgIouThresh', 'bgIouThresh', 'positiveFraction'] as const) frac(`rpn.${k}`, r[k]);
  if (r.bgIouThresh > r.fgIouThresh) fail('rpn.bgIouThresh', `(${r.bgIouThresh}) must not exceed rpn.fgIouThresh (${r.fgIouThresh})`);
  const h = c.roiHeads;
  for (const k of ['batchSizePerImage', 'detectionsPerImage'] as const) posInt(`roiHeads.${k}`, h[k]);
  for (const k of ['nmsThresh', 'fgIouThresh', 'bgIouThresh', 'positiveFraction', 'maskThreshold'] as const) frac(`roiHeads.${k}`, h[k]);
  posInt('roiHeads.boxPooler.outputSize', h.boxPooler.outputSize);
  posInt('roiHeads.maskPooler.outputSize', h.maskPooler.outputSize);
  if (h.maskHead.convChannels.length === 0) fail('roiHeads.maskHead.convChannels', 'needs at least one conv');
  headNorm('roiHeads.maskHead.norm', h.maskHead.norm);
  if (h.boxHead.kind === 'conv_fc') {
    headNorm('roiHeads.boxHead.norm', h.boxHead.norm);
    if (h.boxHead.norm === 'gn' && h.boxHead.convChannels % h.boxHead.gnGroups !== 0) fail('roiHeads.boxHead.gnGroups', `(${h.boxHead.gnGroups}) must divide ${h.boxHead.convChannels}`);
  }
  if (typeof c.maskOn !== 'boolean') fail('maskOn', `must be true or false, got ${String(c.maskOn)}`);
  if (h.maskHead.norm === 'gn') {
    for (const ch of h.maskHead.convChannels) if (ch % h.maskHead.gnGroups !== 0) fail('roiHeads.maskHead.gnGroups', `(${h.maskHead.gnGroups}) must divide ${ch}`);
  }
  const inp = c.input;
  if (inp.minSizesTrain.length === 0) fail('input.minSizesTrain', 'needs at least one size');
  inp.minSizesTrain.forEach((s, i) => posInt(`input.minSizesTrain[${i}]`, s));
  posInt('input.minSizeTest', inp.minSizeTest);
  posInt('input.maxSize', inp.maxSize);
  posInt('input.sizeDivisible', inp.sizeDivisible);
}

/**
 * A config stored by an earlier version (checkpoints and weights files keep the whole config), with
 * the fields added since then at the values that version had: the mask branch on, plain ResNet
 * (groups 1, width per group 64).
 */
export function upgradeStoredConfig(c: MaskRCNNConfig): MaskRCNNConfig {
  const stored = c as Omit<MaskRCNNConfig, 'maskOn' | 'backbone'> & { maskOn?: boolean; backbone: Partial<BackboneConfig> };
  return {
    ...c,
    maskOn: stored.maskOn ?? true,
    backbone: { ...c.backbone, groups: stored.backbone.groups ?? 1, widthPerGroup: stored.backbone.widthPerGroup ?? 64 },
  };
}
