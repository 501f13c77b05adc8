// Model evaluation on a COCO dataset: detect on every image (evaluation transform, in dataset
// order), convert detections to COCO results (bbox as xywh, masks thresholded and RLE-encoded as
// the torchvision reference does with `masks > 0.5`, labels mapped back to category ids), then run
// our COCOeval for bbox and segm. No Node built-ins: file access goes through FileIO.
import type { FileIO } from '../data/io.js';
import type { CocoDataset } from '../data/coco.js';
import { CocoSampleSource } from '../data/coco-source.js';
import { DataLoader } from '../data/loader.js';
import { rleEncodeRowMajor, rleToString } from '../data/rle.js';
import { COCOeval } from '../data/cocoeval/index.js';
import type { CocoResult } from '../data/coco-json.js';
import { tidyAsync } from '../engine/index.js';
import type { MaskRCNN, Detection } from '../model/maskrcnn.js';
import { batchInput } from './batch.js';
import { allgatherJSON, type Collective } from './collective.js';

export interface EvaluateOptions {
  imageDir: string;
  /** Images per detect() call (default 4). */
  batchSize?: number;
  /** Only the first N images (in id order); default all. */
  maxImages?: number;
  /** Contiguous label -> category id (default: the dataset's own mapping). */
  labelToCatId?: ArrayLike<number>;
  /** Called after each batch with images done / total. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Data-parallel evaluation: rank r detects images r, r + size, ... and the results are gathered;
   * COCOeval runs on rank 0 only (the other ranks get stats of -1 and no summary lines).
   */
  collective?: Collective;
}

export interface EvaluationResult {
  /** COCO AP@[.5:.95] for boxes and masks (0 when there are no detections at all). */
  bboxAP: number;
  segmAP: number;
  /** The 12 summary numbers of each (all -1 when nothing could be evaluated). */
  bboxStats: number[];
  segmStats: number[];
  /** pycocotools-style summary lines. */
  bboxLines: string[];
  segmLines: string[];
  results: CocoResult[];
  images: number;
  seconds: number;
}

/** COCO results of one image's detections. */
export function detectionsToResults(det: Detection, imageId: number, labelToCatId: ArrayLike<number>, maskThreshold = 0.5): CocoResult[] {
  const out: CocoResult[] = [];
  const { height: h, width: w } = det;
  const plane = h * w;
  const bin = new Uint8Array(plane);
  for (let i = 0; i < det.scores.length; i++) {
    const [x1, y1, x2, y2] = [det.boxes[4 * i]!, det.boxes[4 * i + 1]!, det.boxes[4 * i + 2]!, det.boxes[4 * i + 3]!];
    const catId = labelToCatId[det.labels[i]!];
    if (catId === undefined || catId === 0) throw new Error(`evaluate: detection label ${det.labels[i]} has no category`);
    const r: CocoResult = { image_id: imageId, category_id: catId, bbox: [x1, y1, x2 - x1, y2 - y1], score: det.scores[i]! };
    if (det.masks.length >= (i + 1) * plane) {
      const m = det.masks.subarray(i * plane, (i + 1) * plane);
      for (let p = 0; p < plane; p++) bin[p] = m[p]! > maskThreshold ? 1 : 0;
      r.segmentation = { size: [h, w], counts: rleToString(rleEncodeRowMajor(bin, h, w)) };
    }
    out.push(r);
  }
  return out;
}

function cocoEval(gt: unknown, results: CocoResult[], iouType: 'bbox' | 'segm', imgIds: number[]): { stats: number[]; lines: string[] } {
  // pycocotools' loadRes refuses an empty list; an untrained model can produce no detections.
  if (results.length === 0) return { stats: new Array<number>(12).fill(-1), lines: [] };
  const E = new COCOeval(gt, results, iouType);
  E.params.imgIds = imgIds;
  E.evaluate();
  E.accumulate();
  const lines = E.summarize();
  return { stats: E.stats, lines };
}

/** Runs the model over the dataset's images and returns box and mask AP. */
export async function evaluateModel(model: MaskRCNN, dataset: CocoDataset, io: FileIO, opts: EvaluateOptions): Promise<EvaluationResult> {
  const t0 = performance.now();
  const source = new CocoSampleSource(dataset, io, { imageDir: opts.imageDir, transform: model.transformConfig(false), masks: false });
  const ids = source.ids.slice(0, opts.maxImages ?? source.ids.length);
  const rank = opts.collective?.rank ?? 0;
  const ranks = opts.collective?.size ?? 1;
  // This rank's images: dataset positions rank, rank + ranks, ...
  const mine = Math.max(0, Math.ceil((ids.length - rank) / ranks));
  const limited = { size: mine, name: (i: number) => source.name(i * ranks + rank), load: (i: number, seed: number) => source.load(i * ranks + rank, seed) };
  // (A rank with no image left, when there are fewer images than ranks, only gathers.)
  const loader = mine === 0 ? null : new DataLoader(limited, { batchSize: opts.batchSize ?? 4, seed: 0, shuffle: false, maxEpochs: 1, onError: 'raise', sizeDivisible: model.cfg.input.sizeDivisible });
  const labelToCatId = opts.labelToCatId ?? dataset.labelToCatId;
  const results: CocoResult[] = [];
  const wasTraining = model.training;
  model.eval();
  let done = 0;
  try {
    for await (const b of loader ?? []) {
      const dets = await tidyAsync(() => model.detect(batchInput(b)));
      dets.forEach((d, k) => results.push(...detectionsToResults(d, b.samples[k]!.imageId, labelToCatId, model.cfg.roiHeads.maskThreshold)));
      done += b.samples.length;
      opts.onProgress?.(done, mine);
    }
  } finally {
    model.train(wasTraining);
    await loader?.close();
  }
  if (opts.collective && ranks > 1) results.splice(0, results.length, ...(await allgatherJSON(opts.collective, results)).flat());
  const none = { stats: new Array<number>(12).fill(-1), lines: [] as string[] };
  const bbox = rank === 0 ? cocoEval(dataset.json, results, 'bbox', ids) : none;
  const segm = rank === 0 ? cocoEval(dataset.json, results, 'segm', ids) : none;
  return {
    bboxAP: Math.max(0, bbox.stats[0]!),
    segmAP: Math.max(0, segm.stats[0]!),
    bboxStats: bbox.stats,
    segmStats: segm.stats,
    bboxLines: bbox.lines,
    segmLines: segm.lines,
    results,
    images: ids.length,
    seconds: (performance.now() - t0) / 1000,
  };
}
