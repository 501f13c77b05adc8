// Whole building blocks from the kernels, end to end: a ResNet bottleneck (conv-bn-relu x3 plus a
// strided projection shortcut, batch norm in training mode so gradients run through the batch
// statistics) and an FPN level (lateral 1x1, nearest top-down upsampling to an odd size, add,
// 3x3 output conv). Forward vs the float64 composition of the kernels' references; every input's
// gradient vs central finite differences of that composition.
import { test } from 'uvu';
import { ready } from './helpers/gpu.js';
import { checkOp, ref } from './helpers/check.js';
import * as F from '../engine/index.js';
import type { RefTensor } from '../kernels/common.js';
import { conv2dReference, type Conv2dRefParams } from '../kernels/conv.js';
import { batchNormReference } from '../kernels/norm.js';
import { resizeReference, resizeScale } from '../kernels/resize.js';
import { ewReference } from '../kernels/elementwise.js';

await ready;

const conv = (stride: number, padding: number): Conv2dRefParams => ({ stride: [stride, stride], padding: [padding, padding], dilation: [1, 1], groups: 1 });
const relu = (x: RefTensor): RefTensor => ewReference('relu', [x]);
const add = (a: RefTensor, b: RefTensor): RefTensor => ewReference('add', [a, b]);

// Batch-norm affine parameters: fixed, non-trivial values.
const gamma = (c: number, seed: number): RefTensor => ref([c], seed, 0.5, 1.5);
const beta = (c: number, seed: number): RefTensor => ref([c], seed, -0.3, 0.3);
const BN = [gamma(4, 40), beta(4, 41), gamma(4, 42), beta(4, 43), gamma(16, 44), beta(16, 45), gamma(16, 46), beta(16, 47)];

function bnRef(x: RefTensor, k: number): RefTensor {
  return batchNormReference(x, null, null, BN[2 * k]!, BN[2 * k + 1]!, true).y;
}

function bottleneckRef([x, w1, w2, w3, wd]: RefTensor[]): RefTensor {
  let y = relu(bnRef(conv2dReference(x!, w1!, null, conv(1, 0)), 0));
  y = relu(bnRef(conv2dReference(y, w2!, null, conv(2, 1)), 1));
  y = bnRef(conv2dReference(y, w3!, null, conv(1, 0)), 2);
  const shortcut = bnRef(conv2dReference(x!, wd!, null, conv(2, 0)), 3);
  return relu(add(y, shortcut));
}

test('ResNet bottleneck block (stride 2, projection shortcut, training-mode BN): forward and gradients', async () => {
  const bn = BN.map((r) => F.tensor(Float32Array.from(r.data), r.shape));
  const gpuBn = (x: F.Tensor, k: number): F.Tensor => F.batchNorm(x, null, null, bn[2 * k]!, bn[2 * k + 1]!, true);
  await checkOp({
    name: 'bottleneck',
    inputs: [ref([2, 8, 7, 9], 1), ref([4, 8, 1, 1], 2, -0.5, 0.5), ref([4, 4, 3, 3], 3, -0.3, 0.3), ref([16, 4, 1, 1], 4, -0.5, 0.5), ref([16, 8, 1, 1], 5, -0.5, 0.5)],
    gpu: ([x, w1, w2, w3, wd]) => {
      let y = F.relu(gpuBn(F.conv2d(x!, w1!), 0));
      y = F.relu(gpuBn(F.conv2d(y, w2!, null, 2, 1), 1));
      y = gpuBn(F.conv2d(y, w3!), 2);
      return F.relu(F.add(y, gpuBn(F.conv2d(x!, wd!, null, 2), 3)));
    },
    ref: bottleneckRef,
    forwardTol: { atol: 1e-4, rtol: 1e-4 },
    gradTol: { atol: 2e-4, rtol: 2e-3 },
  });
});

test('FPN level: lateral 1x1 + nearest top-down to an odd size + 3x3 output conv: forward and gradients', async () => {
  const [H, W] = [7, 9];
  await checkOp({
    name: 'fpn level',
    inputs: [ref([1, 6, H, W], 11), ref([1, 4, 4, 5], 12), ref([4, 6, 1, 1], 13, -0.5, 0.5), ref([4], 14, -0.1, 0.1), ref([4, 4, 3, 3], 15, -0.3, 0.3), ref([4], 16, -0.1, 0.1)],
    gpu: ([c, top, wl, bl, wo, bo]) => {
      const lateral = F.conv2d(c!, wl!, bl!);
      const merged = F.add(lateral, F.interpolate(top!, { size: [H, W], mode: 'nearest' }));
      return F.conv2d(merged, wo!, bo!, 1, 1);
    },
    ref: ([c, top, wl, bl, wo, bo]) => {
      const up = resizeReference(top!, 'nearest', H, W, resizeScale('nearest', 4, H, false), resizeScale('nearest', 5, W, false));
      return conv2dReference(add(conv2dReference(c!, wl!, bl!, conv(1, 0)), up), wo!, bo!, conv(1, 1));
    },
    forwardTol: { atol: 1e-5, rtol: 1e-4 },
  });
});

test.run();
