// Transforms against torchvision's formulas: output sizes (expected values derived by hand from the
// float32 formula, not from our code), bilinear resize against a float64 reference of PyTorch's
// documented align_corners=False rule, nearest for masks, flips, normalisation, batching.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng } from '../data/rng.js';
import {
  NORMALIZE_DETECTRON2,
  NORMALIZE_TORCHVISION,
  batchImages,
  flipBoxes,
  flipImageHWC,
  flipPlanes,
  flipPolygons,
  fmaF32,
  normalizeToCHW,
  resizeBilinearCHW,
  resizeBoxes,
  resizeNearestPlanes,
  resizeOutputSize,
  transformSample,
  type TransformConfig,
} from '../data/transforms.js';

test('torchvision sizes: floor(dim * f32(f32(1/side) * S)), as torchvision 0.14 computes them', () => {
  // Expected sizes measured with torchvision 0.14's _resize_image_and_masks (PyTorch 1.13): the scale
  // is reciprocal(float32 side) * S in float32 (Tensor.__rtruediv__), which differs from the
  // correctly rounded f32(S / side) for about one size in five. [h, w, S, max, torchvision's size]
  const cases: [number, number, number, number, [number, number]][] = [
    [480, 640, 800, 1333, [800, 1066]], // f32(1/480)*800 rounds up to 1.6666667: 800, not 799
    [333, 500, 800, 1333, [799, 1201]], // ... while here it rounds down: 799.99998 -> 799
    [427, 640, 800, 1333, [799, 1199]], // f32(800/427) would round up and give 800
    [375, 500, 800, 1333, [799, 1066]],
    [500, 333, 640, 1333, [960, 640]],
    [480, 640, 320, 416, [312, 416]], // long side capped: f32(1/640)*416 = 0.65000004 (f32(0.65) gives 311x415)
    [480, 800, 320, 416, [249, 415]],
    [612, 612, 800, 1333, [800, 800]],
    [480, 640, 256, 320, [240, 320]],
    [199, 1000, 800, 1333, [265, 1333]], // f32(1333/1000) would give 1332
    [17, 31, 10, 16, [8, 15]],
    [427, 640, 96, 160, [95, 143]],
  ];
  for (const [h, w, S, M, want] of cases) assert.equal(resizeOutputSize(h, w, S, M), want, `${h}x${w} S=${S} max=${M}`);
});

test('Detectron2 ResizeShortestEdge sizes: int(x + 0.5) in double', () => {
  // 480x640, S=800: short side exactly 800, long 640*800/480 = 1066.67 -> 1067.
  assert.equal(resizeOutputSize(480, 640, 800, 1333, 'detectron2'), [800, 1067]);
  // 500x333, S=640: 500*640/333 = 960.96 -> 961.
  assert.equal(resizeOutputSize(500, 333, 640, 1333, 'detectron2'), [961, 640]);
  // 199x1000: (800, 4020.1) scaled by 1333/4020.1: (265.27, 1333.0) -> (265, 1333).
  assert.equal(resizeOutputSize(199, 1000, 800, 1333, 'detectron2'), [265, 1333]);
  // 17x31, S=10, max 16: (10, 18.235) * 16/18.235 = (8.774, 16) -> (9, 16).
  assert.equal(resizeOutputSize(17, 31, 10, 16, 'detectron2'), [9, 16]);
});

/** Float64 reference of PyTorch's bilinear, align_corners=False, written from the documented rule:
 *  src = (dst + 0.5) * in / out - 0.5, negatives clamped to 0, neighbours i0 = floor(src) and
 *  i0 + 1 clamped to the last pixel, weights by the fractional part. */
