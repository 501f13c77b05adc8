// The one place the demo meets the Mask R-CNN model. Until model/ provides it, `demoModel` is
// null and the page marks detection and training as "model not available in this build" instead
// of pretending. To wire it: build the model from a preset (model/presets.ts getPreset('tiny')),
// load a checkpoint's host tensors, and implement detect() with MaskRCNN.prepare + detect, and
// trainStep() with the losses on a batch of synthetic shapes (data/synthetic.ts renderShapesImage).
import type { LoadedCheckpoint } from './checkpoint.js';
import type { Overlay } from './draw.js';
import type * as L from './lib.js';

export interface DemoDetector {
  /** Category names by contiguous label (index 0 = background). */
  classNames: string[];
  detect(images: L.image.RgbImage[]): Promise<Overlay[]>;
  dispose(): void;
}

export interface DemoTrainer {
  /** One optimisation step on a fresh synthetic batch; resolves with the total loss. */
  step(): Promise<number>;
  /** Predictions of the current weights on a synthetic validation image. */
  preview(): Promise<{ image: L.image.RgbImage; overlay: Overlay; classNames: string[] }>;
  /** The weights as safetensors bytes. */
  checkpoint(): Promise<Uint8Array>;
  dispose(): void;
}

export interface DemoModel {
  presets: string[];
  createDetector(preset: string, checkpoint: LoadedCheckpoint | null): Promise<DemoDetector>;
  createTrainer(preset: string, seed: number): Promise<DemoTrainer>;
}

export const demoModel: DemoModel | null = null;
export const MODEL_MISSING = 'model not available in this build';
