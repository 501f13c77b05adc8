// One training run from a resolved TrainConfig: data (the cached synthetic dataset or COCO files),
// model (preset + overrides + optional initial weights), optimizer with norm-free weight decay,
// resume from the run folder's checkpoint, the loop with periodic checkpoints / evaluation / plot,
// and the final evaluation. Stops cleanly on request (Ctrl-C) after saving a checkpoint, and on a
// non-finite loss without overwriting the last good checkpoint. No Node built-ins: files go
// through FileIO, and a Node caller may inject its own sample source (cli/'s worker threads).
// Everything that can be checked (the run folder, the files named) is checked before anything is
// written or generated.
import type { FileIO } from '../data/io.js';
import { CocoDataset } from '../data/coco.js';
import { CocoSampleSource, type SampleSource } from '../data/coco-source.js';
import { DataLoader } from '../data/loader.js';
import type { TransformConfig } from '../data/transforms.js';
import { generateShapesDataset, shapesDatasetPaths, shapesDatasetReady, DEFAULT_SHAPES_OPTIONS } from '../data/synthetic.js';
import { counters, memory, nn } from '../engine/index.js';
import type { LossTerm } from '../model/maskrcnn.js';
import { loadCheckpoint, type CheckpointCategory } from '../model/checkpoint.js';
import { restoreCheckpoint, saveCheckpoint, saveWeights } from './checkpoint.js';
import { evaluateModel, type EvaluationResult } from './evaluate.js';
import { ProgressReporter, readMetrics, formatDuration, startCompileStatus } from './progress.js';
import { plotMetrics } from './plot.js';
import { NonFiniteLossError, trainStep } from './step.js';
import { buildTraining } from './trainer.js';
import { milestones, type TrainConfig } from './config.js';

export interface RunOptions {
  io: FileIO;
  /** Continue from `cfg.out`'s checkpoint. */
  resume?: boolean;
  /** Folder holding cached generated datasets. */
  cacheDir: string;
  print?: (line: string) => void;
  /** Set `stop` to end the run after the current iteration with a checkpoint (Ctrl-C). */
  control?: { stop: boolean };
  /** Test hook: a NaN in this loss term at this iteration. */
  injectNaN?: { iter: number; term: LossTerm };
  /** Start a fresh run in a folder that already holds one (its files are replaced). */
  overwrite?: boolean;
  /** The training sample source (default: CocoSampleSource on this thread); cli/ passes worker threads. */
  makeSource?: (data: TrainingData, transform: TransformConfig, cfg: TrainConfig) => Promise<SampleSource>;
}

