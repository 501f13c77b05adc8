// roi_align and the multi-level pooler: hand-computed answers from torchvision's definition, GPU vs the
// float64 reference on odd shapes (boxes partly outside, zero-area, empty lists), and gradients vs
// finite differences. Tolerances: forward 1e-5 abs/rel (float32 sums of a few products); gradients
// 1e-4 abs, 1e-3 rel (roi_align is linear in its input, so the differences are exact up to rounding).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, assertClose, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { mapLevels, setRoiAlignBackwardRows } from '../engine/ops/roi_align.js'; // internal: MultiScaleRoIAlign's LevelMapper, the backward's form
import { roiAlignReference, mapLevelsReference, type RoiAlignParams, type LevelMapperParams } from '../kernels/roi_align.js';
import { ROW_COLS } from '../kernels/roi_align_rows.js';
import type { RefTensor } from '../kernels/common.js';
import { Rng } from '../engine/random.js';

await ready;

const TOL = { atol: 1e-5, rtol: 1e-5 };

// f(y, x) = 4y + x + 1 on a 4x4 map: bilinear interpolation reproduces a linear function exactly,
// so a bin's average is f at the mean of its sampling points (where no clamping happens).
const ramp = (): F.Tensor => F.tensor(Array.from({ length: 16 }, (_, i) => 4 * Math.floor(i / 4) + (i % 4) + 1), [1, 1, 4, 4]);
const f = (y: number, x: number): number => 4 * y + x + 1;

async function pool(input: F.Tensor, box: number[], opts: F.RoiAlignOptions): Promise<number[]> {
  return Array.from(await F.roiAlign(input, F.tensor([box]), opts).data());
}

test('known answers: aligned=False vs aligned=True (half-pixel offset)', async () => {
  // aligned=False: box [0,2]^2, one bin of size 2, samples at 0.5 and 1.5 -> f(1, 1).
  assertClose(await pool(ramp(), [0, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 2 }), [f(1, 1)], TOL, 'aligned=False');
  // aligned=True shifts the box by -0.5: samples at 0 and 1 -> f(0.5, 0.5).
  assertClose(await pool(ramp(), [0, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 2, aligned: true }), [f(0.5, 0.5)], TOL, 'aligned=True');
  // 2x2 bins of size 1, one sample at each bin centre.
  assertClose(await pool(ramp(), [0, 1, 1, 3, 3], { outputSize: 2, samplingRatio: 1 }), [f(1.5, 1.5), f(1.5, 2.5), f(2.5, 1.5), f(2.5, 2.5)], TOL, '2x2');
  // spatial_scale 0.5 maps [0,4]^2 to [0,2]^2: one sample at (1, 1).
  assertClose(await pool(ramp(), [0, 0, 0, 4, 4], { outputSize: 1, samplingRatio: 1, spatialScale: 0.5 }), [f(1, 1)], TOL, 'scale');
  // non-square output [1, 2] with adaptive grids: roi 3 wide, 2 high -> bin centres (1, 0.75), (1, 2.25).
  assertClose(await pool(ramp(), [0, 0, 0, 3, 2], { outputSize: [1, 2], samplingRatio: 0 }), [f(1, 0.75), f(1, 2.25)], TOL, '[1,2] adaptive');
});

test('known answers: adaptive vs fixed sampling grids count the samples', async () => {
  // A unit impulse at (1, 1). Box [0,2]^2 into one bin: adaptive grid = ceil(2/1) = 2 per side,
  // samples at (0.5|1.5, 0.5|1.5) each give the impulse weight 0.25; one sample at (1, 1) gives 1.
  const impulse = F.tensor(Array.from({ length: 16 }, (_, i) => (i === 5 ? 1 : 0)), [1, 1, 4, 4]);
  assertClose(await pool(impulse, [0, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 0 }), [0.25], TOL, 'adaptive');
  assertClose(await pool(impulse, [0, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 1 }), [1], TOL, 'sampling_ratio=1');
  // 3x3 samples at 1/3, 1, 5/3 per side weight row/column 1 by 1/3, 1, 1/3: (5/3)^2 / 9.
  assertClose(await pool(impulse, [0, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 3 }), [25 / 81], TOL, 'sampling_ratio=3');
});

