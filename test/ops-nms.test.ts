// nms / batched_nms and the GPU sort under them: known answers from torchvision's definition (ties
// keep the lower index, IoU exactly at the threshold is not suppressed, zero-area boxes), random
// cases vs a float64 greedy NMS, and sort/topk vs a float64 stable sort (exact: a sort only moves
// values).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref } from './helpers/check.js';
import * as F from '../engine/index.js';
import { boxes64 } from '../kernels/box-math.js';
import { sortReference } from '../kernels/sort.js';
import { Rng } from '../engine/random.js';

await ready;

async function keep(boxes: number[][], scores: number[], thr: number): Promise<number[]> {
  return Array.from(await (await F.nms(F.tensor(boxes), F.tensor(scores), thr)).data());
}

test('nms known answers: score order, ties keep the lower index first', async () => {
  // Disjoint boxes: everything kept, in decreasing score; equal scores in index order.
  assert.equal(await keep([[0, 0, 1, 1], [2, 0, 3, 1], [4, 0, 5, 1], [6, 0, 7, 1]], [0.5, 0.9, 0.9, 0.7], 0.5), [1, 2, 3, 0]);
  // Identical boxes with equal scores: the lower index survives.
  assert.equal(await keep([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.3, 0.8, 0.8], 0.5), [1]);
});

test('nms known answers: IoU exactly at the threshold is kept (only IoU > threshold suppresses)', async () => {
  // [0,3] x [0,1] and [1,4] x [0,1]: intersection 2, union 4 -> IoU 0.5 exactly.
  const boxes = [[0, 0, 3, 1], [1, 0, 4, 1]];
  assert.equal(await keep(boxes, [0.9, 0.8], 0.5), [0, 1]);
  assert.equal(await keep(boxes, [0.9, 0.8], 0.4999), [0]);
  // IoU 0.25 (intersection 2, union 8) and 0.7 (7 / 10) at their thresholds.
  assert.equal(await keep([[0, 0, 5, 1], [3, 0, 8, 1]], [0.9, 0.8], 0.25), [0, 1]);
  assert.equal(await keep([[0, 0, 17, 1], [3, 0, 20, 1]], [0.9, 0.8], 0.7), [0, 1]);
  assert.equal(await keep([[0, 0, 17, 1], [3, 0, 20, 1]], [0.9, 0.8], 0.69), [0]);
});

test('nms known answers: greedy chain, zero-area and degenerate boxes', async () => {
  // A suppresses B (IoU 1/3); B would suppress C but is gone; A and C do not overlap.
  assert.equal(await keep([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], 0.3), [0, 2]);
  // Two identical zero-area boxes: IoU = 0/0 = NaN, never > threshold: both kept. A zero-area box
  // inside a big box has IoU 0.
  assert.equal(await keep([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 4, 4]], [0.9, 0.8, 0.7], 0.1), [0, 1, 2]);
  // Empty input.
  assert.equal((await F.nms(F.zeros([0, 4]), F.zeros([0]), 0.5)).shape, [0]);
  let err = '';
  await F.nms(F.zeros([3, 4]), F.zeros([2]), 0.5).catch((e: Error) => (err = e.message));
  assert.match(err, /nms: scores must be float32 \[3\], got float32\[2\]/);
});

/** Random integer boxes (exact in float32: IoUs are exact rationals, so no rounding near-ties). */
function randomBoxes(n: number, seed: number, span = 60, maxSize = 20): { boxes: number[][]; scores: number[] } {
  const rng = new Rng(seed);
  const boxes: number[][] = [], scores: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = Math.floor(rng.uniform() * span), y = Math.floor(rng.uniform() * span);
    const w = i % 37 === 5 ? 0 : 1 + Math.floor(rng.uniform() * maxSize), h = 1 + Math.floor(rng.uniform() * maxSize);
    boxes.push([x, y, x + w, y + h]);
    scores.push(Math.floor(rng.uniform() * 64) / 64); // many exact ties
  }
  return { boxes, scores };
}

