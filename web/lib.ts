// The browser library: everything a page needs in one ES module. web/build.js bundles this
// (after tsc) into <dist>/web/engine.js, with declarations in <dist>/web/engine.d.ts. The engine
// finds navigator.gpu by itself; images, safetensors and synthetic data work on bytes in memory.
export * from '../engine/index.js';
export * as image from '../data/image.js';
export * as shapes from '../data/synthetic.js';
export * as rle from '../data/rle.js';
export * as draw from '../data/draw.js';
export * as transforms from '../data/transforms.js';
export { MaskRCNN, type Detection, type PreparedBatch, type LossDict } from '../model/maskrcnn.js';
export type { MaskTarget } from '../model/roi-heads.js';
export { getPreset, presetNames } from '../model/presets.js';
export type { MaskRCNNConfig } from '../model/config.js';
// Checkpoint files written by `node cli/train.js` (pure TypeScript: no file access in it).
export { decodeCheckpoint, checkpointInfo, detectWeightsFormat, type CheckpointCategory } from '../model/checkpoint.js';
