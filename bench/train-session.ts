// A training session for measurements (bench/train.ts, tools/profile-train.ts): the model, SGD and a
// data loader over the cached synthetic shapes dataset, built as `node cli/train.js` builds them,
// without checkpoints, logs or evaluation. step() runs one iteration.
import * as path from 'node:path';
import type { MaskRCNN } from '../model/maskrcnn.js';
import { CocoSampleSource } from '../data/coco-source.js';
import { DataLoader } from '../data/loader.js';
import { nodeIO } from '../cli/node-io.js';
import { fixtureStateDict } from '../model/fixture-weights.js';
import { resolveConfig, type TrainConfig } from '../train/config.js';
import { trainStep, type StepResult } from '../train/step.js';
import { buildTraining } from '../train/trainer.js';
import { loadTrainingData } from '../train/run.js';

export interface TrainSession {
  cfg: TrainConfig;
  model: MaskRCNN;
  loader: DataLoader;
  step(): Promise<StepResult>;
  dispose(): Promise<void>;
}

/**
 * A session for a (partial) training config over the synthetic shapes dataset (cached under .cache/).
 * `formulaWeights` loads the parity fixture's formula weights (model/fixture-weights.ts), which keep
 * R50-FPN's activations in range where a random init with identity-frozen BN diverges.
 */
export async function trainSession(user: Partial<TrainConfig>, opt: { formulaWeights?: boolean } = {}): Promise<TrainSession> {
  const cfg = resolveConfig({ ...user, data: 'synthetic' });
  const { train, trainImages } = await loadTrainingData(cfg, nodeIO, path.join(process.cwd(), '.cache'), (l) => console.error(l)); // stderr: stdout may carry JSON
  const parts = buildTraining(cfg, train.numCategories + 1);
  const { model, modelCfg, optimizer, rng, schedule } = parts;
  if (opt.formulaWeights) {
    const shapes = Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape] as const);
    model.loadStateDict(fixtureStateDict(shapes), { strict: false });
  }
  const source = new CocoSampleSource(train, nodeIO, { imageDir: trainImages, transform: model.transformConfig(true), filterEmpty: true });
  const loader = new DataLoader(source, { batchSize: cfg.batch, seed: cfg.seed, sizeDivisible: modelCfg.input.sizeDivisible });
  let iter = 0;
  return {
    cfg,
    model,
    loader,
    step: () => trainStep({ model, optimizer, loader, rng, iter: iter + 1, accumulate: cfg.accumulate, lrFactor: schedule(iter++) }),
    async dispose() {
      await loader.close();
      parts.dispose();
    },
  };
}
