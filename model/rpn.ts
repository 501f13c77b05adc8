// Region Proposal Network (Ren et al. 2015) as torchvision's rpn.py: a shared head over the pyramid
// levels predicts an objectness logit and 4 box deltas per anchor; the deltas decode anchors into
// proposals, which are filtered per level (top-k), clipped, thinned by NMS and cut to the top-N.
// The filtering runs on the GPU at a fixed capacity (rpn-proposals.ts); only its small padded
// result is read back, late, for the RoI heads' host-side matching and sampling.
import { cat, conv2d, flattenWindows, indexSelect, keep, noGrad, permute, reshape, slice, tensor, tidy, tile2d, nn, type Rng, type Tensor, type Window } from '../engine/index.js';
import { AnchorCache, anchorsPerLocation, type LevelGrid } from './anchors.js';
import { boxes32 } from '../kernels/box-math.js';
import { packProposals, selectProposals, unpackProposals } from './rpn-proposals.js';
import { labelsFromMatches, matchPredictions, sampleBalanced } from './matcher.js';
import { paddedBoxRegressionLoss, binaryCrossEntropyWithLogits } from './losses.js';
import type { MaskRCNNConfig, RpnConfig } from './config.js';

// The host box math in float32, as torchvision computes it (kernels/box-math.ts).
const { boxIou, encodeBoxes } = boxes32;

const RPN_INIT = { kind: 'normal', std: 0.01 } as const;

/** Conv2dNormActivation(in, in, 3, norm_layer=None): a Sequential holding the conv as child '0'. */
class ConvRelu extends nn.Sequential {
  constructor(channels: number) {
    super(new nn.Conv2d(channels, channels, 3, { padding: 1, init: RPN_INIT }));
  }

  override forward(x: Tensor): Tensor {
    return (this.at(0) as nn.Conv2d).forward(x, 'relu');
  }
}

/** torchvision RPNHead: conv(3x3)+relu, then cls_logits (A) and bbox_pred (4A) 1x1 convs. */
export class RPNHead extends nn.Module {
  readonly conv: nn.Sequential;
  readonly clsLogits: nn.Conv2d;
  readonly bboxPred: nn.Conv2d;

  constructor(inChannels: number, numAnchors: number, convDepth = 1) {
    super();
    this.conv = this.registerModule('conv', new nn.Sequential(...Array.from({ length: convDepth }, () => new ConvRelu(inChannels))));
    this.clsLogits = this.registerModule('cls_logits', new nn.Conv2d(inChannels, numAnchors, 1, { init: RPN_INIT }));
    this.bboxPred = this.registerModule('bbox_pred', new nn.Conv2d(inChannels, numAnchors * 4, 1, { init: RPN_INIT }));
  }

  /**
   * Both predictions of every level, flattened as flattenPredictions does, and (for inspection) the
   * per-level maps. With one conv before the predictors (torchvision's RPNHead) the levels run
   * packed into one canvas, 1 pixel of zeros between them (the 3x3 conv's padding): each conv is one
   * dispatch for all levels instead of one per level, its weight gradient one sum, not five.
   */
  predict(features: readonly Tensor[]): { objectness: Tensor; deltas: Tensor; levels: { objectness: Tensor[]; deltas: Tensor[] } } {
    if (this.conv.length !== 1 || features.length < 2) {
      const levels = this.forward(features);
      return { ...flattenPredictions(levels.objectness, levels.deltas), levels };
    }
    return tidy(() => {
      const { windows, height, width } = packLevels(features.map((f) => [f.shape[2]!, f.shape[3]!]));
      const t = this.conv.forward(tile2d(features, windows, height, width));
      // cls_logits and bbox_pred are two 1x1 convs of t: run as one with their weights stacked
      // (A objectness channels, then 4A delta channels), so t's gradient is one sum, not two.
      const { clsLogits: c, bboxPred: b } = this;
      const both = conv2d(t, cat([c.weight, b.weight], 0), cat([c.bias!, b.bias!], 0));
      const A = c.outChannels, N = both.shape[0]!;
      const flat = flattenWindows(both, windows);
      const obj = slice(both, 1, 0, A), del = slice(both, 1, A, 5 * A);
      const at = (x: Tensor, w: Window): Tensor => slice(slice(x, 2, w.top, w.top + w.height), 3, w.left, w.left + w.width);
      return {
        objectness: reshape(permute(slice(flat, 1, 0, A), [0, 2, 1]), [N, -1]),
        deltas: reshape(permute(reshape(slice(flat, 1, A, 5 * A), [N, A, 4, -1]), [0, 3, 1, 2]), [N, -1, 4]),
        levels: { objectness: windows.map((w) => at(obj, w)), deltas: windows.map((w) => at(del, w)) },
      };
    });
  }

