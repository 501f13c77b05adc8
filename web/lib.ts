// The browser library: everything a page needs in one ES module. web/build.js bundles this
// (after tsc) into <dist>/web/engine.js, with declarations in <dist>/web/engine.d.ts. The engine
// finds navigator.gpu by itself; images, safetensors and synthetic data work on bytes in memory.
export * from '../engine/index.js';
export * as image from '../data/image.js';
export * as shapes from '../data/synthetic.js';
export * as rle from '../data/rle.js';
export * as draw from '../data/draw.js';
export * as transforms from '../data/transforms.js';
export { MaskRCNN, LOSS_TERMS, type LossTerm, type Detection, type PreparedBatch, type LossDict } from '../model/maskrcnn.js';
export type { MaskTarget } from '../model/roi-heads.js';
export { getPreset, presetNames } from '../model/presets.js';
export type { MaskRCNNConfig } from '../model/config.js';
// Checkpoint files written by `node cli/train.js` (pure TypeScript: no file access in it).
export { decodeCheckpoint, checkpointInfo, encodeWeights, detectWeightsFormat, type CheckpointCategory } from '../model/checkpoint.js';
// Training, as `node cli/train.js` does it (train/), on shapes rendered in memory.
export { DataLoader } from '../data/loader.js';
export { ShapesSampleSource, shapesRawSample, shapesTargets } from '../data/shapes-source.js';
export { BROWSER_DEFAULTS, resolveConfig, type TrainConfig } from '../train/config.js';
export { buildTraining } from '../train/trainer.js';
export { trainStep, NonFiniteLossError, type StepResult } from '../train/step.js';
