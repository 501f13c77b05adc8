// batch_norm (training and eval), frozen batch norm and group_norm: GPU vs the float64 references
// of kernels/norm.ts on odd shapes, finite-difference gradients for input, weight and bias (through
// the batch statistics in training mode), the running-stats update, and known answers worked out
// by hand from the PyTorch definitions. Tolerances: forward 2e-5 abs + 2e-5 rel (float32
// statistics over <= 182 values), gradients the checkOp default 1e-4 abs + 1e-3 rel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { batchNormReference, frozenBatchNormReference, groupNormReference } from '../kernels/norm.js';
import type { RefTensor } from '../kernels/common.js';
import { setReductionWorkgroup } from '../engine/device.js';

await ready;

const FWD = { atol: 2e-5, rtol: 2e-5 };

function stats(C: number, seed: number): { rm: RefTensor; rv: RefTensor } {
  return { rm: ref([C], seed, -0.5, 0.5), rv: ref([C], seed + 1, 0.5, 2) };
}

// Besides small odd shapes, the v2 model's: one image with few pixels (layer4 / the coarsest FPN
// level, 3x5), rows longer than a reduction workgroup split over images (2 x 17x19), and the box
// head's many RoIs of 7x7 (N > workgroup chunks).
for (const shape of [[2, 3, 7, 13], [2, 5, 3, 1], [5, 3], [1, 2, 3, 5], [2, 2, 17, 19], [37, 2, 7, 7]]) {
  const C = shape[1]!;
  test(`batch_norm training ${JSON.stringify(shape)}: forward, running stats, gradients of x, weight, bias`, async () => {
    const x = ref(shape, 1, -2, 3);
    const w = ref([C], 2, 0.5, 1.5);
    const b = ref([C], 3);
    const { rm, rv } = stats(C, 4);
    const want = batchNormReference(x, rm, rv, w, b, true, 0.1, 1e-5);
    const rmT = gpu(rm), rvT = gpu(rv);
    await expectRef(F.batchNorm(gpu(x), rmT, rvT, gpu(w), gpu(b), true, 0.1, 1e-5), want.y, FWD, 'y');
    await expectRef(rmT, want.runningMean!, { atol: 1e-6, rtol: 1e-6 }, 'running_mean');
    await expectRef(rvT, want.runningVar!, { atol: 1e-6, rtol: 1e-5 }, 'running_var');
    await checkOp({
      name: `batch_norm training ${JSON.stringify(shape)}`,
      inputs: [x, w, b],
      gpu: ([xt, wt, bt]) => F.batchNorm(xt!, null, null, wt!, bt!, true),
      ref: ([xr, wr, br]) => batchNormReference(xr!, null, null, wr!, br!, true).y,
      forwardTol: FWD,
    });
  });
}

test('batch_norm training without affine; only some inputs requiring grad', async () => {
  const x = ref([3, 5, 2, 3], 5);
  await checkOp({
    name: 'batch_norm no affine',
    inputs: [x],
    gpu: ([xt]) => F.batchNorm(xt!, null, null, null, null, true),
    ref: ([xr]) => batchNormReference(xr!, null, null, null, null, true).y,
    forwardTol: FWD,
  });
  const w = ref([5], 6, 0.5, 1.5), b = ref([5], 7);
  await checkOp({
    name: 'batch_norm weight/bias grad only',
    inputs: [x, w, b],
    differentiable: [false, true, true],
    gpu: ([xt, wt, bt]) => F.batchNorm(xt!, null, null, wt!, bt!, true),
    ref: ([xr, wr, br]) => batchNormReference(xr!, null, null, wr!, br!, true).y,
    forwardTol: FWD,
  });
});

test('batch_norm eval: running stats, gradients of x, weight, bias; running stats untouched', async () => {
  const shape = [2, 3, 7, 13];
  const x = ref(shape, 11);
  const w = ref([3], 12, 0.5, 1.5), b = ref([3], 13);
  const { rm, rv } = stats(3, 14);
  const rmT = gpu(rm), rvT = gpu(rv);
  await expectRef(F.batchNorm(gpu(x), rmT, rvT, gpu(w), gpu(b), false), batchNormReference(x, rm, rv, w, b, false).y, FWD, 'eval y');
  await expectRef(rmT, rm, { atol: 0, rtol: 0 }, 'running_mean unchanged');
  await expectRef(rvT, rv, { atol: 0, rtol: 0 }, 'running_var unchanged');
  await checkOp({
    name: 'batch_norm eval',
    inputs: [x, w, b, rm, rv],
    differentiable: [true, true, true, false, false],
    gpu: ([xt, wt, bt, m, v]) => F.batchNorm(xt!, m!, v!, wt!, bt!, false),
    ref: ([xr, wr, br, m, v]) => batchNormReference(xr!, m!, v!, wr!, br!, false).y,
    forwardTol: FWD,
  });
});

