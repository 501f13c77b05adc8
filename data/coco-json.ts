// Types and validation of the two JSON inputs of COCO evaluation: a ground-truth "instances" file
// and a results (detections) list. Validation walks every record once and throws an Error naming
// the record and field (e.g. `results[17].score is NaN`), so bad files fail before evaluation.
import { rleFrString, type CompressedRLE, type RLE, type UncompressedRLE } from './rle.js';
import type { Segmentation } from './polygon.js';

export interface EvalImage {
  id: number;
  height: number;
  width: number;
  [extra: string]: unknown;
}

export interface EvalGtAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  area: number;
  bbox?: number[];
  iscrowd?: number | boolean;
  segmentation?: Segmentation;
  [extra: string]: unknown;
}

export interface EvalCategory {
  id: number;
  name?: string;
  [extra: string]: unknown;
}

/** The parts of a COCO instances file that evaluation reads. */
export interface CocoGroundTruth {
  images: EvalImage[];
  annotations: EvalGtAnnotation[];
  categories: EvalCategory[];
  [extra: string]: unknown;
}

/** One detection in a results file (pycocotools loadRes format). */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: number[];
  segmentation?: Segmentation;
  [extra: string]: unknown;
}

export type IouType = 'bbox' | 'segm';

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function num(v: unknown, at: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    if (v === undefined) throw new Error(`${at} is missing`);
    if (typeof v === 'number') throw new Error(`${at} is ${describe(v)}`);
    throw new Error(`${at} must be a number (got ${describe(v)})`);
  }
  return v;
}

