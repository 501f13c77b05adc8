// Mixed-precision training (`--amp`): the forward pass runs under the engine's autocast (matmul and
// conv GEMMs read f16-rounded operands, accumulate in f32; norms, softmax, losses, box decoding, the
// optimizer and the master weights stay f32), and the loss is scaled by a GradScaler (PyTorch's
// defaults and rules) so small gradients survive the f16 rounding of the backward GEMMs' operands.
//
// When training stops on a non-finite value (the rule train/step.ts applies):
//  - without amp: any NaN / infinite loss term stops training (NonFiniteLossError), as before;
//  - with amp, gradients that overflow while the losses are finite are the scaler's business: the
//    step is skipped and the scale halves, and training goes on (that is how dynamic loss scaling
//    finds its scale; PyTorch does the same);
//  - with amp, a non-finite loss term also skips the step (and halves the scale), but scaling cannot
//    repair a forward pass, so AMP_NONFINITE_LOSS_LIMIT consecutive iterations with a non-finite
//    loss stop training with NonFiniteLossError (one stray overflow is survived).
import { optim } from '../engine/index.js';

export const AMP_NONFINITE_LOSS_LIMIT = 3;

export class AmpTraining {
  readonly scaler: optim.GradScaler;
  /** Iterations in a row whose losses were non-finite (reset by a finite one). */
  nonFiniteLossSteps = 0;

  constructor(opts: optim.GradScalerOptions = {}) {
    this.scaler = new optim.GradScaler(opts);
  }

  dispose(): void {
    this.scaler.dispose();
  }
}
