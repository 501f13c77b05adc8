// The RPN's proposal selection (torchvision RegionProposalNetwork.filter_proposals) on the GPU at a
// fixed capacity: per image and level the pre-NMS top-k anchors by objectness logit, their boxes
// decoded, clipped to the image, small and low-scored ones marked invalid, batched NMS per level,
// and the post-NMS top-k, into padded tensors with a per-image count. Nothing is read back, so a
// training step can go on encoding while the GPU selects. proposalsReference is the same selection
// on the host (float64, or float32 rounding as torchvision) that the tests hold the GPU path to.
import {
  batchedNmsPadded, cast, cat, clamp, decodeBoxes, gather, ge, indexSelect, logicalAnd, maximum, minimum, reshape, segmentedTopk, sigmoid, slice, sub, tensor, tidy, unsqueeze, where,
  type BoxWeights, type Tensor,
} from '../engine/index.js';
import { boxes32, boxes64, topKDesc, type BoxMath } from '../kernels/box-math.js';

export interface ProposalOptions {
  /** Candidates kept per image and level before NMS (torchvision pre_nms_top_n). */
  preNmsTopN: number;
  /** Proposals kept per image after NMS (post_nms_top_n): the capacity of the padded outputs. */
  postNmsTopN: number;
  nmsThresh: number;
  /** Boxes narrower or lower than this are dropped (remove_small_boxes). */
  minSize: number;
  /** Proposals with a lower objectness probability are dropped. */
  scoreThresh: number;
  weights: BoxWeights;
}

export interface PaddedProposals {
  /** [N, K, 4] (K = postNmsTopN): each image's proposals by descending score, zero rows past its count. */
  boxes: Tensor;
  /** [N, K] objectness probabilities, 0 past the count. */
  scores: Tensor;
  /** [N] int32: how many rows of each image are proposals. */
  count: Tensor;
}

/** The candidates of one level: the first min(preNmsTopN, anchors) of a level, in level order. */
const levelTake = (perLevel: readonly number[], preNms: number): number[] => perLevel.map((c) => Math.min(preNms, c));

/**
 * The proposals of every image from the RPN head's flattened outputs, objectness [N, R] (logits)
 * and deltas [N, R, 4], over anchors [R, 4] (perLevel: anchors per pyramid level, in order), with
 * each image's (height, width) to clip to. No gradient flows (torchvision detaches the proposals).
 */
export function selectProposals(objectness: Tensor, deltas: Tensor, anchors: Tensor, perLevel: readonly number[], imageSizes: readonly (readonly [number, number])[], o: ProposalOptions): PaddedProposals {
  const [N, R] = objectness.shape as [number, number];
  if (deltas.shape[0] !== N || deltas.shape[1] !== R || anchors.shape[0] !== R || imageSizes.length !== N || perLevel.reduce((a, c) => a + c, 0) !== R) {
    throw new Error(`RPN proposals: objectness ${JSON.stringify(objectness.shape)}, deltas ${JSON.stringify(deltas.shape)}, anchors ${JSON.stringify(anchors.shape)}, ${imageSizes.length} image sizes and level sizes ${perLevel.join('+')} do not agree`);
  }
  const take = levelTake(perLevel, o.preNmsTopN);
  const C = take.reduce((a, k) => a + k, 0);
  return tidy(() => {
    // The host's tensors first: each upload ends the recorded batch (a submit), and back to back
    // they end it once, together with segmentedTopk's own table.
    // clip_boxes_to_image with each image's own size: min(max(x, 0), width or height).
    const bounds = tensor(Float32Array.from(imageSizes.flatMap(([h, w]) => [w, h, w, h])), [N, 1, 4]);
    const level = tensor(Int32Array.from({ length: N * C }, (_, i) => levelOf(take, i % C)), [N, C], 'int32');
    // Per image and level the top-k logits and their anchor indices, every level in one segmented
    // top-k (a fixed number of dispatches however many levels), in level order: [N, C].
    const { values: logits, indices: idx } = segmentedTopk(objectness, perLevel, o.preNmsTopN);
    const candDeltas = gather(deltas, 1, unsqueeze(idx, 2).expand(N, C, 4));
    const candAnchors = indexSelect(anchors, 0, reshape(idx, [N * C]));
    const decoded = reshape(decodeBoxes(reshape(candDeltas, [N * C, 4]), candAnchors, o.weights), [N, C, 4]);
    const boxes = minimum(clamp(decoded, 0), bounds);
    const prob = sigmoid(logits);
    const side = (lo: number): Tensor => reshape(sub(slice(boxes, 2, lo + 2, lo + 3), slice(boxes, 2, lo, lo + 1)), [N, C]);
    const valid = logicalAnd(logicalAnd(ge(side(0), o.minSize), ge(side(1), o.minSize)), ge(prob, o.scoreThresh));
    // Not batchedNmsPadded's sortedRuns (one merge of the levels instead of a sort): the WGSL sigmoid
    // is not monotone to the last bit (1-ulp inversions near -1.5 on lavapipe), so a level's
    // probabilities need not be sorted even though its logits are.
    const { keep, count } = batchedNmsPadded(boxes, prob, level, valid, o.nmsThresh, o.postNmsTopN);
    const K = o.postNmsTopN;
    const safe = maximum(keep, 0);
    const real = ge(keep, 0);
    return {
      boxes: where(unsqueeze(real, 2).expand(N, K, 4), gather(boxes, 1, unsqueeze(safe, 2).expand(N, K, 4)), 0),
      scores: where(real, gather(prob, 1, safe), 0),
      count,
    };
  });
}

