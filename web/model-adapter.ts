// The one place the demo meets the Mask R-CNN model (model/maskrcnn.ts): building a preset,
// loading checkpoint weights (plain weights, or `node cli/train.js` checkpoints with their config
// and categories), detection in original image coordinates, and training the tiny preset on
// synthetic shapes rendered in memory (data/synthetic.ts), the same data `cli/train.js` uses.
import * as L from './lib.js';
import type { LoadedCheckpoint } from './checkpoint.js';
import type { Overlay } from './draw.js';

export interface DemoDetector {
  /** Category names by contiguous label (index 0 = background). */
  classNames: string[];
  /** Where the weights came from, for the status line. */
  weights: string;
  detect(images: L.image.RgbImage[]): Promise<Overlay[]>;
  dispose(): void;
}

export interface DemoTrainer {
  /** One optimisation step on a fresh synthetic image; resolves with the total loss. */
  step(): Promise<number>;
  /** Predictions of the current weights on a synthetic validation image. */
  preview(): Promise<{ image: L.image.RgbImage; overlay: Overlay; classNames: string[] }>;
  /** The weights as safetensors bytes (with the config and categories, like cli/train.js writes). */
  checkpoint(): Promise<Uint8Array>;
  dispose(): void;
}

export interface DemoModel {
  presets: string[];
  createDetector(preset: string, checkpoint: LoadedCheckpoint | null): Promise<DemoDetector>;
  createTrainer(preset: string, seed: number): Promise<DemoTrainer>;
}

export const MODEL_MISSING = 'model not available in this build';

const SHAPE_NAMES = ['background', ...L.shapes.SHAPES_CATEGORIES.map((c) => c.name)];
const LOSS_TERMS = ['loss_objectness', 'loss_rpn_box_reg', 'loss_classifier', 'loss_box_reg', 'loss_mask'] as const;

function toOverlay(d: L.Detection): Overlay {
  return { boxes: d.boxes, labels: d.labels, scores: d.scores, masks: d.masks, height: d.height, width: d.width };
}

async function detectWith(model: L.MaskRCNN, images: L.image.RgbImage[]): Promise<Overlay[]> {
  // The evaluation transform draws no random numbers; the Rng only satisfies the signature.
  const batch = model.prepare(images, new L.Rng(0));
  try {
    return (await model.detect(batch)).map(toOverlay);
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

/** Synthetic shapes image `index` of `split` (size px) as a raw training sample (xyxy boxes, 0/1 masks). */
export function shapesSample(split: number, index: number, seed = 0, size = L.shapes.DEFAULT_SHAPES_OPTIONS.size): { raw: L.transforms.RawSample; rendered: L.shapes.RenderedShapes } {
  const s = L.shapes.renderShapesImage({ ...L.shapes.DEFAULT_SHAPES_OPTIONS, seed, size }, split, index);
  const n = s.objects.length, hw = s.width * s.height;
  const boxes = new Float32Array(4 * n), labels = new Int32Array(n), masks = new Uint8Array(n * hw);
  s.objects.forEach((o, i) => {
    const [x, y, w, h] = o.bbox;
    boxes.set([x, y, x + w, y + h], 4 * i);
    labels[i] = o.categoryId;
    masks.set(L.rle.rleDecodeRowMajor(L.rle.rleFrString(o.segmentation.counts, s.height, s.width)), i * hw);
  });
  return { raw: { imageId: index, image: { width: s.width, height: s.height, data: s.rgb }, boxes, labels, masks }, rendered: s };
}

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
      detect: (images) => detectWith(model, images),
      dispose: () => model.dispose(),
    };
  },

  async createTrainer(preset, seed) {
    const cfg = L.getPreset(preset, { numClasses: SHAPE_NAMES.length });
    L.manualSeed(seed);
    const model = new L.MaskRCNN(cfg);
    model.train();
    const params = model.parameters().filter((p) => p.requiresGrad);
    const opt = new L.optim.SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
    const rng = new L.Rng(seed);
    // Images rendered at the size the preset trains at (the shapes scale with the image).
    const size = cfg.input.minSizesTrain[0]!;
    let index = 0, iter = 0;
    return {
      async step() {
        const { raw } = shapesSample(0, index++, seed, size);
        const s = L.transforms.transformSample(raw, model.transformConfig(true), rng);
        const b = L.transforms.batchImages([s], cfg.input.sizeDivisible);
        opt.zeroGrad();
        const total = await L.tidyAsync(async () => {
          const batch: L.PreparedBatch = {
            images: L.tensor(b.images, b.shape),
            info: { paddedSize: [b.shape[2], b.shape[3]], imageSizes: b.imageSizes },
            originalSizes: [[s.origHeight, s.origWidth]],
          };
          const targets: L.MaskTarget[] = [{ boxes: s.boxes, labels: s.labels, masks: L.tensor(Float32Array.from(s.masks), [s.labels.length, s.height, s.width]) }];
          const losses = await model.losses(batch, targets, rng);
          const sum = LOSS_TERMS.flatMap((k) => { const t = losses[k]; return t ? [L.reshape(t, [])] : []; }).reduce((a, t) => L.add(a, t));
          sum.backward();
          return sum;
        });
        const v = await total.item();
        total.dispose();
        if (Number.isFinite(v)) opt.step();
        opt.zeroGrad();
        iter++;
        return v;
      },
      async preview() {
        const { raw } = shapesSample(1, iter % 100, seed, size);
        model.eval();
        try {
          const [o] = await detectWith(model, [raw.image]);
          return { image: raw.image, overlay: o!, classNames: SHAPE_NAMES };
        } finally {
          model.train();
        }
      },
      async checkpoint() {
        const named: Record<string, L.HostTensor> = {};
        for (const [k, t] of Object.entries(model.stateDict())) {
          named[k] = { dtype: t.dtype, shape: [...t.shape], data: (await t.data()) as Float32Array | Int32Array | Uint32Array };
        }
        const categories = L.shapes.SHAPES_CATEGORIES.map((c) => ({ id: c.id, name: c.name }));
        return L.encodeSafetensors(named, { format: 'maskrcnn-webgpu-weights-v1', info: JSON.stringify({ model: cfg, categories, iter }) });
      },
      dispose: () => model.dispose(),
    };
  },
};