test('nms: random cases (several 64-box blocks) vs float64 greedy NMS', async () => {
  for (const [n, thr, seed] of [[1, 0.5, 1], [63, 0.5, 2], [200, 0.7, 3], [333, 0.3, 4]] as const) {
    const { boxes, scores } = randomBoxes(n, seed);
    const want = boxes64.nms(boxes.flat(), scores, thr);
    assert.equal(await keep(boxes, scores, thr), want, `n=${n} thr=${thr}`);
  }
});

test('batched_nms: categories do not suppress each other (coordinate trick) vs float64 reference', async () => {
  const same = [[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]];
  const got = await F.batchedNms(F.tensor(same), F.tensor([0.9, 0.8, 0.7]), F.tensor(Int32Array.from([0, 1, 0]), [3]), 0.5);
  assert.equal(Array.from(await got.data()), [0, 1]);
  const { boxes, scores } = randomBoxes(250, 7);
  const idxs = boxes.map((_, i) => (i * 7) % 5);
  const want = boxes64.batchedNms(boxes.flat(), scores, idxs, 0.5);
  const res = await F.batchedNms(F.tensor(boxes), F.tensor(scores), F.tensor(Int32Array.from(idxs), [idxs.length]), 0.5);
  assert.equal(Array.from(await res.data()), want);
  assert.equal((await F.batchedNms(F.zeros([0, 4]), F.zeros([0]), F.zeros([0], 'int32'), 0.5)).shape, [0]);
});

function randomWithTies(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Math.fround(Math.floor(rng.uniform() * 40) / 8 - 2.5));
}

test('sort / argsort: stable, both directions, rows padded past one block and across several', async () => {
  for (const [rows, n] of [[1, 1], [3, 7], [3, 700], [1, 5000]] as const) {
    const x = randomWithTies(rows * n, rows + n);
    for (const descending of [true, false]) {
      const want = sortReference(x, rows, n, descending);
      const { values, indices } = F.sort(F.tensor(x, [rows, n]), -1, descending);
      assert.equal(Array.from(await indices.data()), want.indices, `indices rows=${rows} n=${n} desc=${descending}`);
      assert.equal(Array.from(await values.data()), want.values, `values rows=${rows} n=${n}`);
    }
  }
});

test('sort: NaN is the largest, -0 equals +0, infinities; sort along dim 0', async () => {
  const x = [1, NaN, -0, 0, -Infinity, Infinity, -1, 0];
  const { indices } = F.sort(F.tensor(x), 0, true);
  assert.equal(Array.from(await indices.data()), [1, 5, 0, 2, 3, 7, 6, 4]);
  assert.equal(Array.from(await F.argsort(F.tensor(x)).data()), [4, 6, 2, 3, 7, 0, 5, 1]);
  const m = F.tensor([[3, 1], [1, 2], [2, 0]]);
  const r = F.sort(m, 0);
  assert.equal(await r.values.toArray(), [[1, 0], [2, 1], [3, 2]]);
  assert.equal(await r.indices.toArray(), [[1, 2], [2, 0], [0, 1]]);
});

test('topk: k largest / smallest with ties in index order; gradient scatters back', async () => {
  const x = randomWithTies(2 * 1000, 5);
  const { values, indices } = F.topk(F.tensor(x, [2, 1000]), 10);
  const want = sortReference(x, 2, 1000, true, 10);
  assert.equal(Array.from(await indices.data()), want.indices);
  assert.equal(Array.from(await values.data()), want.values);
  const small = F.topk(F.tensor(x, [2, 1000]), 3, -1, false);
  assert.equal(Array.from(await small.indices.data()), sortReference(x, 2, 1000, false, 3).indices);
  assert.throws(() => F.topk(F.zeros([4]), 5), /topk: k = 5 is out of range for a dimension of size 4/);
  await checkOp({
    name: 'topk values',
    inputs: [ref([3, 9], 8)],
    gpu: ([t]) => F.topk(t!, 4).values,
    ref: ([t]) => {
      const r = sortReference(t!.data, 3, 9, true, 4);
      return { shape: [3, 4], data: Float64Array.from(r.values) };
    },
    forwardTol: { atol: 0, rtol: 0 },
  });
});