test('known answers: boxes partly outside the image, clamping at the border', async () => {
  // Box [2,6]^2, one bin, 2x2 samples at 3 and 5: y = 5 > H = 4 contributes 0, (3, 3) is the last pixel.
  assertClose(await pool(ramp(), [0, 2, 2, 6, 6], { outputSize: 1, samplingRatio: 2 }), [f(3, 3) / 4], TOL, 'past the far edge');
  // Sample at (3.5, 3.5), between H-1 and H: clamped to pixel (3, 3).
  assertClose(await pool(ramp(), [0, 3, 3, 4, 4], { outputSize: 1, samplingRatio: 1 }), [f(3, 3)], TOL, 'last half pixel');
  // Sample at (-0.5, -0.5), in [-1, 0]: clamped to pixel (0, 0); at -1.5 it is outside: 0.
  assertClose(await pool(ramp(), [0, -1, -1, 0, 0], { outputSize: 1, samplingRatio: 1 }), [f(0, 0)], TOL, 'near edge');
  assertClose(await pool(ramp(), [0, -2, -2, -1, -1], { outputSize: 1, samplingRatio: 1 }), [0], TOL, 'outside');
});

test('known answers: zero-area boxes', async () => {
  // aligned=False forces the RoI to 1x1: [1,2]^2, samples at 1.25 and 1.75 -> f(1.5, 1.5).
  assertClose(await pool(ramp(), [0, 1, 1, 1, 1], { outputSize: 1, samplingRatio: 2 }), [f(1.5, 1.5)], TOL, 'aligned=False fixed');
  assertClose(await pool(ramp(), [0, 1, 1, 1, 1], { outputSize: 1, samplingRatio: 0 }), [f(1.5, 1.5)], TOL, 'aligned=False adaptive');
  // aligned=True keeps size 0: the adaptive grid is ceil(0) = 0 samples -> 0; a fixed grid samples
  // the single point (0.5, 0.5) four times.
  assertClose(await pool(ramp(), [0, 1, 1, 1, 1], { outputSize: 1, samplingRatio: 0, aligned: true }), [0], TOL, 'aligned=True adaptive');
  assertClose(await pool(ramp(), [0, 1, 1, 1, 1], { outputSize: 1, samplingRatio: 2, aligned: true }), [f(0.5, 0.5)], TOL, 'aligned=True fixed');
});

test('batch index selects the image; list-of-boxes input; empty box lists', async () => {
  const two = F.cat([F.zeros([1, 1, 4, 4]), ramp()], 0);
  assertClose(await pool(two, [1, 0, 0, 2, 2], { outputSize: 1, samplingRatio: 2 }), [f(1, 1)], TOL, 'image 1');
  const out = F.roiAlign(two, [F.tensor([[0, 0, 2, 2]]), F.tensor([[0, 0, 2, 2], [1, 1, 3, 3]])], { outputSize: 1, samplingRatio: 2 });
  assertClose(await out.data(), [0, f(1, 1), f(2, 2)], TOL, 'list of boxes');
  // An image without boxes between two with boxes, and boxes given as a strided view (columns 1..4 of [2,5]).
  const three = F.cat([ramp(), F.zeros([1, 1, 4, 4]), ramp()], 0);
  const strided = F.slice(F.tensor([[9, 1, 1, 3, 3], [9, 0, 0, 2, 2]]), 1, 1, 5);
  const gap = F.roiAlign(three, [F.tensor([[0, 0, 2, 2]]), F.zeros([0, 4]), strided], { outputSize: 1, samplingRatio: 2 });
  assertClose(await gap.data(), [f(1, 1), f(2, 2), f(1, 1)], TOL, 'empty image in the list; strided boxes');
  const empty = F.roiAlign(two, F.zeros([0, 5]), { outputSize: [7, 5] });
  assert.equal([...empty.shape], [0, 1, 7, 5]);
  const x = F.ones([1, 2, 3, 3]).requiresGrad_();
  F.sum(F.roiAlign(x, F.zeros([0, 5]), { outputSize: 2 })).backward();
  assertClose(await x.grad!.data(), new Array(18).fill(0), { atol: 0, rtol: 0 }, 'empty grad');
  assert.throws(() => F.roiAlign(two, F.zeros([3, 4]), { outputSize: 2 }), /roi_align: boxes must be float32 \[K,5\].*\[3,4\]/);
});

