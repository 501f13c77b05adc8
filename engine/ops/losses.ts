// Losses with PyTorch's names, formulas and reductions (torch.nn.functional): binary_cross_entropy_with_logits,
// cross_entropy (ignore_index), smooth_l1_loss (beta; beta = 0 is l1), l1_loss. Each is one fused
// kernel forward and one backward, and stays finite for logits of any size (|x| = 100 and beyond).
import { pointLossKernel, crossEntropyKernel, crossEntropyGradKernel, type PointLoss, type Reduction } from '../../kernels/losses.js';
import { POINT_LOSS_UNIFORMS, CROSS_ENTROPY_UNIFORMS, CROSS_ENTROPY_GRAD_UNIFORMS } from '../../kernels/losses.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { tidy } from '../scope.js';
import { record } from '../autograd.js';
import { elementwise as ew, denseView } from './elementwise.js';
import { reduceRaw } from './reduce.js';
import { reshape, slice } from './view.js';

export type { Reduction } from '../../kernels/losses.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

function sameShape(op: string, a: Tensor, b: Tensor, names = ['input', 'target']): void {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`${op}: ${names[0]} and ${names[1]} must be float32, got ${a.dtype} and ${b.dtype}`);
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: ${names[0]} ${shapeStr(a.shape)} and ${names[1]} ${shapeStr(b.shape)} must have the same shape`);
  }
}

function checkReduction(op: string, r: string): void {
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${r}'`);
}

/** The elementwise-loss family: forward kernel + reduction, backward kernel per input. */
function pointLoss(op: string, kind: PointLoss, input: Tensor, target: Tensor, reduction: Reduction, beta: number): Tensor {
  sameShape(op, input, target);
  checkReduction(op, reduction);
  const x = denseView(input), y = denseView(target);
  const n = x.size;
  const per = empty(input.shape);
  const be = getBackend();
  if (n > 0) {
    be.dispatch({
      kernel: cached(`${kind}|loss`, () => pointLossKernel(kind, 'loss', false)),
      buffers: [x.storage.buffer, y.storage.buffer, per.storage.buffer],
      uniforms: POINT_LOSS_UNIFORMS.pack({ n, xOffset: x.offset, yOffset: y.offset, sOffset: 0, beta }),
      workgroups: grid(Math.ceil(n / WORKGROUP)),
      label: `${op}(${shapeStr(input.shape)})`,
    });
  }
  let out = per;
  if (reduction !== 'none') {
    const s = reduceRaw(per, 'sum', undefined);
    per.dispose();
    // mean of nothing is NaN, as in torch.
    out = reduction === 'mean' ? ew('mul', [s, n === 0 ? NaN : 1 / n]) : s;
    if (out !== s) s.dispose();
  }
  const norm = reduction === 'mean' ? 1 / n : 1;
  record(op, [input, target], out, [x, y], (g, [xs, ys]) => {
    const scale = reduction === 'none' ? denseView(g) : ew('mul', [g, norm]);
    const grads = (['dx', 'dy'] as const).map((mode, k) => {
      if (!(k === 0 ? input : target).requiresGrad) return null;
      const gi = empty(input.shape);
      if (n > 0) {
        be.dispatch({
          kernel: cached(`${kind}|${mode}|${reduction === 'none'}`, () => pointLossKernel(kind, mode, reduction === 'none')),
          buffers: [xs!.storage.buffer, ys!.storage.buffer, scale.storage.buffer, gi.storage.buffer],
          uniforms: POINT_LOSS_UNIFORMS.pack({ n, xOffset: xs!.offset, yOffset: ys!.offset, sOffset: scale.offset, beta }),
          workgroups: grid(Math.ceil(n / WORKGROUP)),
          label: `${op} backward ${mode}`,
        });
      }
      return gi;
    });
    return grads;
  });
  x.dispose();
  y.dispose();
  return out;
}

/**
 * F.binary_cross_entropy_with_logits(input, target, reduction='mean'):
 * max(x,0) - x*y + log(1 + exp(-|x|)); gradient sigmoid(x) - y.
 */
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return pointLoss('binary_cross_entropy_with_logits', 'bce', input, target, reduction, 0);
}

