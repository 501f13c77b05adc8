// RoI heads (Girshick 2015; He et al. 2017) as torchvision's roi_heads.py: in training, proposals
// (plus the ground truth) are matched and sampled, pooled with multi-level RoIAlign, and the box
// branch (classification + class-specific regression) and mask branch (per-class 28x28 logits on
// positive RoIs) give three losses; in inference, boxes are decoded per class, thresholded and
// NMS-ed, and masks are predicted for the kept detections.
import { cat, indexSelect, mul, multiScaleRoiAlign, noGrad, withRowCapacity, reshape, roiAlign, sigmoid, softmax, tensor, tidy, zeros, nn, type Rng, type Tensor } from '../engine/index.js';
import { boxes32 } from '../kernels/box-math.js';
import { BELOW_LOW_THRESHOLD, labelsFromMatches, matchPredictions, sampleBalanced } from './matcher.js';
import { FastRCNNConvFCHead, FastRCNNPredictor, MaskRCNNHeads, MaskRCNNPredictor, TwoMLPHead, type BoxHead } from './heads.js';
import { paddedBoxRegressionLoss, binaryCrossEntropyWithLogits, crossEntropy } from './losses.js';
import type { MaskRCNNConfig, PoolerConfig } from './config.js';
import type { TrainTarget } from './rpn.js';

// The host box math in float32, as torchvision computes it (kernels/box-math.ts).
const { batchedNms, boxIou, clipBoxes, decodeBoxes, encodeBoxes, keepLargeBoxes } = boxes32;

export interface MaskTarget extends TrainTarget {
  /** Binary instance masks [G, H, W] at the resized image size (H, W), as float32 0/1. */
  masks: Tensor;
}

export interface Detections {
  /** [D, 4] in the resized image's coordinates, by descending score. */
  boxes: Float32Array;
  scores: Float32Array;
  /** Contiguous class labels (1..K). */
  labels: Int32Array;
  /** Mask probabilities [D, M, M] (M = 28) of each detection's class, before pasting (empty, M = 0, without a mask branch). */
  masks: Float32Array;
  maskSize: number;
}


export class RoIHeads extends nn.Module {
  readonly boxHead: BoxHead;
  readonly boxPredictor: FastRCNNPredictor;
  /** The mask branch; null when the config has maskOn false (Faster R-CNN). */
  readonly maskHead: MaskRCNNHeads | null = null;
  readonly maskPredictor: MaskRCNNPredictor | null = null;

  constructor(private readonly cfg: MaskRCNNConfig) {
    super();
    const h = cfg.roiHeads;
    const C = cfg.fpn.outChannels;
    const res = h.boxPooler.outputSize;
    const boxHead = h.boxHead.kind === 'two_mlp'
      ? new TwoMLPHead(C * res * res, h.boxHead.representationSize)
      : new FastRCNNConvFCHead(C, res, h.boxHead);
    this.boxHead = this.registerModule('box_head', boxHead);
    this.boxPredictor = this.registerModule('box_predictor', new FastRCNNPredictor(h.boxHead.representationSize, cfg.numClasses));
    if (cfg.maskOn) {
      this.maskHead = this.registerModule('mask_head', new MaskRCNNHeads(C, h.maskHead));
      const last = h.maskHead.convChannels[h.maskHead.convChannels.length - 1]!;
      this.maskPredictor = this.registerModule('mask_predictor', new MaskRCNNPredictor(last, h.maskHead.predictorChannels, cfg.numClasses));
    }
  }

  /**
   * RoIAlign of each image's boxes [K, 4], or of rois [K, 5] (batch index, box) in one tensor. Per-image
   * boxes go up as one [K, 5] upload (one buffer whose size follows the total, not one per image).
   */
  private pool(features: readonly Tensor[], boxes: Float32Array[] | Tensor, p: PoolerConfig, scales: number[]): Tensor {
    return tidy(() => {
      const rois = Array.isArray(boxes) ? tensor(roisOf(boxes), [sum(boxes.map((b) => b.length / 4)), 5]) : boxes;
      return multiScaleRoiAlign(features, rois, {
        outputSize: p.outputSize,
        samplingRatio: p.samplingRatio,
        aligned: p.aligned,
        scales,
        mapper: this.cfg.roiHeads.levelMapper,
      });
    });
  }

