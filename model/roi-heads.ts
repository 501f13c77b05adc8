// RoI heads (Girshick 2015; He et al. 2017) as torchvision's roi_heads.py: in training, proposals
// (plus the ground truth) are matched and sampled, pooled with multi-level RoIAlign, and the box
// branch (classification + class-specific regression) and mask branch (per-class 28x28 logits on
// positive RoIs) give three losses; in inference, boxes are decoded per class, thresholded and
// NMS-ed, and masks are predicted for the kept detections.
import { cat, indexSelect, multiScaleRoiAlign, noGrad, reshape, roiAlign, sigmoid, softmax, tensor, tidy, nn, type Rng, type Tensor } from '../engine/index.js';
import { boxes32 } from '../kernels/box-math.js';
import { BELOW_LOW_THRESHOLD, labelsFromMatches, matchPredictions, sampleBalanced } from './matcher.js';
import { FastRCNNConvFCHead, FastRCNNPredictor, MaskRCNNHeads, MaskRCNNPredictor, TwoMLPHead, type BoxHead } from './heads.js';
import { boxRegressionLoss, binaryCrossEntropyWithLogits, crossEntropy, selectClassChannel } from './losses.js';
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

  private pool(features: readonly Tensor[], boxes: Float32Array[], p: PoolerConfig, scales: number[]): Tensor {
    return tidy(() => {
      const list = boxes.map((b) => tensor(b, [b.length / 4, 4]));
      return multiScaleRoiAlign(features, list, {
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

  /** Mask logits [R, C, 28, 28] for the given boxes of each image. */
  maskBranch(features: readonly Tensor[], boxes: Float32Array[], scales: number[]): Tensor {
    const { maskHead, maskPredictor } = this;
    if (!maskHead || !maskPredictor) throw new Error(`RoI heads: config '${this.cfg.name}' has maskOn false, so there is no mask branch`);
    return tidy(() => maskPredictor.forward(maskHead.forward(this.pool(features, boxes, this.cfg.roiHeads.maskPooler, scales))));
  }

  /** The three training losses (torchvision fastrcnn_loss and maskrcnn_loss; no loss_mask without a mask branch). */
  losses(features: readonly Tensor[], proposals: Float32Array[], targets: TrainTarget[] | MaskTarget[], scales: number[], rng?: Rng): { loss_classifier: Tensor; loss_box_reg: Tensor; loss_mask?: Tensor } {
    const h = this.cfg.roiHeads;
    if (this.cfg.maskOn && targets.some((t) => !('masks' in t) || !t.masks)) throw new Error(`RoI heads loss: config '${this.cfg.name}' has a mask branch, so every target needs masks`);
    const w = h.boxCoderWeights;
    const sampledBoxes: Float32Array[] = [];
    const labels: number[] = [];
    const regTargets: number[] = [];
    const maskBoxes: Float32Array[] = [];
    const maskGt: number[][] = [];
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
      const keep = [...s.positive, ...s.negative].sort((a, b) => a - b);
      const boxes = new Float32Array(keep.length * 4);
      const gt = new Float32Array(keep.length * 4);
      const pos: number[] = [];
      keep.forEach((i, k) => {
        boxes.set(all.subarray(4 * i, 4 * i + 4), 4 * k);
        const m = Math.max(matches[i]!, 0);
        if (G > 0) gt.set(t.boxes.subarray(4 * m, 4 * m + 4), 4 * k);
        labels.push(lab[i]!);
        if (lab[i]! > 0) pos.push(k);
      });
      sampledBoxes.push(boxes);
      regTargets.push(...encodeBoxes(gt, boxes, w));
      maskBoxes.push(Float32Array.from(pos.flatMap((k) => Array.from(boxes.subarray(4 * k, 4 * k + 4)))));
      maskGt.push(pos.map((k) => Math.max(matches[keep[k]!]!, 0)));
    });
    const S = labels.length;
    const C = this.cfg.numClasses;
    const posRows = labels.flatMap((l, k) => (l > 0 ? [k] : []));
    const posLabels = posRows.map((k) => labels[k]!);
    return tidy(() => {
      const { classLogits, boxRegression } = this.boxBranch(features, sampledBoxes, scales);
      const labelT = tensor(Int32Array.from(labels), [S], 'int32');
      const loss_classifier = crossEntropy(classLogits, labelT);
      const rows = tensor(Int32Array.from(posRows.map((k, j) => k * C + posLabels[j]!)), [posRows.length], 'int32');
      const pred = indexSelect(reshape(boxRegression, [S * C, 4]), 0, rows);
      const target = noGrad(() => indexSelect(tensor(Float32Array.from(regTargets), [S, 4]), 0, tensor(Int32Array.from(posRows), [posRows.length], 'int32')));
      const loss_box_reg = boxRegressionLoss(pred, target, h.boxLoss, Math.max(S, 1));
      if (!this.cfg.maskOn) return { loss_classifier, loss_box_reg };
      const loss_mask = this.maskLoss(features, maskBoxes, maskGt, targets as MaskTarget[], posLabels, scales);
      return { loss_classifier, loss_box_reg, loss_mask };
    });
  }

  /** BCE between each positive RoI's logits for its class and its gt mask cropped by RoIAlign. */
  private maskLoss(features: readonly Tensor[], boxes: Float32Array[], gtIndex: number[][], targets: MaskTarget[], labels: number[], scales: number[]): Tensor {
    const P = labels.length;
    const logits = this.maskBranch(features, boxes, scales);
    const M = logits.shape[3]!;
    if (P === 0) return tidy(() => reshape(logits, [-1]).sum().mul(0));
    const picked = selectClassChannel(logits, labels);
    // torchvision project_masks_on_boxes: roi_align over the gt masks with the matched gt as batch index.
    const mt = noGrad(() =>
      tidy(() => {
        const parts = boxes.map((b, n) => {
          const rois = Float32Array.from(gtIndex[n]!.flatMap((g, k) => [g, ...Array.from(b.subarray(4 * k, 4 * k + 4))]));
          const masks = targets[n]!.masks;
          const pooled = roiAlign(reshape(masks, [masks.shape[0]!, 1, masks.shape[1]!, masks.shape[2]!]), tensor(rois, [rois.length / 5, 5]), { outputSize: M, spatialScale: 1, samplingRatio: -1, aligned: false });
          return reshape(pooled, [-1, M, M]);
        });
        return cat(parts, 0);
      }),
    );
    return binaryCrossEntropyWithLogits(picked, mt, 'mean');
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
    const C = this.cfg.numClasses;
    const probs = noGrad(() =>
      tidy(() => {
        const logits = this.maskBranch(features, dets.map((d) => d.boxes), scales);
        const M = logits.shape[3]!;
        const labels = dets.flatMap((d) => Array.from(d.labels));
        const rows = tensor(Int32Array.from(labels.map((l, r) => r * C + l)), [D], 'int32');
        return sigmoid(indexSelect(reshape(logits, [D * C, M, M]), 0, rows));
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

function concatBoxes(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
