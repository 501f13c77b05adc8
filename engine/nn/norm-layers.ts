// Normalisation and pooling layers with torch's / torchvision's parameter and buffer names, so
// state dicts map key for key: BatchNorm2d (weight, bias; buffers running_mean, running_var,
// num_batches_tracked), torchvision's FrozenBatchNorm2d (buffers weight, bias, running_mean,
// running_var; nothing trainable), GroupNorm (weight, bias) and MaxPool2d (no state).
// The norms' forward takes an optional epilogue (a residual to add, a ReLU) that runs inside the
// normalisation's kernel: forward(x, { residual, relu: true }) is relu(norm(x) + residual).
import { shapeStr, type Tensor } from '../tensor.js';
import { copyInto, full } from '../ops/copy.js';
import { elementwise } from '../ops/elementwise.js';
import { batchNorm, frozenBatchNormApply, frozenBatchNormScaleShift, groupNorm, type NormEpilogue } from '../ops/norm.js';
import { maxPool2d, type Pair } from '../ops/pool.js';
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../scope.js';
import { persistent } from '../alloc-hints.js';
import { Module } from './module.js';

/** A normalisation layer: forward(x, { residual, relu }) is relu(norm(x) + residual), fused into its kernel. */
export type NormLayer = Module & { forward(x: Tensor, epilogue?: NormEpilogue): Tensor };

