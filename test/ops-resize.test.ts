// interpolate (nearest and bilinear): GPU vs the float64 reference for up, down, identity and mixed
// resizes of 7x13 maps, by size and by scale factor (with and without recompute_scale_factor),
// gradients vs finite differences (tolerance 1e-4 abs + 1e-3 rel), and known answers from the
// PyTorch definitions. Forward tolerance: nearest exact (it copies), bilinear 1e-5 (float32 weights).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { resizeReference, resizeScale, type ResizeMode } from '../kernels/resize.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const SIZES: [number, number][] = [[13, 7], [14, 26], [4, 5], [7, 13], [3, 29], [1, 1]];
const TOL = { nearest: { atol: 0, rtol: 0 }, bilinear: { atol: 1e-5, rtol: 1e-5 } };

function refBySize(x: RefTensor, mode: ResizeMode, [oh, ow]: [number, number], align = false): RefTensor {
  const [H, W] = x.shape.slice(2) as [number, number];
  return resizeReference(x, mode, oh, ow, resizeScale(mode, H, oh, align), resizeScale(mode, W, ow, align), align);
}

for (const mode of ['nearest', 'bilinear'] as const) {
  for (const align of mode === 'bilinear' ? [false, true] : [false]) {
    test(`${mode}${align ? ' align_corners' : ''} by size from [2,3,7,13]: forward and gradient`, async () => {
      for (const size of SIZES) {
        const x = ref([2, 3, 7, 13], 3);
        const opts = { size, mode, ...(mode === 'bilinear' ? { alignCorners: align } : {}) };
        await checkOp({
          name: `${mode} align=${align} to ${size}`,
          inputs: [x],
          gpu: ([t]) => F.interpolate(t!, opts),
          ref: ([r]) => refBySize(r!, mode, size, align),
          forwardTol: TOL[mode],
        });
      }
    });
  }
  test(`${mode} by scale factor, recompute_scale_factor false and true`, async () => {
    const x = ref([1, 5, 7, 13], 4);
    for (const sf of [2, 0.5, 1.7, [0.3, 2.5]] as (number | [number, number])[]) {
      const [fh, fw] = typeof sf === 'number' ? [sf, sf] : sf;
      const OH = Math.floor(7 * fh), OW = Math.floor(13 * fw);
      for (const recompute of [false, true]) {
        const want = resizeReference(x, mode, OH, OW, resizeScale(mode, 7, OH, false, recompute ? undefined : fh), resizeScale(mode, 13, OW, false, recompute ? undefined : fw));
        await checkOp({
          name: `${mode} scale ${JSON.stringify(sf)} recompute=${recompute}`,
          inputs: [x],
          gpu: ([t]) => F.interpolate(t!, { scaleFactor: sf, mode, recomputeScaleFactor: recompute }),
          ref: () => want,
          differentiable: [false],
          forwardTol: TOL[mode],
        });
      }
    }
    // The gradient through a passed-through scale (1/1.7 is not in/out).
    await checkOp({
      name: `${mode} scale 1.7 gradient`,
      inputs: [ref([2, 3, 7, 13], 5)],
      gpu: ([t]) => F.interpolate(t!, { scaleFactor: 1.7, mode }),
      ref: ([r]) => resizeReference(r!, mode, 11, 22, resizeScale(mode, 7, 11, false, 1.7), resizeScale(mode, 13, 22, false, 1.7)),
      forwardTol: TOL[mode],
    });
  });
}