function levelOf(take: readonly number[], c: number): number {
  let l = 0;
  while (c >= take[l]!) c -= take[l++]!;
  return l;
}

/**
 * The host selection the GPU path is held to: torchvision's filter_proposals per image, in float64
 * (`precision` 64: the kernels' reference) or rounding every step to float32 as torchvision does.
 * objectness [N * R] logits, deltas [N * R * 4], anchors [R * 4]. Per image: proposals [P * 4] by
 * descending score (equal scores in candidate order: level, then logit) and their probabilities.
 */
export function proposalsReference(
  objectness: ArrayLike<number>,
  deltas: ArrayLike<number>,
  anchors: ArrayLike<number>,
  perLevel: readonly number[],
  imageSizes: readonly (readonly [number, number])[],
  o: ProposalOptions,
  precision: 32 | 64 = 64,
): { proposals: number[][]; scores: number[][] } {
  const m: BoxMath<Float32Array | Float64Array> = precision === 32 ? (boxes32 as BoxMath<Float32Array | Float64Array>) : boxes64;
  const f = precision === 32 ? Math.fround : (x: number): number => x;
  const R = anchors.length / 4;
  const out = { proposals: [] as number[][], scores: [] as number[][] };
  imageSizes.forEach(([h, w], n) => {
    const obj = Array.from({ length: R }, (_, i) => objectness[n * R + i]!);
    const candidates: number[] = [], levels: number[] = [];
    let start = 0;
    perLevel.forEach((count, l) => {
      for (const i of topKDesc(obj, start, count, o.preNmsTopN)) {
        candidates.push(i);
        levels.push(l);
      }
      start += count;
    });
    const pick = (src: ArrayLike<number>, at: number): number[] => candidates.flatMap((i) => [0, 1, 2, 3].map((k) => src[at + 4 * i + k]!));
    const boxes = m.clipBoxes(m.decodeBoxes(pick(deltas, n * R * 4), pick(anchors, 0), o.weights), h, w);
    const prob = candidates.map((i) => f(1 / (1 + Math.exp(-obj[i]!))));
    const kept = m.keepLargeBoxes(boxes, o.minSize).filter((c) => prob[c]! >= o.scoreThresh);
    const keep = m.batchedNms(boxes, prob, levels, o.nmsThresh, kept).slice(0, o.postNmsTopN);
    out.proposals.push(keep.flatMap((c) => Array.from(boxes.subarray(4 * c, 4 * c + 4))));
    out.scores.push(keep.map((c) => prob[c]!));
  });
  return out;
}

/**
 * The padded proposals as one float32 tensor to read back in one go: [N, K, 5] (box, score) rows,
 * then the N counts (exact in float32).
 */
export function packProposals(p: PaddedProposals): Tensor {
  return tidy(() => cat([reshape(cat([p.boxes, unsqueeze(p.scores, 2)], 2), [-1]), cast(p.count, 'float32')], 0));
}

/** Each image's proposals [count * 4] and scores [count] from packProposals' values. */
export function unpackProposals(packed: Float32Array, N: number, K: number): { proposals: Float32Array[]; scores: Float32Array[] } {
  const proposals: Float32Array[] = [], scores: Float32Array[] = [];
  for (let n = 0; n < N; n++) {
    const count = packed[N * K * 5 + n]!;
    const rows = packed.subarray(n * K * 5, (n * K + count) * 5);
    proposals.push(Float32Array.from({ length: count * 4 }, (_, i) => rows[5 * (i >> 2) + (i & 3)]!));
    scores.push(Float32Array.from({ length: count }, (_, r) => rows[5 * r + 4]!));
  }
  return { proposals, scores };
}
