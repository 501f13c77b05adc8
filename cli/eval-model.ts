// `node cli/eval.js --weights CKPT --images DIR --ann ANN.json`: evaluates a checkpoint (or a
// weights file) on a COCO dataset and prints pycocotools' summaries for bbox and segm. The model
// config and category table come from the checkpoint when it has them (cli/train.js writes them),
// else from --preset with the annotation file's categories.
import './node-gpu.js';
import { init, shutdown, setQuiet } from '../engine/index.js';
import { CocoDataset } from '../data/coco.js';
import type { FileIO } from '../data/io.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { withOverrides } from '../model/config.js';
import { checkpointInfo, describeNonFinite, loadCheckpoint } from '../model/checkpoint.js';
import { evaluateModel } from '../train/evaluate.js';
import { ArgsError, type ParsedArgs } from './args.js';
import { FILE_ONLY, refuseOptions } from './eval.js';
import { resolve } from 'node:path';

export async function runModelEval(args: ParsedArgs, io: FileIO): Promise<number> {
  const v = args.values;
  const weights = v.weights as string;
  if (typeof v.images !== 'string' || typeof v.ann !== 'string') throw new ArgsError('--weights needs --images DIR and --ann ANN.json');
  refuseOptions(v, FILE_ONLY, 'model mode (--weights; write the detections with --results-out OUT.json)');
  const out = v['results-out'] as string | undefined;
  if (out !== undefined && [weights, v.ann].some((input) => resolve(input) === resolve(out))) throw new ArgsError(`--results-out ${out} is an input of this run`);
  const maxImages = v['max-images'] as number | undefined, batch = (v.batch as number | undefined) ?? 2;
  if (maxImages !== undefined && !(Number.isInteger(maxImages) && maxImages > 0)) throw new ArgsError(`--max-images must be a positive integer (got ${maxImages})`);
  if (!(Number.isInteger(batch) && batch > 0)) throw new ArgsError(`--batch must be a positive integer (got ${batch})`);
  const warn = (s: string) => process.stderr.write(s + '\n'); // even with --quiet
  const log = v.quiet ? () => {} : warn;
  const ckpt = await loadCheckpoint(io, weights);
  const nonFinite = describeNonFinite(ckpt.model);
  if (nonFinite) warn(`warning: ${weights}: ${nonFinite}; the AP will mean nothing`);
  const dataset = await CocoDataset.load(io, v.ann);
  const info = checkpointInfo(ckpt);
  let labelToCatId: ArrayLike<number> = dataset.labelToCatId;
  let cfg;
  if (info && v.preset === undefined) {
    cfg = info.model;
    labelToCatId = [0, ...info.categories.map((c) => c.id)];
    const missing = info.categories.filter((c) => !dataset.catIdToLabel.has(c.id));
    if (missing.length) warn(`warning: the checkpoint's categories ${missing.map((c) => c.id).join(', ')} are not in ${v.ann}`);
    // The same ids under other names: a model of other classes (shapes evaluated on COCO would
    // score circles as persons), so the AP means nothing.
    const named = new Map(dataset.categories.map((c) => [c.id, c.name]));
    const renamed = info.categories.filter((c) => named.has(c.id) && named.get(c.id) !== c.name);
    if (renamed.length) {
      warn(`warning: the checkpoint's classes differ from ${v.ann}'s categories: ` +
        `${renamed.slice(0, 5).map((c) => `id ${c.id} is '${c.name}' in the checkpoint, '${named.get(c.id)}' in the file`).join('; ')}${renamed.length > 5 ? ` (and ${renamed.length - 5} more)` : ''}`);
    }
  } else {
    cfg = withOverrides(getPreset((v.preset as string | undefined) ?? 'detectron2-r50-fpn'), { numClasses: dataset.numCategories + 1 });
  }
  setQuiet(true);
  await init();
  const model = new MaskRCNN(cfg);
  try {
    model.loadStateDict(ckpt.model);
    log(`evaluating ${weights} (${cfg.name}${info ? `, iteration ${info.iter}` : ''}) on ${v.ann} ...`);
    const r = await evaluateModel(model, dataset, io, {
      imageDir: v.images,
      batchSize: batch,
      maxImages,
      labelToCatId,
      onProgress: (done, total) => log(`  ${done}/${total} images`),
    });
    if (out !== undefined) await io.writeText(out, JSON.stringify(r.results));
    for (const [name, lines] of [['bbox', r.bboxLines], ['segm', r.segmLines]] as const) {
      console.log(`${name}:`);
      for (const l of lines) console.log(l);
    }
    console.log(`box AP ${r.bboxAP.toFixed(3)}  mask AP ${r.segmAP.toFixed(3)}  (${r.images} images, ${r.seconds.toFixed(1)} s)`);
    if (v.json) console.log(JSON.stringify({ byIouType: { bbox: r.bboxStats, segm: r.segmStats } }));
    return 0;
  } finally {
    model.dispose();
    await shutdown();
  }
}
