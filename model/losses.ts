// The detection losses in the two libraries' variants, over the engine's loss ops.
import { div, indexSelect, l1Loss, reshape, smoothL1Loss, tensor, tidy, type Tensor } from '../engine/index.js';
import type { BoxLossConfig } from './config.js';

export { binaryCrossEntropyWithLogits, crossEntropy } from '../engine/index.js';

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

/**
 * x[arange(R), labels] for mask logits x [R, C, ...]: each RoI's channel of its class, [R, ...]
 * (the selection in torchvision's maskrcnn_loss before binary_cross_entropy_with_logits). An
 * index_select of row r * C + label[r] of x viewed as [R * C, ...]: a copy, so the values are
 * exact and the gradient (index_select's backward) lands on the selected channels only.
 */
export function selectClassChannel(x: Tensor, labels: ArrayLike<number>): Tensor {
  if (x.ndim < 2 || labels.length !== x.shape[0]) throw new Error(`selectClassChannel: x must be [R, C, ...] with R = ${labels.length} labels, got [${x.shape.join(', ')}]`);
  const [R, C] = x.shape as [number, number];
  for (let r = 0; r < R; r++) {
    const l = labels[r]!;
    if (!Number.isInteger(l) || l < 0 || l >= C) throw new Error(`selectClassChannel: label ${l} of RoI ${r} is not a class index in [0, ${C})`);
  }
  return tidy(() => indexSelect(reshape(x, [R * C, ...x.shape.slice(2)]), 0, tensor(Int32Array.from(labels, (l, r) => r * C + l), [R], 'int32')));
}
