// CPU-side image/target transforms of Mask R-CNN training and inference, written to reproduce
// torchvision's GeneralizedRCNNTransform (and, where chosen, Detectron2's ResizeShortestEdge sizes)
// bit-for-bit where practical: the same output sizes, the same float32 bilinear arithmetic
// (PyTorch's CPU upsample_bilinear2d, align_corners=False, no antialias), the same nearest
// resize for masks, the same box scaling, zero padding to a multiple of 32.
import type { RgbImage } from './image.js';
import type { Rng } from './rng.js';

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// Output sizes

export type SizeRounding = 'torchvision' | 'detectron2';

/**
 * Size after resizing the shorter side to `minSize` with the longer side capped at `maxSize`.
 *
 * torchvision: scale = min(S / min(h, w), max / max(h, w)) where each quotient is a Python float
 * divided by a float32 0-d tensor, which PyTorch evaluates as `reciprocal(tensor) * S` in float32
 * (Tensor.__rtruediv__), so scale = f32(f32(1 / side) * S), not the correctly rounded f32(S / side);
 * then F.interpolate(scale_factor=scale, recompute_scale_factor=True) makes the size
 * floor(dim * double(scale)). E.g. a 480x640 image with min 320, max 416 becomes 312x416
 * (f32(1/640)*416 rounds up to 0.65000004), where f32(416/640) = 0.64999998 would give 311x415.
 * Checked against torchvision 0.14's _resize_image_and_masks on 3000 random sizes
 * (test/transforms.test.ts lists such cases).
 *
 * Detectron2 (ResizeShortestEdge.get_output_shape): double arithmetic, shorter side set to exactly S,
 * longer side scaled, both scaled down together if the longer exceeds max, then int(x + 0.5).
 */
export function resizeOutputSize(
  height: number,
  width: number,
  minSize: number,
  maxSize: number,
  rounding: SizeRounding = 'torchvision',
): [number, number] {
  const size = rounding === 'torchvision' ? torchvisionSize(height, width, minSize, maxSize) : detectron2Size(height, width, minSize, maxSize);
  // torchvision's interpolate refuses an empty output too; say why instead of failing in a kernel.
  if (size[0] < 1 || size[1] < 1) {
    throw new Error(`a ${width}x${height} image resizes to ${size[1]}x${size[0]} px (shorter side to ${minSize}, longer side at most ${maxSize}): ` +
      'its aspect ratio is too extreme for this model\'s input size');
  }
  return size;
}

function torchvisionSize(height: number, width: number, minSize: number, maxSize: number): [number, number] {
  const byShort = f32(f32(1 / Math.min(height, width)) * minSize);
  const byLong = f32(f32(1 / Math.max(height, width)) * maxSize);
  const scale = Math.min(byShort, byLong);
  return [Math.floor(height * scale), Math.floor(width * scale)];
}

function detectron2Size(height: number, width: number, minSize: number, maxSize: number): [number, number] {
  const scale = minSize / Math.min(height, width);
  let newh: number;
  let neww: number;
  if (height < width) {
    newh = minSize;
    neww = scale * width;
  } else {
    newh = scale * height;
    neww = minSize;
  }
  if (Math.max(newh, neww) > maxSize) {
    const s = maxSize / Math.max(newh, neww);
    newh *= s;
    neww *= s;
  }
  return [Math.trunc(newh + 0.5), Math.trunc(neww + 0.5)];
}

// ---------------------------------------------------------------------------------------------
// Resampling

interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/** Source indices and weights along one axis, as PyTorch's compute_source_index_and_lambda with
 *  align_corners=False and no explicit scale (recompute_scale_factor=True leaves scale = in/out):
 *  scale = float32(in/out), src = max(scale*(dst+0.5)-0.5, 0) evaluated in DOUBLE and never rounded
 *  to float32 (`dst_index + 0.5` promotes to double), i0 = min(floor(src), in-1), i1 = i0+1 clamped
 *  to the last pixel, lambda = f32(src - i0) clamped to [0, 1]. Measured on PyTorch 1.13 with
 *  one-hot inputs; rounding src to float32 first (as this did before) moves lambda by up to an ulp of
 *  src (3e-5 at src ~ 300) and outputs by up to 2e-5. Equal sizes are an exact copy. */
