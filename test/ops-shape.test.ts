// Views (reshape, permute, slice, expand, squeeze) and data movement (cat, stack, split, pad):
// values vs float64 index arithmetic, gradients vs finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref } from './helpers/check.js';
import * as F from '../engine/index.js';
import type { RefTensor } from '../kernels/common.js';
import { permuteRef } from './helpers/refs.js';

await ready;

const sliceRef = (x: RefTensor, dim: number, start: number, end: number, step: number): RefTensor => {
  const shape = [...x.shape];
  const idx: number[] = [];
  for (let i = start; i < Math.min(end, x.shape[dim]!); i += step) idx.push(i);
  shape[dim] = idx.length;
  const outer = x.shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let o = 0; o < outer; o++) for (const i of idx) for (let k = 0; k < inner; k++) out.push(x.data[(o * x.shape[dim]! + i) * inner + k]!);
  return { shape, data: Float64Array.from(out) };
};

const catRef = (xs: RefTensor[], dim: number): RefTensor => {
  const shape = [...xs[0]!.shape];
  shape[dim] = xs.reduce((a, x) => a + x.shape[dim]!, 0);
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const chunk = x.shape.slice(dim).reduce((a, b) => a * b, 1);
      for (let k = 0; k < chunk; k++) out.push(x.data[o * chunk + k]!);
    }
  }
  return { shape, data: Float64Array.from(out) };
};

const padRef = (x: RefTensor, top: number, bottom: number, left: number, right: number, value: number): RefTensor => {
  const [n, h, w] = x.shape as [number, number, number];
  const H = h + top + bottom, W = w + left + right;
  const out = new Float64Array(n * H * W).fill(value);
  for (let a = 0; a < n; a++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[(a * H + i + top) * W + j + left] = x.data[(a * h + i) * w + j]!;
  return { shape: [n, H, W], data: out };
};

test('reshape, flatten, squeeze/unsqueeze keep row-major order (gradient too)', async () => {
  await checkOp({ name: 'reshape', inputs: [ref([3, 10], 1)], gpu: ([x]) => F.reshape(x!, [5, -1, 2]), ref: ([x]) => ({ shape: [5, 3, 2], data: x!.data }) });
  await checkOp({ name: 'flatten', inputs: [ref([2, 3, 5], 2)], gpu: ([x]) => F.flatten(x!, 1), ref: ([x]) => ({ shape: [2, 15], data: x!.data }) });
  await checkOp({ name: 'unsqueeze', inputs: [ref([3, 5], 3)], gpu: ([x]) => F.squeeze(F.unsqueeze(x!, 1), 1), ref: ([x]) => x! });
});

test('permute/transpose and reshape of a permuted view (copies only when needed)', async () => {
  await checkOp({ name: 'permute', inputs: [ref([2, 3, 5], 4)], gpu: ([x]) => F.permute(x!, [2, 0, 1]), ref: ([x]) => permuteRef(x!, [2, 0, 1]) });
  await checkOp({
    name: 'reshape(permute)',
    inputs: [ref([2, 3, 5], 5)],
    gpu: ([x]) => F.reshape(F.permute(x!, [1, 0, 2]), [3, 10]),
    ref: ([x]) => ({ shape: [3, 10], data: permuteRef(x!, [1, 0, 2]).data }),
  });
  // A view that can be reshaped in place: the storage is shared.
  const x = F.zeros([4, 6]);
  const v = F.reshape(F.slice(x, 0, 1, 3), [12]);
  assert.is(v.storage, x.storage);
});

test('slice with steps and negative bounds; gradient pads with zeros', async () => {
  await checkOp({ name: 'slice', inputs: [ref([4, 11], 6)], gpu: ([x]) => F.slice(x!, 1, 2, 10, 3), ref: ([x]) => sliceRef(x!, 1, 2, 10, 3) });
  await checkOp({ name: 'slice-neg', inputs: [ref([7, 3], 7)], gpu: ([x]) => F.slice(x!, 0, -5, -1), ref: ([x]) => sliceRef(x!, 0, 2, 6, 1) });
});

test('expand broadcasts without copying; gradient sums back', async () => {
  await checkOp({
    name: 'expand',
    inputs: [ref([3, 1], 8)],
    gpu: ([x]) => F.mul(F.expand(x!, [2, 3, 5]), 1),
    ref: ([x]) => ({ shape: [2, 3, 5], data: Float64Array.from({ length: 30 }, (_, i) => x!.data[Math.floor(i / 5) % 3]!) }),
  });
});

test('cat, stack, split, chunk', async () => {
  await checkOp({
    name: 'cat dim1',
    inputs: [ref([2, 3, 4], 9), ref([2, 5, 4], 10)],
    gpu: ([a, b]) => F.cat([a!, b!], 1),
    ref: ([a, b]) => catRef([a!, b!], 1),
  });
  await checkOp({
    name: 'stack',
    inputs: [ref([3, 5], 11), ref([3, 5], 12)],
    gpu: ([a, b]) => F.stack([a!, b!], 1),
    ref: ([a, b]) => catRef([{ shape: [3, 1, 5], data: a!.data }, { shape: [3, 1, 5], data: b!.data }], 1),
  });
  const x = F.arange(0, 14);
  assert.equal((await Promise.all(F.split(x, 5).map((p) => p.toArray()))), [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13]]);
  assert.equal(F.chunk(F.zeros([3, 7]), 3, 1).map((p) => p.shape[1]), [3, 3, 1]);
  assert.throws(() => F.cat([F.zeros([2, 3]), F.zeros([3, 3])], 1), /cat: tensor 1 has shape \[3,3\]/);
});

