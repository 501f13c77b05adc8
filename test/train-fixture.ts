// Shared by the training tests: a very small Mask R-CNN (the `tiny` preset shrunk to 8-64 backbone
// channels, a 32-channel FPN, a 1-conv 16-channel mask head, 64 px input) that runs an iteration in
// about a second on lavapipe, and a synthetic shapes dataset of a few 64 px images on disk.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateShapesDataset, shapesDatasetPaths } from '../data/synthetic.js';
import { nodeIO } from '../cli/node-io.js';
import type { DeepPartial, MaskRCNNConfig } from '../model/config.js';
import { resolveConfig, type TrainConfig } from '../train/config.js';

export const MICRO_MODEL: DeepPartial<MaskRCNNConfig> = {
  backbone: { stemChannels: 8, stageWidths: [8, 16, 32, 64], gnGroups: 4 },
  fpn: { outChannels: 32 },
  input: { minSizesTrain: [64], minSizeTest: 64, maxSize: 64, flipProb: 0 },
  rpn: { batchSizePerImage: 64, preNmsTopNTrain: 200, postNmsTopNTrain: 100, preNmsTopNTest: 200, postNmsTopNTest: 50 },
  roiHeads: { batchSizePerImage: 32, boxHead: { kind: 'two_mlp', representationSize: 128 }, maskHead: { convChannels: [16], predictorChannels: 16, gnGroups: 4 } },
};

/** A temp folder with `count` synthetic training images (1-2 shapes each, 64 px unless `size`) in COCO layout. */
export async function microDataset(count: number, seed = 0, size = 64): Promise<{ dir: string; images: string; ann: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'train-test-'));
  const data = join(dir, 'data');
  await generateShapesDataset({ seed, size, trainCount: count, valCount: 1, minObjects: 1, maxObjects: 2 }, nodeIO, data);
  const p = shapesDatasetPaths(nodeIO, data);
  return { dir, images: p.trainImages, ann: p.trainAnnotations };
}

/** A training config over that dataset and model (no validation set unless `evalOnTrain`); `over` may also replace the preset and model. */
export function microConfig(d: { dir: string; images: string; ann: string }, over: Partial<TrainConfig> = {}, evalOnTrain = false): TrainConfig {
  return resolveConfig({
    preset: 'tiny',
    model: MICRO_MODEL,
    trainImages: d.images,
    trainAnn: d.ann,
    ...(evalOnTrain ? { valImages: d.images, valAnn: d.ann } : {}),
    batch: 2,
    lr: 0.02,
    warmupIters: 2,
    stepFractions: [],
    logEvery: 1000,
    checkpointEvery: 1000,
    workers: 0,
    out: join(d.dir, 'run'),
    ...over,
  });
}

/** A `--config` file for `node cli/train.js` over that dataset and model (main-thread loading); returns its path. */
export function writeMicroConfig(d: { dir: string; images: string; ann: string }, over: Record<string, unknown>): string {
  const file = join(d.dir, 'config.json');
  writeFileSync(file, JSON.stringify({ preset: 'tiny', model: MICRO_MODEL, trainImages: d.images, trainAnn: d.ann, workers: 0, ...over }));
  return file;
}
