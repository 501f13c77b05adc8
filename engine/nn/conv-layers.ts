// nn.Conv2d and nn.ConvTranspose2d over the conv ops, with torch's parameter names and shapes
// (Conv2d weight [out, in/groups, kh, kw]; ConvTranspose2d weight [in, out/groups, kh, kw]) and
// torch's default initialisation: kaiming_uniform_(a = sqrt(5)) gives U(-b, b) with
// b = 1/sqrt(fan_in), and the bias uses the same bound. torch computes fan_in from the weight's
// dim 1 times the kernel area, so for ConvTranspose2d it is (out/groups)*kh*kw, not the input side.
// Models that re-initialise (ResNet's kaiming_normal fan_out, FPN's kaiming_uniform a=1, RPN's
// normal 0.01) pass `init`; those schemes zero the bias, as the torchvision code does.
import type { Tensor } from '../tensor.js';
import { shapeStr } from '../tensor.js';
import { defaultRng, type Rng } from '../random.js';
import { rand, randn } from '../ops/create.js';
import { full } from '../ops/copy.js';
import { conv2d, convTranspose2d, type Activation } from '../ops/conv.js';
import { Module } from './module.js';

export type Pair = number | readonly [number, number];

/** Weight initialisation schemes of torch.nn.init used by torchvision's detection models. */
export type ConvInit =
  /** torch's reset_parameters(): weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  | { kind: 'default' }
  /** kaiming_normal_(mode, nonlinearity='relu'): N(0, 2/fan) (ResNet: fan_out; mask head: fan_out). */
  | { kind: 'kaiming_normal'; mode: 'fan_in' | 'fan_out' }
  /** kaiming_uniform_(a): U(-b, b), b = sqrt(6 / ((1 + a^2) fan_in)) (FPN: a = 1). */
  | { kind: 'kaiming_uniform'; a: number }
  /** normal_(std) (RPN head: 0.01). */
  | { kind: 'normal'; std: number };

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  /** Learn an additive bias (default true, as torch). */
  bias?: boolean;
  init?: ConvInit;
  /** Generator for the initial values (default: the engine's seeded generator). */
  rng?: Rng;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: Pair;
}

function pairOf(v: Pair, what: string, layer: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`${layer}: ${what} must be a non-negative integer or a pair, got ${JSON.stringify(v)}`);
  return p;
}

function checkChannels(layer: string, inC: number, outC: number, groups: number): void {
  for (const [what, v] of [['in_channels', inC], ['out_channels', outC], ['groups', groups]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${layer}: ${what} must be a positive integer, got ${v}`);
  }
  if (inC % groups !== 0) throw new Error(`${layer}: in_channels=${inC} is not divisible by groups=${groups}`);
  if (outC % groups !== 0) throw new Error(`${layer}: out_channels=${outC} is not divisible by groups=${groups}`);
}

/** Initial weight of `shape` (torch fan_in / fan_out given) and bias of `biasLen` entries (0: none). */
function initParams(shape: number[], fanIn: number, fanOut: number, biasLen: number, init: ConvInit, rng: Rng): [Tensor, Tensor | null] {
  const outCh = [biasLen];
  const bias = biasLen > 0;
  const uniform = (b: number, s: readonly number[]): Tensor => rand(s, { low: -b, high: b, rng });
  switch (init.kind) {
    case 'default': {
      const b = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      return [uniform(b, shape), bias ? uniform(b, outCh) : null];
    }
    case 'kaiming_normal': {
      const fan = init.mode === 'fan_in' ? fanIn : fanOut;
      return [randn(shape, { std: Math.sqrt(2 / fan), rng }), bias ? full(outCh, 0) : null];
    }
    case 'kaiming_uniform':
      return [uniform(Math.sqrt(6 / ((1 + init.a * init.a) * fanIn)), shape), bias ? full(outCh, 0) : null];
    case 'normal':
      return [randn(shape, { std: init.std, rng }), bias ? full(outCh, 0) : null];
  }
}

/** torch's _ConvNd: the fields, checks and initialisation that Conv2d and ConvTranspose2d share. */
abstract class ConvNd extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    private readonly layerName: string,
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    opts: Conv2dOptions,
    transposed: boolean,
  ) {
    super();
    const name = layerName;
    this.groups = opts.groups ?? 1;
    checkChannels(name, inChannels, outChannels, this.groups);
    this.kernelSize = pairOf(kernelSize, 'kernel_size', name);
    if (this.kernelSize[0] < 1 || this.kernelSize[1] < 1) throw new Error(`${name}: kernel_size must be >= 1, got ${JSON.stringify(kernelSize)}`);
    this.stride = pairOf(opts.stride ?? 1, 'stride', name);
    this.padding = pairOf(opts.padding ?? 0, 'padding', name);
    this.dilation = pairOf(opts.dilation ?? 1, 'dilation', name);
    const [kh, kw] = this.kernelSize;
    // Weight [out, in/groups, kh, kw], or [in, out/groups, kh, kw] when transposed; torch takes
    // fan_in = size(1) * kernel area and fan_out = size(0) * kernel area either way.
    const shape = transposed ? [inChannels, outChannels / this.groups, kh, kw] : [outChannels, inChannels / this.groups, kh, kw];
    const [w, b] = initParams(shape, shape[1]! * kh * kw, shape[0]! * kh * kw, opts.bias === false ? 0 : outChannels, opts.init ?? { kind: 'default' }, opts.rng ?? defaultRng());
    this.weight = this.registerParameter('weight', w);
    this.bias = b ? this.registerParameter('bias', b) : null;
  }

  protected checkInput(x: Tensor): void {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) {
      throw new Error(`${this.layerName}: input ${shapeStr(x.shape)} should be [N, ${this.inChannels}, H, W] (weight ${shapeStr(this.weight.shape)})`);
    }
  }
}

export class Conv2d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: Conv2dOptions = {}) {
    super('Conv2d', inChannels, outChannels, kernelSize, opts, false);
  }

  /** x [N, in, H, W] -> [N, out, OH, OW]; `activation: 'relu'` fuses the ReLU that usually follows. */
  forward(x: Tensor, activation: Activation = 'none'): Tensor {
    this.checkInput(x);
    return conv2d(x, this.weight, this.bias, this.stride, this.padding, this.dilation, this.groups, { activation });
  }
}

export class ConvTranspose2d extends ConvNd {
  readonly outputPadding: [number, number];

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: ConvTranspose2dOptions = {}) {
    super('ConvTranspose2d', inChannels, outChannels, kernelSize, opts, true);
    this.outputPadding = pairOf(opts.outputPadding ?? 0, 'output_padding', 'ConvTranspose2d');
  }

  /** x [N, in, H, W] -> [N, out, (H-1)*s - 2p + d(k-1) + op + 1, ...]. */
  forward(x: Tensor, activation: Activation = 'none'): Tensor {
    this.checkInput(x);
    return convTranspose2d(x, this.weight, this.bias, this.stride, this.padding, this.outputPadding, this.groups, this.dilation, { activation });
  }
}
