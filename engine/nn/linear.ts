// nn.Linear: y = x @ W^T + b with W stored [out, in] as torch does, and torch's default
// initialisation: kaiming_uniform_(a = sqrt(5)) gives bound = gain * sqrt(3 / fan_in) with
// gain = sqrt(2 / (1 + 5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); the bias uses the same bound.
import { shapeStr, sizeOf, type Tensor } from '../tensor.js';
import { noGrad, record } from '../autograd.js';
import { underForwardAutocast } from '../autocast.js';
import { defaultRng, type Rng } from '../random.js';
import { rand } from '../ops/create.js';
import { add } from '../ops/elementwise.js';
import { matmul } from '../ops/matmul.js';
import { reshape, transpose } from '../ops/view.js';
import { sum } from '../ops/reduce.js';
import { tidy } from '../scope.js';
import { Module } from './module.js';

/** torch.nn.functional.linear: x [..., in] @ weight[out, in]^T + bias[out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const inF = weight.shape[1];
  if (weight.ndim !== 2 || x.ndim < 1 || x.shape[x.ndim - 1] !== inF) {
    throw new Error(`linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)} (expects [..., ${inF ?? '?'}])`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new Error(`linear: bias ${shapeStr(bias.shape)} does not match weight ${shapeStr(weight.shape)} (expects [${weight.shape[0]}])`);
  }
  const outF = weight.shape[0]!;
  const lead = x.shape.slice(0, -1);
  // tidy frees the transposed view and the pre-bias product (views hold their storage alive).
  const y = noGrad(() =>
    tidy(() => {
      const p = matmul(reshape(x, [sizeOf(lead), inF]), transpose(weight, 0, 1));
      return reshape(bias ? add(p, bias) : p, [...lead, outF]);
    }),
  );
  // One node with torch's addmm gradients. The weight gradient g^T x comes out in W's own [out, in]
  // layout; through matmul's generic rule it came out transposed and cost a strided copy.
  // Its matmuls run with the forward's autocast state.
  record('linear', bias ? [x, weight, bias] : [x, weight], y, [x, weight], underForwardAutocast((g, [xs, ws]) => {
    const g2 = reshape(g, [sizeOf(lead), outF]);
    const gx = reshape(matmul(g2, ws!), x.shape);
    const gw = matmul(transpose(g2, 0, 1), reshape(xs!, [sizeOf(lead), inF]));
    return bias ? [gx, gw, sum(g2, 0)] : [gx, gw];
  }));
  return y;
}

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Generator for the initial values (default: the engine's seeded generator, see manualSeed). */
  rng?: Rng;
}

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    for (const [what, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`Linear: ${what} must be a non-negative integer, got ${v}`);
    }
    const rng = opts.rng ?? defaultRng();
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.registerParameter('weight', rand([outFeatures, inFeatures], { low: -bound, high: bound, rng }));
    if (opts.bias !== false) this.registerParameter('bias', rand([outFeatures], { low: -bound, high: bound, rng }));
  }

  /** [out, in]; read from the registry so a re-registered parameter is what forward uses. */
  get weight(): Tensor {
    return this.getParameter('weight')!;
  }

  get bias(): Tensor | null {
    return this.getParameter('bias') ?? null;
  }

  /** x [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
