// Mask R-CNN inference from the command line:
//   node cli/infer.js --preset NAME --weights W.safetensors IMAGE_OR_DIR... [--out DIR]
//        [--score-thresh T] [--min-size S --max-size M] [--json RESULTS.json] [--classes coco|FILE.json]
//        [--dump OUT.safetensors] [--no-draw]
// Writes COCO results (bbox xywh, score, category_id, segmentation as compressed RLE of mask > 0.5)
// and, per image, a PNG with masks, boxes and "class score" labels drawn over the photo. Folders are
// read non-recursively (.jpg/.jpeg/.png). User errors print one line (no stack; DEBUG=1 shows it).
// An image that cannot be read or run (corrupt, an aspect ratio too extreme for the input size) is
// reported and skipped; the results of the others are still written, and the exit code is then 1.
// The results file is written as images finish and is a valid JSON array at every moment; SIGINT or
// SIGTERM stops after the current image (exit 130 / 143) with the finished images' results kept.
import './node-gpu.js';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { init, setQuiet, shutdown, autocastAsync } from '../engine/index.js';
import { Rng } from '../engine/random.js';
import { encodeSafetensors, loadSafetensors, type HostTensor } from '../engine/safetensors.js';
import { tensor } from '../engine/ops/create.js';
import { describeLoadReport } from '../engine/nn/module.js';
import { decodeImage, encodePng, ImageDecodeError, type RgbImage } from '../data/image.js';
import { drawDetections } from '../data/draw.js';
import type { CocoResult } from '../data/coco-json.js';
import { MaskRCNN, type Detection, type PreparedBatch } from '../model/maskrcnn.js';
import { getPreset, presetNames } from '../model/presets.js';
import { validateConfig, withOverrides, type DeepPartial, type MaskRCNNConfig } from '../model/config.js';
import { ArgsError, formatHelp, parseArgs, type OptionSpec, type ParsedArgs } from './args.js';
import { checkpointInfo, decodeCheckpoint, describeNonFinite, type LoadedCheckpoint } from '../model/checkpoint.js';
import { detectionsToResults } from '../train/evaluate.js';
import { detectWithDump } from '../model/infer-dump.js';
import { imageIdsFor, resolveLabelTable, UserError } from './infer-inputs.js';

export { UserError };
import { nodeIO } from './node-io.js';
import { JsonArrayFile, JsonWriteError } from './json-array-file.js';
import { configureAutotune } from './node-tune.js';

export const INFER_USAGE = 'node cli/infer.js --preset NAME --weights W.safetensors IMAGE_OR_DIR... [options]';