test('batch_norm known answer from the definition (x = 1,2,3,4 per channel)', async () => {
  // Channel 0 holds 1,2,3,4 (N=2, L=2); channel 1 holds 10 everywhere.
  const x = F.tensor([1, 2, 10, 10, 3, 4, 10, 10], [2, 2, 2]);
  const rm = F.zeros([2]), rv = F.ones([2]);
  const y = await F.batchNorm(x, rm, rv, F.tensor([2, 1]), F.tensor([0.5, -1]), true, 0.1, 1e-5).data();
  // Mean 2.5, biased variance 1.25; channel 1 has variance 0 so it becomes the bias.
  const s = 1 / Math.sqrt(1.25 + 1e-5);
  assertClose(y, [-1.5 * s * 2 + 0.5, -0.5 * s * 2 + 0.5, -1, -1, 0.5 * s * 2 + 0.5, 1.5 * s * 2 + 0.5, -1, -1], { atol: 1e-6, rtol: 1e-6 }, 'y');
  // running_mean = 0.9*0 + 0.1*mean; running_var = 0.9*1 + 0.1*unbiased var (5/3 and 0).
  assertClose(await rm.data(), [0.25, 1], { atol: 1e-7, rtol: 1e-6 }, 'running_mean');
  assertClose(await rv.data(), [0.9 + 0.1 * (5 / 3), 0.9], { atol: 1e-7, rtol: 1e-6 }, 'running_var');
});

test('batch_norm statistics stay accurate with a large mean (two-pass)', async () => {
  const x = ref([2, 3, 7, 13], 21, -0.01, 0.01);
  x.data = x.data.map((v) => Math.fround(1000 + v));
  const one = { shape: [3], data: new Float64Array(3).fill(1) };
  const want = batchNormReference(x, one, one, null, null, true, 1);
  // momentum 1: running_var becomes the unbiased batch variance (~3e-5). A one-pass E[x^2] - E[x]^2
  // in float32 loses it entirely (E[x^2] ~ 1e6 has a rounding step of 0.06).
  const rv = F.ones([3]);
  const y = F.batchNorm(gpu(x), F.zeros([3]), rv, null, null, true, 1);
  await expectRef(rv, want.runningVar!, { atol: 0, rtol: 1e-3 }, 'batch variance');
  // The float32 mean itself is only good to half an ulp of 1000 (3e-5), ~0.5% of the std: that
  // bounds y for any float32 kernel, PyTorch's included.
  await expectRef(y, want.y, { atol: 1e-2, rtol: 0 }, 'large-mean y');
});

test('batch_norm reads strided inputs', async () => {
  const x = ref([3, 2, 5, 4], 31); // permuted below to [2, 3, 5, 4]
  const perm = (r: RefTensor): RefTensor => {
    const [A, B, H, W] = r.shape as [number, number, number, number];
    const out = new Float64Array(r.data.length);
    for (let a = 0; a < A; a++) for (let bb = 0; bb < B; bb++) for (let k = 0; k < H * W; k++) out[(bb * A + a) * H * W + k] = r.data[(a * B + bb) * H * W + k]!;
    return { shape: [B, A, H, W], data: out };
  };
  const rv = ref([3], 33, 0.5, 2);
  const rvStrided = F.slice(F.tensor(Float32Array.from([...rv.data].flatMap((v) => [v, 0])), [6]), 0, 0, 6, 2);
  const y = F.batchNorm(F.permute(gpu(x), [1, 0, 2, 3]), F.zeros([3]), rvStrided, null, null, false);
  await expectRef(y, batchNormReference(perm(x), { shape: [3], data: new Float64Array(3) }, rv, null, null, false).y, FWD, 'permuted');
});