test('topk with k up to one block: rows cut by halving rounds (one to four), ties, NaN, both directions', async () => {
  for (const [rows, n, k, largest] of [[3, 513, 512, true], [2, 5000, 200, true], [1, 8192, 1, false], [4, 3072, 512, false], [2, 1100, 37, true]] as const) {
    const x = randomWithTies(rows * n, n + k);
    x[(rows - 1) * n + 7] = NaN; // in the last row: NaN ranks largest
    const want = sortReference(x, rows, n, largest, k);
    const { values, indices } = F.topk(F.tensor(x, [rows, n]), k, -1, largest);
    const label = `rows=${rows} n=${n} k=${k} largest=${largest}`;
    assert.equal(Array.from(await indices.data()), want.indices, label);
    assert.equal(Array.from(await values.data()), want.values, label);
  }
});

/** batchedNmsPadded on rows of random boxes vs the float64 batched NMS of each row's valid boxes, cut to k. */
async function checkPadded(B: number, n: number, k: number, thr: number, seed: number, groups: number): Promise<void> {
  const rows = Array.from({ length: B }, (_, b) => randomBoxes(n, seed + b));
  const idxs = rows.map((_, b) => Array.from({ length: n }, (_, i) => (i * 7 + b) % groups));
  const valid = rows.map((_, b) => Array.from({ length: n }, (_, i) => ((i + b) % 5 === 3 ? 0 : 1)));
  const { keep, count } = F.batchedNmsPadded(
    F.tensor(rows.flatMap((r) => r.boxes.flat()), [B, n, 4]),
    F.tensor(rows.flatMap((r) => r.scores), [B, n]),
    F.tensor(Int32Array.from(idxs.flat()), [B, n], 'int32'),
    F.tensor(Int32Array.from(valid.flat()), [B, n], 'int32'),
    thr,
    k,
  );
  assert.equal(keep.shape, [B, k]);
  const [kept, counts] = await Promise.all([keep.data(), count.data()]);
  for (let b = 0; b < B; b++) {
    const candidates = valid[b]!.flatMap((v, i) => (v ? [i] : []));
    const want = boxes64.batchedNms(rows[b]!.boxes.flat(), rows[b]!.scores, idxs[b]!, thr, candidates).slice(0, k);
    const label = `B=${B} n=${n} k=${k} thr=${thr} row ${b}`;
    assert.is(counts[b], want.length, label);
    assert.equal(Array.from(kept.subarray(b * k, (b + 1) * k)), [...want, ...new Array<number>(k - want.length).fill(-1)], label);
  }
}

test('batchedNmsPadded: per row, fixed capacity, invalid boxes skipped, ties in index order, vs float64 reference', async () => {
  await checkPadded(1, 1, 3, 0.5, 11, 1);
  await checkPadded(3, 63, 100, 0.5, 12, 3);
  await checkPadded(2, 130, 17, 0.7, 13, 5);
  await checkPadded(3, 333, 400, 0.3, 14, 4);
  await checkPadded(2, 700, 50, 0.7, 15, 1);
  // Empty rows and a zero capacity; bad shapes are named.
  const e = F.batchedNmsPadded(F.zeros([2, 0, 4]), F.zeros([2, 0]), F.zeros([2, 0], 'int32'), F.zeros([2, 0], 'int32'), 0.5, 3);
  assert.equal(await e.keep.toArray(), [[-1, -1, -1], [-1, -1, -1]]);
  assert.equal(Array.from(await e.count.data()), [0, 0]);
  assert.throws(() => F.batchedNmsPadded(F.zeros([2, 5, 4]), F.zeros([2, 4]), F.zeros([2, 5], 'int32'), F.zeros([2, 5], 'int32'), 0.5, 3), /batched_nms_padded: scores must be float32 \[2,5\], got float32\[2,4\]/);
});

test.run();