  /** Class logits [R, C] and box regression [R, 4C] for the given boxes of each image. */
  boxBranch(features: readonly Tensor[], boxes: Float32Array[], scales: number[]): { classLogits: Tensor; boxRegression: Tensor } {
    return tidy(() => this.boxPredictor.forward(this.boxHead.forward(this.pool(features, boxes, this.cfg.roiHeads.boxPooler, scales))));
  }

  /** Mask logits [R, C, 28, 28] for the given boxes of each image (or rois [R, 5] with batch indices). */
  maskBranch(features: readonly Tensor[], boxes: Float32Array[] | Tensor, scales: number[]): Tensor {
    const { maskHead, maskPredictor } = this;
    if (!maskHead || !maskPredictor) throw new Error(`RoI heads: config '${this.cfg.name}' has maskOn false, so there is no mask branch`);
    return tidy(() => maskPredictor.forward(maskHead.forward(this.pool(features, boxes, this.cfg.roiHeads.maskPooler, scales))));
  }

  /** maskBranch(...)[r, labels[r]]: each RoI's mask logits for its label only, [R, M, M] (MaskRCNNPredictor.forwardForLabels). */
  maskLogitsForLabels(features: readonly Tensor[], boxes: Float32Array[] | Tensor, scales: number[], labels: ArrayLike<number>): Tensor {
    const { maskHead, maskPredictor } = this;
    if (!maskHead || !maskPredictor) throw new Error(`RoI heads: config '${this.cfg.name}' has maskOn false, so there is no mask branch`);
    return tidy(() => maskPredictor.forwardForLabels(maskHead.forward(this.pool(features, boxes, this.cfg.roiHeads.maskPooler, scales)), labels));
  }

