// Named configurations. `torchvision-r50-fpn` is torchvision 0.14's maskrcnn_resnet50_fpn with all
// defaults (the parity target), `torchvision-faster-r50-fpn` its boxes-only fasterrcnn_resnet50_fpn,
// `torchvision-r50-fpn-v2` maskrcnn_resnet50_fpn_v2 and `torchvision-x101-32x8d-fpn` the same
// Mask R-CNN on resnext101_32x8d (each with its own parity fixture under test/fixtures/); the Detectron2 presets follow its Base-RCNN-FPN / mask_rcnn_R_*_FPN
// configs (MSRA weights: BGR 0..255 input, stride in the 1x1, ROIAlignV2, L1 box losses normalised
// its way, unrounded anchors), keeping torchvision's module names so one loader serves all; the GN
// variants are Detectron2's scratch_*_gn recipes; `tiny` is small enough to train on a CPU.
import { NORMALIZE_DETECTRON2, NORMALIZE_TORCHVISION } from '../data/transforms.js';
import { withOverrides, validateConfig, type DeepPartial, type MaskRCNNConfig } from './config.js';

/** torchvision's box-head BoxCoder weights (roi_heads.py); its RPN uses (1, 1, 1, 1). */
export const BOX_HEAD_WEIGHTS: [number, number, number, number] = [10, 10, 5, 5];

const LEVEL_SIZES = (base: number): number[][] => [0, 1, 2, 3, 4].map((i) => [base * 2 ** i]);
const RATIOS: number[][] = [0, 1, 2, 3, 4].map(() => [0.5, 1, 2]);

function torchvisionR50(): MaskRCNNConfig {
  return {
    name: 'torchvision-r50-fpn',
    numClasses: 91,
    maskOn: true,
    backbone: {
      depth: 50,
      stemChannels: 64,
      stageWidths: [64, 128, 256, 512],
      groups: 1,
      widthPerGroup: 64,
      norm: 'frozen_bn',
      gnGroups: 32,
      normEps: 1e-5,
      strideIn1x1: false,
      trainableLayers: 3,
    },
    fpn: { outChannels: 256, norm: 'none', gnGroups: 32 },
    anchors: { sizes: LEVEL_SIZES(32), aspectRatios: RATIOS, style: 'torchvision', offset: 0 },
    rpn: {
      convDepth: 1,
      preNmsTopNTrain: 2000,
      preNmsTopNTest: 1000,
      postNmsTopNTrain: 2000,
      postNmsTopNTest: 1000,
      nmsThresh: 0.7,
      scoreThresh: 0,
      minSize: 1e-3,
      fgIouThresh: 0.7,
      bgIouThresh: 0.3,
      batchSizePerImage: 256,
      positiveFraction: 0.5,
      boxCoderWeights: [1, 1, 1, 1],
      boxLoss: { kind: 'smooth_l1', beta: 1 / 9 },
      lossNormalization: 'sampled',
    },
    roiHeads: {
      levelMapper: 'torchvision',
      boxPooler: { outputSize: 7, samplingRatio: 2, aligned: false },
      maskPooler: { outputSize: 14, samplingRatio: 2, aligned: false },
      boxHead: { kind: 'two_mlp', representationSize: 1024 },
      maskHead: { convChannels: [256, 256, 256, 256], dilation: 1, norm: 'none', gnGroups: 32, predictorChannels: 256 },
      fgIouThresh: 0.5,
      bgIouThresh: 0.5,
      batchSizePerImage: 512,
      positiveFraction: 0.25,
      addGtAsProposals: true,
      boxCoderWeights: [...BOX_HEAD_WEIGHTS],
      boxLoss: { kind: 'smooth_l1', beta: 1 / 9 },
      scoreThresh: 0.05,
      nmsThresh: 0.5,
      detectionsPerImage: 100,
      maskPaste: 'torchvision',
      maskThreshold: 0.5,
    },
    input: {
      minSizesTrain: [800],
      minSizeTest: 800,
      maxSize: 1333,
      rounding: 'torchvision',
      normalization: { ...NORMALIZE_TORCHVISION, mean: [...NORMALIZE_TORCHVISION.mean], std: [...NORMALIZE_TORCHVISION.std] },
      sizeDivisible: 32,
      flipProb: 0.5,
    },
  };
}

