// Indexing ops: GPU vs float64 references on odd shapes and strided views, known answers from the
// PyTorch docs examples, out-of-range index handling, atomic scatter-add under heavy collisions,
// and gradients against finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import {
  gatherReference,
  indexSelectReference,
  scatterAddReference,
  indexAddReference,
  takeReference,
  maskedSelectReference,
  type RefIndex,
} from '../kernels/indexing.js';
import { Rng } from '../engine/random.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const EXACT = { atol: 0, rtol: 0 };
const SUM_TOL = { atol: 1e-5, rtol: 1e-5 };
const int = (values: number[], shape?: number[]): F.Tensor => F.tensor(Int32Array.from(values), shape ?? [values.length], 'int32');

/** Seeded indices in [0, n) (with repeats), shaped. */
function indices(shape: number[], n: number, seed: number): RefIndex & { data: number[] } {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Array.from({ length: size }, () => Math.floor(rng.uniform() * n)) };
}
const idxTensor = (r: RefIndex): F.Tensor => int(Array.from(r.data), r.shape);

// First, before other tests leave tensors for the garbage collector to release mid-count.
test('no GPU buffers leak through forward + backward of every op', async () => {
  const before = F.memory().liveBuffers;
  const x = F.tensor([[1, 2, 3], [4, 5, 6]]);
  x.requiresGrad = true;
  const src = F.ones([2, 3]);
  src.requiresGrad = true;
  F.tidy(() => {
    const i2 = int([0, 1, 1, 0, 2, 2], [2, 3]);
    const parts = [
      F.indexSelect(x, 1, int([2, 0])),
      F.gather(x, 1, i2),
      F.take(x, int([5, 0])),
      F.scatterAdd(x, 1, i2, src),
      F.indexAdd(x, 0, int([1, 0]), src),
      F.maskedFill(x, F.gt(x, 2), 0),
      F.softmax(x, 0),
      F.logSoftmax(x, 1),
    ];
    F.sum(F.cat(parts.map((p) => F.reshape(p, [-1])))).backward();
  });
  const m = F.tensor([true, false, true]);
  const y = await F.maskedSelect(x, m);
  F.tidy(() => F.sum(y).backward());
  y.dispose();
  m.dispose();
  const nz = await F.nonzero(x);
  nz.dispose();
  assert.ok(x.grad && src.grad, 'gradients reached both leaves');
  x.dispose();
  src.dispose();
  assert.is(F.memory().liveBuffers, before);
});

// ---- known answers (PyTorch documentation examples) ----

