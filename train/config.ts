// The training configuration: its fields, the built-in defaults (one set for the synthetic shapes
// run, one for real COCO-format data), the paper's 1x / 3x schedules, and how the layers combine:
// defaults < schedule < config file < command-line flags. Pure data, no I/O.
import { withOverrides, type DeepPartial, type MaskRCNNConfig } from '../model/config.js';
import { getPreset } from '../model/presets.js';
import type { ShapesOptions } from '../data/synthetic.js';
import { optim } from '../engine/index.js';

export interface TrainConfig {
  /** Model preset name (model/presets.ts) and overrides merged into it (numClasses comes from the
   *  data). A `model` given by the user replaces the defaults' overrides rather than merging. */
  preset: string;
  model: DeepPartial<MaskRCNNConfig>;
  /** 'synthetic': the project's shapes dataset, generated once under cacheDir; 'coco': the paths below. */
  data: 'synthetic' | 'coco';
  synthetic: Partial<ShapesOptions>;
  trainImages?: string;
  trainAnn?: string;
  valImages?: string;
  valAnn?: string;
  /** Initial weights (safetensors, .pth, .pkl): matching names loaded, class-specific layers of
   *  another number of classes re-initialised (fine-tuning), others left as initialised. */
  weights?: string;
  /** Detectron2's FREEZE_AT: the stem (1) and the first K-1 ResNet stages frozen (0: none, 5: all);
   *  unset: the preset's own setting. */
  freezeAt?: number;
  iters: number;
  /** Images per micro-batch, micro-batches per step (effective batch = batch * accumulate). */
  batch: number;
  accumulate: number;
  /** Base learning rate (at factor 1 of the schedule). */
  lr: number;
  momentum: number;
  /** Weight decay of every trainable parameter except norm layers' (which get none). */
  weightDecay: number;
  warmupIters: number;
  warmupFactor: number;
  /** LR drops (x gamma) at these fractions of `iters`, unless `steps` gives iterations. */
  stepFractions: number[];
  steps?: number[];
  gamma: number;
  /** Informational once resolved: the schedule that set lr/iters/steps. */
  schedule?: '1x' | '3x';
  /** Run folder: checkpoint, metrics.jsonl, plot, results. */
  out: string;
  seed: number;
  checkpointEvery: number;
  /** Evaluate every K iterations (0: only at the end). */
  evalEvery: number;
  /** Evaluate on the first N validation images only (0: all). */
  evalImages: number;
  /** Progress line every N iterations. */
  logEvery: number;
  /** Data-loading worker threads (0: load on the main thread). */
  workers: number;
  /** Mixed precision (train/amp.ts): autocast forward and backward GEMMs, dynamic loss scaling. */
  amp: boolean;
}

/**
 * The default run: the shapes dataset at 128 px and the `tiny-cpu` preset (model/presets.ts), sized
 * to finish in under 20 minutes on a 2-core CPU under lavapipe. The wider `tiny` preset learns more
 * per image but is about 3x slower: `--preset tiny` runs it.
 */
export const SYNTHETIC_DEFAULTS: TrainConfig = {
  preset: 'tiny-cpu',
  model: {},
  data: 'synthetic',
  synthetic: { size: 128 },
  iters: 1500,
  batch: 4,
  accumulate: 1,
  lr: 0.02,
  momentum: 0.9,
  weightDecay: 1e-4,
  warmupIters: 50,
  warmupFactor: 0.001,
  stepFractions: [0.8, 0.95],
  gamma: 0.1,
  out: '',
  seed: 0,
  checkpointEvery: 100,
  evalEvery: 0,
  evalImages: 0,
  logEvery: 20,
  workers: 0,
  amp: false,
};

/**
 * The demo page's Train tab: the same model, step, warmup, LR steps, norm weight-decay rule and NaN
 * stop as the default run, smaller for a page on a CPU adapter: one image per step, a short warmup,
 * and a length the page is not expected to reach (it trains until paused).
 */
export const BROWSER_DEFAULTS: TrainConfig = {
  ...SYNTHETIC_DEFAULTS,
  batch: 1,
  lr: 0.01,
  warmupIters: 10,
  iters: 2000,
  checkpointEvery: 2000,
};

/** Real data: Detectron2's defaults at batch 16 scaled to the batch, 1x length unless told. */
export const COCO_DEFAULTS: TrainConfig = {
  ...SYNTHETIC_DEFAULTS,
  preset: 'detectron2-r50-fpn',
  model: {},
  synthetic: {},
  data: 'coco',
  batch: 2,
  warmupIters: 1000,
  stepFractions: [2 / 3, 8 / 9],
  checkpointEvery: 5000,
  logEvery: 20,
  workers: 1,
};