function checkCount(layer: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${layer}: ${what} must be a positive integer, got ${v}`);
}

function check4d(layer: string, x: Tensor, C: number): void {
  if (x.ndim !== 4) throw new Error(`${layer}: expected a 4D [N, ${C}, H, W] input, got ${shapeStr(x.shape)}`);
  if (x.shape[1] !== C) throw new Error(`${layer}: input ${shapeStr(x.shape)} has ${x.shape[1]} channels, the layer expects ${C}`);
}

export interface BatchNorm2dOptions {
  eps?: number;
  /** Weight of the batch statistic in the running-stats update (default 0.1). */
  momentum?: number;
  /** Learn weight and bias (default true). */
  affine?: boolean;
  /** Keep running statistics (default true); without them eval mode also uses batch statistics. */
  trackRunningStats?: boolean;
}

/**
 * torch.nn.BatchNorm2d: training normalises with batch statistics, updates running_mean/var with
 * `momentum` and counts num_batches_tracked; eval uses the running statistics.
 */
export class BatchNorm2d extends Module {
  readonly eps: number;
  readonly momentum: number;

  constructor(readonly numFeatures: number, opts: BatchNorm2dOptions = {}) {
    super();
    checkCount('BatchNorm2d', 'num_features', numFeatures);
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    if (opts.affine !== false) {
      this.registerParameter('weight', full([numFeatures], 1));
      this.registerParameter('bias', full([numFeatures], 0));
    }
    if (opts.trackRunningStats !== false) {
      this.registerBuffer('running_mean', full([numFeatures], 0));
      this.registerBuffer('running_var', full([numFeatures], 1));
      this.registerBuffer('num_batches_tracked', full([], 0, 'int32'));
    }
  }

  get weight(): Tensor | null {
    return this.getParameter('weight') ?? null;
  }

  get bias(): Tensor | null {
    return this.getParameter('bias') ?? null;
  }

  get runningMean(): Tensor | null {
    return this.getBuffer('running_mean') ?? null;
  }

  get runningVar(): Tensor | null {
    return this.getBuffer('running_var') ?? null;
  }

  forward(x: Tensor, epilogue: NormEpilogue = {}): Tensor {
    check4d('BatchNorm2d', x, this.numFeatures);
    const rm = this.runningMean, rv = this.runningVar;
    const counter = this.getBuffer('num_batches_tracked');
    if (this.training && counter) {
      noGrad(() => tidy(() => copyInto(counter, elementwise('add', [counter, 1]))));
    }
    // As torch: batch statistics in training, or whenever there are no running statistics.
    const useBatch = this.training || !rm || !rv;
    return batchNorm(x, rm, rv, this.weight, this.bias, useBatch, this.momentum, this.eps, epilogue);
  }
}

/**
 * torchvision.ops.FrozenBatchNorm2d(num_features, eps=1e-5): batch norm with fixed statistics and
 * affine, all four stored as buffers (weight 1, bias 0, running_mean 0, running_var 1 initially).
 * Its scale and shift are computed on the first forward and kept (five small dispatches a layer
 * saved per step) until the buffers change: loadStateDict(), registerBuffer() and dispose() drop
 * them, and code that writes the buffers in place by other means calls stateChanged().
 */
export class FrozenBatchNorm2d extends Module {
  private scaleShift: { scale: Tensor; shift: Tensor } | null = null;

  constructor(readonly numFeatures: number, readonly eps = 1e-5) {
    super();
    checkCount('FrozenBatchNorm2d', 'num_features', numFeatures);
    this.registerBuffer('weight', full([numFeatures], 1));
    this.registerBuffer('bias', full([numFeatures], 0));
    this.registerBuffer('running_mean', full([numFeatures], 0));
    this.registerBuffer('running_var', full([numFeatures], 1));
  }

  forward(x: Tensor, epilogue: NormEpilogue = {}): Tensor {
    check4d('FrozenBatchNorm2d', x, this.numFeatures);
    const { scale, shift } = this.affine();
    return frozenBatchNormApply(x, scale, shift, epilogue);
  }

  /**
   * The per-channel [C] scale and shift this layer applies (y = x * scale + shift), kept until the
   * buffers change: what a convolution folds into its epilogue (nn.convNorm). Owned by the layer.
   */
  affine(): { scale: Tensor; shift: Tensor } {
    if (!this.scaleShift) {
      const b = (name: string): Tensor => this.getBuffer(name)!;
      const ss = persistent(() => noGrad(() => tidy(() => {
        // Any [N, C, ...] tensor tells frozenBatchNormScaleShift the channel count: a view of the weight.
        const w = b('weight'), C = this.numFeatures;
        return frozenBatchNormScaleShift(w.view([1, C], [C, 1], w.offset), w, b('bias'), b('running_mean'), b('running_var'), this.eps);
      })));
      this.scaleShift = { scale: keep(ss.scale), shift: keep(ss.shift) };
    }
    return this.scaleShift;
  }

  override registerBuffer(name: string, t: Tensor, opts: { persistent?: boolean } = {}): Tensor {
    this.stateChanged();
    return super.registerBuffer(name, t, opts);
  }

  override stateChanged(): void {
    this.scaleShift?.scale.dispose();
    this.scaleShift?.shift.dispose();
    this.scaleShift = null;
  }
}

export interface GroupNormOptions {
  eps?: number;
  /** Learn per-channel weight and bias (default true). */
  affine?: boolean;
}

/** torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True) (Detectron2's GN). */
export class GroupNorm extends Module {
  readonly eps: number;

  constructor(readonly numGroups: number, readonly numChannels: number, opts: GroupNormOptions = {}) {
    super();
    checkCount('GroupNorm', 'num_groups', numGroups);
    checkCount('GroupNorm', 'num_channels', numChannels);
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: num_channels=${numChannels} must be divisible by num_groups=${numGroups}`);
    this.eps = opts.eps ?? 1e-5;
    if (opts.affine !== false) {
      this.registerParameter('weight', full([numChannels], 1));
      this.registerParameter('bias', full([numChannels], 0));
    }
  }

  forward(x: Tensor, epilogue: NormEpilogue = {}): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels) {
      throw new Error(`GroupNorm: input ${shapeStr(x.shape)} should be [N, ${this.numChannels}, ...]`);
    }
    return groupNorm(x, this.numGroups, this.getParameter('weight') ?? null, this.getParameter('bias') ?? null, this.eps, epilogue);
  }
}

export interface MaxPool2dOptions {
  /** Default: the kernel size. */
  stride?: Pair | null;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/** torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False). */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly opts: MaxPool2dOptions = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    const o = this.opts;
    return maxPool2d(x, this.kernelSize, o.stride ?? null, o.padding ?? 0, o.dilation ?? 1, o.ceilMode ?? false);
  }
}
