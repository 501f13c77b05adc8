// Shapes of a COCO "instances" JSON (https://cocodataset.org/#format-data) as this project reads
// them. Only the fields the pipeline uses are typed; extra fields pass through untouched.

/** Polygon segmentation: one or more flat [x0, y0, x1, y1, ...] rings (pixel coordinates). */
export type CocoPolygons = number[][];

/** Run-length encoding as in pycocotools: counts either uncompressed (number[], typical of crowd
 *  annotations in the official files) or compressed (the LEB128-like string). Column-major. */
export interface CocoRle {
  size: [number, number]; // [height, width]
  counts: number[] | string;
}

export type CocoSegmentation = CocoPolygons | CocoRle;

export interface CocoImage {
  id: number;
  width: number;
  height: number;
  file_name: string;
  [extra: string]: unknown;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** [x, y, width, height] in pixels, top-left origin. */
  bbox: [number, number, number, number];
  /** Filled in from the bbox when a file omits it (see coco-validate.ts). */
  area: number;
  /** 0 or 1; crowd regions are kept for evaluation but never used as training targets. */
  iscrowd: 0 | 1;
  segmentation?: CocoSegmentation;
  [extra: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
  [extra: string]: unknown;
}

export interface CocoInstances {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
  info?: unknown;
  licenses?: unknown;
  [extra: string]: unknown;
}

/** Is a segmentation an RLE object rather than polygons? */
export function isRle(s: CocoSegmentation): s is CocoRle {
  return !Array.isArray(s);
}