test('known answers from the PyTorch docs', async () => {
  // torch.gather: t = [[1,2],[3,4]], gather(t, 1, [[0,0],[1,0]]) = [[1,1],[4,3]]
  assert.equal(await F.gather(F.tensor([[1, 2], [3, 4]]), 1, int([0, 0, 1, 0], [2, 2])).toArray(), [[1, 1], [4, 3]]);
  // torch.take: src = [[4,3,5],[6,7,8]], take(src, [0,2,5]) = [4,5,8]
  assert.equal(await F.take(F.tensor([[4, 3, 5], [6, 7, 8]]), int([0, 2, 5])).toArray(), [4, 5, 8]);
  // Tensor.scatter_add_: zeros(3,5).scatter_add_(0, [[0,1,2,0,0]], ones(2,5)) (src larger than index)
  const ones = F.ones([2, 5]);
  assert.equal(await F.scatterAdd(F.zeros([3, 5]), 0, int([0, 1, 2, 0, 0], [1, 5]), ones).toArray(), [
    [1, 0, 0, 1, 1],
    [0, 1, 0, 0, 0],
    [0, 0, 1, 0, 0],
  ]);
  assert.equal(await F.scatterAdd(F.zeros([3, 5]), 0, int([0, 1, 2, 0, 0, 0, 1, 2, 2, 2], [2, 5]), ones).toArray(), [
    [2, 0, 0, 1, 1],
    [0, 2, 0, 0, 0],
    [0, 0, 2, 1, 1],
  ]);
  // Tensor.index_add_: ones(5,3).index_add_(0, [0,4,2], [[1,2,3],[4,5,6],[7,8,9]])
  assert.equal(await F.indexAdd(F.ones([5, 3]), 0, int([0, 4, 2]), F.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])).toArray(), [
    [2, 3, 4],
    [1, 1, 1],
    [8, 9, 10],
    [1, 1, 1],
    [5, 6, 7],
  ]);
  // torch.nonzero: [1,1,1,0,1] -> [[0],[1],[2],[4]]; diag(0.6, 0.4, 1.2, -0.4) -> [[0,0],[1,1],[2,2],[3,3]]
  assert.equal(await (await F.nonzero(F.tensor([1, 1, 1, 0, 1]))).toArray(), [[0], [1], [2], [4]]);
  const diag = F.tensor([[0.6, 0, 0, 0], [0, 0.4, 0, 0], [0, 0, 1.2, 0], [0, 0, 0, -0.4]]);
  const nz = await F.nonzero(diag);
  assert.is(nz.dtype, 'int32');
  assert.equal(await nz.toArray(), [[0, 0], [1, 1], [2, 2], [3, 3]]);
  // torch.index_select(x, 0, [0, 2]) picks rows 0 and 2; dim 1 picks columns.
  const x = F.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]);
  assert.equal(await F.indexSelect(x, 0, int([0, 2])).toArray(), [[1, 2, 3, 4], [9, 10, 11, 12]]);
  assert.equal(await F.indexSelect(x, 1, int([0, 2])).toArray(), [[1, 3], [5, 7], [9, 11]]);
  // torch.masked_select(x, x >= 6) and masked_fill(x, x > 10, -1), by definition.
  assert.equal(await (await F.maskedSelect(x, F.ge(x, 6))).toArray(), [6, 7, 8, 9, 10, 11, 12]);
  assert.equal(await F.maskedFill(x, F.gt(x, 10), -1).toArray(), [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, -1, -1]]);
});

// ---- forward vs references on odd shapes ----

test('index_select: every dim, repeated indices, strided input, int32', async () => {
  const r = ref([5, 7, 3], 1);
  const x = gpu(r);
  for (const dim of [0, 1, 2]) {
    const idx = indices([11], r.shape[dim]!, 10 + dim);
    await expectRef(F.indexSelect(x, dim, idxTensor(idx)), indexSelectReference(r, dim, idx.data), EXACT, `index_select dim ${dim}`);
  }
  // A transposed (non-contiguous) input and a strided (every other) index.
  const xt = F.transpose(x, 0, 2); // [3, 7, 5]
  const rt = permute3(r, [2, 1, 0]);
  const idxFull = int([4, 0, 9, 3, 9, 1, 2]);
  const idxView = F.slice(idxFull, 0, 0, 7, 2); // [4, 9, 9, 2]
  await expectRef(F.indexSelect(xt, 1, idxView), indexSelectReference(rt, 1, [4, 9, 9, 2]), EXACT, 'index_select strided');
  const xi = F.tensor(Int32Array.from([3, -1, 7, 2, 8, 5]), [2, 3], 'int32');
  assert.equal(await F.indexSelect(xi, 1, int([2, 2, 0])).toArray(), [[7, 7, 3], [5, 5, 2]]);
});

test('gather: odd shapes, index smaller than input, 3-D, strided', async () => {
  const r = ref([4, 9], 2);
  const cases: [number, RefIndex][] = [
    [1, indices([4, 5], 9, 1)],
    [0, indices([7, 9], 4, 2)],
    [0, indices([3, 2], 4, 3)],
  ];
  for (const [dim, idx] of cases) {
    await expectRef(F.gather(gpu(r), dim, idxTensor(idx)), gatherReference(r, dim, idx), EXACT, `gather dim ${dim} ${JSON.stringify(idx.shape)}`);
  }
  const r3 = ref([3, 5, 6], 3);
  const i3 = indices([3, 4, 6], 5, 4);
  await expectRef(F.gather(gpu(r3), 1, idxTensor(i3)), gatherReference(r3, 1, i3), EXACT, 'gather 3-D');
  // Transposed input.
  const xt = F.transpose(gpu(r), 0, 1); // [9, 4]
  const it = indices([9, 4], 9, 5);
  await expectRef(F.gather(xt, 0, idxTensor(it)), gatherReference(transpose2(r), 0, it), EXACT, 'gather transposed');
});

