// One training run from a resolved TrainConfig: data (the cached synthetic dataset or COCO files),
// model (preset + overrides + optional initial weights), optimizer with norm-free weight decay,
// resume from the run folder's checkpoint, the loop with periodic checkpoints / evaluation / plot,
// and the final evaluation. Stops cleanly on request (Ctrl-C) after saving a checkpoint, and on a
// non-finite loss without overwriting the last good checkpoint. No Node built-ins: files go
// through FileIO, and a Node caller may inject its own sample source (cli/'s worker threads).
// Everything that can be checked (the run folder, the files named) is checked before anything is
// written or generated.
// Data-parallel (a Collective of N ranks, train/ddp.ts): every rank runs this with the same config;
// rank 0 alone writes files and prints; each rank reads its share of every batch; gradients are
// averaged; evaluation is sharded and gathered to rank 0 for COCOeval.
import type { FileIO } from '../data/io.js';
import { CocoDataset } from '../data/coco.js';
import { CocoSampleSource, type SampleSource } from '../data/coco-source.js';
import { DataLoader } from '../data/loader.js';
import type { TransformConfig } from '../data/transforms.js';
import { generateShapesDataset, shapesDatasetPaths, shapesDatasetReady, DEFAULT_SHAPES_OPTIONS } from '../data/synthetic.js';
import { counters, getBackend, memory, nn } from '../engine/index.js';
import type { LossTerm } from '../model/maskrcnn.js';
import { loadCheckpoint, type CheckpointCategory } from '../model/checkpoint.js';
import { loadInitialWeights, restoreCheckpoint, saveCheckpoint, saveWeights } from './checkpoint.js';
import { evaluateModel, type EvaluationResult } from './evaluate.js';
import { ProgressReporter, readMetrics, formatDuration, startCompileStatus } from './progress.js';
import { plotMetrics } from './plot.js';
import { NonFiniteLossError, startTrainStep, type PendingStep } from './step.js';
import { buildTraining } from './trainer.js';
import { milestones, type TrainConfig } from './config.js';
import { singleProcess, type Collective } from './collective.js';
import { broadcastModelState, GradientReducer, readOnlyIO } from './ddp.js';

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
  injectNaN?: { iter: number; term: LossTerm; count?: number };
  /** Start a fresh run in a folder that already holds one (its files are replaced). */
  overwrite?: boolean;
  /** The training sample source (default: CocoSampleSource on this thread); cli/ passes worker threads. */
  makeSource?: (data: TrainingData, transform: TransformConfig, cfg: TrainConfig) => Promise<SampleSource>;
  /**
   * Data-parallel training over these ranks (native/mpi/collective.ts). Given (even with one rank), anchor / RoI
   * sampling is seeded per micro-batch (StepOptions.samplingSeed), so N ranks x batch B compute
   * what 1 rank x batch B x N accumulated micro-batches computes.
   */
  collective?: Collective;
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

/** What data-parallel training does with the batch and the learning rate (printed at the start). */
export function dataParallelLine(cfg: TrainConfig, ranks: number, buckets: number): string {
  const eff = cfg.batch * cfg.accumulate * ranks;
  return (
    `data-parallel: ${ranks} rank${ranks > 1 ? 's' : ''} x batch ${cfg.batch} x accumulate ${cfg.accumulate} = effective batch ${eff} images per step; ` +
    `lr ${cfg.lr} applies to that batch (linear scaling: ${(0.02 * eff / 16).toPrecision(3)} = 0.02 x ${eff}/16 as Detectron2; --lr sets it)` +
    (ranks > 1 ? `; gradients averaged in ${buckets} bucket${buckets > 1 ? 's' : ''} during backward; train-mode BatchNorm uses per-rank statistics (no SyncBN)` : '')
  );
}

