// Instance masks for training targets: each kept annotation's segmentation rasterised at the image
// size with pycocotools' exact rules (data/polygon.ts + data/rle.ts), stacked row-major.
import { annToMask, type Segmentation } from './polygon.js';
import type { InstanceTargets } from './coco.js';

/**
 * n*h*w uint8 (0/1) masks for the instances of `t`, in its order. An annotation without a
 * segmentation (detection-only data) gets an all-zero mask rather than failing, so such data can
 * still train box heads; an RLE whose size differs from the image was rejected at validation.
 */
export function instanceMasks(t: InstanceTargets): Uint8Array {
  const { height: h, width: w } = t;
  const plane = h * w;
  const out = new Uint8Array(t.annotations.length * plane);
  t.annotations.forEach((a, i) => {
    if (a.segmentation === undefined) return;
    // Same JSON shape; coco-types just keeps `counts` as one union instead of two RLE types.
    out.set(annToMask(a.segmentation as Segmentation, h, w).subarray(0, plane), i * plane);
  });
  return out;
}