/** Random rois on an HxW map (image coordinates = map / scale), some partly outside, one zero-area, one flipped. */
function randomRois(K: number, N: number, H: number, W: number, scale: number, seed: number, sizeLo = 0.5, sizeHi = 8): RefTensor {
  const rng = new Rng(seed);
  const data: number[] = [];
  for (let k = 0; k < K; k++) {
    const x1 = (-2 + (W + 2) * rng.uniform()) / scale, y1 = (-2 + (H + 2) * rng.uniform()) / scale;
    const w = k === 1 ? 0 : (sizeLo + (sizeHi - sizeLo) * rng.uniform()) / scale;
    const h = k === 1 ? 0 : (sizeLo + (sizeHi - sizeLo) * rng.uniform()) / scale;
    // Box 2 is flipped (x2 < x1, y2 < y1): torchvision forces it to 1x1 when not aligned; aligned, its
    // adaptive grid is empty and a fixed grid samples backwards from (x1, y1).
    if (k === 2) data.push(k % N, x1 + w, y1 + h, x1, y1);
    else data.push(k % N, x1, y1, x1 + w, y1 + h);
  }
  return { shape: [K, 5], data: Float64Array.from(data, (v) => Math.fround(v)) };
}

/** Runs a check with the backward's row form forced on or off (the default is on for CPU adapters only). */
async function withBackwardForm(rows: boolean, check: () => Promise<void>): Promise<void> {
  setRoiAlignBackwardRows(rows);
  try {
    await check();
  } finally {
    setRoiAlignBackwardRows(null);
  }
}
const FORMS = [{ rows: false, name: 'bin by bin' }, { rows: true, name: 'row form' }];

// The kernel walks sampling grids in chunks of 4 x 4 samples: sampling_ratio 0 (bins up to 4 map
// pixels here) and 2 take one chunk, sampling_ratio 5 and the large-bin test below several.
for (const aligned of [false, true]) {
  for (const samplingRatio of [0, 2, 5]) for (const { rows, name: form } of FORMS) {
    test(`GPU vs float64 reference and gradient (backward ${form}): aligned=${aligned}, sampling_ratio=${samplingRatio}`, () => withBackwardForm(rows, async () => {
      const p: RoiAlignParams = { pooledH: 3, pooledW: 2, samplingRatio, aligned };
      // 7x13 map, 2 images, 11 channels (a full and a partial block of 8 in the backward, a partial
      // block of 16 in the forward), scale 1/2:
      // boxes in a 14x26 image frame.
      await checkOp({
        name: `roi_align aligned=${aligned} sr=${samplingRatio}`,
        inputs: [ref([2, 11, 7, 13], 11), randomRois(6, 2, 7, 13, 0.5, 5 + samplingRatio)],
        differentiable: [true, false],
        gpu: ([x, b]) => F.roiAlign(x!, b!, { outputSize: [3, 2], spatialScale: 0.5, samplingRatio, aligned }),
        ref: ([x, b]) => roiAlignReference([x!], b!, [0.5], p),
        forwardTol: TOL,
      });
    }));
  }
}