test('scatter_add / index_add: odd shapes, strided src, float32 and int32', async () => {
  const dst = ref([5, 7], 4);
  const src = ref([6, 7], 5);
  const idx = indices([6, 7], 5, 6);
  await expectRef(F.scatterAdd(gpu(dst), 0, idxTensor(idx), gpu(src)), scatterAddReference(dst, 0, idx, src), SUM_TOL, 'scatter_add dim 0');
  const idx1 = indices([5, 4], 7, 7);
  await expectRef(F.scatterAdd(gpu(dst), 1, idxTensor(idx1), gpu(src)), scatterAddReference(dst, 1, idx1, src), SUM_TOL, 'scatter_add dim 1, src larger');
  // Transposed src.
  const srcT = ref([7, 6], 8);
  await expectRef(F.scatterAdd(gpu(dst), 0, idxTensor(idx), F.transpose(gpu(srcT), 0, 1)), scatterAddReference(dst, 0, idx, transpose2(srcT)), SUM_TOL, 'scatter_add strided');
  // int32 uses atomicAdd.
  const di = F.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], 'int32');
  assert.equal(await F.scatterAdd(di, 1, int([2, 2, 0, 1, 1, 1], [2, 3]), F.tensor(Int32Array.from([10, 20, 30, 40, 50, 60]), [2, 3], 'int32')).toArray(), [
    [31, 2, 33],
    [4, 155, 6],
  ]);
  for (const dim of [0, 1, 2]) {
    const x = ref([4, 5, 3], 20 + dim);
    const shape = [4, 5, 3];
    shape[dim] = 7;
    const s = ref(shape, 30 + dim);
    const k = indices([7], x.shape[dim]!, 40 + dim);
    await expectRef(F.indexAdd(gpu(x), dim, idxTensor(k), gpu(s)), indexAddReference(x, dim, k.data, s), SUM_TOL, `index_add dim ${dim}`);
  }
});

test('scatter_add: many colliding float adds (atomic CAS loop) sum exactly', async () => {
  // 3000 adds into 3 slots; small integers so every order of float32 addition is exact.
  const n = 3000;
  const vals = Array.from({ length: n }, (_, i) => (i % 7) - 3);
  const slots = Array.from({ length: n }, (_, i) => (i * 13) % 3);
  const want = [0, 0, 0];
  vals.forEach((v, i) => (want[slots[i]!]! += v + 0.5));
  const out = F.scatterAdd(F.full([3], 0), 0, int(slots), F.add(F.tensor(vals), 0.5));
  assert.equal(Array.from(await out.data()), want);
  const outI = F.scatterAdd(F.zeros([3], 'int32'), 0, int(slots), F.tensor(Int32Array.from(vals), [n], 'int32'));
  const wantI = [0, 0, 0];
  vals.forEach((v, i) => (wantI[slots[i]!]! += v));
  assert.equal(Array.from(await outI.data()), wantI);
});

test('take, masked_select, nonzero, masked_fill vs references', async () => {
  const r = ref([3, 5, 4], 9);
  const idx = indices([2, 7], 60, 9);
  await expectRef(F.take(gpu(r), idxTensor(idx)), takeReference(r, idx), EXACT, 'take');
  await expectRef(F.take(F.transpose(gpu(r), 0, 2), idxTensor(idx)), takeReference(permute3(r, [2, 1, 0]), idx), EXACT, 'take strided');
  const mask = Array.from(r.data, (v) => (v > 0.3 ? 1 : 0));
  const m = F.tensor(mask, [3, 5, 4], 'bool');
  await expectRef(await F.maskedSelect(gpu(r), m), maskedSelectReference(r, mask), EXACT, 'masked_select');
  // Broadcast mask [5, 1] against x [3, 5, 4].
  const mb = [1, 0, 0, 1, 1];
  const full = Array.from(r.data, (_, i) => mb[Math.floor(i / 4) % 5]!);
  await expectRef(await F.maskedSelect(gpu(r), F.tensor(mb, [5, 1], 'bool')), maskedSelectReference(r, full), EXACT, 'masked_select broadcast');
  const none = await F.maskedSelect(gpu(r), F.zeros([3, 5, 4], 'bool'));
  assert.equal([...none.shape], [0]);
  const nz = await (await F.nonzero(m)).data();
  const wantNz: number[] = [];
  mask.forEach((v, i) => v && wantNz.push(Math.floor(i / 20), Math.floor(i / 4) % 5, i % 4));
  assert.equal(Array.from(nz), wantNz);
  const filled = await F.maskedFill(gpu(r), F.tensor(mb, [5, 1], 'bool'), 7.5).data();
  assertClose(filled, r.data.map((v, i) => (full[i] ? 7.5 : v)), EXACT, 'masked_fill broadcast');
});