function linearTaps(inSize: number, outSize: number): LinearTaps {
  const t: LinearTaps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  const scale = f32(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    if (inSize === outSize) {
      t.i0[o] = o;
      t.i1[o] = o;
      t.w0[o] = 1;
      t.w1[o] = 0;
      continue;
    }
    let src = scale * (o + 0.5) - 0.5;
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(f32(src - i0), 0), 1);
    t.i0[o] = i0;
    t.i1[o] = i0 < inSize - 1 ? i0 + 1 : i0;
    t.w1[o] = lambda;
    t.w0[o] = f32(1 - lambda);
  }
  return t;
}

const fmaBits = new Float32Array(1);
const fmaInt = new Int32Array(fmaBits.buffer);

/** float32(a * b + c) with ONE rounding (a fused multiply-add), for float32 a, b, c: a*b is exact in
 *  double; the sum's rounding error (TwoSum) breaks the rare ties that rounding to double and then to
 *  float32 would get wrong. */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = f32(s);
  if (err === 0 || !Number.isFinite(r)) return r;
  // Is s exactly halfway between r and its float32 neighbour on s's side? Then err decides.
  fmaBits[0] = r;
  fmaInt[0] += (s > r) === (r > 0) ? 1 : -1;
  const other = fmaBits[0]!;
  if (s - r !== other - s) return r;
  return (err > 0) === (other > r) ? other : r;
}

/** Bilinear resize of a float CHW image to (outH, outW), PyTorch 1.13 CPU float32 semantics: per
 *  output, t0 = row0 blend along x, t1 = row1 blend along x, out = t0*wy0 + t1*wy1, where each
 *  `a*w0 + b*w1` is fma(a, w0, float32(b*w1)): PyTorch's AVX2 kernels are compiled with FMA and GCC
 *  contracts the first product into the add. Bit-exact against torchvision's transform on COCO
 *  photos (test/model-parity-file.test.ts); plain float32 rounding differs by an ulp on 17% of them. */
export function resizeBilinearCHW(
  src: Float32Array,
  channels: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
): Float32Array {
  if (src.length !== channels * height * width) throw new Error('resizeBilinearCHW: size mismatch');
  const out = new Float32Array(channels * outH * outW);
  const ty = linearTaps(height, outH);
  const tx = linearTaps(width, outW);
  for (let c = 0; c < channels; c++) {
    const sp = c * height * width;
    const dp = c * outH * outW;
    for (let oy = 0; oy < outH; oy++) {
      const r0 = sp + ty.i0[oy]! * width;
      const r1 = sp + ty.i1[oy]! * width;
      const wy0 = ty.w0[oy]!;
      const wy1 = ty.w1[oy]!;
      const row = dp + oy * outW;
      for (let ox = 0; ox < outW; ox++) {
        const x0 = tx.i0[ox]!;
        const x1 = tx.i1[ox]!;
        const wx0 = tx.w0[ox]!;
        const wx1 = tx.w1[ox]!;
        const t0 = fmaF32(src[r0 + x0]!, wx0, f32(src[r0 + x1]! * wx1));
        const t1 = fmaF32(src[r1 + x0]!, wx0, f32(src[r1 + x1]! * wx1));
        out[row + ox] = fmaF32(t0, wy0, f32(t1 * wy1));
      }
    }
  }
  return out;
}

/** Source index of PyTorch's 'nearest' mode (the default of F.interpolate, which torchvision uses
 *  for target masks): identity for equal sizes, dst>>1 for exact 2x, else min(floor(dst*scale),
 *  in-1) with scale = float32(in/out). */
function nearestIndex(o: number, inSize: number, outSize: number): number {
  if (inSize === outSize) return o;
  if (outSize === 2 * inSize) return o >> 1;
  return Math.min(Math.floor(f32(o * f32(inSize / outSize))), inSize - 1);
}

/** Nearest resize of `count` stacked uint8 planes (count*h*w, e.g. instance masks). */
export function resizeNearestPlanes(
  planes: Uint8Array,
  count: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
): Uint8Array {
  if (planes.length !== count * height * width) throw new Error('resizeNearestPlanes: size mismatch');
  const out = new Uint8Array(count * outH * outW);
  const xs = Int32Array.from({ length: outW }, (_, o) => nearestIndex(o, width, outW));
  for (let k = 0; k < count; k++) {
    for (let oy = 0; oy < outH; oy++) {
      const srow = k * height * width + nearestIndex(oy, height, outH) * width;
      const drow = k * outH * outW + oy * outW;
      for (let ox = 0; ox < outW; ox++) out[drow + ox] = planes[srow + xs[ox]!]!;
    }
  }
  return out;
}

