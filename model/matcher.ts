// Matching predictions (anchors or proposals) to ground truth by IoU, and the balanced
// positive/negative sampler: torchvision's det_utils.Matcher / BalancedPositiveNegativeSampler,
// with Detectron2's low-quality rule as an option. Host-side, on IoU matrices [G, P].
import type { Rng } from '../engine/index.js';

export const BELOW_LOW_THRESHOLD = -1;
export const BETWEEN_THRESHOLDS = -2;

export interface MatcherOptions {
  high: number;
  low: number;
  allowLowQualityMatches: boolean;
  /**
   * torchvision restores every prediction that ties for a gt's best IoU, even an IoU of 0;
   * Detectron2 only those with a positive IoU.
   */
  style?: 'torchvision' | 'detectron2';
}

/**
 * For each of P predictions: the index of its matched gt, or BELOW_LOW_THRESHOLD / BETWEEN_THRESHOLDS.
 * `iou` is [G, P] row-major. Ties in a prediction's best gt go to the lowest gt index.
 */
export function matchPredictions(iou: Float32Array, G: number, P: number, opts: MatcherOptions): Int32Array {
  if (G === 0) throw new Error('matcher: no ground-truth boxes for an image in training');
  if (P === 0) throw new Error('matcher: no predicted boxes for an image in training');
  const matches = new Int32Array(P);
  const best = new Float32Array(P).fill(-Infinity);
  for (let g = 0; g < G; g++) {
    for (let p = 0; p < P; p++) {
      const v = iou[g * P + p]!;
      if (v > best[p]!) {
        best[p] = v;
        matches[p] = g;
      }
    }
  }
  const argmax = matches.slice();
  for (let p = 0; p < P; p++) {
    if (best[p]! < opts.low) matches[p] = BELOW_LOW_THRESHOLD;
    else if (best[p]! < opts.high) matches[p] = BETWEEN_THRESHOLDS;
  }
  if (opts.allowLowQualityMatches) {
    for (let g = 0; g < G; g++) {
      let top = -Infinity;
      for (let p = 0; p < P; p++) top = Math.max(top, iou[g * P + p]!);
      if (opts.style === 'detectron2' && !(top > 0)) continue;
      for (let p = 0; p < P; p++) if (iou[g * P + p] === top) matches[p] = argmax[p]!;
    }
  }
  return matches;
}

/**
 * Training labels from matches: 1 for matched (or the gt's class when `gtLabels` is given),
 * 0 for background (below low), -1 for ignored (between thresholds).
 */
export function labelsFromMatches(matches: Int32Array, gtLabels?: ArrayLike<number>): Int32Array {
  const labels = new Int32Array(matches.length);
  for (let p = 0; p < matches.length; p++) {
    const m = matches[p]!;
    labels[p] = m >= 0 ? (gtLabels ? gtLabels[m]! : 1) : m === BELOW_LOW_THRESHOLD ? 0 : -1;
  }
  return labels;
}

export interface SampledIndices {
  /** Ascending indices of sampled positives (label >= 1) and negatives (label 0). */
  positive: number[];
  negative: number[];
}

/** A uniformly random subset of `k` of `items` (partial Fisher-Yates), returned ascending. */
function choose(items: number[], k: number, rng: Rng): number[] {
  if (k >= items.length) return items;
  const a = [...items];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(a.length - i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, k).sort((x, y) => x - y);
}

/** BalancedPositiveNegativeSampler for one image. */
export function sampleBalanced(labels: Int32Array, batchSizePerImage: number, positiveFraction: number, rng: Rng): SampledIndices {
  const pos: number[] = [], neg: number[] = [];
  labels.forEach((l, i) => {
    if (l >= 1) pos.push(i);
    else if (l === 0) neg.push(i);
  });
  const numPos = Math.min(pos.length, Math.floor(batchSizePerImage * positiveFraction));
  const numNeg = Math.min(neg.length, batchSizePerImage - numPos);
  return { positive: choose(pos, numPos, rng), negative: choose(neg, numNeg, rng) };
}
