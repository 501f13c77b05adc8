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
import { checkpointInfo, loadCheckpoint } from '../model/checkpoint.js';
import { evaluateModel } from './evaluate.js';
import { ArgsError, type ParsedArgs } from './args.js';

export async function runModelEval(args: ParsedArgs, io: FileIO): Promise<number> {
  const v = args.values;
  const weights = v.weights as string;
  if (typeof v.images !== 'string' || typeof v.ann !== 'string') throw new ArgsError('--weights needs --images DIR and --ann ANN.json');
  const log = v.quiet ? () => {} : (s: string) => process.stderr.write(s + '\n');
  const ckpt = await loadCheckpoint(io, weights);
  const dataset = await CocoDataset.load(io, v.ann);
  const info = checkpointInfo(ckpt);
  let labelToCatId: ArrayLike<number> = dataset.labelToCatId;
  let cfg;
  if (info && v.preset === undefined) {
    cfg = info.model;
    labelToCatId = [0, ...info.categories.map((c) => c.id)];
    const missing = info.categories.filter((c) => !dataset.catIdToLabel.has(c.id));
    if (missing.length) log(`warning: the checkpoint's categories ${missing.map((c) => c.id).join(', ')} are not in ${v.ann}`);
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
      batchSize: (v.batch as number | undefined) ?? 2,
      maxImages: v['max-images'] as number | undefined,
      labelToCatId,
      onProgress: (done, total) => log(`  ${done}/${total} images`),
    });
    if (typeof v.dt === 'string') await io.writeText(v.dt, JSON.stringify(r.results));
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
