// Mask R-CNN training from the command line.
//   node cli/train.js                        synthetic shapes, `tiny` preset, prints box and mask AP
//   node cli/train.js --preset detectron2-r50-fpn --train-images DIR --train-ann ANN.json \
//        --val-images DIR --val-ann ANN.json [--weights INIT.safetensors] [--schedule 1x|3x] ...
//   node cli/train.js --resume RUN_DIR       continue a run exactly where its checkpoint left it
// A JSON config file (--config) holds the same settings (camelCase or the flags' names); flags
// override it. With --resume, flags override the run's saved train-config.json (each change is
// printed once: "lr 0.02 -> 0.005 from the command line"); the checkpoint gives the state (weights,
// momentum buffers, iteration, loader position, RNG), the configuration the hyper-parameters.
// A fresh run refuses a folder that already holds one unless --overwrite. Ctrl-C saves a
// checkpoint and exits (code 130); a NaN/inf loss exits with code 1.
// Multi-process data-parallel training: `mpirun -np N node cli/train.js --distributed ...` (or
// Slurm's srun), one rank per process and GPU, over Open MPI (native/mpi/collective.ts); see the README.
// This file is the Node adapter (argv, signals, files, worker threads); the run is train/run.ts.
import './node-gpu.js';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as path from 'node:path';
import { hostname } from 'node:os';
import { init, shutdown, setQuiet, adapterReport } from '../engine/index.js';
import { presetNames } from '../model/presets.js';
import { ArgsError, formatHelp, parseArgs, type OptionSpec, type OptionValue } from './args.js';
import { nodeIO } from './node-io.js';
import { LOSS_TERMS, type LossTerm } from '../model/maskrcnn.js';
import { COCO_DEFAULTS, SYNTHETIC_DEFAULTS, resolveConfig, type TrainConfig } from '../train/config.js';
import { CONFIG_FILE, RunSetupError, runTraining, type RunOptions } from '../train/run.js';
import { allgatherJSON } from '../train/collective.js';
import { formatDuration } from '../train/progress.js';
import { WorkerPoolSource } from './worker-loader.js';
import { configureAutotune } from './node-tune.js';
import { initMpi, MpiUnavailableError, type MpiCollective } from '../native/mpi/collective.js';

export const TRAIN_USAGE = 'node cli/train.js [--preset NAME --train-images DIR --train-ann ANN.json --val-images DIR --val-ann ANN.json] [options]';

/** Flag name -> TrainConfig field; every flag also works as a key of the config file. */
const FIELDS: Record<string, keyof TrainConfig> = {
  preset: 'preset', 'train-images': 'trainImages', 'train-ann': 'trainAnn', 'val-images': 'valImages', 'val-ann': 'valAnn',
  weights: 'weights', 'freeze-at': 'freezeAt', iters: 'iters', batch: 'batch', accumulate: 'accumulate', lr: 'lr', momentum: 'momentum',
  'weight-decay': 'weightDecay', 'warmup-iters': 'warmupIters', schedule: 'schedule', out: 'out', seed: 'seed',
  'checkpoint-every': 'checkpointEvery', 'eval-every': 'evalEvery', 'eval-images': 'evalImages', 'log-every': 'logEvery',
  workers: 'workers', amp: 'amp',
};