test('cat of many inputs: batched copies (8 per dispatch), strided and offset inputs, empty ones, int32', async () => {
  // 11 inputs along dim 1 of odd sizes, one empty: a batch of 8 and one of 2 (the empty one skipped).
  const sizes = [3, 1, 5, 2, 0, 7, 1, 4, 6, 2, 3];
  const refs = sizes.map((n, i) => ref([2, n, 3], 40 + i));
  await checkOp({
    name: 'cat of 11',
    inputs: refs,
    gpu: (xs) => F.cat(xs, 1),
    ref: (xs) => catRef(xs, 1),
  });
  // Strided (transposed) and offset (sliced) inputs, and the dispatches: ceil(10 / 8) = 2.
  const wide = ref([2, 9, 3], 60);
  const catOf = () => F.tidy(() => {
    const xs = refs.map((r) => F.tensor(Array.from(r.data), r.shape));
    const t = F.transpose(F.tensor(Array.from(refs[0]!.data), [2, 3, 3]), 1, 2); // [2,3,3], strided
    const s = F.slice(F.tensor(Array.from(wide.data), wide.shape), 1, 4, 9); // [2,5,3] at an offset
    const d0 = F.counters().dispatches;
    const y = F.cat([...xs.slice(0, 9), t, s], 1);
    return { y: F.keep(y), dispatches: F.counters().dispatches - d0 };
  });
  const { y, dispatches } = catOf();
  assert.is(dispatches, 2, 'two copy dispatches for 10 non-empty inputs');
  const tRef: RefTensor = { shape: [2, 3, 3], data: Float64Array.from({ length: 18 }, (_, i) => { const [n, a, b] = [Math.floor(i / 9), Math.floor(i / 3) % 3, i % 3]; return refs[0]!.data[n * 9 + b * 3 + a]!; }) };
  const want = catRef([...refs.slice(0, 9), tRef, sliceRef(wide, 1, 4, 9, 1)], 1);
  const got = await y.toArray();
  assert.equal(Float64Array.from((got as number[][][]).flat(2)), Float64Array.from(want.data.map((v) => Math.fround(v))));
  y.dispose();
  // int32: values exact.
  const ints = F.cat([F.tensor([1, 2, 3], [3], 'int32'), F.tensor([4], [1], 'int32'), F.tensor([5, 6], [2], 'int32')], 0);
  assert.equal(await ints.toArray(), [1, 2, 3, 4, 5, 6]);
  ints.dispose();
});

test('pad (constant) matches F.pad and passes gradients to the interior', async () => {
  await checkOp({
    name: 'pad',
    inputs: [ref([2, 3, 5], 13)],
    gpu: ([x]) => F.pad(x!, [1, 2, 3, 0], -1.5),
    ref: ([x]) => padRef(x!, 3, 0, 1, 2, -1.5),
  });
});

test('view errors are clear', () => {
  assert.throws(() => F.reshape(F.zeros([3, 4]), [5, 3]), /cannot view float32\[3,4\] \(12 elements\) as \[5,3\]/);
  assert.throws(() => F.expand(F.zeros([3, 2]), [3, 4]), /cannot expand \[3,2\] to \[3,4\]/);
  assert.throws(() => F.permute(F.zeros([3, 2]), [0, 0]), /repeat/);
});

test.run();
