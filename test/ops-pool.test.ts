// max_pool2d: values and argmax indices vs the float64 reference (exact: a max picks one input),
// gradients vs finite differences of the reference (tolerance 1e-4 abs + 1e-3 rel), and known
// answers from the PyTorch docs' definitions (window max, -inf padding, first max on ties, output
// size formula with ceil_mode).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { maxPool2dReference, poolOutputSize, type Pool2d } from '../kernels/pool.js';
import { setMaxPoolBackwardUnrolled } from '../engine/ops/pool.js';

await ready;

type Cfg = [k: number | [number, number], s: number | [number, number], p: number | [number, number], d: number, ceil: boolean];
const CONFIGS: Cfg[] = [
  [3, 2, 1, 1, false], // ResNet stem
  [1, 2, 0, 1, false], // FPN P6
  [2, 2, 0, 1, true],
  [3, 1, 1, 1, false],
  [[3, 2], [2, 3], [1, 0], 1, false],
  [3, 2, 1, 2, false],
  [3, 2, 0, 1, true],
];

const params = ([k, s, p, d, ceil]: Cfg): Pool2d => {
  const two = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
  const [kH, kW] = two(k), [sH, sW] = two(s), [pH, pW] = two(p);
  return { kH, kW, sH, sW, pH, pW, dH: d, dW: d, ceilMode: ceil };
};

for (const cfg of CONFIGS) {
  test(`max_pool2d ${JSON.stringify(cfg)} on [2,3,7,13]: values, indices, gradient`, async () => {
    const x = ref([2, 3, 7, 13], 7);
    const want = maxPool2dReference(x, params(cfg));
    const [y, idx] = F.maxPool2dWithIndices(gpu(x), cfg[0], cfg[1], cfg[2], cfg[3], cfg[4]);
    await expectRef(y, want.y, { atol: 0, rtol: 0 }, 'values');
    await expectRef(F.cast(idx, 'float32'), want.indices, { atol: 0, rtol: 0 }, 'indices');
    await checkOp({
      name: `max_pool2d ${JSON.stringify(cfg)}`,
      inputs: [x],
      gpu: ([t]) => F.maxPool2d(t!, cfg[0], cfg[1], cfg[2], cfg[3], cfg[4]),
      ref: ([r]) => maxPool2dReference(r!, params(cfg)).y,
      forwardTol: { atol: 0, rtol: 0 },
    });
  });
}

test('the backward: unrolled candidate slots and the loop form give the same sums, bit for bit', async () => {
  for (const cfg of [...CONFIGS, [[5, 3], [2, 1], [2, 1], 2, true] as Cfg]) {
    const x = ref([2, 3, 11, 13], 9);
    // Ties (rounded values) make overlapping windows share an argmax, so sums of several terms occur.
    const rounded = x.data.map((v) => Math.round(v * 2) / 2);
    const grads: Float32Array[] = [];
    for (const unrolled of [true, false]) {
      setMaxPoolBackwardUnrolled(unrolled);
      const xt = gpu({ shape: x.shape, data: rounded }).requiresGrad_();
      const y = F.maxPool2d(xt, cfg[0], cfg[1], cfg[2], cfg[3], cfg[4]);
      const gy = F.tensor(Float32Array.from({ length: y.size }, (_, i) => Math.sin(i * 1.7) * 3), y.shape);
      F.sum(F.mul(y, gy)).backward();
      grads.push((await xt.grad!.data()) as Float32Array);
    }
    setMaxPoolBackwardUnrolled(true);
    assert.equal(Array.from(grads[0]!), Array.from(grads[1]!), JSON.stringify(cfg));
    assert.ok(grads[0]!.some((v) => v !== 0), 'some gradient reaches the input');
  }
});

test('max_pool2d on a 3D [C,H,W] input and a strided view', async () => {
  const x = ref([5, 9, 6], 8);
  const want = maxPool2dReference(x, params([3, 2, 1, 1, false]));
  await expectRef(F.maxPool2d(gpu(x), 3, 2, 1), want.y, { atol: 0, rtol: 0 }, '3D');
  const xt = F.transpose(gpu(x), 1, 2); // [5, 6, 9] view
  const r = { shape: [5, 6, 9], data: new Float64Array(x.data.length) };
  for (let c = 0; c < 5; c++) for (let h = 0; h < 9; h++) for (let w = 0; w < 6; w++) r.data[(c * 6 + w) * 9 + h] = x.data[(c * 9 + h) * 6 + w]!;
  await expectRef(F.maxPool2d(xt, 3, 2, 1), maxPool2dReference(r, params([3, 2, 1, 1, false])).y, { atol: 0, rtol: 0 }, 'transposed view');
});