export const TRAIN_OPTIONS: OptionSpec[] = [
  { name: 'preset', type: 'string', metavar: 'NAME', help: `model preset: ${presetNames().join(', ')} (default ${SYNTHETIC_DEFAULTS.preset}; detectron2-r50-fpn with real data)` },
  { name: 'train-images', type: 'string', metavar: 'DIR', help: 'training images (real data)' },
  { name: 'train-ann', type: 'string', metavar: 'ANN.json', help: 'training COCO instances file (real data)' },
  { name: 'val-images', type: 'string', metavar: 'DIR', help: 'validation images' },
  { name: 'val-ann', type: 'string', metavar: 'ANN.json', help: 'validation COCO instances file' },
  { name: 'weights', type: 'string', metavar: 'FILE', help: 'initial weights (.safetensors, .pth, Detectron2 .pkl or a checkpoint; with another number of classes the class-specific layers are re-initialised, as in fine-tuning)' },
  { name: 'freeze-at', type: 'number', metavar: 'K', help: "freeze the stem and the first K-1 ResNet stages (Detectron2's FREEZE_AT: 0 none .. 5 all; default the preset's, e.g. 2)" },
  { name: 'iters', type: 'number', metavar: 'N', help: `training iterations (default ${SYNTHETIC_DEFAULTS.iters} synthetic; the schedule length with --schedule)` },
  { name: 'batch', type: 'number', metavar: 'B', help: `images per micro-batch (default ${SYNTHETIC_DEFAULTS.batch} synthetic, ${COCO_DEFAULTS.batch} real)` },
  { name: 'accumulate', type: 'number', metavar: 'K', help: 'micro-batches per step (gradient accumulation; default 1)' },
  { name: 'lr', type: 'number', metavar: 'LR', help: 'base learning rate (default 0.02; 0.02 x batch/16 with --schedule)' },
  { name: 'momentum', type: 'number', metavar: 'M', help: 'SGD momentum (default 0.9)' },
  { name: 'weight-decay', type: 'number', metavar: 'WD', help: 'weight decay, none on norm parameters (default 1e-4)' },
  { name: 'warmup-iters', type: 'number', metavar: 'N', help: 'linear warmup from 0.001 (default 50 synthetic, 1000 real)' },
  { name: 'schedule', type: 'string', choices: ['1x', '3x'], help: 'Detectron2 schedule: 90k/270k iterations at batch 16 scaled to the batch, LR steps, warmup 1000' },
  { name: 'out', type: 'string', metavar: 'RUN_DIR', help: 'run folder (default runs/<preset>-<time>)' },
  { name: 'resume', type: 'string', metavar: 'RUN_DIR', help: 'continue the run in RUN_DIR from its checkpoint, with its saved config; flags given with it override that config (each change is printed) and decide lr, momentum and weight decay' },
  { name: 'overwrite', type: 'boolean', help: 'start a fresh run in an --out folder that already holds one, replacing its files (without it, such a folder is refused)' },
  { name: 'config', type: 'string', metavar: 'FILE', help: 'JSON file with any of these settings (flags override it)' },
  { name: 'seed', type: 'number', metavar: 'N', help: 'seed of initialisation, sampling and data order (default 0)' },
  { name: 'checkpoint-every', type: 'number', metavar: 'N', help: 'checkpoint every N iterations (and at the end, and on Ctrl-C; default 100 synthetic, 5000 real)' },
  { name: 'eval-every', type: 'number', metavar: 'K', help: 'evaluate on the validation set every K iterations (default: only at the end)' },
  { name: 'eval-images', type: 'number', metavar: 'N', help: 'evaluate on the first N validation images only (default all)' },
  { name: 'log-every', type: 'number', metavar: 'N', help: 'progress line every N iterations (default 20)' },
  { name: 'workers', type: 'number', metavar: 'N', help: 'data-loading threads (0: main thread; default 0 synthetic, 1 real)' },
  { name: 'amp', type: 'boolean', help: 'mixed precision: matmul and conv operands rounded to f16, f32 accumulation, norms / softmax / losses / optimizer in f32, dynamic loss scaling (GradScaler: 2^16, x2 per 2000 clean steps, x0.5 and skip on inf/NaN); 3 non-finite losses in a row stop the run' },
  { name: 'synthetic-train', type: 'number', metavar: 'N', help: 'synthetic training images (default 1000)' },
  { name: 'synthetic-val', type: 'number', metavar: 'N', help: 'synthetic validation images (default 100)' },
  { name: 'cache-dir', type: 'string', metavar: 'DIR', help: 'where generated datasets are cached (default .cache/ in the repository)' },
  { name: 'tune', type: 'boolean', help: 'time kernel variants once per shape class and keep the fastest, cached under ~/.cache/maskrcnn-webgpu (default: on for GPUs, off for CPU adapters such as lavapipe, whose fixed table is their measured winners; --no-tune, MASKRCNN_NO_TUNE=1 or CI: off)' },
  { name: 'distributed', type: 'boolean', help: 'data-parallel training over MPI: run under mpirun -np N or srun, one process per GPU (each rank trains on its share of every batch: effective batch = N x batch x accumulate)' },
  { name: 'dist-timeout', type: 'number', metavar: 'S', help: 'with --distributed: seconds a rank waits for the others in one collective before the job is aborted (default 1800, as torch.distributed)' },
  { name: 'inject-nan', type: 'string', metavar: 'ITER:TERM', help: 'testing: make loss TERM NaN at iteration ITER' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

const camel = (k: string): string => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Reads a JSON config file; keys may be TrainConfig fields or flag names. */
export function readConfigFile(file: string): Partial<TrainConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ArgsError(`--config ${file}: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ArgsError(`--config ${file}: expected a JSON object`);
  const out: Record<string, unknown> = {};
  const known = new Set<string>([...Object.values(FIELDS), 'model', 'synthetic', 'stepFractions', 'steps', 'gamma', 'warmupFactor', 'data']);
  for (const [k, v] of Object.entries(raw)) {
    const field = FIELDS[k] ?? camel(k);
    if (!known.has(field)) throw new ArgsError(`--config ${file}: unknown setting '${k}'`);
    out[field] = v;
  }
  return out as Partial<TrainConfig>;
}

/** Settings given as flags (only those present). */
function flagSettings(values: Record<string, OptionValue | undefined>): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(FIELDS)) if (values[flag] !== undefined) out[field] = values[flag];
  const synth: Record<string, number> = {};
  if (values['synthetic-train'] !== undefined) synth.trainCount = values['synthetic-train'] as number;
  if (values['synthetic-val'] !== undefined) synth.valCount = values['synthetic-val'] as number;
  if (Object.keys(synth).length) out.synthetic = synth;
  return out as Partial<TrainConfig>;
}

function parseInjectNaN(v: string | undefined): RunOptions['injectNaN'] {
  if (v === undefined) return undefined;
  const m = /^(\d+):(\w+)$/.exec(v);
  if (!m || !(LOSS_TERMS as readonly string[]).includes(m[2]!)) throw new ArgsError(`--inject-nan must be ITER:TERM with TERM one of ${LOSS_TERMS.join(', ')}`);
  return { iter: Number(m[1]), term: m[2] as LossTerm };
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function timestamp(): string {
  const d = new Date();
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** One line per setting a flag changes in a resumed run's saved config ("lr 0.02 -> 0.005 from the command line"). */
export function overrideLines(saved: TrainConfig, resolved: TrainConfig, flags: Partial<TrainConfig>): string[] {
  const lines: string[] = [];
  for (const k of Object.keys(flags) as (keyof TrainConfig)[]) {
    if (k === 'out') continue;
    const [a, b] = [JSON.stringify(saved[k]), JSON.stringify(resolved[k])];
    if (a !== b) lines.push(`${k} ${a ?? 'unset'} -> ${b} from the command line`);
  }
  return lines;
}

/** A resumed run's saved config (train-config.json), or an error naming the file. */
function readSavedConfig(resumeDir: string): TrainConfig {
  const saved = path.join(resumeDir, CONFIG_FILE);
  if (!existsSync(saved)) throw new ArgsError(`--resume ${resumeDir}: no ${CONFIG_FILE} there (not a run folder)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(saved, 'utf8'));
  } catch (e) {
    throw new ArgsError(`--resume ${resumeDir}: ${saved} is not valid JSON (${(e as Error).message}); the run's settings cannot be read`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ArgsError(`--resume ${resumeDir}: ${saved} does not hold a JSON object`);
  return raw as TrainConfig;
}

/** The resolved configuration and run options for argv (throws ArgsError on bad input). */
export function configFromArgs(values: Record<string, OptionValue | undefined>): { cfg: TrainConfig; resume: boolean; overrides: string[] } {
  const flags = flagSettings(values);
  if (flags.synthetic && flags.trainAnn) throw new ArgsError('--synthetic-* options are for the synthetic dataset, not with --train-ann');
  let cfg: TrainConfig;
  let overrides: string[] = [];
  const resumeDir = values.resume as string | undefined;
  if (resumeDir && values.config) throw new ArgsError('--config starts a new run; with --resume the run\'s saved config is used (give changes as flags)');
  if (resumeDir && values.out !== undefined && path.resolve(values.out as string) !== path.resolve(resumeDir)) throw new ArgsError('--out and --resume name different folders: a resumed run stays in its folder');
  try {
    if (resumeDir) {
      const base = readSavedConfig(resumeDir);
      try {
        cfg = resolveConfig({ ...flags, out: resumeDir }, base);
      } catch (e) {
        throw new ArgsError(`--resume ${resumeDir}: ${(e as Error).message} (settings from ${path.join(resumeDir, CONFIG_FILE)} and the flags)`);
      }
      overrides = overrideLines(base, cfg, flags);
    } else {
      const file = values.config ? readConfigFile(values.config as string) : {};
      const user = { ...file, ...flags };
      if (user.synthetic && file.synthetic && flags.synthetic) user.synthetic = { ...file.synthetic, ...flags.synthetic };
      cfg = resolveConfig(user);
      if (!cfg.out) cfg.out = path.join('runs', `${cfg.preset}-${timestamp()}`);
    }
  } catch (e) {
    if (e instanceof ArgsError) throw e;
    throw new ArgsError((e as Error).message);
  }
  return { cfg, resume: !!resumeDir, overrides };
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let cfg: TrainConfig, resume: boolean, overrides: string[], injectNaN: RunOptions['injectNaN'], cacheDir: string, overwrite: boolean, tune: boolean | undefined;
  let distributed: boolean, distTimeout: number;
  try {
    const args = parseArgs(argv, TRAIN_OPTIONS);
    if (args.values.help) {
      console.log(formatHelp(TRAIN_USAGE, TRAIN_OPTIONS));
      return 0;
    }
    if (args.positionals.length) throw new ArgsError(`unexpected argument '${args.positionals[0]}'`);
    ({ cfg, resume, overrides } = configFromArgs(args.values));
    injectNaN = parseInjectNaN(args.values['inject-nan'] as string | undefined);
    cacheDir = (args.values['cache-dir'] as string | undefined) ?? path.join(REPO_ROOT, '.cache');
    overwrite = args.values.overwrite === true;
    tune = args.values.tune as boolean | undefined;
    if (overwrite && resume) throw new ArgsError('--overwrite starts a fresh run; it does not go with --resume');
    distributed = args.values.distributed === true;
    distTimeout = (args.values['dist-timeout'] as number | undefined) ?? 1800;
    if (!(distTimeout > 0)) throw new ArgsError(`--dist-timeout must be a positive number of seconds, got ${distTimeout}`);
    if (args.values['dist-timeout'] !== undefined && !distributed) throw new ArgsError('--dist-timeout goes with --distributed');
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`error: ${e.message}\n\n${formatHelp(TRAIN_USAGE, TRAIN_OPTIONS)}`);
    return 2;
  }
  let mpi: MpiCollective | undefined;
  if (distributed) {
    try {
      mpi = initMpi({ timeoutSeconds: distTimeout });
    } catch (e) {
      if (!(e instanceof MpiUnavailableError)) throw e;
      console.error(`error: ${e.message}`);
      return 2;
    }
  }
  const lead = !mpi || mpi.rank === 0;
  const control = { stop: false };
  const onSignal = (sig: string): void => {
    if (control.stop) {
      console.error(`\n${sig} again: exiting without a checkpoint`);
      process.exit(130);
    }
    control.stop = true;
    console.error(`\n${sig}: stopping after this iteration and saving a checkpoint (again to quit at once)`);
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const t0 = performance.now();
  try {
    if (lead) for (const l of overrides) console.log(l);
    if (mpi && lead) console.log(`MPI: ${mpi.size} rank${mpi.size > 1 ? 's' : ''} (${mpi.library.split('\n')[0]!.trim()})`);
    setQuiet(true);
    await init();
    await configureAutotune(tune);
    if (mpi && mpi.size > 1) {
      // Which GPU each rank got (two ranks on one card of a multi-GPU host show up here; the README
      // says how to give each rank its own).
      const all = await allgatherJSON(mpi, `${hostname()} local rank ${mpi.localRank}: ${adapterReport?.description ?? 'unknown adapter'} (${adapterReport?.backend ?? '?'})`);
      if (lead) all.forEach((a, r) => console.log(`rank ${r}: ${a}`));
    }
    const makeSource: RunOptions['makeSource'] = cfg.workers > 0
      ? (data, transform, c) => WorkerPoolSource.create({ annotationFile: data.trainAnn, imageDir: data.trainImages, transform, filterEmpty: true }, c.workers)
      : undefined;
    const out = await runTraining(cfg, { io: nodeIO, resume, overwrite, cacheDir, control, injectNaN, makeSource, collective: mpi });
    if (out.status === 'diverged') return 1;
    if (out.status === 'interrupted') return 130;
    if (!lead) return 0;
    const took = formatDuration((performance.now() - t0) / 1000);
    const speed = `${out.imagesPerSecond.toFixed(2)} training images/s`;
    if (out.final) {
      console.log(`box AP ${out.final.bboxAP.toFixed(3)}  mask AP ${out.final.segmAP.toFixed(3)}  on ${out.final.images} validation images ` +
        `(${out.iter} iterations, ${took} in all, ${speed}); run folder ${cfg.out}`);
    } else {
      console.log(`trained ${out.iter} iterations in ${took} (${speed}); no validation set given; run folder ${cfg.out}`);
    }
    return 0;
  } catch (e) {
    if (process.env.DEBUG) console.error((e as Error).stack);
    const code = e instanceof RunSetupError ? 2 : 1;
    // The other ranks would wait for this one in their next collective: end the whole job now.
    if (mpi && mpi.size > 1) mpi.abort((e as Error).message, code);
    console.error(`error: ${(e as Error).message}`);
    return code;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await shutdown();
    mpi?.finalize();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => { process.exitCode = code; });
}