  /**
   * The three training losses (torchvision fastrcnn_loss and maskrcnn_loss; no loss_mask without a
   * mask branch). Tensors whose size follows the sampled positives are padded with zero-weighted
   * rows, so that steps reuse the same GPU buffers while the losses and gradients are those of the
   * real rows: the box regression rows and the mask targets to the sampler's capacity per image,
   * floor(batchSizePerImage x positiveFraction) (cheap), the mask branch's RoIs to a multiple of
   * MASK_ROWS (its cost grows with the rows: at capacity the default tiny-cpu step took 1.5x the
   * CPU time), with buffers sized for the batch's capacity of positives (withRowCapacity: only the
   * real and padding rows are computed). A mask head with BatchNorm (train-mode statistics over the
   * RoIs, which padding would change) runs on the real rows only (in capacity-sized buffers too).
   */
  losses(features: readonly Tensor[], proposals: Float32Array[], targets: TrainTarget[] | MaskTarget[], scales: number[], rng?: Rng): { loss_classifier: Tensor; loss_box_reg: Tensor; loss_mask?: Tensor } {
    const h = this.cfg.roiHeads;
    if (this.cfg.maskOn && targets.some((t) => !('masks' in t) || !t.masks)) throw new Error(`RoI heads loss: config '${this.cfg.name}' has a mask branch, so every target needs masks`);
    const w = h.boxCoderWeights;
    // Each image's capacity of positives: the sampler's most, or all its candidates if fewer.
    const posCaps: number[] = [];
    // Each image's most sampled RoIs: batchSizePerImage, or all its candidates if fewer.
    const sampleCaps: number[] = [];
    const sampledBoxes: Float32Array[] = [];
    const labels: number[] = [];
    const posRows: number[] = [];
    const posTargets: number[] = [];
    const mask: MaskRois = { image: [], boxes: [], gtIndex: [], labels: [] };
    proposals.forEach((props, n) => {
      const t = targets[n]!;
      const all = h.addGtAsProposals ? concatBoxes(props, t.boxes) : props;
      const P = all.length / 4, G = t.boxes.length / 4;
      let matches: Int32Array;
      let lab: Int32Array;
      if (G === 0) {
        matches = new Int32Array(P).fill(BELOW_LOW_THRESHOLD);
        lab = new Int32Array(P);
      } else {
        matches = matchPredictions(boxIou(t.boxes, all), G, P, { high: h.fgIouThresh, low: h.bgIouThresh, allowLowQualityMatches: false });
        lab = labelsFromMatches(matches, t.labels);
      }
      if (!rng && h.batchSizePerImage < P) throw new Error('RoI heads loss: a random generator is needed to sample proposals');
      const s = sampleBalanced(lab, h.batchSizePerImage, h.positiveFraction, rng!);
      posCaps.push(Math.min(Math.floor(h.batchSizePerImage * h.positiveFraction), P));
      sampleCaps.push(Math.min(h.batchSizePerImage, P));
      const keep = [...s.positive, ...s.negative].sort((a, b) => a - b);
      const boxes = new Float32Array(keep.length * 4);
      const gt = new Float32Array(keep.length * 4);
      const pos: number[] = [];
      keep.forEach((i, k) => {
        boxes.set(all.subarray(4 * i, 4 * i + 4), 4 * k);
        const m = Math.max(matches[i]!, 0);
        if (G > 0) gt.set(t.boxes.subarray(4 * m, 4 * m + 4), 4 * k);
        if (lab[i]! > 0) pos.push(k);
      });
      const encoded = encodeBoxes(gt, boxes, w);
      for (const k of pos) {
        posRows.push(labels.length + k);
        posTargets.push(...encoded.subarray(4 * k, 4 * k + 4));
      }
      keep.forEach((i) => labels.push(lab[i]!));
      sampledBoxes.push(boxes);
      for (const k of pos) {
        mask.image.push(n);
        mask.boxes.push(...boxes.subarray(4 * k, 4 * k + 4));
        mask.gtIndex.push(Math.max(matches[keep[k]!]!, 0));
        mask.labels.push(lab[keep[k]!]!);
      }
    });
    const S = labels.length;
    const C = this.cfg.numClasses;
    // The box branch's S sampled rows (fewer than the sampler's most when an image has few
    // negatives) get buffers for the sampler's most, as the mask branch's (maskLoss).
    const boxRows = { rows: S, capacity: Math.max(S, sum(sampleCaps)) };
    return withRowCapacity(boxRows, () => tidy(() => {
      const { classLogits, boxRegression } = this.boxBranch(features, sampledBoxes, scales);
      const labelT = tensor(Int32Array.from(labels), [S], 'int32');
      const loss_classifier = crossEntropy(classLogits, labelT);
      const rows = posRows.map((k) => k * C + labels[k]!);
      const loss_box_reg = paddedBoxRegressionLoss(reshape(boxRegression, [S * C, 4]), rows, posTargets, sum(posCaps), h.boxLoss, Math.max(S, 1));
      if (!this.cfg.maskOn) return { loss_classifier, loss_box_reg };
      const loss_mask = this.maskLoss(features, mask, targets as MaskTarget[], scales, posCaps);
      return { loss_classifier, loss_box_reg, loss_mask };
    }));
  }

  /**
   * BCE between each positive RoI's logits for its class and its gt mask cropped by RoIAlign, the
   * mean over the real rows. The RoIs are padded to a multiple of MASK_ROWS (not past the images'
   * capacities `posCaps`) with a box of image 0 and class 0, weighing 0; without a BatchNorm head.
   */
  private maskLoss(features: readonly Tensor[], rois: MaskRois, targets: MaskTarget[], scales: number[], posCaps: number[]): Tensor {
    const h = this.cfg.roiHeads;
    const P = rois.labels.length;
    const R = h.maskHead.norm === 'bn' ? P : Math.max(P, Math.min(sum(posCaps), this.maskBucket(P, posCaps)));
    // The tensors of R rows (forward and backward) get buffers for the batch's most positives (the
    // images' capacities, from their candidates: not N x the sampler's most, which may be huge), so a
    // step with more positives than any before creates no buffer (engine/alloc-hints.ts).
    const capacity = Math.max(R, sum(posCaps));
    return withRowCapacity({ rows: R, capacity }, () => this.paddedMaskLoss(features, rois, targets, scales, posCaps, R));
  }

