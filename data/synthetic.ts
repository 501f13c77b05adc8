// The project's own embedded dataset: synthetic instance-segmentation images of coloured shapes on
// textured backgrounds, written in COCO format. It exists so a tiny Mask R-CNN can train on a CPU
// in minutes without downloading anything, and it is deterministic from a seed: each image is a
// pure function of (seed, split, index), so regenerating a cache gives identical bytes.
//
// Occlusion: shapes are painted in order, later ones on top. An annotation describes the VISIBLE
// region only (stored as a compressed RLE of the visible mask), and placements that would hide more
// than `maxOcclusion` of an earlier shape are rejected, so no instance is reduced to a sliver.
import type { FileIO } from './io.js';
import type { CocoAnnotation, CocoCategory, CocoImage, CocoInstances } from './coco-types.js';
import { encodePng } from './image.js';
import { Rng, mixSeed } from './rng.js';
import { rleArea, rleEncodeRowMajor, rleToBbox, rleToString } from './rle.js';

export const SHAPES_VERSION = 'shapes-v1';

export const SHAPES_CATEGORIES: CocoCategory[] = [
  { id: 1, name: 'circle', supercategory: 'shape' },
  { id: 2, name: 'triangle', supercategory: 'shape' },
  { id: 3, name: 'rectangle', supercategory: 'shape' },
  { id: 4, name: 'star', supercategory: 'shape' },
];

/** Class names by contiguous label (0 = background), as a model trained on the shapes names them. */
export const SHAPES_CLASS_NAMES: string[] = ['background', ...SHAPES_CATEGORIES.map((c) => c.name)];

export interface ShapesOptions {
  seed: number;
  trainCount: number;
  valCount: number;
  /** Square image side in pixels. */
  size: number;
  minObjects: number;
  maxObjects: number;
  /** Shape radius range as a fraction of the image side. */
  minRadius: number;
  maxRadius: number;
  /** Largest fraction of a shape that later shapes may cover. */
  maxOcclusion: number;
  /** Smallest visible area in pixels of an instance. */
  minVisibleArea: number;
}

export const DEFAULT_SHAPES_OPTIONS: ShapesOptions = {
  seed: 0,
  trainCount: 1000,
  valCount: 100,
  size: 128,
  minObjects: 1,
  maxObjects: 4,
  minRadius: 0.08,
  maxRadius: 0.25,
  maxOcclusion: 0.4,
  minVisibleArea: 40,
};

/** One rendered image: RGB HWC pixels and its annotations (ids and image_id left to the caller). */
export interface RenderedShapes {
  width: number;
  height: number;
  rgb: Uint8Array;
  objects: { categoryId: number; segmentation: { size: [number, number]; counts: string }; area: number; bbox: [number, number, number, number] }[];
}

type Rgb = [number, number, number];

// ---------------------------------------------------------------------------------------------
// Shapes as inside-tests at pixel centres

interface Shape {
  categoryId: number;
  /** True when the point (x, y) (continuous pixel coordinates) is inside the shape. */
  inside(x: number, y: number): boolean;
}