export async function runTraining(cfg: TrainConfig, o: RunOptions): Promise<RunOutcome> {
  const coll = o.collective ?? singleProcess;
  const lead = coll.rank === 0;
  // Rank 0 alone writes and prints.
  const io = lead ? o.io : readOnlyIO(o.io);
  const print = lead ? (o.print ?? ((l: string) => console.log(l))) : () => {};
  const control = o.control ?? { stop: false };
  await checkRunSetup(cfg, o.io, o);
  await coll.barrier(); // every rank checked the folder before rank 0 writes into it
  const ckptPath = io.join(cfg.out, CHECKPOINT_FILE);
  const metricsPath = io.join(cfg.out, METRICS_FILE);
  // On resume too: the settings flags changed are the run's from now on (a later --resume keeps them).
  await io.writeText(io.join(cfg.out, CONFIG_FILE), JSON.stringify(cfg, null, 1) + '\n');

  // Rank 0 generates the synthetic dataset (once, into the cache) before the others read it.
  let data = lead ? await loadTrainingData(cfg, io, o.cacheDir, print) : null;
  await coll.barrier();
  data ??= await loadTrainingData(cfg, io, o.cacheDir, print);
  const categories: CheckpointCategory[] = data.train.categories.map((c) => ({ id: c.id, name: c.name }));
  const { modelCfg, model, optimizer, rng, schedule, amp, dispose } = buildTraining(cfg, data.train.numCategories + 1);
  let start = 0;
  let loaderStart = { epoch: 0, index: 0 };
  let source: SampleSource | null = null;
  let loader: DataLoader | null = null;
  try {
    if (o.resume) {
      const ck = await loadCheckpoint(io, ckptPath);
      if (!ck.state) throw new Error(`${ckptPath} holds no training state`);
      restoreCheckpoint(ck, model, optimizer);
      // An amp run resumes its loss scale (a run switching to --amp starts from the initial scale).
      if (amp && ck.state.scaler) amp.scaler.loadStateDict(ck.state.scaler);
      start = ck.state.iter;
      rng.setState(ck.state.rngState);
      loaderStart = ck.state.loader;
      print(`resuming ${cfg.out} from iteration ${start}`);
    } else if (cfg.weights) {
      const ck = await loadCheckpoint(io, cfg.weights);
      for (const line of loadInitialWeights(model, ck.model, cfg.weights, modelCfg.numClasses)) print(line);
    }
    // Every rank loaded the same file (or initialised from the same seed); rank 0's state is the
    // truth all the same, as DDP broadcasts it at construction.
    await broadcastModelState(coll, model);
    const transform = model.transformConfig(true);
    source = o.makeSource
      ? await o.makeSource(data, transform, cfg)
      : new CocoSampleSource(data.train, io, { imageDir: data.trainImages, transform, filterEmpty: true });
    loader = new DataLoader(source, {
      batchSize: cfg.batch, seed: cfg.seed, start: loaderStart, sizeDivisible: modelCfg.input.sizeDivisible,
      shard: coll.size > 1 ? { rank: coll.rank, size: coll.size } : undefined,
    });
    const progress = new ProgressReporter({ logPath: lead ? metricsPath : null, io, totalIters: cfg.iters, every: cfg.logEvery, print, memory: () => memory() });
    await progress.start(start);
    const trainable = model.parameters().filter((p) => p.requiresGrad);
    const nParams = trainable.reduce((a, p) => a + p.size, 0);
    print(
      `training ${modelCfg.name} (${(nParams / 1e6).toFixed(2)}M trainable parameters, ${modelCfg.numClasses - 1} classes) on ${source.size} images: ` +
        `${cfg.iters} iterations x ${cfg.batch * cfg.accumulate * coll.size} images, lr ${cfg.lr}, steps [${milestones(cfg).join(', ')}], ` +
        `${cfg.amp ? 'mixed precision (--amp), ' : ''}run folder ${cfg.out}`,
    );
    const reducer = coll.size > 1 ? new GradientReducer(trainable, coll) : undefined;
    if (o.collective) print(dataParallelLine(cfg, coll.size, reducer?.bucketCount ?? 0));

    const save = async (iter: number): Promise<void> => {
      const scaler = amp ? { scaler: await amp.scaler.stateDict() } : {};
      if (lead) await saveCheckpoint(io, ckptPath, model, optimizer, { iter, loader: loader!.position, rngState: rng.getState(), model: modelCfg, categories, ...scaler });
    };
    const evaluate = async (iter: number): Promise<EvaluationResult | undefined> => {
      if (!data!.val) return undefined;
      await broadcastModelState(coll, model, 'buffers');
      const r = await evaluateModel(model, data!.val, io, { imageDir: data!.valImages, batchSize: cfg.batch, maxImages: cfg.evalImages || undefined, collective: coll });
      await io.writeText(io.join(cfg.out, `results-iter${iter}.json`), JSON.stringify(r.results));
      await progress.evaluation({ iter, bboxAP: r.bboxAP, segmAP: r.segmAP, bboxStats: r.bboxStats, segmStats: r.segmStats, seconds: r.seconds, images: r.images });
      return r;
    };
    const plot = async (): Promise<void> => {
      if (lead) await io.writeBytes(io.join(cfg.out, 'plot.png'), plotMetrics(await readMetrics(io, metricsPath)));
    };

    let lastSaved = start;
    const imagesPerStep = cfg.batch * cfg.accumulate * coll.size;
    // Steps are pipelined: step n's losses are read back late and taken (checked for NaN, logged)
    // once step n+1 has been started, by when the GPU has long finished them, or before anything
    // that must only follow a checked step (a checkpoint, an evaluation, the end).
    let pending: { step: PendingStep; t0: number; lr: number; end?: number } | null = null;
    /** Takes the pending step's losses and logs them; returns the non-finite loss that stops the run, if any. */
    const settle = async (): Promise<NonFiniteLossError | undefined> => {
      if (!pending) return undefined;
      const { step, t0, lr, end } = pending;
      pending = null;
      let r;
      try {
        r = await step.result();
      } catch (e) {
        if (e instanceof NonFiniteLossError) return e;
        throw e;
      }
      // The step's time: from its start to the next step's start (or, for the last one, until its
      // losses are in); not until this settle, which runs after the next step's work was queued.
      const seconds = ((end ?? performance.now()) - t0) / 1000;
      await progress.iteration({ iter: step.iter, losses: r.losses, total: r.total, lr, seconds, images: r.images, ...(r.amp ? { amp: r.amp } : {}) });
      if (r.amp?.skipped) print(`  iteration ${step.iter}: --amp skipped the update (inf/NaN at loss scale ${r.amp.scale}); loss scale now ${r.amp.scale * amp!.scaler.backoffFactor}`);
      if (coll.size > 1 && (step.iter % cfg.logEvery === 0 || step.iter === cfg.iters)) {
        // The log line is followed by every rank's speed.
        const rates = await coll.allgather(new Float64Array([r.images / coll.size / seconds]));
        print(`  images/s per rank: ${Array.from(rates, (x) => x.toFixed(2)).join(', ')} (all ${rates.reduce((a, x) => a + x, 0).toFixed(2)})`);
      }
      return undefined;
    };
    const diverged = async (e: NonFiniteLossError): Promise<RunOutcome> => {
      const kept = lastSaved > 0 ? `the last good checkpoint (iteration ${lastSaved}) is kept in ${ckptPath}` : 'no checkpoint had been written yet';
      const message = `${e.message}; training stopped, ${kept}`;
      print(`error: ${message}`);
      await plot();
      return { status: 'diverged', iter: e.iter - 1, message, imagesPerSecond: imagesPerStep / progress.secondsPerIter() };
    };
    for (let it = start; it < cfg.iters; it++) {
      const t0 = performance.now();
      if (pending) pending.end = t0;
      let step: PendingStep;
      // The process's first step compiles the pipelines: say so while it does.
      const stopStatus = it === start ? startCompileStatus(print, () => counters().pipelinesCreated, undefined, undefined, () => getBackend().tierStatus().pending) : undefined;
      try {
        step = await startTrainStep({
          model, optimizer, loader, rng, iter: it + 1, accumulate: cfg.accumulate, lrFactor: schedule(it),
          injectNaN: o.injectNaN, collective: coll, reducer, samplingSeed: o.collective ? cfg.seed : undefined, amp,
        });
      } catch (e) {
        // A non-finite loss of the previous step (whose update this step ran on) is the cause to report.
        const nan = await settle();
        if (nan) return diverged(nan);
        // An amp step checks its own losses before stepping (train/step.ts) and may stop here.
        if (e instanceof NonFiniteLossError) return diverged(e);
        throw e;
      } finally {
        stopStatus?.();
      }
      const nan = await settle();
      if (nan) return diverged(nan);
      pending = { step, t0, lr: optimizer.lr };
      const done = it + 1;
      const last = done === cfg.iters;
      if (coll.size > 1) {
        // Every rank stops at the same iteration (a signal reaches the ranks at different times).
        const v = new Float64Array([control.stop ? 1 : 0]);
        await coll.allreduceSum(v);
        control.stop = v[0]! > 0;
      }
      const checkpoint = done % cfg.checkpointEvery === 0 || last || control.stop;
      const evaluateNow = cfg.evalEvery > 0 && done % cfg.evalEvery === 0 && !last;
      if (checkpoint || evaluateNow) {
        const err = await settle();
        if (err) return diverged(err);
      }
      if (checkpoint) {
        await save(done);
        lastSaved = done;
      }
      if (control.stop && !last) {
        await plot();
        const message = `interrupted at iteration ${done}/${cfg.iters}; checkpoint saved, continue with --resume ${cfg.out}`;
        print(message);
        return { status: 'interrupted', iter: done, message, imagesPerSecond: imagesPerStep / progress.secondsPerIter() };
      }
      if (evaluateNow) {
        await evaluate(done);
        await plot();
      }
    }
    const err = await settle();
    if (err) return diverged(err);
    const imagesPerSecond = imagesPerStep / progress.secondsPerIter();
    if (lead) await saveWeights(io, io.join(cfg.out, FINAL_WEIGHTS_FILE), model, { model: modelCfg, categories, iter: cfg.iters });
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