function refBilinear(src: Float32Array, c: number, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(c * oh * ow);
  const axis = (o: number, inn: number, outn: number): [number, number, number] => {
    const s = Math.max(((o + 0.5) * inn) / outn - 0.5, 0);
    const i0 = Math.min(Math.floor(s), inn - 1);
    const i1 = Math.min(i0 + 1, inn - 1);
    return [i0, i1, s - i0];
  };
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < oh; y++) {
      const [y0, y1, ly] = axis(y, h, oh);
      for (let x = 0; x < ow; x++) {
        const [x0, x1, lx] = axis(x, w, ow);
        const at = (yy: number, xx: number): number => src[(k * h + yy) * w + xx]!;
        out[(k * oh + y) * ow + x] =
          (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      }
    }
  }
  return out;
}

test('fmaF32 rounds a*b + c once, also where rounding to double then float32 would not', () => {
  // a*b = 2^-24 - 2^-70 and c = 1 + 2^-23: the exact sum lies just below the midpoint between
  // 1 + 2^-23 and 1 + 2^-22, so one rounding gives 1 + 2^-23; via double it becomes the midpoint
  // itself and ties-to-even picks 1 + 2^-22.
  const a = 1 + 2 ** -23, b = 2 ** -24 - 2 ** -47, c = 1 + 2 ** -23;
  assert.is(Math.fround(a * b + c), 1 + 2 ** -22);
  assert.is(fmaF32(a, b, c), 1 + 2 ** -23);
  assert.is(fmaF32(-a, b, -c), -(1 + 2 ** -23));
  assert.is(fmaF32(a, 2 ** -24 + 2 ** -47, c), 1 + 2 ** -22); // just above the midpoint
  const rng = new Rng(5);
  for (let i = 0; i < 1000; i++) {
    const [x, y, z] = [rng.uniform(-3, 3), rng.uniform(0, 1), rng.uniform(-3, 3)].map(Math.fround) as [number, number, number];
    assert.ok(Math.abs(fmaF32(x, y, z) - (x * y + z)) <= Math.abs(x * y + z) * 2 ** -24 + 1e-45, 'within half an ulp');
  }
});

test('bilinear: hand-computed 1-D cases', () => {
  // Upsampling [0, 1] to 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (both neighbours = last).
  assert.equal(Array.from(resizeBilinearCHW(Float32Array.from([0, 1]), 1, 1, 2, 1, 4)), [0, 0.25, 0.75, 1]);
  // Downsampling [0, 1, 2, 3] to 2: sources 0.5 and 2.5.
  assert.equal(Array.from(resizeBilinearCHW(Float32Array.from([0, 1, 2, 3]), 1, 1, 4, 1, 2)), [0.5, 2.5]);
  // Same size is an exact copy.
  const id = Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
  assert.equal(Array.from(resizeBilinearCHW(id, 1, 2, 3, 2, 3)), Array.from(id));
});

test('bilinear matches the float64 reference on small odd images', () => {
  const rng = new Rng(11);
  const cases: [number, number, number, number][] = [
    [5, 7, 3, 4],
    [5, 7, 11, 13],
    [7, 5, 7, 9],
    [3, 3, 8, 2],
    [9, 1, 4, 3],
    [13, 11, 5, 17],
    [1, 1, 3, 5],
  ];
  for (const [h, w, oh, ow] of cases) {
    const src = Float32Array.from({ length: 3 * h * w }, () => rng.uniform(-2, 2));
    const got = resizeBilinearCHW(src, 3, h, w, oh, ow);
    const want = refBilinear(src, 3, h, w, oh, ow);
    assert.is(got.length, want.length);
    for (let i = 0; i < got.length; i++) {
      if (Math.abs(got[i]! - want[i]!) > 2e-6) assert.unreachable(`${h}x${w}->${oh}x${ow} [${i}]: ${got[i]} vs ${want[i]}`);
    }
  }
});