/** Scales xyxy boxes by the per-axis ratio new/old computed in float32, as torchvision's
 *  resize_boxes (the ratio is not the scale factor: sizes were floored). */
export function resizeBoxes(boxes: Float32Array, from: [number, number], to: [number, number]): Float32Array {
  const rh = f32(f32(to[0]) / f32(from[0]));
  const rw = f32(f32(to[1]) / f32(from[1]));
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = boxes[i]! * rw;
    out[i + 1] = boxes[i + 1]! * rh;
    out[i + 2] = boxes[i + 2]! * rw;
    out[i + 3] = boxes[i + 3]! * rh;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Horizontal flip

/** Mirrors an HWC uint8 image left-right (new copy). */
export function flipImageHWC(img: RgbImage): RgbImage {
  const { width, height, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width, height, data: out };
}

/** Mirrors xyxy boxes in an image of `width` pixels: x1' = W - x2, x2' = W - x1 (boxes use
 *  continuous coordinates where the image spans [0, W]). */
export function flipBoxes(boxes: Float32Array, width: number): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = width - boxes[i + 2]!;
    out[i + 1] = boxes[i + 1]!;
    out[i + 2] = width - boxes[i]!;
    out[i + 3] = boxes[i + 3]!;
  }
  return out;
}

/** Mirrors COCO polygons: x' = W - x (Detectron2's HFlipTransform.apply_coords). */
export function flipPolygons(polys: number[][], width: number): number[][] {
  return polys.map((p) => p.map((v, i) => (i % 2 === 0 ? width - v : v)));
}