/**
 * The paper / Detectron2 schedules: LR 0.02 at batch 16 scaled linearly, 90k (1x) or 270k (3x)
 * iterations at batch 16 scaled inversely, warmup 1000 iterations from 0.001, momentum 0.9,
 * weight decay 1e-4. 1x drops at 2/3 and 8/9 of the run (60k, 80k); 3x at Detectron2's 210k and
 * 250k (7/9 and 25/27).
 */
export function scheduleValues(name: '1x' | '3x', effectiveBatch: number): Partial<TrainConfig> {
  const scale = 16 / effectiveBatch;
  const iters = Math.round((name === '1x' ? 90000 : 270000) * scale);
  return {
    schedule: name,
    lr: 0.02 / scale,
    iters,
    warmupIters: 1000,
    warmupFactor: 0.001,
    momentum: 0.9,
    weightDecay: 1e-4,
    stepFractions: name === '1x' ? [2 / 3, 8 / 9] : [7 / 9, 25 / 27],
  };
}

/** Combines defaults, the schedule (if any), the config file and the flags (later wins). */
export function resolveConfig(user: Partial<TrainConfig>, base?: TrainConfig): TrainConfig {
  const data = user.data ?? (user.trainAnn ? 'coco' : base?.data ?? 'synthetic');
  const defaults = base ?? (data === 'coco' ? COCO_DEFAULTS : SYNTHETIC_DEFAULTS);
  const batch = user.batch ?? defaults.batch;
  const accumulate = user.accumulate ?? defaults.accumulate;
  const sched = user.schedule ? scheduleValues(user.schedule, batch * accumulate) : {};
  const cfg: TrainConfig = { ...defaults, ...sched, ...stripUndefined(user), data };
  // A run saved before --amp existed (its train-config.json as the base) has no amp field: fp32.
  cfg.amp ??= false;
  // The default model overrides shrink `tiny`; another preset starts from its own settings.
  if (user.model === undefined && user.preset !== undefined && user.preset !== defaults.preset) cfg.model = {};
  validateTrainConfig(cfg);
  return cfg;
}

/** The LR milestones in iterations. */
export function milestones(cfg: TrainConfig): number[] {
  return cfg.steps ?? cfg.stepFractions.map((f) => Math.round(f * cfg.iters));
}

export function validateTrainConfig(c: TrainConfig): void {
  const posInt = (k: keyof TrainConfig): void => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new Error(`train config: ${k} must be a positive integer, got ${v}`);
  };
  const nonNegInt = (k: keyof TrainConfig): void => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 0) throw new Error(`train config: ${k} must be a non-negative integer, got ${v}`);
  };
  for (const k of ['iters', 'batch', 'accumulate', 'checkpointEvery', 'logEvery'] as const) posInt(k);
  for (const k of ['warmupIters', 'evalEvery', 'evalImages', 'workers', 'seed'] as const) nonNegInt(k);
  if (typeof c.amp !== 'boolean') throw new Error(`train config: amp must be true or false, got ${JSON.stringify(c.amp)}`);
  if (!(c.lr > 0)) throw new Error(`train config: lr must be positive, got ${c.lr}`);
  if (c.freezeAt !== undefined && !(Number.isInteger(c.freezeAt) && c.freezeAt >= 0 && c.freezeAt <= 5)) {
    throw new Error(`train config: freezeAt must be an integer in 0..5 (Detectron2's FREEZE_AT), got ${c.freezeAt}`);
  }
  if (!(c.weightDecay >= 0) || !(c.momentum >= 0)) throw new Error('train config: weightDecay and momentum must be >= 0');
  if (c.data === 'coco' && (!c.trainAnn || !c.trainImages)) throw new Error('train config: real data needs both --train-images DIR and --train-ann ANN.json');
  if ((c.valAnn === undefined) !== (c.valImages === undefined)) throw new Error('train config: --val-images and --val-ann go together');
  if (c.schedule !== undefined && c.schedule !== '1x' && c.schedule !== '3x') throw new Error(`train config: schedule must be 1x or 3x, got '${String(c.schedule)}'`);
  optim.lrSchedules.checkMilestones(milestones(c), 'train config: LR steps');
  // The preset and its overrides: an unknown name or a bad override is an error before any work.
  try {
    withOverrides(getPreset(c.preset), c.model);
  } catch (e) {
    throw new Error(`train config: ${(e as Error).message}`);
  }
}

/** The model configuration a run trains: its preset, the config's overrides and the data's classes. */
export function modelConfigFor(c: TrainConfig, numClasses: number): MaskRCNNConfig {
  // FREEZE_AT K leaves 5 - K of (layer4, layer3, layer2, layer1, stem) trainable: torchvision's trainable_layers.
  const freeze = c.freezeAt === undefined ? {} : { backbone: { trainableLayers: 5 - c.freezeAt } };
  return withOverrides(getPreset(c.preset, c.model), { numClasses, ...freeze });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