test('frozen batch norm: torchvision formula, gradient of x only', async () => {
  const x = ref([2, 5, 7, 13], 41);
  const w = ref([5], 42, 0.5, 1.5), b = ref([5], 43);
  const { rm, rv } = stats(5, 44);
  await checkOp({
    name: 'frozen_batch_norm',
    inputs: [x, w, b, rm, rv],
    differentiable: [true, false, false, false, false],
    gpu: ([xt, wt, bt, m, v]) => F.frozenBatchNorm2d(xt!, wt!, bt!, m!, v!),
    ref: ([xr, wr, br, m, v]) => frozenBatchNormReference(xr!, wr!, br!, m!, v!),
    forwardTol: FWD,
  });
  // Known answer: w=2, b=1, rm=3, rv=3 (rv + eps = 3.00001): y = x * 2/sqrt(3.00001) + 1 - 3 * 2/sqrt(3.00001).
  const one = (v: number): F.Tensor => F.tensor([v]);
  const y = await F.frozenBatchNorm2d(F.tensor([0, 3, 6], [1, 1, 3]), one(2), one(1), one(3), one(3)).data();
  const sc = 2 / Math.sqrt(3.00001);
  assertClose(y, [1 - 3 * sc, 1, 1 + 3 * sc], { atol: 1e-6, rtol: 1e-6 }, 'frozen known answer');
});

for (const [shape, G] of [[[2, 6, 7, 13], 3], [[2, 5, 3, 7], 5], [[2, 3, 7, 13], 1], [[3, 4, 5], 2]] as [number[], number][]) {
  test(`group_norm ${JSON.stringify(shape)} groups=${G}: forward and gradients of x, weight, bias`, async () => {
    const C = shape[1]!;
    const x = ref(shape, 51, -1, 3);
    const w = ref([C], 52, 0.5, 1.5), b = ref([C], 53);
    await checkOp({
      name: `group_norm ${JSON.stringify(shape)} G=${G}`,
      inputs: [x, w, b],
      gpu: ([xt, wt, bt]) => F.groupNorm(xt!, G, wt!, bt!),
      ref: ([xr, wr, br]) => groupNormReference(xr!, G, wr!, br!),
      forwardTol: FWD,
    });
  });
}

// The row reductions run 16-wide on CPU adapters and 256-wide on GPUs: check both (and a width
// below the smallest row) on rows shorter and longer than the workgroup.
for (const wg of [2, 16, 256]) {
  test(`batch_norm and group_norm with ${wg}-wide row reductions`, async () => {
    setReductionWorkgroup(wg);
    try {
      for (const [shape, G] of [[[2, 6, 7, 13], 3], [[3, 4, 5], 2]] as [number[], number][]) {
        const C = shape[1]!;
        const x = ref(shape, 71, -1, 3), w = ref([C], 72, 0.5, 1.5), b = ref([C], 73);
        await checkOp({
          name: `group_norm ${JSON.stringify(shape)} G=${G} wg=${wg}`,
          inputs: [x, w, b],
          gpu: ([xt, wt, bt]) => F.groupNorm(xt!, G, wt!, bt!),
          ref: ([xr, wr, br]) => groupNormReference(xr!, G, wr!, br!),
          forwardTol: FWD,
        });
        await checkOp({
          name: `batch_norm training ${JSON.stringify(shape)} wg=${wg}`,
          inputs: [x, w, b],
          gpu: ([xt, wt, bt]) => F.batchNorm(xt!, null, null, wt!, bt!, true),
          ref: ([xr, wr, br]) => batchNormReference(xr!, null, null, wr!, br!, true).y,
          forwardTol: FWD,
        });
      }
    } finally {
      setReductionWorkgroup(null);
    }
  });
}

test('group_norm without affine, and the known answer of the definition', async () => {
  const x = ref([2, 6, 3, 5], 61);
  await checkOp({
    name: 'group_norm no affine',
    inputs: [x],
    gpu: ([xt]) => F.groupNorm(xt!, 2),
    ref: ([xr]) => groupNormReference(xr!, 2, null, null),
    forwardTol: FWD,
  });
  // One sample, 2 groups of 2 channels with one value each: group (1, 3) has mean 2, variance 1.
  const y = await F.groupNorm(F.tensor([1, 3, 5, 5], [1, 4, 1]), 2, F.tensor([1, 2, 1, 1]), F.tensor([0, 0, 7, 0])).data();
  const s = 1 / Math.sqrt(1 + 1e-5);
  assertClose(y, [-s, 2 * s, 7, 0], { atol: 1e-6, rtol: 1e-6 }, 'group_norm known answer');
});