/** Mirrors `count` stacked h*w uint8 planes left-right. */
export function flipPlanes(planes: Uint8Array, count: number, height: number, width: number): Uint8Array {
  const out = new Uint8Array(planes.length);
  for (let r = 0; r < count * height; r++) {
    const row = r * width;
    for (let x = 0; x < width; x++) out[row + width - 1 - x] = planes[row + x]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation

export interface Normalization {
  /** Pixel values are divided by 255 before mean/std (torchvision's ToTensor). */
  scale01: boolean;
  /** Channel order of the output: Detectron2's ImageNet weights expect BGR. */
  bgr: boolean;
  /** Per output channel, in the output's channel order and value range. */
  mean: [number, number, number];
  std: [number, number, number];
}

export const NORMALIZE_TORCHVISION: Normalization = {
  scale01: true,
  bgr: false,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

export const NORMALIZE_DETECTRON2: Normalization = {
  scale01: false,
  bgr: true,
  mean: [103.53, 116.28, 123.675],
  std: [1, 1, 1],
};

/** HWC uint8 RGB -> normalised CHW float32, with torchvision's float32 op order:
 *  (float32(v / 255) - mean) / std. */
export function normalizeToCHW(img: RgbImage, norm: Normalization): Float32Array {
  const { width, height, data } = img;
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const srcC = norm.bgr ? 2 - c : c;
    const mean = f32(norm.mean[c]);
    const std = f32(norm.std[c]);
    const plane = c * n;
    for (let i = 0; i < n; i++) {
      const v = norm.scale01 ? f32(data[i * 3 + srcC]! / 255) : data[i * 3 + srcC]!;
      out[plane + i] = f32(v - mean) / std;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-sample pipeline and batching

export interface TransformConfig {
  /** Shorter-side sizes; training picks one per image with the sample's RNG, evaluation uses the
   *  last (torchvision's `size = self.min_size[-1]`). */
  minSizes: number[];
  maxSize: number;
  rounding: SizeRounding;
  normalization: Normalization;
  /** Probability of a horizontal flip in training (0.5 in the torchvision/Detectron2 recipes). */
  flipProb: number;
  train: boolean;
}

/** torchvision's maskrcnn_resnet50_fpn defaults (800, 1333). */
export const TORCHVISION_CONFIG: TransformConfig = {
  minSizes: [800],
  maxSize: 1333,
  rounding: 'torchvision',
  normalization: NORMALIZE_TORCHVISION,
  flipProb: 0.5,
  train: true,
};

/** What goes into transformSample: a decoded image and its targets at the original size. */
export interface RawSample {
  imageId: number;
  image: RgbImage;
  /** n*4 xyxy. */
  boxes: Float32Array;
  labels: Int32Array;
  /** n*h*w binary instance masks at the original size, or undefined for detection only. */
  masks?: Uint8Array;
}

/** A transformed sample: normalised CHW image at its resized (unpadded) size, and targets on it. */
export interface Sample {
  imageId: number;
  /** 3*height*width float32, normalised. */
  image: Float32Array;
  height: number;
  width: number;
  origHeight: number;
  origWidth: number;
  flipped: boolean;
  boxes: Float32Array;
  labels: Int32Array;
  /** n*height*width uint8 (0/1); empty when the raw sample had none. */
  masks: Uint8Array;
}

/**
 * Flip (training, with probability flipProb) then normalise then resize, in torchvision's order:
 * the references' RandomHorizontalFlip acts on the original image, then GeneralizedRCNNTransform
 * normalises before it resizes (the float arithmetic differs slightly if swapped).
 */
export function transformSample(raw: RawSample, cfg: TransformConfig, rng: Rng): Sample {
  const { height, width } = raw.image;
  const n = raw.labels.length;
  let image = raw.image;
  let boxes = raw.boxes;
  let masks = raw.masks ?? new Uint8Array(0);
  // Draw the random numbers in a fixed order whatever the config, so a sample's randomness does
  // not shift when an option changes.
  const flipDraw = rng.next();
  const size = cfg.train ? cfg.minSizes[rng.int(cfg.minSizes.length)]! : cfg.minSizes[cfg.minSizes.length - 1]!;
  const flipped = cfg.train && flipDraw < cfg.flipProb;
  if (flipped) {
    image = flipImageHWC(image);
    boxes = flipBoxes(boxes, width);
    if (masks.length) masks = flipPlanes(masks, n, height, width);
  }
  const [oh, ow] = resizeOutputSize(height, width, size, cfg.maxSize, cfg.rounding);
  let chw = normalizeToCHW(image, cfg.normalization);
  if (oh !== height || ow !== width) {
    chw = resizeBilinearCHW(chw, 3, height, width, oh, ow);
    boxes = resizeBoxes(boxes, [height, width], [oh, ow]);
    if (masks.length) masks = resizeNearestPlanes(masks, n, height, width, oh, ow);
  }
  return {
    imageId: raw.imageId,
    image: chw,
    height: oh,
    width: ow,
    origHeight: height,
    origWidth: width,
    flipped,
    boxes,
    labels: raw.labels,
    masks,
  };
}

export interface ImageBatch {
  /** N*3*H*W float32, each image at the top-left, zero elsewhere. */
  images: Float32Array;
  shape: [number, number, number, number];
  /** [height, width] of each image before padding (torchvision's ImageList.image_sizes). */
  imageSizes: [number, number][];
}

/** Pads every image to the batch's largest height and width rounded up to `sizeDivisible` (so
 *  every FPN level divides evenly) and stacks them: torchvision's batch_images. */
export function batchImages(
  images: { image: Float32Array; height: number; width: number }[],
  sizeDivisible = 32,
  channels = 3,
): ImageBatch {
  if (images.length === 0) throw new Error('batchImages: empty batch');
  let maxH = 0;
  let maxW = 0;
  for (const im of images) {
    maxH = Math.max(maxH, im.height);
    maxW = Math.max(maxW, im.width);
  }
  const H = Math.ceil(maxH / sizeDivisible) * sizeDivisible;
  const W = Math.ceil(maxW / sizeDivisible) * sizeDivisible;
  const out = new Float32Array(images.length * channels * H * W);
  images.forEach((im, b) => {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < im.height; y++) {
        const s = (c * im.height + y) * im.width;
        out.set(im.image.subarray(s, s + im.width), ((b * channels + c) * H + y) * W);
      }
    }
  });
  return { images: out, shape: [images.length, channels, H, W], imageSizes: images.map((im) => [im.height, im.width]) };
}