test('out-of-range indices read 0 (gathers) and are skipped (scatters)', async () => {
  const x = F.tensor([[1, 2, 3], [4, 5, 6]]);
  assert.equal(await F.indexSelect(x, 1, int([2, -1, 3, 0])).toArray(), [[3, 0, 0, 1], [6, 0, 0, 4]]);
  assert.equal(await F.gather(x, 0, int([1, 5, -2], [1, 3])).toArray(), [[4, 0, 0]]);
  assert.equal(await F.take(x, int([5, 6, -1])).toArray(), [6, 0, 0]);
  assert.equal(await F.scatterAdd(x, 1, int([0, 3, -1], [1, 3]), F.tensor([[10, 20, 30]])).toArray(), [[11, 2, 3], [4, 5, 6]]);
  assert.equal(await F.indexAdd(x, 0, int([2, 1]), F.tensor([[10, 20, 30], [1, 1, 1]])).toArray(), [[1, 2, 3], [5, 6, 7]]);
  const r = ref([4, 6], 11);
  const bad: RefIndex = { shape: [4, 6], data: indices([4, 6], 10, 12).data.map((v) => v - 2) };
  await expectRef(F.gather(gpu(r), 1, idxTensor(bad)), gatherReference(r, 1, bad), EXACT, 'gather with out-of-range');
});

// ---- gradients ----

const GRAD = { atol: 1e-4, rtol: 1e-3 };

test('gradients: index_select, gather, take (repeated indices accumulate)', async () => {
  for (const dim of [0, 1]) {
    const k = indices([8], dim === 0 ? 4 : 5, 50 + dim);
    await checkOp({
      name: `index_select dim ${dim}`,
      inputs: [ref([4, 5], 51)],
      gpu: ([x]) => F.indexSelect(x!, dim, idxTensor(k)),
      ref: ([x]) => indexSelectReference(x!, dim, k.data),
      forwardTol: EXACT,
      gradTol: GRAD,
    });
  }
  const gi = indices([5, 7], 3, 52);
  await checkOp({
    name: 'gather dim 0',
    inputs: [ref([3, 8], 53)],
    gpu: ([x]) => F.gather(x!, 0, idxTensor(gi)),
    ref: ([x]) => gatherReference(x!, 0, gi),
    forwardTol: EXACT,
    gradTol: GRAD,
  });
  const ti = indices([3, 4], 15, 54);
  await checkOp({
    name: 'take',
    inputs: [ref([3, 5], 55)],
    gpu: ([x]) => F.take(F.transpose(x!, 0, 1), idxTensor(ti)),
    ref: ([x]) => takeReference(transpose2(x!), ti),
    forwardTol: EXACT,
    gradTol: GRAD,
  });
});

