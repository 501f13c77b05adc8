// Ground truth and detections as flat typed-array tables, with pycocotools' COCO.loadRes
// semantics for the detections (ids 1..N, iscrowd 0, area / bbox filled in as loadRes does).
import type { CocoGroundTruth, CocoResult, IouType } from '../coco-json.js';
import { validateGroundTruth, validateResults } from '../coco-json.js';
import { annToRLE, type Segmentation } from '../polygon.js';
import { rleArea, rleStringArea, rleStringStats, rleToBboxInto, type RLE } from '../rle.js';

export interface GtTable {
  n: number;
  /** Image ids in the order of `images`; their sizes. */
  imgIds: number[];
  imgSize: Map<number, { h: number; w: number }>;
  /** Category ids in the order of `categories`; their names. */
  catIds: number[];
  catNames: Map<number, string>;
  id: Float64Array;
  imageId: Float64Array;
  categoryId: Float64Array;
  area: Float64Array;
  /** int(iscrowd): the crowd rule in IoU. */
  crowd: Uint8Array;
  /** pycocotools' gt['ignore'] = iscrowd (truthy). */
  ignore: Uint8Array;
  /** Flat [x, y, w, h] per annotation (NaN where absent). */
  bbox: Float64Array;
  segm: (Segmentation | undefined)[];
}

export interface DtTable {
  n: number;
  /** loadRes assigns ids 1..N in file order. */
  id: Float64Array;
  imageId: Float64Array;
  categoryId: Float64Array;
  score: Float64Array;
  area: Float64Array;
  bbox: Float64Array;
  /** Box of the mask (rleToBbox) per detection where computed so far, NaN otherwise (evaluate() fills it in when needed). */
  maskBox: Float64Array;
  segm: (Segmentation | undefined)[];
  /** What was accepted but looks wrong (validateResults), one line each. */
  warnings: string[];
}

/** Builds the GT table from a (validated here) instances JSON. */
export function prepareGroundTruth(json: unknown, iouType: IouType): GtTable {
  const gt: CocoGroundTruth = validateGroundTruth(json, iouType);
  const imgSize = new Map<number, { h: number; w: number }>();
  const imgIds: number[] = [];
  for (const im of gt.images) {
    if (!imgSize.has(im.id)) imgIds.push(im.id);
    imgSize.set(im.id, { h: im.height, w: im.width });
  }
  const catNames = new Map<number, string>();
  const catIds: number[] = [];
  for (const c of gt.categories) {
    if (!catNames.has(c.id)) catIds.push(c.id);
    catNames.set(c.id, typeof c.name === 'string' ? c.name : String(c.id));
  }
  const anns = gt.annotations, n = anns.length;
  const t: GtTable = {
    n, imgIds, imgSize, catIds, catNames,
    id: new Float64Array(n), imageId: new Float64Array(n), categoryId: new Float64Array(n),
    area: new Float64Array(n), crowd: new Uint8Array(n), ignore: new Uint8Array(n),
    bbox: new Float64Array(4 * n), segm: new Array(n),
  };
  for (let i = 0; i < n; i++) {
    const a = anns[i];
    t.id[i] = a.id; t.imageId[i] = a.image_id; t.categoryId[i] = a.category_id; t.area[i] = a.area;
    const c = a.iscrowd === undefined ? 0 : Number(a.iscrowd);
    t.crowd[i] = Math.trunc(c) !== 0 ? 1 : 0;
    t.ignore[i] = c ? 1 : 0;
    const b = a.bbox;
    for (let j = 0; j < 4; j++) t.bbox[4 * i + j] = b ? b[j] : NaN;
    t.segm[i] = a.segmentation;
  }
  return t;
}

/**
 * Builds the detection table from a results list with loadRes semantics: the first record decides
 * the kind. With a non-empty bbox: area = w * h, and a missing segmentation becomes the box polygon.
 * Otherwise (segmentation results): area = mask area and a missing bbox = toBbox(mask).
 */
export function prepareResults(json: unknown, gt: GtTable, iouType: IouType = 'bbox'): DtTable {
  const warnings: string[] = [];
  const res: CocoResult[] = validateResults(json, new Set(gt.imgIds), warnings);
  const n = res.length;
  const t: DtTable = {
    n, id: new Float64Array(n), imageId: new Float64Array(n), categoryId: new Float64Array(n),
    score: new Float64Array(n), area: new Float64Array(n), bbox: new Float64Array(4 * n),
    maskBox: new Float64Array(4 * n).fill(NaN), segm: new Array(n), warnings,
  };
  if (n === 0) return t;
  const b0 = res[0].bbox;
  const bboxKind = b0 !== undefined && !(Array.isArray(b0) && b0.length === 0);
  for (let i = 0; i < n; i++) {
    const r = res[i];
    t.id[i] = i + 1; t.imageId[i] = r.image_id; t.categoryId[i] = r.category_id; t.score[i] = r.score;
    if (bboxKind) {
      const bb = r.bbox as number[];
      for (let j = 0; j < 4; j++) t.bbox[4 * i + j] = bb[j];
      t.area[i] = bb[2] * bb[3];
      if (r.segmentation === undefined) {
        const x1 = bb[0], x2 = bb[0] + bb[2], y1 = bb[1], y2 = bb[1] + bb[3];
        t.segm[i] = [[x1, y1, x1, y2, x2, y2, x2, y1]];
      } else t.segm[i] = r.segmentation;
    } else {
      const s = r.segmentation as Segmentation;
      t.segm[i] = s;
      const hasBox = r.bbox !== undefined && !(Array.isArray(r.bbox) && r.bbox.length === 0);
      let area: number;
      if (!Array.isArray(s) && typeof s.counts === 'string') {
        // the box of a compressed mask is only scanned for when a box is needed (bbox evaluation here,
        // segm evaluation computes it lazily for detections that meet a gt)
        if (hasBox || iouType === 'segm') area = rleStringArea(s.counts);
        else area = rleStringStats(s.counts, s.size[0], s.size[1], t.maskBox, 4 * i);
      } else {
        const size = gt.imgSize.get(r.image_id)!;
        const R: RLE = annToRLE(s, size.h, size.w);
        area = rleArea(R);
        rleToBboxInto(R, t.maskBox, 4 * i);
      }
      t.area[i] = area;
      // loadRes: bbox = toBbox(segmentation) when absent (NaN until computed when only segm is evaluated)
      for (let j = 0; j < 4; j++) t.bbox[4 * i + j] = hasBox ? (r.bbox as number[])[j] : t.maskBox[4 * i + j];
    }
  }
  return t;
}
