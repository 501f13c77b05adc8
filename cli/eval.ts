// COCO evaluation from the command line (pycocotools' COCOeval output):
//   node cli/eval.js --gt ANN.json --dt RESULTS.json --iou-type bbox|segm [--json] [--per-class]
// Modes are picked in main(); a model-evaluation mode (--weights/--images/--ann) can be added as
// another entry of EVAL_OPTIONS plus a branch there.
import { pathToFileURL } from 'node:url';
import type { IouType } from '../data/coco-json.js';
import { COCOeval } from '../data/cocoeval/index.js';
import type { FileIO } from '../data/io.js';
import { ArgsError, formatHelp, parseArgs, type OptionSpec, type ParsedArgs } from './args.js';
import { nodeIO } from './node-io.js';

export const EVAL_USAGE = 'node cli/eval.js --gt ANN.json --dt RESULTS.json [--iou-type bbox|segm] [--json] [--per-class]\n       node cli/eval.js --weights CKPT --images DIR --ann ANN.json [--results-out OUT.json] [--preset NAME]';

export const EVAL_OPTIONS: OptionSpec[] = [
  { name: 'gt', type: 'string', metavar: 'ANN.json', help: 'ground-truth COCO instances file' },
  { name: 'dt', type: 'string', metavar: 'RESULTS.json', help: 'detections in COCO results format' },
  { name: 'iou-type', type: 'string', metavar: 'bbox|segm', help: "'bbox', 'segm', or both as 'bbox,segm' (default: bbox)" },
  { name: 'json', type: 'boolean', help: 'end with one line {"stats":[12 numbers]} at full precision' },
  { name: 'per-class', type: 'boolean', help: 'print the per-category AP table' },
  { name: 'quiet', type: 'boolean', short: 'q', help: 'no progress lines (stderr)' },
  { name: 'weights', type: 'string', metavar: 'CKPT', help: 'model mode: evaluate this checkpoint / weights file (bbox and segm)' },
  { name: 'images', type: 'string', metavar: 'DIR', help: 'model mode: image folder' },
  { name: 'ann', type: 'string', metavar: 'ANN.json', help: 'model mode: COCO instances file' },
  { name: 'preset', type: 'string', metavar: 'NAME', help: "model mode: model preset when the file has no config (default detectron2-r50-fpn)" },
  { name: 'results-out', type: 'string', metavar: 'OUT.json', help: 'model mode: write the detections (COCO results) here; never an existing input' },
  { name: 'batch', type: 'number', metavar: 'B', help: 'model mode: images per batch (default 2)' },
  { name: 'max-images', type: 'number', metavar: 'N', help: 'model mode: only the first N images' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

export interface EvalOutput {
  iouType: IouType;
  stats: number[];
  lines: string[];
  perClass?: string;
}

async function readJson(io: FileIO, path: string, what: string): Promise<unknown> {
  const text = await io.readText(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

function parseIouTypes(v: string): IouType[] {
  const types = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (types.length === 0) throw new ArgsError('--iou-type is empty');
  for (const t of types) if (t !== 'bbox' && t !== 'segm') throw new ArgsError(`--iou-type must be bbox or segm (got '${t}')`);
  return types as IouType[];
}

/** Evaluates parsed JSON inputs for each iouType, printing as pycocotools does. */
export function evaluateJson(gt: unknown, dt: unknown, iouTypes: IouType[], opts: { perClass?: boolean; log?: (s: string) => void; warn?: (s: string) => void } = {}): EvalOutput[] {
  const log = opts.log ?? (() => {});
  const warn = opts.warn ?? log;
  const out: EvalOutput[] = [];
  for (const iouType of iouTypes) {
    let t0 = performance.now();
    log('Loading and preparing results...');
    const E = new COCOeval(gt, dt, iouType);
    const w = E.dt.warnings;
    for (const line of w.slice(0, 5)) warn(`warning: ${line}`);
    if (w.length > 5) warn(`warning: ... and ${w.length - 5} more such results`);
    log(`DONE (t=${((performance.now() - t0) / 1000).toFixed(2)}s)`);
    t0 = performance.now();
    log('Running per image evaluation...');
    log(`Evaluate annotation type *${iouType}*`);
    E.evaluate();
    log(`DONE (t=${((performance.now() - t0) / 1000).toFixed(2)}s).`);
    t0 = performance.now();
    log('Accumulating evaluation results...');
    E.accumulate();
    log(`DONE (t=${((performance.now() - t0) / 1000).toFixed(2)}s).`);
    const lines = E.summarize();
    out.push({ iouType, stats: E.stats, lines, perClass: opts.perClass ? E.perCategoryTable() : undefined });
  }
  return out;
}

/** Options of one mode only: given in the other they would be silently ignored, so they are refused. */
export const FILE_ONLY = ['gt', 'dt', 'iou-type', 'per-class'] as const;
export const MODEL_ONLY = ['images', 'ann', 'preset', 'batch', 'max-images', 'results-out'] as const;

export function refuseOptions(v: ParsedArgs['values'], names: readonly string[], mode: string): void {
  const given = names.filter((n) => v[n] !== undefined);
  if (given.length) throw new ArgsError(`${given.map((n) => `--${n}`).join(', ')} ${given.length > 1 ? 'do' : 'does'} not apply in ${mode}`);
}

/** Runs the `--gt/--dt` mode on parsed arguments; returns the exit code. */
export async function runFileEval(args: ParsedArgs, io: FileIO = nodeIO): Promise<number> {
  const v = args.values;
  if (typeof v.gt !== 'string' || typeof v.dt !== 'string') throw new ArgsError('both --gt ANN.json and --dt RESULTS.json are needed');
  refuseOptions(v, MODEL_ONLY, 'file mode (--gt/--dt)');
  const iouTypes = parseIouTypes(String(v['iou-type'] ?? 'bbox'));
  const log = v.quiet ? undefined : (s: string) => process.stderr.write(s + '\n');
  log?.('loading annotations into memory...');
  const gt = await readJson(io, v.gt, 'ground truth');
  const dt = await readJson(io, v.dt, 'results');
  let results: EvalOutput[];
  try {
    results = evaluateJson(gt, dt, iouTypes, { perClass: !!v['per-class'], log, warn: (s) => process.stderr.write(s + '\n') });
  } catch (e) {
    // The message names the field (results[3].segmentation.counts, annotations, ...): add the file.
    const msg = (e as Error).message;
    throw new Error(/^results\b/.test(msg) ? `results ${v.dt}: ${msg}` : `ground truth ${v.gt}: ${msg}`);
  }
  for (const r of results) {
    if (results.length > 1) console.log(`${r.iouType}:`);
    for (const line of r.lines) console.log(line);
    if (r.perClass) console.log(`\nper-category ${r.iouType} AP (%):\n${r.perClass}`);
  }
  if (v.json) {
    console.log(JSON.stringify(results.length === 1
      ? { stats: results[0].stats }
      : { stats: results[0].stats, byIouType: Object.fromEntries(results.map((r) => [r.iouType, r.stats])) }));
  }
  return 0;
}

/** Entry point: parses argv and dispatches; returns the exit code (errors print one line). */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  try {
    const args = parseArgs(argv, EVAL_OPTIONS);
    if (args.values.help) { console.log(formatHelp(EVAL_USAGE, EVAL_OPTIONS)); return 0; }
    if (args.positionals.length) throw new ArgsError(`unexpected argument '${args.positionals[0]}'`);
    // further modes (e.g. evaluating a checkpoint: --weights/--images/--ann) branch here on their
    // options, produce a results list and call evaluateJson(); the default mode reads --gt/--dt files
    if (args.values.weights !== undefined) {
      const { runModelEval } = await import('./eval-model.js');
      return await runModelEval(args, nodeIO);
    }
    return await runFileEval(args);
  } catch (e) {
    if (e instanceof ArgsError) {
      console.error(`error: ${e.message}\n\n${formatHelp(EVAL_USAGE, EVAL_OPTIONS)}`);
      return 2;
    }
    console.error(`error: ${(e as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => { process.exitCode = code; });
}
