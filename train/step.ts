// The training iteration (the one step `node cli/train.js`, the demo page's Train tab, bench/ and
// tools/ all run): K micro-batches (gradient accumulation), each running the model's five
// losses and accumulating the gradient of their sum / K, then one SGD step at the scheduled
// learning rate. Loss values are read back once per micro-batch (one stacked readback) and checked
// before the step: a NaN or infinite term stops training without touching the weights, naming the
// iteration and the term, as Detectron2's FloatingPointError does. In data-parallel training the
// last micro-batch's backward hands each finished gradient to a GradientReducer (train/ddp.ts), which
// averages them over the ranks before the step; the losses are averaged too, so all ranks agree.
// With `amp` (train/amp.ts) the forward runs under autocast, the loss is scaled before backward, the
// gradients are unscaled on the GPU with a found-inf flag read back with the last micro-batch's
// losses, and the GradScaler skips overflowing steps; train/amp.ts states when training then stops.
import type { DataLoader } from '../data/loader.js';
import { mul, add, mixSeed, reshape, stack, tensor, tidyAsync, autocastAsync, nn, optim, Rng, type Tensor } from '../engine/index.js';
import { AMP_NONFINITE_LOSS_LIMIT, type AmpTraining } from './amp.js';
import { LOSS_TERMS, type LossTerm, type MaskRCNN } from '../model/maskrcnn.js';
import { batchToModelInput } from './batch.js';
import type { Collective } from './collective.js';
import type { GradientReducer } from './ddp.js';

/** Thrown when a loss term is NaN or infinite; the weights are left as they were before the step. */
export class NonFiniteLossError extends Error {
  constructor(
    readonly iter: number,
    readonly term: LossTerm,
    readonly losses: Record<LossTerm, number>,
  ) {
    const v = losses[term];
    super(
      `loss became ${Number.isNaN(v) ? 'NaN' : 'infinite'} at iteration ${iter} in ${term} ` +
        `(${LOSS_TERMS.map((k) => `${k}=${losses[k]}`).join(', ')})`,
    );
    this.name = 'NonFiniteLossError';
  }
}

/**
 * SGD parameter groups: trainable parameters of norm layers (GroupNorm / BatchNorm2d scale and shift)
 * get no weight decay, as Detectron2's WEIGHT_DECAY_NORM = 0; everything else trainable gets it.
 * Frozen parameters (requiresGrad false) are left out.
 */
export function paramGroups(model: MaskRCNN, weightDecay: number): optim.ParamGroupInput[] {
  const norm = new Set<Tensor>();
  for (const [, m] of model.namedModules()) {
    if (m instanceof nn.GroupNorm || m instanceof nn.BatchNorm2d) for (const [, p] of m.namedParameters()) norm.add(p);
  }
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const p of model.parameters()) {
    if (!p.requiresGrad) continue;
    (norm.has(p) ? noDecay : decay).push(p);
  }
  const groups: optim.ParamGroupInput[] = [{ params: decay, weightDecay }];
  if (noDecay.length) groups.push({ params: noDecay, weightDecay: 0 });
  return groups;
}

export interface StepResult {
  /** Mean over micro-batches (and over ranks in data-parallel training). */
  losses: Record<LossTerm, number>;
  total: number;
  /** Images of the step, all ranks together. */
  images: number;
  /** amp: the loss scale the step ran with, and whether the scaler skipped the update (inf/NaN). */
  amp?: { scale: number; skipped: boolean };
}

export interface StepOptions {
  model: MaskRCNN;
  optimizer: optim.SGD;
  loader: DataLoader;
  rng: Rng;
  /** 1-based number of this iteration (for messages). */
  iter: number;
  accumulate: number;
  /** Learning-rate factor of this iteration (schedule). */
  lrFactor: number;
  /** Test hook: multiply this term by NaN at this iteration (and the count - 1 after it). */
  injectNaN?: { iter: number; term: LossTerm; count?: number };
  /**
   * Data-parallel training: the ranks (losses are averaged over them for the log and the NaN check,
   * so every rank stops together) and the reducer that averages the gradients during the last
   * micro-batch's backward (absent with one rank: nothing to average).
   */
  collective?: Collective;
  reducer?: GradientReducer;
  /**
   * When set, each micro-batch's anchor / RoI sampling draws from its own generator seeded from
   * (this seed, iteration, global micro-batch index = micro x ranks + rank) instead of `rng`, so that
   * N ranks x batch B sample exactly as 1 rank x batch B x N accumulated micro-batches (data-parallel
   * runs use it; the state to resume is then the iteration alone).
   */
  samplingSeed?: number;
  /** Mixed precision: autocast, loss scaling and its skip rule (train/amp.ts). */
  amp?: AmpTraining;
}

