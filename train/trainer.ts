// The parts of a training run that every trainer builds the same way (`node cli/train.js`, the demo
// page's Train tab, bench/ and tools/): the model from the config's preset (initialised from the
// config's seed), SGD over paramGroups (no weight decay on norm parameters), the generator that
// drives anchor / proposal sampling, and the warmup + multi-step LR schedule.
import { manualSeed, mixSeed, optim, Rng } from '../engine/index.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import type { MaskRCNNConfig } from '../model/config.js';
import { milestones, modelConfigFor, type TrainConfig } from './config.js';
import { paramGroups } from './step.js';
import { AmpTraining } from './amp.js';

export interface TrainingParts {
  modelCfg: MaskRCNNConfig;
  model: MaskRCNN;
  optimizer: optim.SGD;
  rng: Rng;
  /** LR factor of 0-based iteration `it` (multiplies cfg.lr). */
  schedule: (it: number) => number;
  /** cfg.amp: the loss scaler and the non-finite-loss count (train/amp.ts); undefined in fp32. */
  amp: AmpTraining | undefined;
  /** Frees the optimizer's buffers and the model. */
  dispose(): void;
}

export function buildTraining(cfg: TrainConfig, numClasses: number): TrainingParts {
  const modelCfg = modelConfigFor(cfg, numClasses);
  manualSeed(cfg.seed);
  const model = new MaskRCNN(modelCfg);
  model.train();
  const optimizer = new optim.SGD(paramGroups(model, cfg.weightDecay), { lr: cfg.lr, momentum: cfg.momentum });
  const rng = new Rng(mixSeed(cfg.seed, 0x5a3));
  const schedule = optim.lrSchedules.warmupMultiStep({ warmupIters: cfg.warmupIters, warmupFactor: cfg.warmupFactor, milestones: milestones(cfg), gamma: cfg.gamma });
  const amp = cfg.amp ? new AmpTraining() : undefined;
  return {
    modelCfg, model, optimizer, rng, schedule, amp,
    dispose() {
      amp?.dispose();
      optimizer.dispose();
      model.dispose();
    },
  };
}