/**
 * F.smooth_l1_loss(input, target, reduction='mean', beta=1): 0.5 z^2 / beta where |z| < beta, else
 * |z| - beta / 2 (z = input - target); beta = 0 is l1_loss. torchvision's box loss is
 * smooth_l1_loss(..., beta=1/9, reduction='sum') / N.
 */
export function smoothL1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean', beta = 1): Tensor {
  if (!(beta >= 0)) throw new Error(`smooth_l1_loss: beta must be >= 0, got ${beta}`);
  return pointLoss('smooth_l1_loss', beta === 0 ? 'l1' : 'smooth_l1', input, target, reduction, beta);
}

/** F.l1_loss(input, target, reduction='mean'): |input - target|; gradient sign(input - target). */
export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return pointLoss('l1_loss', 'l1', input, target, reduction, 0);
}

/**
 * F.cross_entropy(input [N, C] logits, target int32 [N], reduction='mean', ignore_index=-100):
 * logsumexp(x_r) - x_r[t_r], averaged over the rows whose target is not ignore_index (NaN when all
 * are ignored, as torch). A target outside [0, C) gives NaN (torch raises; we cannot check without
 * reading back).
 */
export function crossEntropy(input: Tensor, target: Tensor, reduction: Reduction = 'mean', ignoreIndex = -100): Tensor {
  const op = 'cross_entropy';
  checkReduction(op, reduction);
  if (input.dtype !== 'float32' || input.ndim !== 2) throw new Error(`${op}: input must be float32 [N,C] logits, got ${input.dtype}${shapeStr(input.shape)}`);
  if (target.dtype !== 'int32' || target.ndim !== 1 || target.shape[0] !== input.shape[0]) {
    throw new Error(`${op}: target must be int32 [${input.shape[0]}] class indices, got ${target.dtype}${shapeStr(target.shape)}`);
  }
  const [N, C] = input.shape as [number, number];
  if (C === 0 && N > 0) throw new Error(`${op}: input ${shapeStr(input.shape)} has no classes`);
  const x = denseView(input), t = denseView(target);
  const fwd = empty([3, N]);
  const be = getBackend();
  if (N > 0) {
    be.dispatch({
      kernel: cached('ce', crossEntropyKernel),
      buffers: [x.storage.buffer, t.storage.buffer, fwd.storage.buffer],
      uniforms: CROSS_ENTROPY_UNIFORMS.pack({ N, C, xOffset: x.offset, ignoreIndex, tOffset: t.offset }),
      workgroups: grid(Math.ceil(N / WORKGROUP)),
      label: `${op}(${shapeStr(input.shape)})`,
    });
  }
  // Row losses and (for 'mean') the count of rows not ignored; the views made here die with the scope.
  const { out, count } = tidy(() => {
    const rowLoss = reshape(slice(fwd, 0, 0, 1), [N]);
    if (reduction === 'none') return { out: ew('copy', [rowLoss]), count: null };
    const s = reduceRaw(rowLoss, 'sum', undefined);
    if (reduction === 'sum') return { out: s, count: null };
    const c = reduceRaw(reshape(slice(fwd, 0, 2, 3), [N]), 'sum', undefined);
    return { out: ew('div', [s, c]), count: c };
  });
  record(op, [input], out, count ? [x, t, fwd, count] : [x, t, fwd], (g, [xs, ts, fs, cnt]) => {
    const scale = reduction === 'none' ? denseView(g) : cnt ? ew('div', [g, cnt]) : ew('copy', [g]);
    const gx = empty(input.shape);
    if (gx.size > 0) {
      be.dispatch({
        kernel: cached('ce_grad', crossEntropyGradKernel),
        buffers: [xs!.storage.buffer, ts!.storage.buffer, fs!.storage.buffer, scale.storage.buffer, gx.storage.buffer],
        uniforms: CROSS_ENTROPY_GRAD_UNIFORMS.pack({
          count: N * C,
          C,
          xOffset: xs!.offset,
          ignoreIndex,
          sOffset: scale.offset,
          perRow: reduction === 'none' ? 1 : 0,
          tOffset: ts!.offset,
        }),
        workgroups: grid(Math.ceil((N * C) / WORKGROUP)),
        label: `${op} backward`,
      });
    }
    return [gx];
  });
  x.dispose();
  t.dispose();
  fwd.dispose();
  count?.dispose();
  return out;
}