/** One optimisation step over `accumulate` micro-batches. Throws NonFiniteLossError before stepping. */
export async function trainStep(o: StepOptions): Promise<StepResult> {
  const sums = Object.fromEntries(LOSS_TERMS.map((k) => [k, 0])) as Record<LossTerm, number>;
  let images = 0;
  const ranks = o.collective?.size ?? 1;
  const rank = o.collective?.rank ?? 0;
  const amp = o.amp;
  let foundInf: number | undefined;
  o.optimizer.zeroGrad();
  for (let micro = 0; micro < o.accumulate; micro++) {
    const rng = o.samplingSeed === undefined ? o.rng : new Rng(mixSeed(o.samplingSeed, 0x5a3, o.iter, micro * ranks + rank));
    const last = micro === o.accumulate - 1;
    const b = await o.loader.next();
    if (!b) throw new Error('train: the data loader ran out of batches');
    images += b.samples.length;
    const stacked = await tidyAsync(async () => {
      const { batch, targets } = batchToModelInput(b);
      const forward = () => o.model.losses(batch, targets, rng);
      const losses = await (amp ? autocastAsync(forward) : forward());
      const terms = LOSS_TERMS.map((k) => {
        // A model without a mask branch (Faster R-CNN) has no loss_mask: it counts as 0.
        const t = reshape(losses[k] ?? tensor(new Float32Array(1), [1]), [1]);
        const nan = o.injectNaN, hit = nan && nan.term === k && o.iter >= nan.iter && o.iter < nan.iter + (nan.count ?? 1);
        return hit ? mul(t, NaN) : t;
      });
      const total = terms.reduce((a, t) => add(a, t));
      const objective = mul(total, 1 / o.accumulate);
      (amp ? amp.scaler.scale(objective) : objective).backward(last && o.reducer ? { onLeafGrad: o.reducer.onLeafGrad } : {});
      // amp: the found-inf flag of the unscaled gradients rides along with the losses' readback
      // (data-parallel: unscaled after the reduction instead, and read by the scaler's step).
      const flag = amp && last && !o.reducer ? [reshape(amp.scaler.unscale_(o.optimizer), [])] : [];
      return stack([...terms.map((t) => reshape(t, [])), ...flag]);
    });
    const vals = await stacked.floatData();
    if (vals.length > LOSS_TERMS.length) foundInf = vals[LOSS_TERMS.length];
    stacked.dispose();
    LOSS_TERMS.forEach((k, i) => {
      sums[k] += vals[i]! / o.accumulate;
    });
  }
  if (o.reducer) await o.reducer.finish();
  if (ranks > 1) {
    const v = Float64Array.from([...LOSS_TERMS.map((k) => sums[k]), images]);
    await o.collective!.allreduceSum(v);
    LOSS_TERMS.forEach((k, i) => (sums[k] = v[i]! / ranks));
    images = v[LOSS_TERMS.length]!;
  }
  const nonFinite = LOSS_TERMS.find((k) => !Number.isFinite(sums[k]));
  if (amp) amp.nonFiniteLossSteps = nonFinite ? amp.nonFiniteLossSteps + 1 : 0;
  if (nonFinite && (!amp || amp.nonFiniteLossSteps >= AMP_NONFINITE_LOSS_LIMIT)) {
    o.optimizer.zeroGrad();
    amp?.scaler.dispose();
    const e = new NonFiniteLossError(o.iter, nonFinite, sums);
    if (amp) e.message += ` (with --amp: ${amp.nonFiniteLossSteps} iterations in a row)`;
    throw e;
  }
  o.optimizer.scaleLr(o.lrFactor);
  let ampResult: StepResult['amp'];
  if (amp) {
    // A non-finite loss skips the step like overflowing gradients do (and halves the scale).
    const scale = amp.scaler.getScale();
    const stepped = await amp.scaler.step(o.optimizer, nonFinite ? 1 : foundInf);
    amp.scaler.update();
    ampResult = { scale, skipped: !stepped };
  } else {
    o.optimizer.step();
  }
  o.optimizer.zeroGrad();
  const total = LOSS_TERMS.reduce((a, k) => a + sums[k], 0);
  return { losses: sums, total, images, ...(ampResult ? { amp: ampResult } : {}) };
}