test('nearest for masks: floor(dst * in/out) clamped, exact 2x uses dst >> 1', () => {
  const row = (vals: number[], ow: number): number[] =>
    Array.from(resizeNearestPlanes(Uint8Array.from(vals), 1, 1, vals.length, 1, ow));
  assert.equal(row([10, 11, 12, 13, 14], 3), [10, 11, 13]); // 5/3: 0, 1.67, 3.33
  assert.equal(row([10, 11, 12], 6), [10, 10, 11, 11, 12, 12]);
  assert.equal(row([10, 11, 12], 7), [10, 10, 10, 11, 11, 12, 12]); // 3/7: 0 .43 .86 1.29 1.71 2.14 2.57
  const two = resizeNearestPlanes(Uint8Array.from([1, 0, 0, 1, 0, 1, 1, 0]), 2, 2, 2, 3, 1);
  // 2x2 -> 3x1: rows 0, 0, 1 (2/3 scale) and column 0, each plane on its own.
  assert.equal(Array.from(two), [1, 1, 0, 0, 0, 1]);
});

test('boxes scale by float32 new/old per axis', () => {
  const b = resizeBoxes(Float32Array.from([10, 20, 30, 40]), [480, 640], [799, 1066]);
  const rw = Math.fround(1066 / 640);
  const rh = Math.fround(799 / 480);
  assert.equal(Array.from(b), [Math.fround(10 * rw), Math.fround(20 * rh), Math.fround(30 * rw), Math.fround(40 * rh)]);
});

test('horizontal flip of boxes and polygons', () => {
  assert.equal(Array.from(flipBoxes(Float32Array.from([1, 2, 4, 6, 0, 0, 10, 5]), 10)), [6, 2, 9, 6, 0, 0, 10, 5]);
  assert.equal(flipPolygons([[1, 2, 4, 2, 4, 6], [0, 0, 10, 0, 10, 1]], 10), [[9, 2, 6, 2, 6, 6], [10, 0, 0, 0, 0, 1]]);
});

test('image and mask flips mirror columns and are involutions', () => {
  const img = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i) };
  const f = flipImageHWC(img);
  assert.equal(Array.from(f.data.subarray(0, 9)), [6, 7, 8, 3, 4, 5, 0, 1, 2]);
  assert.equal(Array.from(flipImageHWC(f).data), Array.from(img.data));
  const m = Uint8Array.from([1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1]); // 2 planes of 2x3
  assert.equal(Array.from(flipPlanes(m, 2, 2, 3)), [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0]);
});

test('normalisation presets', () => {
  const px = { width: 1, height: 1, data: Uint8Array.from([255, 0, 128]) };
  const tv = normalizeToCHW(px, NORMALIZE_TORCHVISION);
  const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-5;
  assert.ok(close(tv[0]!, (1 - 0.485) / 0.229), `${tv[0]}`);
  assert.ok(close(tv[1]!, (0 - 0.456) / 0.224));
  assert.ok(close(tv[2]!, (128 / 255 - 0.406) / 0.225));
  const d2 = normalizeToCHW(px, NORMALIZE_DETECTRON2); // BGR order, 0..255 minus mean
  assert.ok(close(d2[0]!, 128 - 103.53));
  assert.ok(close(d2[1]!, 0 - 116.28));
  assert.ok(close(d2[2]!, 255 - 123.675));
  // CHW layout: plane c holds channel c of every pixel.
  const two = normalizeToCHW({ width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255]) }, NORMALIZE_TORCHVISION);
  assert.ok(close(two[1]!, (1 - 0.485) / 0.229) && close(two[3]!, (1 - 0.456) / 0.224));
});