function obj(v: unknown, at: string): Record<string, unknown> {
  if (v === undefined) throw new Error(`${at} is missing`);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${at} must be an object (got ${describe(v)})`);
  return v as Record<string, unknown>;
}

function arr(v: unknown, at: string): unknown[] {
  if (v === undefined) throw new Error(`${at} is missing`);
  if (!Array.isArray(v)) throw new Error(`${at} must be an array (got ${describe(v)})`);
  return v;
}

/** Checks a box [x, y, w, h] of 4 finite numbers. */
export function checkBbox(v: unknown, at: string): number[] {
  const a = arr(v, at);
  if (a.length !== 4) throw new Error(`${at} must have 4 numbers [x, y, w, h] (got ${a.length})`);
  for (let i = 0; i < 4; i++) num(a[i], `${at}[${i}]`);
  return a as number[];
}

/** Checks a segmentation: polygons (arrays of finite numbers) or an RLE object {size: [h, w], counts}. */
export function checkSegmentation(v: unknown, at: string, warnings?: string[]): Segmentation {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = arr(v[i], `${at}[${i}]`);
      for (let j = 0; j < p.length; j++) num(p[j], `${at}[${i}][${j}]`);
    }
    return v as number[][];
  }
  const o = obj(v, at);
  const size = arr(o.size, `${at}.size`);
  if (size.length !== 2) throw new Error(`${at}.size must be [height, width] (got ${size.length} values)`);
  const h = num(size[0], `${at}.size[0]`), w = num(size[1], `${at}.size[1]`);
  let total = 0;
  if (typeof o.counts === 'string') {
    try {
      total = rleTotal(rleFrString(o.counts, h, w));
    } catch (e) {
      throw new Error(`${at}.counts: ${(e as Error).message}`);
    }
  } else {
    const c = arr(o.counts, `${at}.counts`);
    for (let j = 0; j < c.length; j++) {
      const x = num(c[j], `${at}.counts[${j}]`);
      if (x < 0 || !Number.isInteger(x)) throw new Error(`${at}.counts[${j}] must be a non-negative integer (got ${x})`);
      total += x;
    }
  }
  // pycocotools accepts such a mask (decoding stops at h*w or leaves the rest empty); say so.
  if (total !== h * w) warnings?.push(`${at}: RLE counts add up to ${total} pixels, but its size ${h}x${w} has ${h * w}`);
  return o as unknown as CompressedRLE | UncompressedRLE;
}

function rleTotal(r: RLE): number {
  let t = 0;
  for (let i = 0; i < r.counts.length; i++) t += r.counts[i]!;
  return t;
}

/**
 * Validates a ground-truth instances JSON. `iouType` says which of bbox / segmentation each
 * annotation must carry (both are checked when present). `iscrowd` may be missing (read as 0).
 */
export function validateGroundTruth(json: unknown, iouType?: IouType): CocoGroundTruth {
  const root = obj(json, 'ground truth');
  const images = arr(root.images, 'images');
  for (let i = 0; i < images.length; i++) {
    const im = obj(images[i], `images[${i}]`);
    num(im.id, `images[${i}].id`);
    if (iouType === 'segm') { num(im.height, `images[${i}].height`); num(im.width, `images[${i}].width`); }
  }
  const cats = arr(root.categories, 'categories');
  for (let i = 0; i < cats.length; i++) {
    const c = obj(cats[i], `categories[${i}]`);
    num(c.id, `categories[${i}].id`);
  }
  const anns = arr(root.annotations, 'annotations');
  for (let i = 0; i < anns.length; i++) {
    const at = `annotations[${i}]`;
    const a = obj(anns[i], at);
    num(a.id, `${at}.id`); num(a.image_id, `${at}.image_id`); num(a.category_id, `${at}.category_id`);
    num(a.area, `${at}.area`);
    if (a.iscrowd !== undefined && typeof a.iscrowd !== 'boolean') num(a.iscrowd, `${at}.iscrowd`);
    if (a.bbox !== undefined || iouType === 'bbox') checkBbox(a.bbox, `${at}.bbox`);
    if (a.segmentation !== undefined || iouType === 'segm') checkSegmentation(a.segmentation, `${at}.segmentation`);
  }
  return root as unknown as CocoGroundTruth;
}

/**
 * Validates a results list (pycocotools loadRes input). Every record needs image_id, category_id
 * and a finite score; as in loadRes the first record decides the kind: with a non-empty `bbox`
 * every record needs a box, otherwise every record needs a `segmentation`. When `imageIds` is given,
 * every image_id must be one of them ("Results do not correspond to current coco set"). RLE masks
 * whose counts do not add up to their size are accepted, as pycocotools does, with a line in `warnings`.
 */
export function validateResults(json: unknown, imageIds?: ReadonlySet<number>, warnings?: string[]): CocoResult[] {
  const res = arr(json, 'results');
  if (res.length === 0) return [];
  const first = obj(res[0], 'results[0]');
  const bboxKind = first.bbox !== undefined && !(Array.isArray(first.bbox) && first.bbox.length === 0);
  for (let i = 0; i < res.length; i++) {
    const at = `results[${i}]`;
    const r = obj(res[i], at);
    const imgId = num(r.image_id, `${at}.image_id`);
    num(r.category_id, `${at}.category_id`);
    num(r.score, `${at}.score`);
    if (bboxKind) {
      checkBbox(r.bbox, `${at}.bbox`);
      if (r.segmentation !== undefined) checkSegmentation(r.segmentation, `${at}.segmentation`, warnings);
    } else {
      if (r.segmentation === undefined) {
        throw new Error(`${at}.segmentation is missing (results[0] has no bbox, so every result needs a segmentation)`);
      }
      checkSegmentation(r.segmentation, `${at}.segmentation`, warnings);
      if (r.bbox !== undefined && !(Array.isArray(r.bbox) && r.bbox.length === 0)) checkBbox(r.bbox, `${at}.bbox`);
    }
    if (imageIds && !imageIds.has(imgId)) {
      throw new Error(`${at}.image_id ${imgId} is not an image of the ground truth (results do not correspond to this set)`);
    }
  }
  return res as CocoResult[];
}