test('clear errors', () => {
  const x = F.zeros([2, 6, 3, 3]);
  assert.throws(() => F.groupNorm(x, 4), /group_norm: the 6 channels of input \[2,6,3,3\] are not divisible into num_groups=4/);
  assert.throws(() => F.batchNorm(x, null, null, F.ones([5]), null, true), /batch_norm: weight \[5\] does not match input \[2,6,3,3\] with 6 channels/);
  assert.throws(() => F.batchNorm(x, null, null), /eval mode needs running_mean/);
  assert.throws(() => F.batchNorm(F.zeros([1, 3, 1, 1]), null, null, null, null, true), /more than 1 value per channel/);
});

test('nn layers: torch state-dict names, BatchNorm2d counter and running stats, eval vs train', async () => {
  const bn = new F.nn.BatchNorm2d(3);
  assert.equal(Object.keys(bn.stateDict()), ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
  const nbt = bn.stateDict()['num_batches_tracked']!;
  assert.is(nbt.dtype, 'int32');
  assert.equal([...nbt.shape], []);
  const x1 = ref([2, 3, 5, 7], 71), x2 = ref([2, 3, 5, 7], 72);
  const one = { shape: [3], data: new Float64Array(3).fill(1) }, zero = { shape: [3], data: new Float64Array(3) };
  const s1 = batchNormReference(x1, zero, one, one, zero, true);
  await expectRef(bn.forward(gpu(x1)), s1.y, FWD, 'train step 1');
  const s2 = batchNormReference(x2, s1.runningMean, s1.runningVar, one, zero, true);
  bn.forward(gpu(x2));
  assert.is(await nbt.item(), 2);
  await expectRef(bn.stateDict()['running_mean']!, s2.runningMean!, { atol: 1e-6, rtol: 1e-5 }, 'running_mean after 2 steps');
  await expectRef(bn.stateDict()['running_var']!, s2.runningVar!, { atol: 1e-6, rtol: 1e-5 }, 'running_var after 2 steps');
  bn.eval();
  await expectRef(bn.forward(gpu(x1)), batchNormReference(x1, s2.runningMean, s2.runningVar, one, zero, false).y, FWD, 'eval');
  assert.is(await nbt.item(), 2, 'eval does not count');
  assert.throws(() => bn.forward(F.zeros([2, 4, 3, 3])), /BatchNorm2d: input \[2,4,3,3\] has 4 channels, the layer expects 3/);

  const frozen = new F.nn.FrozenBatchNorm2d(5);
  assert.equal(Object.keys(frozen.stateDict()), ['weight', 'bias', 'running_mean', 'running_var']);
  assert.is(frozen.parameters().length, 0);
  const w = ref([5], 73, 0.5, 1.5), b = ref([5], 74), { rm, rv } = stats(5, 75);
  frozen.loadStateDict({ weight: gpu(w), bias: gpu(b), running_mean: gpu(rm), running_var: gpu(rv) });
  const xf = ref([2, 5, 3, 4], 76);
  await expectRef(frozen.forward(gpu(xf)), frozenBatchNormReference(xf, w, b, rm, rv), FWD, 'FrozenBatchNorm2d');

  const gn = new F.nn.GroupNorm(2, 6);
  assert.equal(Object.keys(gn.stateDict()), ['weight', 'bias']);
  const xg = ref([2, 6, 3, 5], 77);
  const ones6 = { shape: [6], data: new Float64Array(6).fill(1) };
  await expectRef(gn.forward(gpu(xg)), groupNormReference(xg, 2, ones6, { shape: [6], data: new Float64Array(6) }), FWD, 'GroupNorm');
  assert.throws(() => new F.nn.GroupNorm(4, 6), /num_channels=6 must be divisible by num_groups=4/);

  const pool = new F.nn.MaxPool2d(3, { stride: 2, padding: 1 });
  assert.equal(Object.keys(pool.stateDict()), []);
  assert.equal([...pool.forward(F.zeros([1, 2, 7, 13])).shape], [1, 2, 4, 7]);
});

test.run();