test('batching pads bottom/right with zeros to a multiple of 32', () => {
  const a = { image: new Float32Array(3 * 5 * 7).fill(1), height: 5, width: 7 };
  const b = { image: new Float32Array(3 * 33 * 2).fill(2), height: 33, width: 2 };
  const batch = batchImages([a, b]);
  assert.equal(batch.shape, [2, 3, 64, 32]);
  assert.equal(batch.imageSizes, [
    [5, 7],
    [33, 2],
  ]);
  const at = (n: number, c: number, y: number, x: number): number => batch.images[((n * 3 + c) * 64 + y) * 32 + x]!;
  assert.is(at(0, 2, 4, 6), 1);
  assert.is(at(0, 2, 5, 6), 0);
  assert.is(at(0, 0, 4, 7), 0);
  assert.is(at(1, 1, 32, 1), 2);
  assert.is(at(1, 1, 32, 2), 0);
  assert.is(at(1, 1, 33, 0), 0);
  let sum = 0;
  for (const v of batch.images) sum += v;
  assert.is(sum, 3 * 5 * 7 + 2 * 3 * 33 * 2);
  assert.equal(batchImages([a], 1).shape, [1, 3, 5, 7]);
});

const base: TransformConfig = {
  minSizes: [10, 20],
  maxSize: 1000,
  rounding: 'torchvision',
  normalization: NORMALIZE_TORCHVISION,
  flipProb: 0.5,
  train: false,
};

function rawSample() {
  // 5x8 image, one instance: a 2x3 rectangle mask at rows 1..2, columns 4..6 with its box.
  const mask = new Uint8Array(40);
  for (let y = 1; y <= 2; y++) for (let x = 4; x <= 6; x++) mask[y * 8 + x] = 1;
  return {
    imageId: 7,
    image: { width: 8, height: 5, data: Uint8Array.from({ length: 120 }, (_, i) => (i * 7) % 256) },
    boxes: Float32Array.from([4, 1, 7, 3]),
    labels: Int32Array.from([2]),
    masks: mask,
  };
}

test('evaluation transform: last min size, no flip, targets follow the image', () => {
  const s = transformSample(rawSample(), base, new Rng(1));
  // min(20/5, 1000/8) = 4 exactly -> 20x32.
  assert.equal([s.height, s.width, s.origHeight, s.origWidth, s.flipped], [20, 32, 5, 8, false]);
  assert.equal(Array.from(s.boxes), [16, 4, 28, 12]);
  assert.is(s.masks.length, 20 * 32);
  // Mask pixels are exactly rows 4..11, columns 16..27 (nearest, exact 4x).
  for (let y = 0; y < 20; y++) {
    for (let x = 0; x < 32; x++) assert.is(s.masks[y * 32 + x], y >= 4 && y < 12 && x >= 16 && x < 28 ? 1 : 0);
  }
  assert.equal(Array.from(s.labels), [2]);
});

test('training transform: seeded choice of size and flip, flipped targets consistent', () => {
  const cfg = { ...base, train: true };
  const seen = new Set<string>();
  for (let seed = 0; seed < 40; seed++) {
    const a = transformSample(rawSample(), cfg, new Rng(seed));
    const b = transformSample(rawSample(), cfg, new Rng(seed));
    assert.equal([a.height, a.flipped], [b.height, b.flipped]);
    assert.equal(Array.from(a.image), Array.from(b.image));
    seen.add(`${a.height}/${a.flipped}`);
    if (a.flipped) {
      const k = a.height / 5;
      // Box [4,1,7,3] in width 8 flips to [1,1,4,3], then scales by k.
      assert.equal(Array.from(a.boxes), [1 * k, 1 * k, 4 * k, 3 * k]);
      assert.is(a.masks[Math.floor(1.5 * k) * a.width + Math.floor(2 * k)], 1);
      assert.is(a.masks[Math.floor(1.5 * k) * a.width + Math.floor(5 * k)], 0);
    }
  }
  // Both sizes and both flip states occur over 40 seeds.
  assert.equal([...seen].sort(), ['10/false', '10/true', '20/false', '20/true']);
});

test('a sample without masks keeps an empty mask array', () => {
  const r = rawSample();
  const s = transformSample({ ...r, masks: undefined }, base, new Rng(2));
  assert.is(s.masks.length, 0);
});

test.run();
