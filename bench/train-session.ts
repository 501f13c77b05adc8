// A training session for measurements (bench/train.ts, tools/profile-train.ts): the model, SGD and a
// data loader over the cached synthetic shapes dataset, built as `node cli/train.js` builds them,
// without checkpoints, logs or evaluation. step() runs one iteration, pipelined as train/run.ts runs
// them: it starts a step and then takes the previous step's losses (read back late, not waited on).
import * as path from 'node:path';
import type { MaskRCNN } from '../model/maskrcnn.js';
import { CocoSampleSource } from '../data/coco-source.js';
import { DataLoader } from '../data/loader.js';
import { nodeIO } from '../cli/node-io.js';
import { fixtureStateDict } from '../model/fixture-weights.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadInitialWeights } from '../train/checkpoint.js';
import { resolveConfig, type TrainConfig } from '../train/config.js';
import { startTrainStep, type PendingStep, type StepResult } from '../train/step.js';
import { buildTraining } from '../train/trainer.js';
import { loadTrainingData } from '../train/run.js';

export interface TrainSession {
  cfg: TrainConfig;
  model: MaskRCNN;
  loader: DataLoader;
  /** Starts one iteration and takes the previous one's losses (checked for NaN); resolves to the new step. */
  step(): Promise<PendingStep>;
  /** The last started step's losses, if not taken yet. */
  flush(): Promise<StepResult | undefined>;
  dispose(): Promise<void>;
}

/**
 * A session for a (partial) training config over the synthetic shapes dataset (cached under .cache/).
 * `formulaWeights` loads the parity fixture's formula weights (model/fixture-weights.ts), which keep
 * R50-FPN's activations in range where a random init with identity-frozen BN diverges. `weights`
 * loads a checkpoint or weights file as `--weights` does (e.g. a trained run's model_final.safetensors:
 * a trained model keeps more proposals and positive RoIs than a fresh one, so its step costs more).
 */
export async function trainSession(user: Partial<TrainConfig>, opt: { formulaWeights?: boolean; weights?: string } = {}): Promise<TrainSession> {
  const cfg = resolveConfig({ ...user, data: 'synthetic' });
  const { train, trainImages } = await loadTrainingData(cfg, nodeIO, path.join(process.cwd(), '.cache'), (l) => console.error(l)); // stderr: stdout may carry JSON
  const parts = buildTraining(cfg, train.numCategories + 1);
  const { model, modelCfg, optimizer, rng, schedule } = parts;
  if (opt.formulaWeights) {
    const shapes = Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape] as const);
    model.loadStateDict(fixtureStateDict(shapes), { strict: false });
  }
  if (opt.weights) {
    const ck = await loadCheckpoint(nodeIO, opt.weights);
    for (const line of loadInitialWeights(model, ck.model, opt.weights, modelCfg.numClasses)) console.error(line);
  }
  const source = new CocoSampleSource(train, nodeIO, { imageDir: trainImages, transform: model.transformConfig(true), filterEmpty: true });
  const loader = new DataLoader(source, { batchSize: cfg.batch, seed: cfg.seed, sizeDivisible: modelCfg.input.sizeDivisible });
  let iter = 0;
  let previous: PendingStep | undefined;
  const flush = async (): Promise<StepResult | undefined> => {
    const p = previous;
    previous = undefined;
    return p?.result();
  };
  return {
    cfg,
    model,
    loader,
    async step() {
      const started = await startTrainStep({ model, optimizer, loader, rng, iter: iter + 1, accumulate: cfg.accumulate, lrFactor: schedule(iter++), amp: parts.amp });
      await flush();
      previous = started;
      return started;
    },
    flush,
    async dispose() {
      await flush();
      await loader.close();
      parts.dispose();
    },
  };
}
