// The one place the demo meets the Mask R-CNN model (model/maskrcnn.ts): building a preset,
// loading checkpoint weights (plain weights, or `node cli/train.js` checkpoints with their config
// and categories), detection in original image coordinates, and training on synthetic shapes
// rendered in memory (data/shapes-source.ts) with train/'s step, schedule, norm weight-decay rule and
// NaN stop: the code `node cli/train.js` runs, with the page's smaller defaults (BROWSER_DEFAULTS).
import * as L from './lib.js';
import type { LoadedCheckpoint } from './checkpoint.js';
import type { Overlay } from './draw.js';

export interface DemoDetector {
  /** Category names by contiguous label (index 0 = background). */
  classNames: string[];
  /** Where the weights came from, for the status line. */
  weights: string;
  /** amp: under autocast (matmul / conv operands rounded to f16, f32 accumulation). */
  detect(images: L.image.RgbImage[], opts?: { amp?: boolean }): Promise<Overlay[]>;
  dispose(): void;
}

export interface DemoTrainer {
  /** The training configuration (train/config.ts's BROWSER_DEFAULTS unless overridden). */
  cfg: L.TrainConfig;
  /** Steps taken. */
  iter: number;
  /** One optimisation step (train/step.ts) on the next batch; throws NonFiniteLossError on a NaN loss. */
  step(): Promise<L.StepResult & { lr: number }>;
  /** Predictions of the current weights on a synthetic validation image. */
  preview(): Promise<{ image: L.image.RgbImage; overlay: Overlay; classNames: string[] }>;
  /** The weights as safetensors bytes (with the config and categories, like cli/train.js writes). */
  checkpoint(): Promise<Uint8Array>;
  dispose(): void;
}

export interface DemoModel {
  presets: string[];
  createDetector(preset: string, checkpoint: LoadedCheckpoint | null): Promise<DemoDetector>;
  /** A trainer; `over` changes the page's training config (e.g. the seed, the batch). */
  createTrainer(preset: string, over?: Partial<L.TrainConfig>): Promise<DemoTrainer>;
  /** The preset a checkpoint was trained with (its stored config's name), if it names one. */
  checkpointPreset(checkpoint: LoadedCheckpoint): string | null;
}

export const MODEL_MISSING = 'model not available in this build';

const SHAPE_NAMES = L.shapes.SHAPES_CLASS_NAMES;

function toOverlay(d: L.Detection): Overlay {
  return { boxes: d.boxes, labels: d.labels, scores: d.scores, masks: d.masks, height: d.height, width: d.width };
}

async function detectWith(model: L.MaskRCNN, images: L.image.RgbImage[], amp = false): Promise<Overlay[]> {
  // The evaluation transform draws no random numbers; the Rng only satisfies the signature.
  const batch = model.prepare(images, new L.Rng(0));
  try {
    return (await L.autocastAsync(() => model.detect(batch), amp)).map(toOverlay);
  } finally {
    batch.images.dispose();
  }
}

/** Config and class names from a checkpoint: its stored config, else the preset sized to its classifier. */
function configFor(preset: string, ck: LoadedCheckpoint | null): { cfg: L.MaskRCNNConfig; names: string[]; weights: Record<string, L.HostTensor> | null } {
  if (!ck) return { cfg: L.getPreset(preset, { numClasses: SHAPE_NAMES.length }), names: SHAPE_NAMES, weights: null };
  const decoded = L.decodeCheckpoint(ck.raw, ck.source);
  const info = L.checkpointInfo(decoded);
  if (info) {
    const names = ['background', ...info.categories.map((c) => c.name)];
    return { cfg: info.model, names, weights: decoded.model };
  }
  const cls = decoded.model['roi_heads.box_predictor.cls_score.weight'];
  const numClasses = cls ? cls.shape[0]! : SHAPE_NAMES.length;
  const names = numClasses === SHAPE_NAMES.length ? SHAPE_NAMES : Array.from({ length: numClasses }, (_, i) => (i ? `class ${i}` : 'background'));
  return { cfg: L.getPreset(preset, { numClasses }), names, weights: decoded.model };
}

/** The preset the training tab trains: the same model as `node cli/train.js` by default. */
export const TRAIN_PRESET = 'tiny-cpu';

export const demoModel: DemoModel | null = {
  presets: L.presetNames(),

  async createDetector(preset, checkpoint) {
    const { cfg, names, weights } = configFor(preset, checkpoint);
    const model = new L.MaskRCNN(cfg);
    if (weights) model.loadStateDict(weights);
    model.eval();
    return {
      classNames: names,
      weights: weights ? checkpoint!.source : `${cfg.name}, untrained (random) weights`,
      detect: (images, opts) => detectWith(model, images, opts?.amp),
      dispose: () => model.dispose(),
    };
  },

  checkpointPreset(checkpoint) {
    const info = L.checkpointInfo(L.decodeCheckpoint(checkpoint.raw, checkpoint.source));
    return info && L.presetNames().includes(info.model.name) ? info.model.name : null;
  },

  async createTrainer(preset, over = {}) {
    const cfg = L.resolveConfig({ ...over, preset }, L.BROWSER_DEFAULTS);
    const shapes = { ...L.shapes.DEFAULT_SHAPES_OPTIONS, ...cfg.synthetic };
    const { model, modelCfg, optimizer, rng, schedule, amp, dispose } = L.buildTraining(cfg, SHAPE_NAMES.length);
    const source = new L.ShapesSampleSource(shapes, 0, model.transformConfig(true));
    const loader = new L.DataLoader(source, { batchSize: cfg.batch, seed: cfg.seed, sizeDivisible: modelCfg.input.sizeDivisible });
    const trainer: DemoTrainer = {
      cfg,
      iter: 0,
      async step() {
        const it = trainer.iter;
        const r = await L.trainStep({ model, optimizer, loader, rng, iter: it + 1, accumulate: cfg.accumulate, lrFactor: schedule(it), amp });
        trainer.iter++;
        return { ...r, lr: optimizer.lr };
      },
      async preview() {
        const { raw } = L.shapesRawSample(shapes, 1, trainer.iter % shapes.valCount);
        model.eval();
        try {
          const [o] = await detectWith(model, [raw.image], cfg.amp);
          return { image: raw.image, overlay: o!, classNames: SHAPE_NAMES };
        } finally {
          model.train();
        }
      },
      async checkpoint() {
        const categories = L.shapes.SHAPES_CATEGORIES.map((c) => ({ id: c.id, name: c.name }));
        return L.encodeWeights(model, { model: modelCfg, categories, iter: trainer.iter });
      },
      dispose() {
        void loader.close();
        dispose();
      },
    };
    return trainer;
  },
};
