// Detections back to the original image: boxes rescaled by the resize ratio and the 28x28 mask
// probabilities pasted at their boxes (torchvision's transform.postprocess and
// paste_masks_in_image: pad the mask by one pixel, grow the box by the same factor, truncate it to
// integers, bilinearly resize the mask to the box, and copy the part inside the image).
import { resizeBilinearCHW } from '../data/transforms.js';

const f = Math.fround;

/** torchvision resize_boxes: x by origW/resizedW, y by origH/resizedH, in float32. */
export function rescaleBoxes(boxes: Float32Array, from: [number, number], to: [number, number]): Float32Array {
  const rh = f(f(to[0]) / f(from[0])), rw = f(f(to[1]) / f(from[1]));
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = f(boxes[i]! * rw);
    out[i + 1] = f(boxes[i + 1]! * rh);
    out[i + 2] = f(boxes[i + 2]! * rw);
    out[i + 3] = f(boxes[i + 3]! * rh);
  }
  return out;
}

/**
 * Pastes each mask [M, M] (probabilities) into an image-sized plane: result [D, height, width].
 * `boxes` are in the image's coordinates.
 */
export function pasteMasks(masks: Float32Array, M: number, boxes: Float32Array, height: number, width: number, padding = 1): Float32Array {
  const D = boxes.length / 4;
  const out = new Float32Array(D * height * width);
  const P = M + 2 * padding;
  const scale = f((M + 2 * padding) / M);
  const padded = new Float32Array(P * P);
  for (let d = 0; d < D; d++) {
    padded.fill(0);
    for (let y = 0; y < M; y++) padded.set(masks.subarray(d * M * M + y * M, d * M * M + (y + 1) * M), (y + padding) * P + padding);
    const [x1, y1, x2, y2] = Array.from(boxes.subarray(4 * d, 4 * d + 4));
    const wHalf = f(f(f(x2! - x1!) * 0.5) * scale), hHalf = f(f(f(y2! - y1!) * 0.5) * scale);
    const xc = f(f(x2! + x1!) * 0.5), yc = f(f(y2! + y1!) * 0.5);
    // .to(torch.int64) truncates toward zero.
    const bx0 = Math.trunc(f(xc - wHalf)), by0 = Math.trunc(f(yc - hHalf));
    const bx1 = Math.trunc(f(xc + wHalf)), by1 = Math.trunc(f(yc + hHalf));
    const w = Math.max(bx1 - bx0 + 1, 1), h = Math.max(by1 - by0 + 1, 1);
    const resized = resizeBilinearCHW(padded, 1, P, P, h, w);
    const xs = Math.max(bx0, 0), xe = Math.min(bx1 + 1, width);
    const ys = Math.max(by0, 0), ye = Math.min(by1 + 1, height);
    const plane = d * height * width;
    for (let y = ys; y < ye; y++) {
      for (let x = xs; x < xe; x++) out[plane + y * width + x] = resized[(y - by0) * w + (x - bx0)]!;
    }
  }
  return out;
}