/** Detectron2 Base-RCNN-FPN + mask_rcnn_R_50_FPN (MSRA R-50: BGR, std 1, stride in 1x1). */
const DETECTRON2: DeepPartial<MaskRCNNConfig> = {
  backbone: { strideIn1x1: true, trainableLayers: 3 /* FREEZE_AT 2 */ },
  anchors: { sizes: LEVEL_SIZES(32), aspectRatios: RATIOS, style: 'detectron2', offset: 0 },
  rpn: {
    preNmsTopNTrain: 2000,
    preNmsTopNTest: 1000,
    postNmsTopNTrain: 1000,
    postNmsTopNTest: 1000,
    minSize: 0,
    boxLoss: { kind: 'l1', beta: 0 },
    lossNormalization: 'batch_size',
  },
  roiHeads: {
    levelMapper: 'detectron2',
    boxPooler: { outputSize: 7, samplingRatio: 0, aligned: true },
    maskPooler: { outputSize: 14, samplingRatio: 0, aligned: true },
    boxLoss: { kind: 'l1', beta: 0 },
    maskPaste: 'detectron2',
  },
  input: {
    minSizesTrain: [640, 672, 704, 736, 768, 800],
    minSizeTest: 800,
    maxSize: 1333,
    rounding: 'detectron2',
    normalization: { ...NORMALIZE_DETECTRON2, mean: [...NORMALIZE_DETECTRON2.mean], std: [...NORMALIZE_DETECTRON2.std] },
  },
};

/** Detectron2 scratch_mask_rcnn_R_50_FPN_*_gn: GN everywhere, 4conv1fc box head, nothing frozen. */
const GN_SCRATCH: DeepPartial<MaskRCNNConfig> = {
  backbone: { norm: 'gn', gnGroups: 32, strideIn1x1: false, trainableLayers: 5 },
  fpn: { norm: 'gn', gnGroups: 32 },
  roiHeads: {
    boxHead: { kind: 'conv_fc', numConvs: 4, convChannels: 256, numFcs: 1, representationSize: 1024, norm: 'gn', gnGroups: 32 },
    maskHead: { norm: 'gn', gnGroups: 32 },
  },
  input: { normalization: { scale01: false, bgr: true, mean: [103.53, 116.28, 123.675], std: [57.375, 57.12, 58.395] } },
};

/**
 * torchvision 0.14's maskrcnn_resnet50_fpn_v2 (Li et al. 2021, "Benchmarking Detection Transfer
 * Learning with Vision Transformers"; 47.4 box / 41.8 mask AP): a BatchNorm2d ResNet-50 trunk
 * (batch statistics in training, also in its frozen stem and layer1), BatchNorm2d in the FPN's
 * convs, a 2-conv RPN head, a 4conv1fc box head and a mask head with BatchNorm2d.
 */
const TORCHVISION_V2: DeepPartial<MaskRCNNConfig> = {
  backbone: { norm: 'bn' },
  fpn: { norm: 'bn' },
  rpn: { convDepth: 2 },
  roiHeads: {
    boxHead: { kind: 'conv_fc', numConvs: 4, convChannels: 256, numFcs: 1, representationSize: 1024, norm: 'bn', gnGroups: 32 },
    maskHead: { norm: 'bn' },
  },
};

/** ResNeXt-101 32x8d (torchvision resnext101_32x8d; Detectron2 X-101-32x8d: groups 32, width 8 per group). */
const X101_32X8D: DeepPartial<MaskRCNNConfig> = { backbone: { depth: 101, groups: 32, widthPerGroup: 8 } };

/**
 * Detectron2 mask_rcnn_X_101_32x8d_FPN_3x (the Mask R-CNN paper's best backbone, FAIR's ImageNet
 * X-101-32x8d.pkl): Base-RCNN-FPN with stride in the 3x3 (a Caffe2-trained model converted with
 * torchvision's layout) and BGR input with its per-channel std.
 */
const DETECTRON2_X101: DeepPartial<MaskRCNNConfig> = {
  ...X101_32X8D,
  backbone: { ...X101_32X8D.backbone, strideIn1x1: false },
  input: { normalization: { scale01: false, bgr: true, mean: [103.53, 116.28, 123.675], std: [57.375, 57.12, 58.395] } },
};

/**
 * A ResNet-18-like model (basic blocks, 16-32-64-128 channels) on 128 px images with a 64-channel
 * FPN, anchors 16..256, fewer proposals and RoIs and a 2-conv mask head: seconds per step on a CPU.
 */
const TINY: DeepPartial<MaskRCNNConfig> = {
  backbone: { depth: 18, stemChannels: 16, stageWidths: [16, 32, 64, 128], norm: 'gn', gnGroups: 8, trainableLayers: 5 },
  fpn: { outChannels: 64 },
  anchors: { sizes: LEVEL_SIZES(16) },
  rpn: { preNmsTopNTrain: 600, preNmsTopNTest: 600, postNmsTopNTrain: 300, postNmsTopNTest: 300 },
  roiHeads: {
    boxHead: { kind: 'two_mlp', representationSize: 256 },
    maskHead: { convChannels: [64, 64], predictorChannels: 64, gnGroups: 8 },
    batchSizePerImage: 64,
  },
  input: { minSizesTrain: [128], minSizeTest: 128, maxSize: 128 },
};

