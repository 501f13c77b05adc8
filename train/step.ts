// The training iteration (the one step `node cli/train.js`, the demo page's Train tab, bench/ and
// tools/ all run): K micro-batches (gradient accumulation), each running the model's five
// losses and accumulating the gradient of their sum / K, then one SGD step at the scheduled
// learning rate. Loss values are read back once per step (one stacked readback), late: started
// after the backward pass and taken when the caller asks (startTrainStep), so the step itself waits
// on the GPU only for the RPN's proposals. A NaN or infinite term stops training, naming the
// iteration and the term, as Detectron2's FloatingPointError does. In data-parallel training the
// last micro-batch's backward hands each finished gradient to a GradientReducer (train/ddp.ts), which
// averages them over the ranks before the step; the losses are averaged too, so all ranks agree.
// With `amp` (train/amp.ts) the forward runs under autocast, the loss is scaled before backward, the
// gradients are unscaled on the GPU with a found-inf flag (set by a non-finite loss too), and the
// update is skipped on the GPU when it is set (the GradScaler's state lives there, as torch's), so an
// amp step waits for nothing more than an fp32 one; the flag and the scale come back with the
// losses. train/amp.ts states when training then stops.
import type { DataLoader } from '../data/loader.js';
import { mul, cat, mixSeed, reshape, stack, sum, tensor, tidyAsync, autocastAsync, nn, optim, Rng, type PendingData, type Tensor } from '../engine/index.js';
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

/**
 * amp: unscales the gradients (checking `losses` too, when given) and returns [losses..., found-inf
 * flag, scale] as one tensor to read back.
 */
function withAmpFlags(amp: AmpTraining, optimizer: optim.SGD, losses?: Tensor): Tensor {
  const found = amp.scaler.unscale_(optimizer, losses ? [losses] : []);
  const scale = amp.scaler.scaleTensor();
  const out = cat(losses ? [losses, found, scale] : [found, scale], 0);
  found.dispose();
  scale.dispose();
  return out;
}

/** A step whose weights are updated and whose losses are still on their way to the host. */
export interface PendingStep {
  /** 1-based number of the iteration. */
  iter: number;
  /** Images of this rank's micro-batches. */
  images: number;
  /** Whether the losses are on the host already (result() then does not wait on the GPU). */
  readonly ready: boolean;
  /**
   * The losses (averaged over micro-batches and ranks, all ranks calling it at the same point);
   * rejects with NonFiniteLossError naming the iteration and the term. The same promise every call.
   */
  result(): Promise<StepResult>;
}

/**
 * One optimisation step over `accumulate` micro-batches, without waiting for its losses: the loss
 * values are copied back once, after the backward pass, and taken by result() later (e.g. after the
 * next step's RPN readback, when they are long there), so a step's one blocking wait is the RPN's.
 * The SGD step is taken before the losses are known: a non-finite loss is reported by result(),
 * after the weights were updated with it; the caller stops and keeps its last checked checkpoint
 * (train/run.ts settles a step's losses before any checkpoint). `checkFirst` instead waits for the
 * losses before stepping and leaves the weights untouched on a non-finite one (trainStep). An amp
 * step needs no wait: its update is skipped on the GPU (GradScaler.step).
 */