test('single-channel maps (the mask targets) take one channel per invocation: GPU vs reference and gradient, both backward forms', async () => {
  const p: RoiAlignParams = { pooledH: 5, pooledW: 4, samplingRatio: 2, aligned: false };
  for (const { rows } of FORMS) {
    await withBackwardForm(rows, () => checkOp({
      name: `roi_align one channel (rows ${rows})`,
      inputs: [ref([2, 1, 9, 12], 51), randomRois(5, 2, 9, 12, 1, 52, 1, 9)],
      differentiable: [true, false],
      gpu: ([x, b]) => F.roiAlign(x!, b!, { outputSize: [5, 4], samplingRatio: 2 }),
      ref: ([x, b]) => roiAlignReference([x!], b!, [1], p),
      forwardTol: TOL,
    }));
  }
});

test(`backward row form: rows wider than its ${ROW_COLS} column accumulators go bin by bin, narrower ones by row, in one dispatch`, async () => {
  // A 90-pixel-wide map; boxes (batch, x1, y1, x2, y2) 38 and 41 pixels wide (more columns than the
  // accumulators), 11.5 and 25 wide (rows), one at the accumulators' limit, one past the right edge.
  const W = 90;
  const boxes = [[0, 3.3, 0.5, 41.7, 5.2], [1, 10.2, -0.7, 50.9, 4.4], [0, 20.1, 1.1, 31.6, 5.9], [1, 60.3, 0.2, 85.4, 3.3], [1, 5, 1, 34.6, 4], [0, 70.7, 2.2, 100.5, 7.5]];
  assert.ok(boxes.some((b) => b[3]! - b[1]! > ROW_COLS) && boxes.some((b) => b[3]! - b[1]! < ROW_COLS - 4));
  const rois: RefTensor = { shape: [boxes.length, 5], data: Float64Array.from(boxes.flat(), (v) => Math.fround(v)) };
  for (const samplingRatio of [2, 0]) {
    const p: RoiAlignParams = { pooledH: 2, pooledW: 4, samplingRatio, aligned: false };
    await withBackwardForm(true, () => checkOp({
      name: `roi_align wide rows sr=${samplingRatio}`,
      inputs: [ref([2, 10, 6, W], 42), rois],
      differentiable: [true, false],
      gpu: ([x, b]) => F.roiAlign(x!, b!, { outputSize: [2, 4], samplingRatio }),
      ref: ([x, b]) => roiAlignReference([x!], b!, [1], p),
      forwardTol: TOL,
    }));
  }
});

test('large bins (adaptive grids of 5..15 samples per side): GPU vs reference and gradient', async () => {
  const p: RoiAlignParams = { pooledH: 2, pooledW: 2, samplingRatio: 0, aligned: false };
  await checkOp({
    name: 'roi_align large bins',
    inputs: [ref([1, 3, 9, 11], 12), randomRois(4, 1, 9, 11, 1, 13, 20, 30)],
    differentiable: [true, false],
    gpu: ([x, b]) => F.roiAlign(x!, b!, { outputSize: 2, samplingRatio: 0 }),
    ref: ([x, b]) => roiAlignReference([x!], b!, [1], p),
    forwardTol: TOL,
  });
});

test('larger odd case vs reference (forward only): 17 boxes, 5x5 output, adaptive', async () => {
  // 19 channels: a full and a partial forward block of 16.
  const x = ref([2, 19, 9, 11], 3);
  const b = randomRois(17, 2, 9, 11, 0.25, 9, 0.2, 12);
  const p: RoiAlignParams = { pooledH: 5, pooledW: 5, samplingRatio: 0, aligned: true };
  const out = F.roiAlign(F.tensor(Float32Array.from(x.data), x.shape), F.tensor(Float32Array.from(b.data), b.shape), { outputSize: 5, spatialScale: 0.25, aligned: true });
  await expectRef(out, roiAlignReference([x], b, [0.25], p), TOL, 'roi_align 17 boxes');
});

const MAPPER: LevelMapperParams = { kMin: 2, kMax: 5, canonicalScale: 224, canonicalLevel: 4, eps: 1e-6, variant: 'torchvision' };

