// Mask R-CNN (He et al. 2017) as torchvision's GeneralizedRCNN: backbone + FPN, RPN, RoI heads
// (without the mask branch when cfg.maskOn is false: torchvision's FasterRCNN),
// with the state-dict layout `backbone.*`, `rpn.*`, `roi_heads.*`. Images are prepared on the host
// (data/transforms: normalise, resize, pad to a multiple of 32); training returns the five losses,
// inference returns detections in the original image's coordinates with pasted masks.
import { inferScales, noGrad, tensor, nn, type Rng, type Tensor } from '../engine/index.js';
import type { RgbImage } from '../data/image.js';
import { batchImages, transformSample, type TransformConfig } from '../data/transforms.js';
import { BackboneWithFPN, FEATURE_NAMES } from './backbone.js';
import { RegionProposalNetwork, type ImageBatchInfo, type TrainTarget } from './rpn.js';
import { RoIHeads, type MaskTarget } from './roi-heads.js';
import { pasteMasks, rescaleBoxes } from './postprocess.js';
import type { MaskRCNNConfig } from './config.js';

export interface PreparedBatch {
  /** Normalised, padded images [N, 3, H, W]. */
  images: Tensor;
  info: ImageBatchInfo;
  /** Each image's size before resizing (H, W). */
  originalSizes: [number, number][];
}

export interface Detection {
  /** [D, 4] x1, y1, x2, y2 in original image pixels, by descending score. */
  boxes: Float32Array;
  scores: Float32Array;
  /** Contiguous class labels 1..K (map to dataset category ids with the dataset's table). */
  labels: Int32Array;
  /** Mask probabilities [D, H, W] at the original image size (empty for a model without masks). */
  masks: Float32Array;
  height: number;
  width: number;
}

/** The five training losses, in torchvision's order (the order they are logged and summed in). */
export const LOSS_TERMS = ['loss_objectness', 'loss_rpn_box_reg', 'loss_classifier', 'loss_box_reg', 'loss_mask'] as const;
export type LossTerm = (typeof LOSS_TERMS)[number];
/** loss_mask is absent for a model without a mask branch (cfg.maskOn false: Faster R-CNN). */
export type LossDict = Omit<Record<LossTerm, Tensor>, 'loss_mask'> & { loss_mask?: Tensor };

export class MaskRCNN extends nn.Module {
  readonly backbone: BackboneWithFPN;
  readonly rpn: RegionProposalNetwork;
  readonly roiHeads: RoIHeads;

  constructor(readonly cfg: MaskRCNNConfig) {
    super();
    this.backbone = this.registerModule('backbone', new BackboneWithFPN(cfg));
    this.rpn = this.registerModule('rpn', new RegionProposalNetwork(cfg));
    this.roiHeads = this.registerModule('roi_heads', new RoIHeads(cfg));
  }

  /** The transform settings of this model for training or evaluation. */
  transformConfig(train: boolean): TransformConfig {
    const i = this.cfg.input;
    return {
      minSizes: train ? i.minSizesTrain : [i.minSizeTest],
      maxSize: i.maxSize,
      rounding: i.rounding,
      normalization: i.normalization,
      flipProb: train ? i.flipProb : 0,
      train,
    };
  }

  /** Decoded RGB images -> the model's input batch (evaluation transform). */
  prepare(images: RgbImage[], rng: Rng): PreparedBatch {
    const cfg = this.transformConfig(false);
    const samples = images.map((image, k) =>
      transformSample({ imageId: k, image, boxes: new Float32Array(0), labels: new Int32Array(0) }, cfg, rng),
    );
    const b = batchImages(samples, this.cfg.input.sizeDivisible);
    return {
      images: tensor(b.images, b.shape),
      info: { paddedSize: [b.shape[2], b.shape[3]], imageSizes: b.imageSizes },
      originalSizes: samples.map((s) => [s.origHeight, s.origWidth]),
    };
  }

  /** Pyramid features in level order (P2..P6). */
  features(images: Tensor): Tensor[] {
    const map = this.backbone.forward(images);
    return FEATURE_NAMES.map((n) => map.get(n)!);
  }

  /** RoIAlign scales of P2..P5 from the feature sizes and the largest unpadded image (torchvision). */
  roiScales(features: readonly Tensor[], info: ImageBatchInfo): number[] {
    const maxH = Math.max(...info.imageSizes.map((s) => s[0]));
    const maxW = Math.max(...info.imageSizes.map((s) => s[1]));
    return inferScales(features.slice(0, 4).map((f) => f.shape), [maxH, maxW]);
  }

  /** The five training losses for a batch with its targets (in the resized images' coordinates). */
  async losses(batch: PreparedBatch, targets: MaskTarget[] | TrainTarget[], rng: Rng): Promise<LossDict> {
    if (targets.length !== batch.info.imageSizes.length) throw new Error(`losses: ${targets.length} targets for ${batch.info.imageSizes.length} images`);
    const features = this.features(batch.images);
    try {
      const rpn = await this.rpn.forward(features, batch.info, targets, rng);
      const heads = this.roiHeads.losses(features.slice(0, 4), rpn.proposals, targets, this.roiScales(features, batch.info), rng);
      return { ...rpn.losses!, ...heads };
    } finally {
      features.forEach((f) => f.dispose());
    }
  }

  /** Detections for every image of the batch, in original image coordinates. */
  async detect(batch: PreparedBatch): Promise<Detection[]> {
    const features = noGrad(() => this.features(batch.images));
    try {
      const rpn = await noGrad(() => this.rpn.forward(features, batch.info));
      const dets = await noGrad(() => this.roiHeads.detect(features.slice(0, 4), rpn.proposals, batch.info.imageSizes, this.roiScales(features, batch.info)));
      return dets.map((d, n) => {
        const [h, w] = batch.originalSizes[n]!;
        const boxes = rescaleBoxes(d.boxes, batch.info.imageSizes[n]!, [h, w]);
        return { boxes, scores: d.scores, labels: d.labels, masks: d.maskSize > 0 ? pasteMasks(d.masks, d.maskSize, boxes, h, w) : new Float32Array(0), height: h, width: w };
      });
    } finally {
      features.forEach((f) => f.dispose());
    }
  }
}
