// Drawing detections onto RGB pixel buffers (data/image.ts RgbImage, HWC uint8): translucent
// instance masks, box outlines and "class score" labels in an embedded 5x7 bitmap font. Pure
// TypeScript on plain arrays, so the CLI (PNG output) and a browser page (ImageData) share it.
// Coordinates are image pixels with pixel (x, y) covering [x, x+1) x [y, y+1), as torchvision's
// boxes are; everything is clipped to the image.
import type { RgbImage } from './image.js';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphColumns } from './font5x7.js';

export type Rgb = readonly [number, number, number];

// Distinct, saturated hues that stay readable over photos (instance i gets PALETTE[i % n]).
export const PALETTE: readonly Rgb[] = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190], [0, 128, 128],
  [255, 225, 25], [170, 110, 40], [128, 0, 0], [170, 255, 195], [128, 128, 0], [0, 0, 128],
];

export function instanceColor(i: number): Rgb {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length]!;
}

/** A copy of an image (drawing functions paint in place). */
export function cloneImage(img: RgbImage): RgbImage {
  return { width: img.width, height: img.height, data: img.data.slice() };
}

function checkImage(img: RgbImage, op: string): void {
  if (img.data.length !== img.width * img.height * 3) throw new Error(`${op}: image data has ${img.data.length} bytes for ${img.width}x${img.height} RGB`);
}

/** Blends `color` over pixel (x, y) with opacity alpha in [0, 1]; pixels outside are ignored. */
export function blendPixel(img: RgbImage, x: number, y: number, color: Rgb, alpha = 1): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const p = (y * img.width + x) * 3;
  const d = img.data;
  if (alpha >= 1) {
    d[p] = color[0]; d[p + 1] = color[1]; d[p + 2] = color[2];
  } else if (alpha > 0) {
    d[p] = Math.round(d[p]! * (1 - alpha) + color[0] * alpha);
    d[p + 1] = Math.round(d[p + 1]! * (1 - alpha) + color[1] * alpha);
    d[p + 2] = Math.round(d[p + 2]! * (1 - alpha) + color[2] * alpha);
  }
}

/** Fills the integer pixel range [x0, x1) x [y0, y1), clipped. */
export function fillRect(img: RgbImage, x0: number, y0: number, x1: number, y1: number, color: Rgb, alpha = 1): void {
  const xa = Math.max(0, Math.floor(x0)), xb = Math.min(img.width, Math.floor(x1));
  const ya = Math.max(0, Math.floor(y0)), yb = Math.min(img.height, Math.floor(y1));
  for (let y = ya; y < yb; y++) for (let x = xa; x < xb; x++) blendPixel(img, x, y, color, alpha);
}

/**
 * Outlines the box x1, y1, x2, y2 (continuous coordinates) with a line `thickness` pixels wide
 * inside the pixels it covers: columns floor(x1) .. ceil(x2)-1, rows floor(y1) .. ceil(y2)-1.
 */
export function strokeRect(img: RgbImage, x1: number, y1: number, x2: number, y2: number, color: Rgb, thickness = 1): void {
  const l = Math.floor(x1), t = Math.floor(y1);
  const r = Math.max(l + 1, Math.ceil(x2)), b = Math.max(t + 1, Math.ceil(y2));
  const k = Math.max(1, Math.round(thickness));
  fillRect(img, l, t, r, Math.min(b, t + k), color); // top
  fillRect(img, l, Math.max(t, b - k), r, b, color); // bottom
  fillRect(img, l, t, Math.min(r, l + k), b, color); // left
  fillRect(img, Math.max(l, r - k), t, r, b, color); // right
}

/**
 * Tints every pixel whose mask value is > threshold (torchvision's `masks > 0.5`). `mask` holds
 * H*W values at the image size, row-major, starting at `offset` (so a [D, H, W] stack can be passed
 * whole). Returns the number of pixels tinted.
 */
export function fillMask(img: RgbImage, mask: ArrayLike<number>, color: Rgb, alpha = 0.5, threshold = 0.5, offset = 0): number {
  const n = img.width * img.height;
  if (mask.length < offset + n) throw new Error(`fillMask: mask has ${mask.length - offset} values after offset ${offset}, the ${img.width}x${img.height} image needs ${n}`);
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (mask[offset + i]! > threshold) {
      blendPixel(img, i % img.width, Math.floor(i / img.width), color, alpha);
      count++;
    }
  }
  return count;
}

/** Pixel size of a line of text at an integer scale (glyphs advance 6 px: 5 + 1 of spacing). */
export function textSize(text: string, scale = 1): { width: number; height: number } {
  const n = [...text].length;
  return { width: n === 0 ? 0 : (n * (GLYPH_WIDTH + 1) - 1) * scale, height: GLYPH_HEIGHT * scale };
}