test('known answers: window max, indices, -inf padding', async () => {
  // out(h, w) = max over the 2x2 window at (2h, 2w) of arange(16) as 4x4.
  const [y, idx] = F.maxPool2dWithIndices(F.arange(0, 16).reshape([1, 1, 4, 4]), 2);
  assert.equal(Array.from(await y.data()), [5, 7, 13, 15]);
  assert.equal(Array.from(await idx.data()), [5, 7, 13, 15]);
  // Padding is -inf, not 0: an all-negative input stays negative at the borders.
  const neg = await F.maxPool2d(F.full([1, 1, 3, 3], -1), 3, 2, 1).data();
  assert.equal(Array.from(neg), [-1, -1, -1, -1]);
  // kernel 1 stride 2 (FPN P6) subsamples: rows/cols 0, 2, 4.
  const p6 = await F.maxPool2d(F.arange(0, 25).reshape([1, 1, 5, 5]), 1, 2).data();
  assert.equal(Array.from(p6), [0, 2, 4, 10, 12, 14, 20, 22, 24]);
});

test('ties go to the first maximum in scan order; overlapping windows accumulate', async () => {
  const x = F.ones([1, 1, 2, 3]).requiresGrad_();
  const [y, idx] = F.maxPool2dWithIndices(x, 2, 1);
  assert.equal(Array.from(await idx.data()), [0, 1]);
  F.sum(y).backward();
  assert.equal(Array.from(await x.grad!.data()), [1, 1, 0, 0, 0, 0]);
  // A single peak inside 3x3 stride-1 padded windows is the max of all 9 windows around it.
  const v = new Float32Array(25).fill(0);
  v[12] = 5;
  const z = F.tensor(v, [1, 1, 5, 5]).requiresGrad_();
  F.sum(F.maxPool2d(z, 3, 1, 1)).backward();
  const g = await z.grad!.data();
  assert.is(g[12], 9);
  // Windows away from the peak are all zeros: their first in-bounds element takes the gradient.
  const want = new Array<number>(25).fill(0);
  for (let oh = 0; oh < 5; oh++) {
    for (let ow = 0; ow < 5; ow++) {
      const hit = Math.abs(oh - 2) <= 1 && Math.abs(ow - 2) <= 1 ? 12 : Math.max(oh - 1, 0) * 5 + Math.max(ow - 1, 0);
      want[hit]!++;
    }
  }
  assertClose(g, want, { atol: 0, rtol: 0 }, 'grad');
});

test('output size formula of the docs, with ceil_mode', () => {
  // floor((H + 2p - d(k-1) - 1) / s + 1); ceil_mode rounds up unless the last window would start in the right padding.
  assert.is(poolOutputSize(7, 3, 2, 1, 1, false), 4);
  assert.is(poolOutputSize(13, 2, 2, 0, 1, false), 6);
  assert.is(poolOutputSize(13, 2, 2, 0, 1, true), 7);
  assert.is(poolOutputSize(5, 2, 2, 1, 1, true), 3);
  assert.is(poolOutputSize(224, 3, 2, 1, 1, false), 112);
  assert.is(poolOutputSize(7, 1, 2, 0, 1, false), 4);
});

test('NaN propagates as in PyTorch', async () => {
  const y = await F.maxPool2d(F.tensor([1, NaN, 3, 2], [1, 1, 2, 2]), 2).data();
  assert.ok(Number.isNaN(y[0]));
});

test('clear errors', () => {
  assert.throws(() => F.maxPool2d(F.zeros([1, 1, 5, 5]), 3, 2, 2), /pad should be at most half of kernel size/);
  assert.throws(() => F.maxPool2d(F.zeros([5, 5]), 3), /expects a 3D \[C,H,W\] or 4D \[N,C,H,W\] input/);
  assert.throws(() => F.maxPool2d(F.zeros([1, 1, 2, 2]), 3), /output size 0x0 is too small/);
});

test.run();