/**
 * `tiny` shrunk to what trains at several images per second on a 2-core CPU under lavapipe: 128 px
 * images, an 8-64 channel backbone, a 32-channel FPN with anchors 12..192 (the shapes span about
 * 20-64 px at this size), 32 RoIs per image of which up to half positive (torchvision samples a
 * quarter; with 1-4 objects an image, half gives the box and mask heads twice the examples: mask AP
 * 0.508 against 0.481, mean of 4 seeds on an H200), a 2x256 box head and a 1-conv 32-channel mask head.
 * (At 96 px it runs 15% faster but reaches less: mask AP 0.43 after 1,800 iterations against 0.50
 * after 1,500 at 128 px, both with a quarter positive; the heads' cost does not grow with the image.)
 * What `node cli/train.js` trains by default, and the demo page's training tab.
 */
const TINY_CPU: DeepPartial<MaskRCNNConfig> = {
  backbone: { stemChannels: 8, stageWidths: [8, 16, 32, 64], gnGroups: 4 },
  fpn: { outChannels: 32 },
  anchors: { sizes: LEVEL_SIZES(12) },
  input: { minSizesTrain: [128], minSizeTest: 128, maxSize: 128 },
  rpn: { batchSizePerImage: 64, preNmsTopNTrain: 200, postNmsTopNTrain: 100, preNmsTopNTest: 200, postNmsTopNTest: 50 },
  roiHeads: { batchSizePerImage: 32, positiveFraction: 0.5, boxHead: { kind: 'two_mlp', representationSize: 256 }, maskHead: { convChannels: [32], predictorChannels: 32, gnGroups: 4 } },
};

const BUILDERS: Record<string, () => MaskRCNNConfig> = {
  'torchvision-r50-fpn': torchvisionR50,
  'torchvision-r101-fpn': () => withOverrides(torchvisionR50(), { name: 'torchvision-r101-fpn', backbone: { depth: 101 } }),
  'detectron2-r50-fpn': () => withOverrides(torchvisionR50(), { ...DETECTRON2, name: 'detectron2-r50-fpn' }),
  'detectron2-r101-fpn': () => withOverrides(withOverrides(torchvisionR50(), DETECTRON2), { name: 'detectron2-r101-fpn', backbone: { depth: 101 } }),
  'detectron2-r50-fpn-gn-scratch': () => withOverrides(withOverrides(torchvisionR50(), DETECTRON2), { ...GN_SCRATCH, name: 'detectron2-r50-fpn-gn-scratch' }),
  'detectron2-r101-fpn-gn-scratch': () =>
    withOverrides(withOverrides(withOverrides(torchvisionR50(), DETECTRON2), GN_SCRATCH), { name: 'detectron2-r101-fpn-gn-scratch', backbone: { depth: 101 } }),
  'torchvision-faster-r50-fpn': () => withOverrides(torchvisionR50(), { name: 'torchvision-faster-r50-fpn', maskOn: false }),
  'torchvision-r50-fpn-v2': () => withOverrides(torchvisionR50(), { ...TORCHVISION_V2, name: 'torchvision-r50-fpn-v2' }),
  'torchvision-x101-32x8d-fpn': () => withOverrides(torchvisionR50(), { ...X101_32X8D, name: 'torchvision-x101-32x8d-fpn' }),
  'detectron2-x101-32x8d-fpn': () => withOverrides(withOverrides(torchvisionR50(), DETECTRON2), { ...DETECTRON2_X101, name: 'detectron2-x101-32x8d-fpn' }),
  tiny: () => withOverrides(torchvisionR50(), { ...TINY, name: 'tiny' }),
  'tiny-cpu': () => withOverrides(withOverrides(torchvisionR50(), TINY), { ...TINY_CPU, name: 'tiny-cpu' }),
  'tiny-bn': () => withOverrides(withOverrides(torchvisionR50(), TINY), { name: 'tiny-bn', backbone: { norm: 'bn' } }),
};

/** Names accepted by getPreset(). */
export function presetNames(): string[] {
  return Object.keys(BUILDERS);
}

/** A fresh copy of a named preset, with optional overrides (e.g. { numClasses: 5 }). */
export function getPreset(name: string, overrides: DeepPartial<MaskRCNNConfig> = {}): MaskRCNNConfig {
  const build = BUILDERS[name];
  if (!build) throw new Error(`unknown preset '${name}'; available: ${presetNames().join(', ')}`);
  const cfg = build();
  validateConfig(cfg);
  return withOverrides(cfg, overrides);
}