/** Draws text with its top-left corner at (x, y); each font pixel becomes a scale x scale square. */
export function drawText(img: RgbImage, text: string, x: number, y: number, color: Rgb, scale = 1): void {
  const s = Math.max(1, Math.round(scale));
  let cx = Math.round(x);
  const cy = Math.round(y);
  for (const ch of text) {
    const cols = glyphColumns(ch);
    for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        if ((cols[gx]! >> gy) & 1) fillRect(img, cx + gx * s, cy + gy * s, cx + (gx + 1) * s, cy + (gy + 1) * s, color);
      }
    }
    cx += (GLYPH_WIDTH + 1) * s;
  }
}

/** Black or white, whichever reads better on `bg` (Rec. 601 luma). */
export function contrastColor(bg: Rgb): Rgb {
  return 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2] > 140 ? [0, 0, 0] : [255, 255, 255];
}

/**
 * A text label on a filled background, anchored at the top-left of a box: above it when there is
 * room, otherwise just inside; shifted left to stay in the image. Returns the label's rectangle.
 */
export function drawLabel(img: RgbImage, text: string, x: number, y: number, bg: Rgb, scale = 1): [number, number, number, number] {
  const pad = scale;
  const { width, height } = textSize(text, scale);
  const w = width + 2 * pad, h = height + 2 * pad;
  const lx = Math.max(0, Math.min(Math.floor(x), img.width - w));
  let ly = Math.floor(y) - h;
  if (ly < 0) ly = Math.max(0, Math.floor(y));
  if (ly + h > img.height) ly = Math.max(0, img.height - h);
  fillRect(img, lx, ly, lx + w, ly + h, bg);
  drawText(img, text, lx + pad, ly + pad, contrastColor(bg), scale);
  return [lx, ly, lx + w, ly + h];
}

/** Detections in the model's layout (model/maskrcnn.ts Detection); masks are optional. */
export interface DrawableDetections {
  /** [D*4] x1, y1, x2, y2 in image pixels. */
  boxes: ArrayLike<number>;
  labels: ArrayLike<number>;
  scores?: ArrayLike<number>;
  /** [D*H*W] mask probabilities (or 0/1) at the image size. */
  masks?: ArrayLike<number>;
}

export interface DrawOptions {
  /** Label text of a class (default: the number). */
  className?: (label: number) => string;
  /** Mask pixels > threshold are tinted (default 0.5, as torchvision thresholds masks). */
  maskThreshold?: number;
  /** Mask opacity (default 0.45). */
  maskAlpha?: number;
  /** Box line width in pixels (default: 1 per 400 px of the shorter side, at least 1). */
  lineWidth?: number;
  /** Font scale (default: 1 per 500 px of the shorter side, at least 1). */
  fontScale?: number;
  /** Only detections with score >= this are drawn (default: all). */
  minScore?: number;
}

/**
 * A new image: `img` with each detection's mask tinted, its box outlined and a "name 0.87" label,
 * in the colour of its index. Lower-scored detections are painted first so the best end on top.
 */
export function drawDetections(img: RgbImage, det: DrawableDetections, opts: DrawOptions = {}): RgbImage {
  checkImage(img, 'drawDetections');
  const D = det.labels.length;
  if (det.boxes.length !== 4 * D) throw new Error(`drawDetections: ${det.boxes.length / 4} boxes for ${D} labels`);
  if (det.scores && det.scores.length !== D) throw new Error(`drawDetections: ${det.scores.length} scores for ${D} labels`);
  const plane = img.width * img.height;
  if (det.masks && det.masks.length !== 0 && det.masks.length !== D * plane) {
    throw new Error(`drawDetections: masks have ${det.masks.length} values, expected ${D} x ${img.height} x ${img.width}`);
  }
  const out = cloneImage(img);
  const short = Math.min(img.width, img.height);
  const line = opts.lineWidth ?? Math.max(1, Math.round(short / 400));
  const scale = opts.fontScale ?? Math.max(1, Math.round(short / 500));
  const name = opts.className ?? ((l: number) => String(l));
  const order: number[] = [];
  for (let i = D - 1; i >= 0; i--) if (!det.scores || det.scores[i]! >= (opts.minScore ?? -Infinity)) order.push(i);
  if (det.masks && det.masks.length) {
    for (const i of order) fillMask(out, det.masks, instanceColor(i), opts.maskAlpha ?? 0.45, opts.maskThreshold ?? 0.5, i * plane);
  }
  for (const i of order) strokeRect(out, det.boxes[4 * i]!, det.boxes[4 * i + 1]!, det.boxes[4 * i + 2]!, det.boxes[4 * i + 3]!, instanceColor(i), line);
  for (const i of order) {
    const text = det.scores ? `${name(det.labels[i]!)} ${det.scores[i]!.toFixed(2)}` : name(det.labels[i]!);
    drawLabel(out, text, det.boxes[4 * i]!, det.boxes[4 * i + 1]!, instanceColor(i), scale);
  }
  return out;
}