export const INFER_OPTIONS: OptionSpec[] = [
  { name: 'preset', type: 'string', metavar: 'NAME', help: `model preset: ${presetNames().join(', ')} (optional when the weights file stores its config)` },
  { name: 'weights', type: 'string', metavar: 'W.safetensors', help: 'model weights (torchvision names) or a training checkpoint' },
  { name: 'out', type: 'string', metavar: 'DIR', default: 'infer-out', help: 'folder for the drawn PNGs (and results.json unless --json)' },
  { name: 'json', type: 'string', metavar: 'RESULTS.json', help: 'COCO results file (default DIR/results.json)' },
  { name: 'score-thresh', type: 'number', metavar: 'T', help: "keep detections scoring above T (default: the preset's, 0.05)" },
  { name: 'min-size', type: 'number', metavar: 'S', help: "resize the shorter side to S (default: the preset's)" },
  { name: 'max-size', type: 'number', metavar: 'M', help: "cap the longer side at M (default: the preset's)" },
  { name: 'classes', type: 'string', metavar: 'coco|FILE.json', help: 'class names / category ids: coco (torchvision 91-index; 80 contiguous for an 81-class model), a COCO annotation file, or a JSON list of names (default: the checkpoint\'s, else coco for 91 classes and for a Detectron2 .pkl of 81)' },
  { name: 'dump', type: 'string', metavar: 'OUT.safetensors', help: "the first image's intermediate tensors under the parity fixture's names" },
  { name: 'dump-input', type: 'string', metavar: 'CASE.safetensors', help: "with --dump: feed the first image's input.tensor / input.image_size from a fixture case instead of our decoding and resizing (compares the model alone)" },
  { name: 'draw', type: 'boolean', default: true, help: 'write the PNGs (--no-draw: results only)' },
  { name: 'amp', type: 'boolean', help: 'mixed precision: matmul and conv operands rounded to f16 with f32 accumulation (autocast); everything else f32' },
  { name: 'tune', type: 'boolean', help: 'time kernel variants once per shape class and keep the fastest, cached (default: on for GPUs, off for CPU adapters; --no-tune, MASKRCNN_NO_TUNE=1 or CI: off)' },
  { name: 'quiet', type: 'boolean', short: 'q', help: 'no per-image progress lines' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

const IMAGE_EXT = /\.(jpe?g|png)$/i;

/** Expands the positional arguments to image files; every problem is collected into one error. */
export async function listImages(inputs: readonly string[]): Promise<string[]> {
  if (inputs.length === 0) throw new ArgsError('no images given (IMAGE_OR_DIR...)');
  const files: string[] = [];
  const problems: string[] = [];
  for (const p of inputs) {
    let st;
    try {
      st = await fs.stat(p);
    } catch {
      problems.push(`${p}: no such file or folder`);
      continue;
    }
    if (st.isDirectory()) {
      const names = (await fs.readdir(p)).filter((n) => IMAGE_EXT.test(n)).sort();
      if (names.length === 0) problems.push(`${p}: folder has no .jpg/.jpeg/.png images`);
      files.push(...names.map((n) => path.join(p, n)));
    } else {
      files.push(p);
    }
  }
  if (problems.length) throw new UserError(problems.join('\n       '));
  return files;
}

/** Reads the weights file (plain safetensors or a training checkpoint). */
async function readWeights(file: string): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`--weights ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return decodeCheckpoint(bytes, `--weights ${file}`);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/** The model configuration: the one stored in a checkpoint, else the preset; plus the CLI overrides. */
function resolveConfig(values: ParsedArgs['values'], ckpt: LoadedCheckpoint, log: (s: string) => void): MaskRCNNConfig {
  const weights = String(values.weights);
  const preset = values.preset as string | undefined;
  const stored = checkpointInfo(ckpt)?.model;
  let base: MaskRCNNConfig;
  if (stored) {
    if (preset && preset !== stored.name) log(`note: using the model configuration stored in ${weights} (${stored.name}), not --preset ${preset}`);
    base = stored;
  } else {
    if (!preset) throw new ArgsError(`--preset is needed: ${weights} stores no model configuration`);
    if (!presetNames().includes(preset)) throw new ArgsError(`unknown preset '${preset}'; available: ${presetNames().join(', ')}`);
    base = getPreset(preset);
    // A fine-tuned torchvision-format file may have another number of classes: follow the file.
    const cls = ckpt.model['roi_heads.box_predictor.cls_score.weight'];
    if (cls && cls.shape.length === 2 && cls.shape[0] !== base.numClasses) {
      log(`note: ${weights} has ${cls.shape[0]} classes (preset ${preset}: ${base.numClasses}); using ${cls.shape[0]}`);
      base = withOverrides(base, { numClasses: cls.shape[0] });
    }
  }
  const o: DeepPartial<MaskRCNNConfig> = { input: {}, roiHeads: {} };
  const num = (k: string): number | undefined => values[k] as number | undefined;
  for (const k of ['min-size', 'max-size']) {
    const x = num(k);
    if (x !== undefined && !(Number.isInteger(x) && x > 0)) throw new ArgsError(`--${k} must be a positive integer (got ${x})`);
  }
  const st = num('score-thresh');
  if (st !== undefined && (st < 0 || st >= 1)) {
    log(`warning: --score-thresh ${st}: scores lie in [0, 1], so ${st >= 1 ? 'no detection can pass it' : 'it keeps every detection (as 0 would)'}`);
  }
  if (num('min-size') !== undefined) o.input!.minSizeTest = num('min-size');
  if (num('max-size') !== undefined) o.input!.maxSize = num('max-size');
  if (num('score-thresh') !== undefined) o.roiHeads!.scoreThresh = num('score-thresh');
  try {
    const cfg = withOverrides(base, o);
    validateConfig(cfg);
    return cfg;
  } catch (e) {
    throw new ArgsError((e as Error).message);
  }
}

/** Loads the tensors, refusing a file that does not fit the model (naming the keys). */
function loadWeights(model: MaskRCNN, ckpt: LoadedCheckpoint, file: string, log: (s: string) => void): void {
  const nonFinite = describeNonFinite(ckpt.model);
  if (nonFinite) log(`warning: --weights ${file}: ${nonFinite}; the detections will mean nothing`);
  const report = model.loadStateDict(ckpt.model, { strict: false });
  const problem = describeLoadReport(report);
  if (!problem) return;
  const made = ckpt.metadata.preset ? ` (the file says it was made for preset ${ckpt.metadata.preset})` : '';
  throw new UserError(`--weights ${file} does not fit model ${model.cfg.name}${made}: ${problem}`);
}

/** A batch from a fixture case's input.tensor and input.image_size (the image's own size kept). */
async function fixtureInput(file: string, origH: number, origW: number): Promise<PreparedBatch> {
  let t: Record<string, HostTensor>;
  try {
    t = loadSafetensors(new Uint8Array(await fs.readFile(file))).tensors;
  } catch (e) {
    throw new UserError(`--dump-input ${file}: ${(e as Error).message}`);
  }
  const input = t['input.tensor'], size = t['input.image_size'];
  if (!input || input.shape.length !== 4 || input.shape[0] !== 1 || !size || size.data.length !== 2) {
    throw new UserError(`--dump-input ${file}: needs input.tensor [1, 3, H, W] and input.image_size [2]`);
  }
  return {
    images: tensor(Float32Array.from(input.data), input.shape),
    info: { paddedSize: [input.shape[2]!, input.shape[3]!], imageSizes: [[size.data[0]!, size.data[1]!]] },
    originalSizes: [[origH, origW]],
  };
}

/** PNG names from the images' base names; repeated names get a numeric suffix. */
function pngNames(files: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return files.map((f) => {
    const stem = path.basename(f).replace(/\.[^.]*$/, '');
    const n = (seen.get(stem) ?? 0) + 1;
    seen.set(stem, n);
    return `${n === 1 ? stem : `${stem}_${n}`}.png`;
  });
}

export interface InferSummary {
  images: number;
  failed: number;
  detections: number;
  /** Wall milliseconds per image (decode, detect, results, drawing) in processing order. */
  msPerImage: number[];
  cpuSeconds: number;
  /** The signal that stopped the run before its last image (results so far are in the file). */
  interrupted?: 'SIGINT' | 'SIGTERM';
}

/** Stops a run after its current image on SIGINT/SIGTERM; a second signal exits at once (130). */
export interface InferControl {
  stop: 'SIGINT' | 'SIGTERM' | null;
}

/** Refuses incomplete or contradictory arguments (ArgsError: exit code 2) before any GPU work. */
function checkUsage(args: ParsedArgs): { weights: string } {
  const v = args.values;
  if (typeof v.weights !== 'string') throw new ArgsError('--weights W.safetensors is needed');
  if (v['dump-input'] !== undefined && v.dump === undefined) throw new ArgsError('--dump-input needs --dump OUT.safetensors');
  if (args.positionals.length === 0) throw new ArgsError('no images given (IMAGE_OR_DIR...)');
  return { weights: v.weights };
}

/** Runs inference on parsed arguments (after init()); returns the exit code. */
export async function runInfer(args: ParsedArgs, log: (s: string) => void = (s) => process.stderr.write(s + '\n'), control: InferControl = { stop: null }): Promise<InferSummary> {
  const v = args.values;
  const { weights } = checkUsage(args);
  const files = await listImages(args.positionals);
  const ckpt = await readWeights(weights);
  const cfg = resolveConfig(v, ckpt, log);
  const table = await resolveLabelTable(v.classes as string | undefined, checkpointInfo(ckpt)?.categories, cfg.numClasses, nodeIO, ckpt.metadata.keyStyle);
  const ids = imageIdsFor(files);
  if (!ids.fromNames) log('note: image file names are not all distinct COCO names (digits); image_id is the image\'s position, 1..n');

  const model = new MaskRCNN(cfg);
  const outDir = String(v.out);
  const resultsPath = typeof v.json === 'string' ? v.json : path.join(outDir, 'results.json');
  const pngs = pngNames(files);
  // The results file holds every finished image's results as a valid JSON array at all times.
  let results: JsonArrayFile | null = null;
  const summary: InferSummary = { images: files.length, failed: 0, detections: 0, msPerImage: [], cpuSeconds: 0 };
  const cpu0 = process.cpuUsage();
  /** --amp: the model runs under autocast (matmul / conv operands rounded to f16, f32 accumulation). */
  const amp = <T>(f: () => Promise<T>): Promise<T> => autocastAsync(f, !!v.amp);
  /** Detections of one decoded image (the first one's tensors also go to --dump). */
  const detectOne = async (i: number, file: string, image: RgbImage): Promise<{ det: Detection; detectMs: number }> => {
    const dumpInput = i === 0 && typeof v.dump === 'string' && typeof v['dump-input'] === 'string';
    const batch = dumpInput ? await fixtureInput(v['dump-input'] as string, image.height, image.width) : model.prepare([image], rng);
    const td = performance.now();
    try {
      if (i === 0 && typeof v.dump === 'string') {
        const dumped = await amp(() => detectWithDump(model, batch));
        const meta = { preset: cfg.name, image: file, input: dumpInput ? `input.tensor of ${v['dump-input']}` : 'decoded and resized here', min_size: String(cfg.input.minSizeTest), max_size: String(cfg.input.maxSize), score_thresh: String(cfg.roiHeads.scoreThresh) };
        await nodeIO.writeBytes(v.dump, encodeSafetensors(dumped.tensors as Record<string, HostTensor>, meta));
        log(`wrote ${Object.keys(dumped.tensors).length} tensors of ${file} to ${v.dump}`);
        return { det: dumped.det, detectMs: performance.now() - td };
      }
      const [det] = (await amp(() => model.detect(batch))) as [Detection];
      return { det, detectMs: performance.now() - td };
    } finally {
      batch.images.dispose();
    }
  };
  const rng = new Rng(0);
  try {
    loadWeights(model, ckpt, weights, log);
    model.eval();
    const quiet = !!v.quiet;
    log(`model ${cfg.name} (${cfg.numClasses} classes, test size ${cfg.input.minSizeTest}/${cfg.input.maxSize}, score > ${cfg.roiHeads.scoreThresh}${v.amp ? ', --amp' : ''}); classes: ${table.source}; ${files.length} image(s)`);
    results = await JsonArrayFile.create(resultsPath);
    for (let i = 0; i < files.length; i++) {
      if (control.stop) {
        summary.interrupted = control.stop;
        log(`${control.stop}: stopped after ${i} of ${files.length} image(s)`);
        break;
      }
      const file = files[i]!;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      // One bad image (unreadable, corrupt, an extreme aspect ratio) is reported and skipped.
      try {
        const image = await decodeImage(await nodeIO.readBytes(file), file);
        const { det, detectMs } = await detectOne(i, file, image);
        await results.append(detectionsToResults(det, ids.ids[i]!, table.catIds, cfg.roiHeads.maskThreshold));
        summary.detections += det.scores.length;
        if (v.draw) {
          const drawn = drawDetections(image, det, { className: (l) => table.names[l] ?? `class ${l}`, maskThreshold: cfg.roiHeads.maskThreshold });
          await nodeIO.writeBytes(path.join(outDir, pngs[i]!), encodePng(drawn.data, drawn.width, drawn.height));
        }
        const ms = performance.now() - t0;
        const c = process.cpuUsage(c0);
        summary.msPerImage.push(ms);
        if (!quiet) {
          log(`[${i + 1}/${files.length}] ${file} ${image.width}x${image.height} (image_id ${ids.ids[i]}): ${det.scores.length} detections, ` +
            `${ms.toFixed(0)} ms (detect ${detectMs.toFixed(0)} ms), ${((c.user + c.system) / 1e6).toFixed(1)} CPU s`);
        }
      } catch (e) {
        if (e instanceof JsonWriteError) throw e; // not the image's fault: the run cannot go on
        summary.failed++;
        const msg = (e as Error).message;
        log(`[${i + 1}/${files.length}] skipped: ${msg.includes(file) ? msg : `${file}: ${msg}`}`);
        if (process.env.DEBUG) log(String((e as Error).stack));
      }
    }
  } finally {
    model.dispose();
    await results?.close();
  }
  const cpu = process.cpuUsage(cpu0);
  summary.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const done = summary.msPerImage.length;
  const total = summary.msPerImage.reduce((a, b) => a + b, 0);
  const later = summary.msPerImage.slice(1);
  const steady = later.length ? ` (${(later.reduce((a, b) => a + b, 0) / later.length).toFixed(0)} ms after the first)` : '';
  log(`${done} image(s) in ${(total / 1000).toFixed(1)} s: ${done ? (total / done).toFixed(0) : 0} ms per image${steady}, ` +
    `${summary.cpuSeconds.toFixed(1)} CPU s; ${summary.detections} detections -> ${resultsPath}${v.draw ? `, PNGs in ${outDir}` : ''}`);
  if (summary.failed) log(`${summary.failed} of ${files.length} image(s) skipped (see the lines above); the others' results are in ${resultsPath}`);
  return summary;
}

/** Entry point: parses argv, runs, returns the exit code (user errors print one line). */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv, INFER_OPTIONS);
    if (args.values.help) {
      console.log(formatHelp(INFER_USAGE, INFER_OPTIONS));
      return 0;
    }
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`error: ${e.message}\n\n${formatHelp(INFER_USAGE, INFER_OPTIONS)}`);
    return 2;
  }
  // Ctrl-C / SIGTERM: finish the current image, keep the results file complete, exit 130 / 143.
  const control: InferControl = { stop: null };
  const onSignal = (sig: 'SIGINT' | 'SIGTERM'): void => {
    if (control.stop) {
      console.error(`\n${sig} again: exiting now (the results file holds the finished images)`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    control.stop = sig;
    console.error(`\n${sig}: stopping after this image (again to quit at once)`);
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    checkUsage(args); // usage errors end here, before a GPU exists
    setQuiet(true);
    await init();
    await configureAutotune(args.values.tune as boolean | undefined);
    const s = await runInfer(args, undefined, control);
    if (s.interrupted) return s.interrupted === 'SIGINT' ? 130 : 143;
    return s.failed ? 1 : 0;
  } catch (e) {
    if (e instanceof ArgsError) {
      console.error(`error: ${e.message}\n\nusage: ${INFER_USAGE} (--help for options)`);
      return 2;
    }
    console.error(`error: ${(e as Error).message}`);
    // A stack only for what looks like a bug (not a user error or a file-system refusal).
    const userError = e instanceof UserError || e instanceof ImageDecodeError || typeof (e as NodeJS.ErrnoException).code === 'string';
    if (process.env.DEBUG || !userError) console.error((e as Error).stack);
    return 1;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await shutdown();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => { process.exitCode = code; });
}
