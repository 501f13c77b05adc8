// The detection losses in the two libraries' variants, over the engine's loss ops.
import type { Tensor } from '../engine/tensor.js';
import { div } from '../engine/ops/elementwise.js';
import { l1Loss, smoothL1Loss } from '../engine/ops/losses.js';
import { tidy } from '../engine/scope.js';
import type { BoxLossConfig } from './config.js';

export { binaryCrossEntropyWithLogits, crossEntropy } from '../engine/ops/losses.js';

/**
 * Box regression loss summed over the given rows and divided by `normalizer` (torchvision: the
 * number of sampled anchors / RoIs): smooth-L1 with beta (torchvision 1/9) or L1 (Detectron2).
 */
export function boxRegressionLoss(pred: Tensor, target: Tensor, cfg: BoxLossConfig, normalizer: number): Tensor {
  return tidy(() => {
    const s = cfg.kind === 'l1' || cfg.beta === 0 ? l1Loss(pred, target, 'sum') : smoothL1Loss(pred, target, 'sum', cfg.beta);
    return div(s, normalizer);
  });
}