  /** Per level: objectness [N, A, H, W] and deltas [N, 4A, H, W]. */
  forward(features: readonly Tensor[]): { objectness: Tensor[]; deltas: Tensor[] } {
    const objectness: Tensor[] = [];
    const deltas: Tensor[] = [];
    for (const f of features) {
      const t = this.conv.forward(f);
      objectness.push(this.clsLogits.forward(t));
      deltas.push(this.bboxPred.forward(t));
      t.dispose();
    }
    return { objectness, deltas };
  }
}

/**
 * Windows of a canvas holding maps of the given [H, W] sizes with at least one zero row/column
 * between any two: the first at the top left, the others left to right in a row below it.
 */
export function packLevels(sizes: readonly (readonly [number, number])[]): { windows: Window[]; height: number; width: number } {
  const [H0, W0] = sizes[0]!;
  const windows: Window[] = [{ top: 0, left: 0, height: H0, width: W0 }];
  let left = 0, below = 0;
  for (const [h, w] of sizes.slice(1)) {
    windows.push({ top: H0 + 1, left, height: h, width: w });
    left += w + 1;
    below = Math.max(below, h);
  }
  return { windows, height: sizes.length > 1 ? H0 + 1 + below : H0, width: Math.max(W0, left - 1) };
}

/**
 * Objectness [N, A, H, W] per level -> [N, sum(H*W*A)]; deltas [N, 4A, H, W] -> [N, sum, 4], in
 * torchvision's order (level, then pixel, then anchor). The levels are joined along their pixels
 * first ([N, A, sum(H*W)], views in, one copy each) and permuted once, so the whole takes one copy
 * per level and one for the permute, rather than a permute copy and a join copy per level.
 */
export function flattenPredictions(objectness: readonly Tensor[], deltas: readonly Tensor[]): { objectness: Tensor; deltas: Tensor } {
  return tidy(() => {
    const pixels = (t: Tensor, lead: number[]): Tensor => reshape(t, [...lead, t.shape[2]! * t.shape[3]!]);
    const [N, A] = objectness[0]!.shape as [number, number];
    const obj = cat(objectness.map((o) => pixels(o, [N, A])), 2);
    const del = cat(deltas.map((d) => pixels(d, [N, A, 4])), 3);
    return { objectness: reshape(permute(obj, [0, 2, 1]), [N, -1]), deltas: reshape(permute(del, [0, 3, 1, 2]), [N, -1, 4]) };
  });
}

export interface ImageBatchInfo {
  /** Padded batch size (H, W) of the input tensor. */
  paddedSize: [number, number];
  /** Each image's size after resizing, before padding (H, W). */
  imageSizes: [number, number][];
}

export interface TrainTarget {
  /** Ground-truth boxes [G, 4] (x1, y1, x2, y2) in the resized image's coordinates. */
  boxes: Float32Array;
  /** Contiguous class labels 1..K, one per box. */
  labels: Int32Array;
}

export interface RpnOutput {
  /** Per image: proposals [P, 4] sorted by objectness, and their probabilities. */
  proposals: Float32Array[];
  scores: Float32Array[];
  losses?: { loss_objectness: Tensor; loss_rpn_box_reg: Tensor };
}

export class RegionProposalNetwork extends nn.Module {
  readonly head: RPNHead;
  private readonly anchorCache: AnchorCache;
  private anchorsOnGpu?: { host: Float32Array; tensor: Tensor };

  constructor(private readonly cfg: MaskRCNNConfig) {
    super();
    const A = anchorsPerLocation(cfg.anchors)[0]!;
    this.head = this.registerModule('head', new RPNHead(cfg.fpn.outChannels, A, cfg.rpn.convDepth));
    this.anchorCache = new AnchorCache(cfg.anchors);
  }

  /** Anchors [R, 4] for the pyramid levels of a batch (the same for every image of the batch). */
  anchorsFor(features: readonly Tensor[], info: ImageBatchInfo): { anchors: Float32Array; perLevel: number[] } {
    const grids: LevelGrid[] = features.map((f) => ({ height: f.shape[2]!, width: f.shape[3]! }));
    const anchors = this.anchorCache.get(grids, info.paddedSize[0], info.paddedSize[1]);
    const A = anchorsPerLocation(this.cfg.anchors);
    return { anchors, perLevel: grids.map((g, l) => g.height * g.width * A[l]!) };
  }

