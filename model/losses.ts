// The detection losses in the two libraries' variants, over the engine's loss ops.
import { div, expand, gather, indexSelect, l1Loss, mul, noGrad, reshape, smoothL1Loss, tensor, tidy, type Tensor } from '../engine/index.js';
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
 * boxRegressionLoss over the rows `rows` of pred [R, 4] against `targets` (4 per row, on the host),
 * at a fixed `capacity` of rows: the rows past the real ones select row 0 and are zeroed by a 0/1
 * weight (their targets are 0), so every step has tensors of the same shapes, which reuse the same
 * GPU buffers, while the loss and its gradient are those of the real rows (the extra terms are 0).
 */
export function paddedBoxRegressionLoss(pred: Tensor, rows: ArrayLike<number>, targets: ArrayLike<number>, capacity: number, cfg: BoxLossConfig, normalizer: number): Tensor {
  const K = Math.max(capacity, rows.length);
  const index = new Int32Array(K);
  index.set(rows);
  const weight = new Float32Array(K).fill(1, 0, rows.length);
  const target = new Float32Array(K * 4);
  target.set(targets);
  return tidy(() => {
    const picked = mul(indexSelect(pred, 0, tensor(index, [K], 'int32')), tensor(weight, [K, 1]));
    return boxRegressionLoss(picked, noGrad(() => tensor(target, [K, 4])), cfg, normalizer);
  });
}

/**
 * x[arange(R), labels] for mask logits x [R, C, ...]: each RoI's channel of its class, [R, ...]
 * (the selection in torchvision's maskrcnn_loss before binary_cross_entropy_with_logits). A gather
 * along dim 1 of x viewed as [R, C, rest] with the label broadcast over rest: a copy, so the values
 * are exact and the gradient (gather's backward) lands on the selected channels only. Its gradient
 * tensor has x's shape (R leading rows, as engine/alloc-hints.ts row capacities expect; an
 * index_select over [R * C, ...] would allocate one that escapes them).
 */
export function selectClassChannel(x: Tensor, labels: ArrayLike<number>): Tensor {
  if (x.ndim < 2 || labels.length !== x.shape[0]) throw new Error(`selectClassChannel: x must be [R, C, ...] with R = ${labels.length} labels, got [${x.shape.join(', ')}]`);
  const [R, C] = x.shape as [number, number];
  for (let r = 0; r < R; r++) {
    const l = labels[r]!;
    if (!Number.isInteger(l) || l < 0 || l >= C) throw new Error(`selectClassChannel: label ${l} of RoI ${r} is not a class index in [0, ${C})`);
  }
  const rest = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return tidy(() => {
    const index = expand(tensor(Int32Array.from(labels), [R, 1, 1], 'int32'), [R, 1, rest]);
    return reshape(gather(reshape(x, [R, C, rest]), 1, index), [R, ...x.shape.slice(2)]);
  });
}