test('gradients: scatter_add (dst and a larger src), index_add (x and src), masked_fill', async () => {
  const si = indices([3, 4], 5, 60);
  await checkOp({
    name: 'scatter_add dim 0',
    inputs: [ref([5, 6], 61), ref([4, 5], 62)],
    gpu: ([d, s]) => F.scatterAdd(d!, 0, idxTensor(si), s!),
    ref: ([d, s]) => scatterAddReference(d!, 0, si, s!),
    forwardTol: SUM_TOL,
    gradTol: GRAD,
  });
  const k = indices([6], 4, 63);
  await checkOp({
    name: 'index_add dim 1',
    inputs: [ref([3, 4, 2], 64), ref([3, 6, 2], 65)],
    gpu: ([x, s]) => F.indexAdd(x!, 1, idxTensor(k), s!),
    ref: ([x, s]) => indexAddReference(x!, 1, k.data, s!),
    forwardTol: SUM_TOL,
    gradTol: GRAD,
  });
  const mb = [0, 1, 1];
  await checkOp({
    name: 'masked_fill',
    inputs: [ref([2, 3], 66)],
    gpu: ([x]) => F.maskedFill(x!, F.tensor(mb, [3], 'bool'), -2),
    ref: ([x]) => ({ shape: [2, 3], data: x!.data.map((v, i) => (mb[i % 3] ? -2 : v)) }),
    forwardTol: EXACT,
    gradTol: GRAD,
  });
});

test('gradient: masked_select scatters the output gradient back (broadcast mask)', async () => {
  // d/dx sum(w * masked_select(x, m)) is w at the selected positions, 0 elsewhere (by definition).
  const r = ref([3, 4], 70);
  const x = gpu(r, true);
  const m = F.tensor([1, 0, 1, 1], [4], 'bool');
  const y = await F.maskedSelect(x, m);
  assert.equal([...y.shape], [9]);
  const w = Array.from({ length: 9 }, (_, i) => i + 1);
  F.sum(F.mul(y, F.tensor(w))).backward();
  const want: number[] = [];
  let k = 0;
  for (let i = 0; i < 12; i++) want.push([1, 0, 1, 1][i % 4] ? w[k++]! : 0);
  assert.equal(Array.from(await x.grad!.data()), want);
});

test('tensor methods and errors', async () => {
  const x = F.tensor([[1, 2, 3], [4, 5, 6]]);
  assert.equal(await x.indexSelect(0, int([1])).toArray(), [[4, 5, 6]]);
  assert.equal(await x.gather(1, int([2, 0], [2, 1])).toArray(), [[3], [4]]);
  assertClose(await x.softmax(1).data(), await F.softmax(x, 1).data(), EXACT, 'softmax method');
  assertClose(await x.logSoftmax(0).data(), await F.logSoftmax(x, 0).data(), EXACT, 'logSoftmax method');
  assert.throws(() => F.gather(x, 1, F.tensor([[0]])), /gather: index must be int32, got float32\[1,1\]/);
  assert.throws(() => F.gather(x, 1, int([0, 1])), /gather: index \[2\] must have the rank of input \[2,3\]/);
  assert.throws(() => F.indexSelect(x, 0, int([0, 1], [1, 2])), /index_select: index must be 1-D, got int32\[1,2\]/);
  assert.throws(() => F.indexAdd(x, 0, int([0]), F.ones([2, 3])), /index_add\(float32\[2,3\].*src must have x's shape with dim 0 of size 1/);
  assert.throws(() => F.scatterAdd(x, 0, int(new Array(12).fill(0), [3, 4]), F.ones([3, 4])), /scatter_add\(float32\[2,3\].*no larger than dst except along dim 0/);
  assert.throws(() => F.maskedFill(x, F.tensor([1, 0]), 0), /masked_fill: mask must be bool, got float32\[2\]/);
  assert.throws(() => F.maskedFill(x, F.tensor([true, false]), 0), /masked_fill: mask \[2\] does not broadcast to input \[2,3\]/);
});

function transpose2(r: RefTensor): RefTensor {
  const [a, b] = r.shape as [number, number];
  const out = new Float64Array(r.data.length);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) out[j * a + i] = r.data[i * b + j]!;
  return { shape: [b, a], data: out };
}

function permute3(r: RefTensor, p: [number, number, number]): RefTensor {
  const s = r.shape;
  const shape = p.map((k) => s[k]!);
  const out = new Float64Array(r.data.length);
  for (let i = 0; i < s[0]!; i++)
    for (let j = 0; j < s[1]!; j++)
      for (let k = 0; k < s[2]!; k++) {
        const c = [i, j, k];
        const o = (c[p[0]]! * shape[1]! + c[p[1]]!) * shape[2]! + c[p[2]]!;
        out[o] = r.data[(i * s[1]! + j) * s[2]! + k]!;
      }
  return { shape, data: out };
}

test.run();