export async function startTrainStep(o: StepOptions, checkFirst = false): Promise<PendingStep> {
  let images = 0;
  const ranks = o.collective?.size ?? 1;
  const rank = o.collective?.rank ?? 0;
  const amp = o.amp;
  o.optimizer.zeroGrad();
  const perMicro: Tensor[] = [];
  let values: PendingData<Float32Array>;
  try {
    for (let micro = 0; micro < o.accumulate; micro++) {
      const rng = o.samplingSeed === undefined ? o.rng : new Rng(mixSeed(o.samplingSeed, 0x5a3, o.iter, micro * ranks + rank));
      const last = micro === o.accumulate - 1;
      const b = await o.loader.next();
      if (!b) throw new Error('train: the data loader ran out of batches');
      images += b.samples.length;
      perMicro.push(
        await tidyAsync(async () => {
          const { batch, targets } = batchToModelInput(b, o.loader.source.maxInstances);
          const forward = () => o.model.losses(batch, targets, rng);
          const losses = await (amp ? autocastAsync(forward) : forward());
          const terms = LOSS_TERMS.map((k) => {
            // A model without a mask branch (Faster R-CNN) has no loss_mask: it counts as 0.
            const t = reshape(losses[k] ?? tensor(new Float32Array(1), [1]), []);
            const nan = o.injectNaN, hit = nan && nan.term === k && o.iter >= nan.iter && o.iter < nan.iter + (nan.count ?? 1);
            return hit ? mul(t, NaN) : t;
          });
          // The terms side by side (read back for the log) and their sum: one reduction, where a
          // chain of adds and a multiply by 1 took a dispatch each (and as many in the backward).
          const vec = stack(terms);
          const total = sum(vec);
          const objective = o.accumulate === 1 ? total : mul(total, 1 / o.accumulate);
          (amp ? amp.scaler.scale(objective) : objective).backward(last && o.reducer ? { onLeafGrad: o.reducer.onLeafGrad } : {});
          return vec;
        }),
      );
    }
    // One readback of every micro-batch's terms (K x 5), started now and taken late. amp: then the
    // found-inf flag of the unscaled gradients, also set by a non-finite loss, and the scale
    // (data-parallel: the gradients are unscaled after their reduction instead, below).
    const all = perMicro.length === 1 ? perMicro[0]! : cat(perMicro, 0);
    const read = amp && !o.reducer ? withAmpFlags(amp, o.optimizer, all) : all;
    values = read.dataLater() as PendingData<Float32Array>;
    if (read !== all) read.dispose();
    if (all !== perMicro[0]) all.dispose();
  } finally {
    perMicro.forEach((t) => t.dispose());
  }
  if (o.reducer) await o.reducer.finish();
  // Data-parallel amp: the reduced gradients are unscaled now; their flag and the scale come back
  // separately (the losses' readback has started). Every rank holds the same averaged gradients,
  // so every rank finds the same flag.
  let ampFlags: PendingData<Float32Array> | undefined;
  if (amp && o.reducer) {
    const flags = withAmpFlags(amp, o.optimizer);
    ampFlags = flags.dataLater() as PendingData<Float32Array>;
    flags.dispose();
  }
  let result: Promise<StepResult> | undefined;
  const take = async (): Promise<StepResult> => {
    const vals = await values.result();
    const sums = Object.fromEntries(LOSS_TERMS.map((k) => [k, 0])) as Record<LossTerm, number>;
    for (let micro = 0; micro < o.accumulate; micro++) {
      LOSS_TERMS.forEach((k, i) => {
        sums[k] += vals[micro * LOSS_TERMS.length + i]! / o.accumulate;
      });
    }
    const flags = ampFlags ? await ampFlags.result() : vals.subarray(o.accumulate * LOSS_TERMS.length);
    const ampResult = amp ? { scale: flags[1]!, skipped: flags[0] !== 0 } : undefined;
    let all = images;
    if (ranks > 1) {
      const v = Float64Array.from([...LOSS_TERMS.map((k) => sums[k]), images]);
      await o.collective!.allreduceSum(v);
      LOSS_TERMS.forEach((k, i) => (sums[k] = v[i]! / ranks));
      all = v[LOSS_TERMS.length]!;
    }
    const nonFinite = LOSS_TERMS.find((k) => !Number.isFinite(sums[k]));
    if (amp) amp.nonFiniteLossSteps = nonFinite ? amp.nonFiniteLossSteps + 1 : 0;
    if (nonFinite && (!amp || amp.nonFiniteLossSteps >= AMP_NONFINITE_LOSS_LIMIT)) {
      const e = new NonFiniteLossError(o.iter, nonFinite, sums);
      if (amp) e.message += ` (with --amp: ${amp.nonFiniteLossSteps} iterations in a row)`;
      throw e;
    }
    const total = LOSS_TERMS.reduce((a, k) => a + sums[k], 0);
    return { losses: sums, total, images: all, ...(ampResult ? { amp: ampResult } : {}) };
  };
  const pending: PendingStep = {
    iter: o.iter,
    images,
    get ready() {
      return values.ready && (ampFlags?.ready ?? true);
    },
    result: () => (result ??= take()),
  };
  if (checkFirst) {
    try {
      await pending.result();
    } catch (e) {
      o.optimizer.zeroGrad();
      // The scaler's step state is left for the next step to restart from (its update() is skipped).
      if (amp) amp.scaler.update(await amp.scaler.getScale());
      throw e;
    }
  }
  o.optimizer.scaleLr(o.lrFactor);
  if (amp) {
    await amp.scaler.step(o.optimizer);
    amp.scaler.update();
  } else {
    o.optimizer.step();
  }
  o.optimizer.zeroGrad();
  return pending;
}

/**
 * One optimisation step that waits for its losses before stepping: a non-finite loss throws
 * NonFiniteLossError and leaves the weights as they were (the demo page; train/run.ts pipelines
 * steps with startTrainStep instead).
 */
export async function trainStep(o: StepOptions): Promise<StepResult> {
  return (await startTrainStep(o, true)).result();
}