function makeShape(categoryId: number, cx: number, cy: number, r: number, rng: Rng): Shape {
  const theta = rng.uniform(0, 2 * Math.PI);
  switch (categoryId) {
    case 1:
      return { categoryId, inside: (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r };
    case 2:
      return polygonShape(categoryId, regularPolygon(cx, cy, r, 3, theta));
    case 3: {
      // Aspect ratio 1:2 .. 2:1 so squares and elongated rectangles both occur.
      const aspect = Math.exp(rng.uniform(-Math.LN2, Math.LN2));
      const a = (r * Math.sqrt(aspect)) / Math.SQRT2;
      const b = r / Math.sqrt(aspect) / Math.SQRT2;
      const c = Math.cos(theta);
      const s = Math.sin(theta);
      return {
        categoryId,
        inside: (x, y) => {
          const u = (x - cx) * c + (y - cy) * s;
          const v = -(x - cx) * s + (y - cy) * c;
          return Math.abs(u) <= a && Math.abs(v) <= b;
        },
      };
    }
    case 4: {
      const pts: number[] = [];
      for (let k = 0; k < 10; k++) {
        const rad = k % 2 === 0 ? r : r * 0.45;
        const ang = theta + (k * Math.PI) / 5;
        pts.push(cx + rad * Math.cos(ang), cy + rad * Math.sin(ang));
      }
      return polygonShape(categoryId, pts);
    }
    default:
      throw new Error(`unknown shape category ${categoryId}`);
  }
}

function regularPolygon(cx: number, cy: number, r: number, k: number, theta: number): number[] {
  const pts: number[] = [];
  for (let i = 0; i < k; i++) {
    const ang = theta + (2 * Math.PI * i) / k;
    pts.push(cx + r * Math.cos(ang), cy + r * Math.sin(ang));
  }
  return pts;
}

/** Even-odd point-in-polygon (works for the concave star). */
function polygonShape(categoryId: number, pts: number[]): Shape {
  const n = pts.length / 2;
  return {
    categoryId,
    inside: (x, y) => {
      let inside = false;
      for (let i = 0, j = n - 1; i < n; j = i++) {
        const xi = pts[2 * i]!;
        const yi = pts[2 * i + 1]!;
        const xj = pts[2 * j]!;
        const yj = pts[2 * j + 1]!;
        if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
      }
      return inside;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Colours and backgrounds

function hsv(h: number, s: number, v: number): Rgb {
  const f = (n: number): number => {
    const k = (n + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5) * 255, f(3) * 255, f(1) * 255];
}

const colourDistance = (a: Rgb, b: Rgb): number => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

/** Fills `img` (float RGB) with one of four textures, so the model cannot segment by "anything not
 *  flat is an object". */
function paintBackground(img: Float32Array, size: number, rng: Rng): void {
  const kind = rng.int(4);
  const c0 = hsv(rng.next(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.9));
  const c1 = hsv(rng.next(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.9));
  const ang = rng.uniform(0, Math.PI);
  const dx = Math.cos(ang);
  const dy = Math.sin(ang);
  const period = rng.uniform(6, 24);
  // Value noise: a coarse random grid upsampled bilinearly.
  const grid = 5;
  const cells = Float32Array.from({ length: (grid + 1) * (grid + 1) }, () => rng.next());
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let t: number;
      const u = ((x + 0.5) * dx + (y + 0.5) * dy) / size;
      if (kind === 0) t = (u - Math.min(0, dx)) / (Math.abs(dx) + dy); // linear gradient across the image
      else if (kind === 1) t = 0.5 + 0.5 * Math.sin((2 * Math.PI * (x * dx + y * dy)) / period); // soft stripes
      else if (kind === 2) t = Math.floor(x / period + Math.floor(y / period)) % 2; // checker
      else {
        const gx = (x / size) * grid;
        const gy = (y / size) * grid;
        const ix = Math.floor(gx);
        const iy = Math.floor(gy);
        const fx = gx - ix;
        const fy = gy - iy;
        const at = (i: number, j: number): number => cells[j * (grid + 1) + i]!;
        t = (1 - fy) * ((1 - fx) * at(ix, iy) + fx * at(ix + 1, iy)) + fy * ((1 - fx) * at(ix, iy + 1) + fx * at(ix + 1, iy + 1));
      }
      const p = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) img[p + c] = c0[c]! * (1 - t) + c1[c]! * t;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One image

/** Renders image `index` of `split` (0 = train, 1 = val); a pure function of its arguments. */
export function renderShapesImage(opts: ShapesOptions, split: number, index: number): RenderedShapes {
  const rng = new Rng(mixSeed(opts.seed, split, index));
  const size = opts.size;
  const npx = size * size;
  const img = new Float32Array(npx * 3);
  paintBackground(img, size, rng);
  const bgMean: Rgb = [0, 0, 0];
  for (let i = 0; i < npx; i++) for (let c = 0; c < 3; c++) bgMean[c] += img[i * 3 + c]! / npx;

  // owner[p] = index of the topmost shape covering pixel p, or -1.
  const owner = new Int16Array(npx).fill(-1);
  const fullArea: number[] = [];
  const visibleArea: number[] = [];
  const placed: Shape[] = [];
  const wanted = rng.intIn(opts.minObjects, opts.maxObjects);
  for (let k = 0; k < wanted; k++) {
    for (let attempt = 0; attempt < 30; attempt++) {
      const cat = SHAPES_CATEGORIES[rng.int(SHAPES_CATEGORIES.length)]!.id;
      const r = rng.uniform(opts.minRadius, opts.maxRadius) * size;
      const cx = rng.uniform(0.1, 0.9) * size;
      const cy = rng.uniform(0.1, 0.9) * size;
      const shape = makeShape(cat, cx, cy, r, rng);
      const cover: number[] = [];
      for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(size, Math.ceil(cy + r) + 1); y++) {
        for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(size, Math.ceil(cx + r) + 1); x++) {
          if (shape.inside(x + 0.5, y + 0.5)) cover.push(y * size + x);
        }
      }
      if (cover.length < opts.minVisibleArea) continue;
      // Reject placements that would hide too much of an earlier shape.
      const lost = new Map<number, number>();
      for (const p of cover) if (owner[p]! >= 0) lost.set(owner[p]!, (lost.get(owner[p]!) ?? 0) + 1);
      let ok = true;
      for (const [j, n] of lost) {
        const left = visibleArea[j]! - n;
        if (left < (1 - opts.maxOcclusion) * fullArea[j]! || left < opts.minVisibleArea) ok = false;
      }
      if (!ok) continue;
      for (const [j, n] of lost) visibleArea[j]! -= n;
      const id = placed.length;
      for (const p of cover) owner[p] = id;
      placed.push(shape);
      fullArea.push(cover.length);
      visibleArea.push(cover.length);
      paintShape(img, size, cover, bgMean, rng);
      break;
    }
  }

  // Sensor-like noise over everything, then quantise.
  const rgb = new Uint8Array(npx * 3);
  const sigma = rng.uniform(2, 8);
  for (let i = 0; i < npx * 3; i++) rgb[i] = Math.max(0, Math.min(255, Math.round(img[i]! + sigma * rng.normal())));

  const objects: RenderedShapes['objects'] = [];
  const mask = new Uint8Array(npx);
  placed.forEach((shape, j) => {
    for (let p = 0; p < npx; p++) mask[p] = owner[p] === j ? 1 : 0;
    const rle = rleEncodeRowMajor(mask, size, size);
    const [bx, by, bw, bh] = rleToBbox(rle);
    objects.push({
      categoryId: shape.categoryId,
      segmentation: { size: [size, size], counts: rleToString(rle) },
      area: rleArea(rle),
      bbox: [bx, by, bw, bh],
    });
  });
  return { width: size, height: size, rgb, objects };
}

/** Paints a shape's pixels with a colour that stands out from the background, plus a soft
 *  directional shading so objects are not perfectly flat. */
function paintShape(img: Float32Array, size: number, cover: number[], bgMean: Rgb, rng: Rng): void {
  let colour = hsv(rng.next(), rng.uniform(0.5, 1), rng.uniform(0.5, 1));
  for (let t = 0; t < 10 && colourDistance(colour, bgMean) < 90; t++) {
    colour = hsv(rng.next(), rng.uniform(0.5, 1), rng.uniform(0.5, 1));
  }
  const ang = rng.uniform(0, 2 * Math.PI);
  const strength = rng.uniform(0, 0.3);
  for (const p of cover) {
    const x = p % size;
    const y = (p - x) / size;
    const shade = 1 - strength * (0.5 + 0.5 * Math.sin(((x * Math.cos(ang) + y * Math.sin(ang)) / size) * Math.PI));
    for (let c = 0; c < 3; c++) img[p * 3 + c] = colour[c]! * shade;
  }
}

// ---------------------------------------------------------------------------------------------
// Whole dataset on disk

export interface ShapesDatasetPaths {
  trainAnnotations: string;
  valAnnotations: string;
  trainImages: string;
  valImages: string;
  /** Written last: its presence with matching options means the folder is complete. */
  manifest: string;
}

/** File layout under `dir`, mirroring COCO's (annotations/instances_<split>.json + image folders). */
export function shapesDatasetPaths(io: FileIO, dir: string): ShapesDatasetPaths {
  return {
    trainAnnotations: io.join(dir, 'annotations', 'instances_train.json'),
    valAnnotations: io.join(dir, 'annotations', 'instances_val.json'),
    trainImages: io.join(dir, 'train'),
    valImages: io.join(dir, 'val'),
    manifest: io.join(dir, 'manifest.json'),
  };
}

/** The COCO instances of one split, rendering every image (and calling `onImage` with each PNG). */
export async function buildShapesSplit(
  opts: ShapesOptions,
  split: 'train' | 'val',
  onImage?: (fileName: string, png: Uint8Array) => Promise<void>,
): Promise<CocoInstances> {
  const count = split === 'train' ? opts.trainCount : opts.valCount;
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  for (let i = 0; i < count; i++) {
    const r = renderShapesImage(opts, split === 'train' ? 0 : 1, i);
    const id = i + 1;
    const fileName = `${String(id).padStart(6, '0')}.png`;
    images.push({ id, file_name: fileName, width: r.width, height: r.height });
    for (const o of r.objects) {
      annotations.push({
        id: annotations.length + 1,
        image_id: id,
        category_id: o.categoryId,
        segmentation: o.segmentation,
        area: o.area,
        bbox: o.bbox,
        iscrowd: 0,
      });
    }
    if (onImage) await onImage(fileName, encodePng(r.rgb, r.width, r.height));
  }
  return {
    info: { description: `synthetic shapes (${SHAPES_VERSION})`, seed: opts.seed },
    licenses: [],
    images,
    annotations,
    categories: SHAPES_CATEGORIES.map((c) => ({ ...c })),
  };
}

/**
 * Writes the train and val splits under `dir` through `io` (PNG images + COCO JSON) and returns
 * their instances. Options not given take DEFAULT_SHAPES_OPTIONS. The manifest is written last.
 */
export async function generateShapesDataset(
  options: Partial<ShapesOptions>,
  io: FileIO,
  dir: string,
): Promise<{ train: CocoInstances; val: CocoInstances; paths: ShapesDatasetPaths }> {
  const opts: ShapesOptions = { ...DEFAULT_SHAPES_OPTIONS, ...options };
  if (opts.minObjects < 0 || opts.maxObjects < opts.minObjects) throw new Error('generateShapesDataset: bad object counts');
  const paths = shapesDatasetPaths(io, dir);
  const train = await buildShapesSplit(opts, 'train', (f, png) => io.writeBytes(io.join(paths.trainImages, f), png));
  await io.writeText(paths.trainAnnotations, JSON.stringify(train));
  const val = await buildShapesSplit(opts, 'val', (f, png) => io.writeBytes(io.join(paths.valImages, f), png));
  await io.writeText(paths.valAnnotations, JSON.stringify(val));
  await io.writeText(paths.manifest, JSON.stringify({ version: SHAPES_VERSION, options: opts }, null, 1));
  return { train, val, paths };
}

/** True when `dir` holds a complete dataset generated with the same options (a valid cache). */
export async function shapesDatasetReady(options: Partial<ShapesOptions>, io: FileIO, dir: string): Promise<boolean> {
  const opts: ShapesOptions = { ...DEFAULT_SHAPES_OPTIONS, ...options };
  const { manifest } = shapesDatasetPaths(io, dir);
  if (!(await io.exists(manifest))) return false;
  try {
    const m = JSON.parse(await io.readText(manifest)) as { version?: string; options?: ShapesOptions };
    return m.version === SHAPES_VERSION && JSON.stringify(m.options) === JSON.stringify(opts);
  } catch {
    return false;
  }
}