export interface RunOutcome {
  status: 'done' | 'interrupted' | 'diverged';
  /** Iterations completed. */
  iter: number;
  message?: string;
  final?: EvaluationResult;
  /** Training images per second over the run (first iteration excluded). */
  imagesPerSecond: number;
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const FINAL_WEIGHTS_FILE = 'model_final.safetensors';
export const METRICS_FILE = 'metrics.jsonl';
export const CONFIG_FILE = 'train-config.json';
/** Files whose presence means a folder holds a run. */
export const RUN_FILES = [CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, FINAL_WEIGHTS_FILE];

/** Thrown before anything is written when the run cannot start as asked. */
export class RunSetupError extends Error {
  override name = 'RunSetupError';
}

/**
 * Checks a run can start without harming anything: a fresh run refuses a folder that already holds
 * a run (unless `overwrite`), a resume needs the checkpoint, and the files the config names exist.
 */
export async function checkRunSetup(cfg: TrainConfig, io: FileIO, o: { resume?: boolean; overwrite?: boolean }): Promise<void> {
  if (!cfg.out) throw new RunSetupError('no run folder given (cfg.out)');
  if (o.resume) {
    const ckpt = io.join(cfg.out, CHECKPOINT_FILE);
    if (!(await io.exists(ckpt))) throw new RunSetupError(`cannot resume ${cfg.out}: it has no ${CHECKPOINT_FILE} (the run saved none yet)`);
  } else if (!o.overwrite) {
    const found: string[] = [];
    for (const f of RUN_FILES) if (await io.exists(io.join(cfg.out, f))) found.push(f);
    if (found.length) {
      throw new RunSetupError(
        `${cfg.out} already holds a run (${found.join(', ')}): continue it with --resume ${cfg.out}, ` +
          'start over in it with --overwrite (its files are replaced), or choose another --out',
      );
    }
  }
  const named: [string, string | undefined][] = [['--weights', cfg.weights], ['--train-ann', cfg.trainAnn], ['--train-images', cfg.trainImages], ['--val-ann', cfg.valAnn], ['--val-images', cfg.valImages]];
  for (const [flag, p] of named) {
    if (p !== undefined && !(await io.exists(p))) throw new RunSetupError(`${flag} ${p}: no such file or folder`);
  }
}

export interface TrainingData {
  train: CocoDataset;
  trainAnn: string;
  trainImages: string;
  val: CocoDataset | null;
  valImages: string;
}

/** The run's datasets: the synthetic shapes (generated into `cacheDir` once) or the given COCO files. */
export async function loadTrainingData(cfg: TrainConfig, io: FileIO, cacheDir: string, print: (l: string) => void): Promise<TrainingData> {
  if (cfg.data === 'synthetic') {
    const opts = { ...DEFAULT_SHAPES_OPTIONS, ...cfg.synthetic };
    const tag = `shapes-s${opts.seed}-n${opts.trainCount}-${opts.valCount}-${opts.size}px`;
    const dir = io.join(cacheDir, tag);
    if (!(await shapesDatasetReady(opts, io, dir))) {
      const t0 = performance.now();
      print(`generating the synthetic shapes dataset (${opts.trainCount} train + ${opts.valCount} val images, ${opts.size} px) in ${dir} ...`);
      await generateShapesDataset(opts, io, dir);
      print(`  done in ${formatDuration((performance.now() - t0) / 1000)}`);
    }
    const p = shapesDatasetPaths(io, dir);
    return {
      train: await CocoDataset.load(io, p.trainAnnotations),
      trainAnn: p.trainAnnotations,
      trainImages: p.trainImages,
      val: await CocoDataset.load(io, p.valAnnotations),
      valImages: p.valImages,
    };
  }
  return {
    train: await CocoDataset.load(io, cfg.trainAnn!),
    trainAnn: cfg.trainAnn!,
    trainImages: cfg.trainImages!,
    val: cfg.valAnn ? await CocoDataset.load(io, cfg.valAnn) : null,
    valImages: cfg.valImages ?? '',
  };
}

export async function runTraining(cfg: TrainConfig, o: RunOptions): Promise<RunOutcome> {
  const { io } = o;
  const print = o.print ?? ((l: string) => console.log(l));
  const control = o.control ?? { stop: false };
  await checkRunSetup(cfg, io, o);
  const ckptPath = io.join(cfg.out, CHECKPOINT_FILE);
  const metricsPath = io.join(cfg.out, METRICS_FILE);
  // On resume too: the settings flags changed are the run's from now on (a later --resume keeps them).
  await io.writeText(io.join(cfg.out, CONFIG_FILE), JSON.stringify(cfg, null, 1) + '\n');

  const data = await loadTrainingData(cfg, io, o.cacheDir, print);
  const categories: CheckpointCategory[] = data.train.categories.map((c) => ({ id: c.id, name: c.name }));
  const { modelCfg, model, optimizer, rng, schedule, dispose } = buildTraining(cfg, data.train.numCategories + 1);
  let start = 0;
  let loaderStart = { epoch: 0, index: 0 };
  let source: SampleSource | null = null;
  let loader: DataLoader | null = null;
  try {
    if (o.resume) {
      const ck = await loadCheckpoint(io, ckptPath);
      if (!ck.state) throw new Error(`${ckptPath} holds no training state`);
      restoreCheckpoint(ck, model, optimizer);
      start = ck.state.iter;
      rng.setState(ck.state.rngState);
      loaderStart = ck.state.loader;
      print(`resuming ${cfg.out} from iteration ${start}`);
    } else if (cfg.weights) {
      const ck = await loadCheckpoint(io, cfg.weights);
      const report = model.loadStateDict(ck.model, { strict: false });
      print(`initial weights ${cfg.weights}: ${report.loaded.length} tensors loaded; ${nn.describeLoadReport(report)}`);
    }
    const transform = model.transformConfig(true);
    source = o.makeSource
      ? await o.makeSource(data, transform, cfg)
      : new CocoSampleSource(data.train, io, { imageDir: data.trainImages, transform, filterEmpty: true });
    loader = new DataLoader(source, { batchSize: cfg.batch, seed: cfg.seed, start: loaderStart, sizeDivisible: modelCfg.input.sizeDivisible });
    const progress = new ProgressReporter({ logPath: metricsPath, io, totalIters: cfg.iters, every: cfg.logEvery, print, memory: () => memory() });
    await progress.start(start);
    const nParams = model.parameters().filter((p) => p.requiresGrad).reduce((a, p) => a + p.size, 0);
    print(
      `training ${modelCfg.name} (${(nParams / 1e6).toFixed(2)}M trainable parameters, ${modelCfg.numClasses - 1} classes) on ${source.size} images: ` +
        `${cfg.iters} iterations x ${cfg.batch * cfg.accumulate} images, lr ${cfg.lr}, steps [${milestones(cfg).join(', ')}], run folder ${cfg.out}`,
    );

    const save = async (iter: number): Promise<void> => {
      await saveCheckpoint(io, ckptPath, model, optimizer, { iter, loader: loader!.position, rngState: rng.getState(), model: modelCfg, categories });
    };
    const evaluate = async (iter: number): Promise<EvaluationResult | undefined> => {
      if (!data.val) return undefined;
      const r = await evaluateModel(model, data.val, io, { imageDir: data.valImages, batchSize: cfg.batch, maxImages: cfg.evalImages || undefined });
      await io.writeText(io.join(cfg.out, `results-iter${iter}.json`), JSON.stringify(r.results));
      await progress.evaluation({ iter, bboxAP: r.bboxAP, segmAP: r.segmAP, bboxStats: r.bboxStats, segmStats: r.segmStats, seconds: r.seconds, images: r.images });
      return r;
    };
    const plot = async (): Promise<void> => {
      await io.writeBytes(io.join(cfg.out, 'plot.png'), plotMetrics(await readMetrics(io, metricsPath)));
    };

    let lastSaved = start;
    for (let it = start; it < cfg.iters; it++) {
      const t0 = performance.now();
      let step;
      // The process's first step compiles the pipelines: say so while it does.
      const stopStatus = it === start ? startCompileStatus(print, () => counters().pipelinesCreated) : undefined;
      try {
        step = await trainStep({
          model, optimizer, loader, rng, iter: it + 1, accumulate: cfg.accumulate, lrFactor: schedule(it),
          injectNaN: o.injectNaN,
        });
      } catch (e) {
        if (!(e instanceof NonFiniteLossError)) throw e;
        const kept = lastSaved > 0 ? `the last good checkpoint (iteration ${lastSaved}) is kept in ${ckptPath}` : 'no checkpoint had been written yet';
        const message = `${e.message}; training stopped, ${kept}`;
        print(`error: ${message}`);
        await plot();
        return { status: 'diverged', iter: it, message, imagesPerSecond: cfg.batch * cfg.accumulate / progress.secondsPerIter() };
      } finally {
        stopStatus?.();
      }
      const done = it + 1;
      await progress.iteration({ iter: done, losses: step.losses, total: step.total, lr: optimizer.lr, seconds: (performance.now() - t0) / 1000, images: step.images });
      const last = done === cfg.iters;
      if (done % cfg.checkpointEvery === 0 || last || control.stop) {
        await save(done);
        lastSaved = done;
      }
      if (control.stop && !last) {
        await plot();
        const message = `interrupted at iteration ${done}/${cfg.iters}; checkpoint saved, continue with --resume ${cfg.out}`;
        print(message);
        return { status: 'interrupted', iter: done, message, imagesPerSecond: cfg.batch * cfg.accumulate / progress.secondsPerIter() };
      }
      if (cfg.evalEvery > 0 && done % cfg.evalEvery === 0 && !last) {
        await evaluate(done);
        await plot();
      }
    }
    const imagesPerSecond = cfg.batch * cfg.accumulate / progress.secondsPerIter();
    await saveWeights(io, io.join(cfg.out, FINAL_WEIGHTS_FILE), model, { model: modelCfg, categories, iter: cfg.iters });
    const final = await evaluate(cfg.iters);
    await plot();
    if (final) {
      for (const [name, lines] of [['bbox', final.bboxLines], ['segm', final.segmLines]] as const) {
        print(`${name}:`);
        for (const l of lines) print(l);
      }
    }
    return { status: 'done', iter: cfg.iters, final, imagesPerSecond };
  } finally {
    await loader?.close();
    if (!loader) await source?.close?.();
    dispose();
  }
}