  /**
   * The padded row count for P positives: the next multiple of MASK_ROWS that is not the leading
   * size of a mask-branch parameter. withRowCapacity enlarges every tensor of R leading rows made in
   * the branch and its backward, so R = 32 with a [32, 256, 3, 3] conv weight would give that
   * weight's gradient a capacity-sized buffer on some steps and not others (buffers created late).
   */
  private maskBucket(P: number, posCaps: readonly number[]): number {
    const paramRows = new Set([...this.maskHead!.parameters(), ...this.maskPredictor!.parameters()].map((t) => t.shape[0]));
    for (const c of posCaps) paramRows.add(c); // the gt-mask targets' per-image tensors (cat'ed) have these rows
    let R = Math.ceil(Math.max(P, 1) / MASK_ROWS) * MASK_ROWS;
    while (paramRows.has(R)) R += MASK_ROWS;
    return R;
  }

  /** maskLoss over R >= P rows (the positives, then padding rows). */
  private paddedMaskLoss(features: readonly Tensor[], rois: MaskRois, targets: MaskTarget[], scales: number[], posCaps: number[], R: number): Tensor {
    const P = rois.labels.length;
    const boxes = new Float32Array(R * 5);
    const labels = new Array<number>(R).fill(0);
    // Row of each RoI in the per-image targets below (image n's k-th positive: first[n] + k).
    const first = posCaps.map((_, n) => sum(posCaps.slice(0, n)));
    const targetRow = new Int32Array(R);
    const seen = posCaps.map(() => 0);
    for (let r = 0; r < R; r++) {
      if (r < P) {
        const n = rois.image[r]!;
        boxes[5 * r] = n;
        boxes.set(rois.boxes.slice(4 * r, 4 * r + 4), 5 * r + 1);
        labels[r] = rois.labels[r]!;
        targetRow[r] = first[n]! + seen[n]!++;
      } else boxes.set(PAD_BOX, 5 * r + 1);
    }
    const picked = this.maskLogitsForLabels(features, tensor(boxes, [R, 5]), scales, labels);
    const M = picked.shape[2]!;
    if (R === 0) return tidy(() => reshape(picked, [-1]).sum().mul(0));
    // torchvision project_masks_on_boxes: roi_align over the gt masks with the matched gt as batch
    // index; per image at its capacity of rows (gt 0 and a corner box past the real ones). Outside
    // the row capacity: these tensors have the images' capacities as rows, whatever R is.
    const mt = noGrad(() =>
      tidy(() => {
        const parts = withRowCapacity(null, () => targets.map((t, n) => {
          const masks = t.masks;
          const posCap = posCaps[n]!;
          if (masks.shape[0] === 0) return zeros([posCap, M, M]);
          const gtRois = new Float32Array(posCap * 5);
          for (let k = 0; k < posCap; k++) gtRois.set(PAD_BOX, 5 * k + 1);
          for (let r = 0, k = 0; r < P; r++) {
            if (rois.image[r] !== n) continue;
            gtRois[5 * k] = rois.gtIndex[r]!;
            gtRois.set(rois.boxes.slice(4 * r, 4 * r + 4), 5 * k + 1);
            k++;
          }
          const pooled = roiAlign(reshape(masks, [masks.shape[0]!, 1, masks.shape[1]!, masks.shape[2]!]), tensor(gtRois, [posCap, 5]), { outputSize: M, spatialScale: 1, samplingRatio: -1, aligned: false });
          return reshape(pooled, [posCap, M, M]);
        }));
        return indexSelect(cat(parts, 0), 0, tensor(targetRow, [R], 'int32'));
      }),
    );
    // One path whether or not there are padding rows (P < R), so that every step runs the same ops
    // on the same buffers: the per-element terms weighed by row (0 for padding), and 'mean' over the
    // real rows as pointLoss takes it (the sum times the reciprocal); 0 without any.
    return tidy(() => {
      const weight = Float32Array.from({ length: R }, (_, r) => (r < P ? 1 : 0));
      const per = mul(binaryCrossEntropyWithLogits(picked, mt, 'none'), tensor(weight, [R, 1, 1]));
      return mul(per.sum(), P === 0 ? 0 : 1 / (P * M * M));
    });
  }