test('nearest known answers: 2x repeat (FPN top-down), floor(dst * in/out), scale-factor semantics', async () => {
  const two = await F.interpolate(F.tensor([1, 2, 3, 4], [1, 1, 2, 2]), { size: [4, 4] }).data();
  assert.equal(Array.from(two), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  // in 3 -> out 5: scale 0.6, sources floor(0, 0.6, 1.2, 1.8, 2.4) = 0, 0, 1, 1, 2.
  const five = await F.interpolate(F.tensor([10, 20, 30], [1, 1, 1, 3]), { size: [1, 5] }).data();
  assert.equal(Array.from(five), [10, 10, 20, 20, 30]);
  // scale_factor 1.7 on 5: output floor(8.5) = 8. Passed through, scale = 1/1.7:
  // floor(d * 0.588) = 0,0,1,1,2,2,3,4. Recomputed, scale = 5/8: floor(d * 0.625) = 0,0,1,1,2,3,3,4.
  const x = F.arange(0, 5).reshape([1, 1, 1, 5]);
  assert.equal(Array.from(await F.interpolate(x, { scaleFactor: [1, 1.7] }).data()), [0, 0, 1, 1, 2, 2, 3, 4]);
  assert.equal(Array.from(await F.interpolate(x, { scaleFactor: [1, 1.7], recomputeScaleFactor: true }).data()), [0, 0, 1, 1, 2, 3, 3, 4]);
  // Downsampling picks floor(d * 2.5) of 0..9 -> 0, 2, 5, 7.
  assert.equal(Array.from(await F.interpolate(F.arange(0, 10).reshape([1, 1, 1, 10]), { size: [1, 4] }).data()), [0, 2, 5, 7]);
});

test('bilinear known answers: half-pixel centres clamped at 0, and align_corners', async () => {
  const x = F.tensor([0, 1], [1, 1, 1, 2]);
  // Sources 0.5 * (d + 0.5) - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (i1 clamped to the last).
  assertClose(await F.interpolate(x, { size: [1, 4], mode: 'bilinear' }).data(), [0, 0.25, 0.75, 1], { atol: 1e-7, rtol: 0 }, 'half-pixel');
  assertClose(await F.interpolate(x, { size: [1, 4], mode: 'bilinear', alignCorners: true }).data(), [0, 1 / 3, 2 / 3, 1], { atol: 1e-7, rtol: 0 }, 'align_corners');
  // 2x2 -> 1x1 without align_corners samples the centre (0.5, 0.5): the mean of the four.
  assertClose(await F.interpolate(F.tensor([1, 2, 3, 4], [1, 1, 2, 2]), { size: 1, mode: 'bilinear' }).data(), [2.5], { atol: 1e-7, rtol: 0 }, 'centre');
  // The gradient of an upsample spreads each output's weight back: sums of the weights per input.
  const t = F.tensor([0, 1], [1, 1, 1, 2]).requiresGrad_();
  F.sum(F.interpolate(t, { size: [1, 4], mode: 'bilinear' })).backward();
  assertClose(await t.grad!.data(), [1 + 0.75 + 0.25, 0.25 + 0.75 + 1], { atol: 1e-6, rtol: 0 }, 'grad');
});

test('strided input views are read correctly', async () => {
  const x = ref([2, 3, 13, 7], 9);
  const xt = F.transpose(gpu(x), 2, 3); // [2,3,7,13] view
  const r: RefTensor = { shape: [2, 3, 7, 13], data: new Float64Array(x.data.length) };
  for (let p = 0; p < 6; p++) for (let h = 0; h < 7; h++) for (let w = 0; w < 13; w++) r.data[(p * 7 + h) * 13 + w] = x.data[(p * 13 + w) * 7 + h]!;
  await expectRef(F.interpolate(xt, { size: [10, 9], mode: 'bilinear' }), refBySize(r, 'bilinear', [10, 9]), TOL.bilinear, 'bilinear view');
  await expectRef(F.interpolate(xt, { size: [10, 9] }), refBySize(r, 'nearest', [10, 9]), TOL.nearest, 'nearest view');
});

test('clear errors', () => {
  const x = F.zeros([1, 1, 4, 4]);
  assert.throws(() => F.interpolate(x, { size: [2, 2], mode: 'nearest', alignCorners: false }), /alignCorners can only be set/);
  assert.throws(() => F.interpolate(x, {}), /exactly one of size and scaleFactor/);
  assert.throws(() => F.interpolate(x, { size: 2, scaleFactor: 2 }), /exactly one of size and scaleFactor/);
  assert.throws(() => F.interpolate(F.zeros([4, 4]), { size: 2 }), /expects a 4D \[N,C,H,W\] input/);
  assert.throws(() => F.interpolate(x, { scaleFactor: 0.1 }), /output sizes should be greater than 0/);
});

test.run();
