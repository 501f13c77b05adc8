// nn.Linear: y = x @ W^T + b with W stored [out, in] as torch does, and torch's default
// initialisation: kaiming_uniform_(a = sqrt(5)) gives bound = gain * sqrt(3 / fan_in) with
// gain = sqrt(2 / (1 + 5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); the bias uses the same bound.
import type { Tensor } from '../tensor.js';
import { defaultRng, type Rng } from '../random.js';
import { rand } from '../ops/create.js';
import { add } from '../ops/elementwise.js';
import { matmul } from '../ops/matmul.js';
import { transpose } from '../ops/view.js';
import { shapeStr } from '../tensor.js';
import { Module } from './module.js';

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Generator for the initial values (default: the engine's seeded generator, see manualSeed). */
  rng?: Rng;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    for (const [what, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`Linear: ${what} must be a non-negative integer, got ${v}`);
    }
    const rng = opts.rng ?? defaultRng();
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.weight = this.registerParameter('weight', rand([outFeatures, inFeatures], { low: -bound, high: bound, rng }));
    this.bias = opts.bias === false ? null : this.registerParameter('bias', rand([outFeatures], { low: -bound, high: bound, rng }));
  }

  /** x [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new Error(`Linear: input ${shapeStr(x.shape)} does not end in in_features=${this.inFeatures} (weight ${shapeStr(this.weight.shape)})`);
    }
    const y = matmul(x, transpose(this.weight, 0, 1));
    if (!this.bias) return y;
    const out = add(y, this.bias);
    y.dispose();
    return out;
  }
}
