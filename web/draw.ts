// Drawing on canvases: RGB images, instance overlays (masks, boxes, labels, scores) and the loss
// plot. Detections use the model's layout (model/maskrcnn.ts `Detection`): boxes [D*4] x1,y1,x2,y2
// in image pixels, masks [D*H*W] probabilities at the image size (thresholded at 0.5 like
// torchvision's visualisation), labels as contiguous class indices.
import * as L from './lib.js';

export interface Overlay {
  /** [D*4] x1, y1, x2, y2 in image pixels. */
  boxes: ArrayLike<number>;
  labels: ArrayLike<number>;
  /** Absent for ground truth. */
  scores?: ArrayLike<number>;
  /** [D*H*W] values in [0, 1] (probabilities or 0/1), row-major at the image size. */
  masks?: ArrayLike<number>;
  height: number;
  width: number;
}

/** The 2-D context, always asked with the same options (the overlay reads pixels back). */
function ctx2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  return canvas.getContext('2d', { willReadFrequently: true })!;
}

/** Instance colours: the library's palette, so the page and cli/infer.js's PNGs agree. */
export function colorOf(i: number): [number, number, number] {
  return [...L.draw.instanceColor(i)] as [number, number, number];
}

/** Puts an RGB (HWC) image on the canvas at its own size. */
export function drawImage(canvas: HTMLCanvasElement, img: L.image.RgbImage): void {
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = ctx2d(canvas);
  const data = ctx.createImageData(img.width, img.height);
  const n = img.width * img.height;
  for (let p = 0; p < n; p++) {
    data.data[4 * p] = img.data[3 * p]!;
    data.data[4 * p + 1] = img.data[3 * p + 1]!;
    data.data[4 * p + 2] = img.data[3 * p + 2]!;
    data.data[4 * p + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

/** Reads an <img>/bitmap back as RGB bytes (the browser decodes; alpha is dropped like PIL). */
export function rgbFromBitmap(bitmap: ImageBitmap | HTMLImageElement): L.image.RgbImage {
  const w = bitmap.width, h = bitmap.height;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const data = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) {
    data[3 * p] = rgba[4 * p]!;
    data[3 * p + 1] = rgba[4 * p + 1]!;
    data[3 * p + 2] = rgba[4 * p + 2]!;
  }
  return { width: w, height: h, data };
}

/**
 * Draws instances over what is already on the canvas (the image, at the overlay's size): masks
 * blended at 45%, boxes, and "label score" tags. Instances below `minScore` are skipped.
 */
export function drawOverlay(canvas: HTMLCanvasElement, o: Overlay, names: (label: number) => string, minScore = 0): number {
  const ctx = ctx2d(canvas);
  const D = o.labels.length;
  const keep: number[] = [];
  for (let d = 0; d < D; d++) if (!o.scores || o.scores[d]! >= minScore) keep.push(d);
  if (o.masks) {
    const img = ctx.getImageData(0, 0, o.width, o.height);
    const hw = o.width * o.height;
    for (const [k, d] of keep.entries()) {
      const [r, g, b] = colorOf(k);
      for (let p = 0; p < hw; p++) {
        if (o.masks[d * hw + p]! < 0.5) continue;
        img.data[4 * p] = 0.55 * img.data[4 * p]! + 0.45 * r;
        img.data[4 * p + 1] = 0.55 * img.data[4 * p + 1]! + 0.45 * g;
        img.data[4 * p + 2] = 0.55 * img.data[4 * p + 2]! + 0.45 * b;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
  const font = Math.max(10, Math.round(Math.min(o.width, o.height) / 28));
  ctx.font = `${font}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(1, font / 8);
  for (const [k, d] of keep.entries()) {
    const [r, g, b] = colorOf(k);
    const [x1, y1, x2, y2] = [o.boxes[4 * d]!, o.boxes[4 * d + 1]!, o.boxes[4 * d + 2]!, o.boxes[4 * d + 3]!];
    ctx.strokeStyle = `rgb(${r},${g},${b})`;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = o.scores ? `${names(o.labels[d]!)} ${o.scores[d]!.toFixed(2)}` : names(o.labels[d]!);
    const tw = ctx.measureText(text).width + 6;
    const ty = y1 - font - 2 >= 0 ? y1 - font - 2 : y1;
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x1, ty, tw, font + 2);
    ctx.fillStyle = '#fff';
    ctx.textBaseline = 'top';
    ctx.fillText(text, x1 + 3, ty + 1);
  }
  return keep.length;
}

/** Ground truth of a rendered synthetic image as an overlay (COCO xywh boxes, RLE masks). */
export function shapesOverlay(s: L.shapes.RenderedShapes): Overlay {
  return { ...L.shapesTargets(s), height: s.height, width: s.width };
}

/** A line plot of loss against step, autoscaled, with the last value printed. */
export function drawLossPlot(canvas: HTMLCanvasElement, points: { step: number; loss: number }[]): void {
  const ctx = ctx2d(canvas);
  const { width: W, height: H } = canvas;
  const pad = { l: 48, r: 12, t: 12, b: 28 };
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#fafafa';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad.l, pad.t, W - pad.l - pad.r, H - pad.t - pad.b);
  ctx.fillStyle = '#555';
  ctx.font = '11px system-ui, sans-serif';
  const finite = points.filter((p) => Number.isFinite(p.loss));
  if (finite.length === 0) {
    ctx.fillText('no losses yet', pad.l + 8, pad.t + 16);
    return;
  }
  const maxStep = Math.max(1, ...finite.map((p) => p.step));
  const lo = Math.min(...finite.map((p) => p.loss)), hi = Math.max(...finite.map((p) => p.loss));
  const span = hi - lo || 1;
  const px = (s: number) => pad.l + (s / maxStep) * (W - pad.l - pad.r);
  const py = (v: number) => pad.t + (1 - (v - lo) / span) * (H - pad.t - pad.b);
  ctx.textBaseline = 'middle';
  ctx.fillText(hi.toPrecision(3), 4, py(hi));
  ctx.fillText(lo.toPrecision(3), 4, py(lo));
  ctx.textBaseline = 'top';
  ctx.fillText(`step ${maxStep}`, W - pad.r - 60, H - pad.b + 6);
  ctx.strokeStyle = '#1f6feb';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  finite.forEach((p, i) => (i ? ctx.lineTo(px(p.step), py(p.loss)) : ctx.moveTo(px(p.step), py(p.loss))));
  ctx.stroke();
}