  /**
   * Proposals for every image; with `targets` (training) also the two RPN losses. `rng` drives the
   * anchor sampler. The head's raw outputs are returned through `raw` for inspection/parity.
   */
  async forward(
    features: readonly Tensor[],
    info: ImageBatchInfo,
    targets?: TrainTarget[],
    rng?: Rng,
    raw?: { objectness?: Tensor[]; deltas?: Tensor[] },
  ): Promise<RpnOutput> {
    const r: RpnConfig = this.cfg.rpn;
    const { levels: head, ...flat } = this.head.predict(features);
    if (raw) {
      raw.objectness = head.objectness;
      raw.deltas = head.deltas;
    } else {
      head.objectness.forEach((t) => t.dispose());
      head.deltas.forEach((t) => t.dispose());
    }
    const { anchors, perLevel } = this.anchorsFor(features, info);
    const training = targets !== undefined;
    const K = training ? r.postNmsTopNTrain : r.postNmsTopNTest;
    // The selection is encoded on the GPU and its small padded result read back late: the host
    // encodes the RPN losses meanwhile and waits (if the GPU is not done) only when it needs them.
    const pending = noGrad(() =>
      tidy(() => {
        const sel = selectProposals(flat.objectness, flat.deltas, this.anchorTensor(anchors), perLevel, info.imageSizes, {
          preNmsTopN: training ? r.preNmsTopNTrain : r.preNmsTopNTest,
          postNmsTopN: K,
          nmsThresh: r.nmsThresh,
          minSize: r.minSize,
          scoreThresh: r.scoreThresh,
          weights: r.boxCoderWeights,
        });
        return packProposals(sel).dataLater();
      }),
    );
    let losses: RpnOutput['losses'];
    if (targets) losses = this.losses(flat.objectness, flat.deltas, anchors, targets, rng);
    flat.objectness.dispose();
    flat.deltas.dispose();
    return { ...unpackProposals((await pending.result()) as Float32Array, info.imageSizes.length, K), losses };
  }

  /** The anchors on the GPU, uploaded once per anchor set (the batch's padded size and levels). */
  private anchorTensor(anchors: Float32Array): Tensor {
    if (this.anchorsOnGpu?.host !== anchors) {
      this.anchorsOnGpu?.tensor.dispose();
      this.anchorsOnGpu = { host: anchors, tensor: keep(tensor(anchors, [anchors.length / 4, 4])) };
    }
    return this.anchorsOnGpu.tensor;
  }

  /** torchvision RegionProposalNetwork.compute_loss over sampled anchors of every image. */
  private losses(objectness: Tensor, deltas: Tensor, anchors: Float32Array, targets: TrainTarget[], rng?: Rng): NonNullable<RpnOutput['losses']> {
    const r = this.cfg.rpn;
    const R = anchors.length / 4;
    const weights = r.boxCoderWeights;
    const sampled: number[] = [];
    const sampledLabels: number[] = [];
    const positive: number[] = [];
    const regTargets: number[] = [];
    targets.forEach((t, n) => {
      const G = t.boxes.length / 4;
      let labels: Int32Array;
      let matches: Int32Array | null = null;
      if (G === 0) {
        labels = new Int32Array(R); // all background
      } else {
        matches = matchPredictions(boxIou(t.boxes, anchors), G, R, {
          high: r.fgIouThresh,
          low: r.bgIouThresh,
          allowLowQualityMatches: true,
          style: this.cfg.anchors.style,
        });
        labels = labelsFromMatches(matches);
      }
      if (!rng && r.batchSizePerImage < R) throw new Error('RPN loss: a random generator is needed to sample anchors');
      const s = sampleBalanced(labels, r.batchSizePerImage, r.positiveFraction, rng!);
      const all = [...s.positive, ...s.negative].sort((a, b) => a - b);
      for (const i of all) {
        sampled.push(n * R + i);
        sampledLabels.push(labels[i]! >= 1 ? 1 : 0);
      }
      if (s.positive.length && matches) {
        const gt = new Float32Array(s.positive.length * 4);
        const ref = new Float32Array(s.positive.length * 4);
        s.positive.forEach((i, k) => {
          gt.set(t.boxes.subarray(4 * matches![i]!, 4 * matches![i]! + 4), 4 * k);
          ref.set(anchors.subarray(4 * i, 4 * i + 4), 4 * k);
          positive.push(n * R + i);
        });
        regTargets.push(...encodeBoxes(gt, ref, weights));
      }
    });
    return tidy(() => {
      const objFlat = reshape(objectness, [-1]);
      const delFlat = reshape(deltas, [-1, 4]);
      const idx = tensor(Int32Array.from(sampled), [sampled.length], 'int32');
      const logits = indexSelect(objFlat, 0, idx);
      const labels = tensor(Float32Array.from(sampledLabels), [sampledLabels.length]);
      const loss_objectness = binaryCrossEntropyWithLogits(logits, labels, 'mean');
      // Positives at their capacity (the sampler's most per image): the same shapes every step.
      const capacity = targets.length * Math.min(Math.floor(r.batchSizePerImage * r.positiveFraction), R);
      const loss_rpn_box_reg = paddedBoxRegressionLoss(delFlat, positive, regTargets, capacity, r.boxLoss, Math.max(sampled.length, 1));
      return { loss_objectness, loss_rpn_box_reg };
    });
  }
}