  /** Inference: detections per image (torchvision postprocess_detections + maskrcnn_inference). */
  async detect(features: readonly Tensor[], proposals: Float32Array[], imageSizes: [number, number][], scales: number[]): Promise<Detections[]> {
    const h = this.cfg.roiHeads;
    const C = this.cfg.numClasses;
    const w = h.boxCoderWeights;
    const { probs, regression } = noGrad(() =>
      tidy(() => {
        const { classLogits, boxRegression } = this.boxBranch(features, proposals, scales);
        return { probs: softmax(classLogits, -1), regression: boxRegression };
      }),
    );
    const [scoresHost, regHost] = await Promise.all([probs.floatData(), regression.floatData()]);
    probs.dispose();
    regression.dispose();
    const results: Detections[] = [];
    let offset = 0;
    for (let n = 0; n < proposals.length; n++) {
      const props = proposals[n]!;
      const R = props.length / 4;
      const boxes = clipBoxes(decodeBoxes(regHost.subarray(offset * 4 * C, (offset + R) * 4 * C), props, w, C), ...imageSizes[n]!);
      const scores = scoresHost.subarray(offset * C, (offset + R) * C);
      offset += R;
      // Candidates: every (proposal, foreground class) over the score threshold, in row-major order.
      const cand: number[] = [];
      const classOf = new Int32Array(R * C);
      for (let r = 0; r < R; r++) for (let c = 1; c < C; c++) {
        const k = r * C + c;
        classOf[k] = c;
        if (scores[k]! > h.scoreThresh) cand.push(k);
      }
      const large = new Set(keepLargeBoxes(boxes, 1e-2));
      const keep = batchedNms(boxes, scores, classOf, h.nmsThresh, cand.filter((k) => large.has(k))).slice(0, h.detectionsPerImage);
      results.push({
        boxes: Float32Array.from(keep.flatMap((k) => Array.from(boxes.subarray(4 * k, 4 * k + 4)))),
        scores: Float32Array.from(keep.map((k) => scores[k]!)),
        labels: Int32Array.from(keep.map((k) => classOf[k]!)),
        masks: new Float32Array(0),
        maskSize: 0,
      });
    }
    if (this.cfg.maskOn) await this.predictMasks(features, results, scales);
    return results;
  }

  private async predictMasks(features: readonly Tensor[], dets: Detections[], scales: number[]): Promise<void> {
    const D = dets.reduce((a, d) => a + d.labels.length, 0);
    if (D === 0) return;
    const probs = noGrad(() =>
      tidy(() => {
        const labels = dets.flatMap((d) => Array.from(d.labels));
        return sigmoid(this.maskLogitsForLabels(features, dets.map((d) => d.boxes), scales, labels));
      }),
    );
    const M = probs.shape[1]!;
    const host = await probs.floatData();
    probs.dispose();
    let at = 0;
    for (const d of dets) {
      const n = d.labels.length;
      d.masks = host.slice(at * M * M, (at + n) * M * M);
      d.maskSize = M;
      at += n;
    }
  }
}

/** The positive RoIs of a batch, for the mask branch: image, box (4 numbers), matched gt and class of each. */
interface MaskRois {
  image: number[];
  boxes: number[];
  gtIndex: number[];
  labels: number[];
}

/** The mask branch's RoIs are padded to a multiple of this many rows (see RoIHeads.losses). */
const MASK_ROWS = 8;

const sum = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0);

/** The box of padding RoIs: a small box in the image's corner. */
const PAD_BOX = [0, 0, 1, 1];

/** Per-image [L_i x 4] boxes as [K x 5] rois (batch index, box), K = sum of L_i. */
function roisOf(boxes: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(sum(boxes.map((b) => b.length / 4)) * 5);
  let row = 0;
  boxes.forEach((b, n) => {
    for (let k = 0; k < b.length / 4; k++, row++) {
      out[5 * row] = n;
      out.set(b.subarray(4 * k, 4 * k + 4), 5 * row + 1);
    }
  });
  return out;
}

function concatBoxes(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