test('level mapper: known levels from floor(4 + log2(sqrt(area)/224)), clamped to [2,5]', async () => {
  // sqrt(area): 224 -> 4, 112 -> 3, 111 -> floor(2.987) = 2, 448 -> 5, 1000 -> 6 -> 5, 10 -> 2, 0 -> 2.
  const sizes = [224, 112, 111, 448, 1000, 10, 0, 300];
  const want = [4, 3, 2, 5, 5, 2, 2, 4].map((l) => l - 2);
  const boxes = sizes.map((s) => [5, 7, 5 + s, 7 + s]);
  for (const variant of ['torchvision', 'detectron2'] as const) {
    const got = Array.from(await mapLevels(F.tensor(boxes), { kMin: 2, kMax: 5, variant }).data());
    assert.equal(got, want, variant);
    assert.equal(mapLevelsReference(boxes.flat(), 4, 0, { ...MAPPER, variant, eps: variant === 'torchvision' ? 1e-6 : 1e-8 }), want, `${variant} reference`);
  }
  // Rectangles use sqrt(area): 112 x 448 has sqrt(area) 224 -> level 4; rois [K,5] skip the batch column.
  assert.equal(Array.from(await mapLevels(F.tensor([[1, 0, 0, 112, 448]]), { kMin: 2, kMax: 5 }).data()), [2]);
});

test('multi-level pooler: GPU vs reference in box order, and gradients to every level', async () => {
  // Three levels at scales 1/2, 1/4, 1/8 (kMin 1, kMax 3) with canonical size 8 so small boxes
  // spread over all levels: floor(4 + log2(s / 8)) with s in [1, 8) image pixels.
  const feats = [ref([2, 2, 12, 10], 21), ref([2, 2, 6, 5], 22), ref([2, 2, 3, 3], 23)];
  const scales = [1 / 2, 1 / 4, 1 / 8];
  const rois = randomRois(9, 2, 12, 10, 0.5, 31, 0.5, 4);
  const mp: LevelMapperParams = { kMin: 1, kMax: 3, canonicalScale: 8, canonicalLevel: 4, eps: 1e-6, variant: 'torchvision' };
  const levels = mapLevelsReference(rois.data, 5, 1, mp);
  assert.ok(new Set(levels).size === 3, `boxes cover all levels: ${levels}`);
  const p: RoiAlignParams = { pooledH: 2, pooledW: 3, samplingRatio: 2, aligned: false };
  for (const { rows, name: form } of FORMS) await withBackwardForm(rows, () => checkOp({
    name: `multiScaleRoiAlign (backward ${form})`,
    inputs: [...feats, rois],
    differentiable: [true, true, true, false],
    gpu: ([a, b, c, r]) => F.multiScaleRoiAlign([a!, b!, c!], r!, { outputSize: [2, 3], samplingRatio: 2, scales, canonicalScale: 8 }),
    ref: ([a, b, c, r]) => roiAlignReference([a!, b!, c!], r!, scales, p, mapLevelsReference(r!.data, 5, 1, mp)),
    forwardTol: TOL,
  }));
  assert.throws(() => F.multiScaleRoiAlign([F.zeros([1, 2, 4, 4])], F.zeros([0, 5]), { outputSize: 2, scales: [1, 2] }), /1 feature maps but 2 scales/);
});

test('inferScales: torchvision _infer_scale (h-based, float32 log2, round half to even)', () => {
  assert.equal(F.inferScales([[2, 256, 200, 304], [2, 256, 100, 152]], [800, 1216]), [1 / 4, 1 / 8]);
  // h and w scales differ (1/8 vs 1/16): torchvision returns possible_scales[0], the h-based one.
  assert.equal(F.inferScales([[1, 256, 100, 50]], [800, 800]), [1 / 8]);
  // float32(1189 / 3363) has float32 log2 exactly -1.5: torch.round gives -2 (half to even), not -1.
  assert.equal(F.inferScales([[1, 1, 1189, 7]], [3363, 7]), [1 / 4]);
});

test.run();
