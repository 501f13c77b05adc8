// segmentedTopk vs the float64 reference (a stable sort of each segment, kernels/segmented-topk.ts):
// exact, as a top-k only moves values. Odd shapes: segments of one element, k = length, k < length,
// k > length (cut), k = 0, segments spanning several chunks, ties at the k-th value across chunks,
// NaN, -0 / +0, rows of one value, N = 1 and 3; the gradient; and the dispatch count, which must not
// grow with the number of segments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref } from './helpers/check.js';
import * as F from '../engine/index.js';
import { getBackend } from '../engine/backend.js';
import { counters } from '../engine/index.js';
import { segmentedTopkReference, TOPK_CHUNK, MERGE_RUNS_MAX } from '../kernels/segmented-topk.js';
import { sortReference } from '../kernels/sort.js';
import { boxes64 } from '../kernels/box-math.js';
import { Rng } from '../engine/random.js';

await ready;

/** float32 values on a coarse grid (many ties), seeded. */
function withTies(n: number, seed: number, levels = 40): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Math.fround(Math.floor(rng.uniform() * levels) / 8 - 2.5));
}

async function check(x: number[], N: number, lengths: number[], k: number | number[], largest: boolean, label: string): Promise<void> {
  const R = lengths.reduce((a, c) => a + c, 0);
  const ks = typeof k === 'number' ? lengths.map(() => k) : k;
  const want = segmentedTopkReference(x, N, lengths, ks, largest);
  const { values, indices } = F.segmentedTopk(F.tensor(x, [N, R]), lengths, k, largest);
  const C = want.indices.length / N;
  assert.equal(values.shape, [N, C], `${label}: shape`);
  assert.equal(Array.from(await indices.data()), want.indices, `${label}: indices`);
  // Object.is: NaN equals NaN, and -0 stays apart from +0 (the value comes from x, not from its rank).
  const got = Array.from(await values.data());
  got.forEach((v, i) => assert.ok(Object.is(v, Math.fround(want.values[i]!)), `${label}: value ${i} is ${v}, expected ${want.values[i]}`));
  values.dispose();
  indices.dispose();
}

test('segmentedTopk: odd segments (length 1, k = length, k < length, k > length, k = 0), N = 1 and 3, both directions', async () => {
  const cases: [number, number[], number | number[]][] = [
    [1, [1], 1],
    [3, [1, 5, 1, 9], 3],
    [1, [7, 3, 12], [7, 0, 5]],
    [3, [700, 1, 300, 64], [200, 1, 300, 64]],
    [2, [513, 2, 1000], 600],
  ];
  for (const [N, lengths, k] of cases) {
    const R = lengths.reduce((a, c) => a + c, 0);
    const x = withTies(N * R, R + N);
    for (const largest of [true, false]) await check(x, N, lengths, k, largest, `N=${N} lengths=${lengths} k=${k} largest=${largest}`);
  }
});

test('segmentedTopk: segments over several chunks, ties at the k-th value spread over chunks, k up to 2000', async () => {
  // Few distinct values: the k-th value has thousands of ties, taken in column order across chunks.
  const lengths = [3 * TOPK_CHUNK + 17, TOPK_CHUNK, 5, 2 * TOPK_CHUNK - 1, 900];
  const R = lengths.reduce((a, c) => a + c, 0);
  for (const [N, levels, k] of [[1, 3, 2000], [3, 40, 1000], [2, 1000000, 2000]] as const) {
    const x = withTies(N * R, levels + N, levels);
    await check(x, N, lengths, k, true, `N=${N} levels=${levels} k=${k}`);
  }
});

test('segmentedTopk: NaN is the largest, -0 equals +0, infinities, rows of one value', async () => {
  const x = [1, NaN, -0, 0, -Infinity, Infinity, -1, 0, 0, -0, NaN, 5];
  await check(x, 1, [6, 6], [4, 6], true, 'specials largest');
  await check(x, 1, [6, 6], [4, 6], false, 'specials smallest');
  await check(x, 2, [3, 3], [2, 3], true, 'specials N=2');
  const same = Array.from({ length: 3 * 5000 }, () => 0.25);
  await check(same, 3, [4000, 1000], [2000, 1000], true, 'all equal');
  const zeros = Array.from({ length: 2 * 600 }, (_, i) => (i % 3 === 0 ? -0 : 0));
  await check(zeros, 2, [600], 550, true, 'signed zeros');
});

test('segmentedTopk: shape and argument errors; empty results', async () => {
  assert.throws(() => F.segmentedTopk(F.zeros([2, 5]), [2, 2], 1), /segmented_topk: segment lengths 2\+2 do not tile a row of 5/);
  assert.throws(() => F.segmentedTopk(F.zeros([5]), [5], 1), /segmented_topk: x must be float32 \[N,R\]/);
  assert.throws(() => F.segmentedTopk(F.zeros([1, 5]), [2, 3], [1]), /one per segment \(2\)/);
  const r = F.segmentedTopk(F.zeros([2, 4]), [4], 0);
  assert.equal(r.values.shape, [2, 0]);
  assert.equal(r.indices.shape, [2, 0]);
});

test('segmentedTopk: gradient scatters back to the selected columns', async () => {
  await checkOp({
    name: 'segmentedTopk values',
    inputs: [ref([3, 11], 21)],
    gpu: ([t]) => F.segmentedTopk(t!, [4, 1, 6], [2, 1, 3]).values,
    ref: ([t]) => {
      const r = segmentedTopkReference(t!.data, 3, [4, 1, 6], [2, 1, 3], true);
      return { shape: [3, 6], data: Float64Array.from(r.values) };
    },
    forwardTol: { atol: 0, rtol: 0 },
  });
});

test('segmentedTopk: the same dispatches for 2 and 5 segments (6 + the sort of [segments, P] + 1)', async () => {
  const count = async (lengths: number[]): Promise<number> => {
    const x = F.tensor(withTies(2 * lengths.reduce((a, c) => a + c, 0), 9), [2, lengths.reduce((a, c) => a + c, 0)]);
    await getBackend().sync();
    const before = counters().dispatches;
    const r = F.segmentedTopk(x, lengths, 2000);
    const n = counters().dispatches - before;
    await r.values.data();
    return n;
  };
  const two = await count([49152, 12288]);
  const five = await count([49152, 12288, 3072, 768, 192]);
  // 3 x (histogram + select), compaction, sort at P = 2048 (block sort, 3 steps, 2 merges), output.
  assert.is(two, 14);
  assert.is(five, 14);
});

/** Rows of runs each sorted as a stable sort in `descending` order leaves them (many ties across runs). */
function sortedRuns(N: number, lengths: number[], descending: boolean, seed: number): number[] {
  const R = lengths.reduce((a, c) => a + c, 0);
  const x = withTies(N * R, seed, 12);
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    let start = 0;
    for (const len of lengths) {
      const seg = x.slice(n * R + start, n * R + start + len);
      out.push(...sortReference(seg, 1, len, descending).values);
      start += len;
    }
  }
  return out;
}

test('argsortRuns: the stable argsort of rows of sorted runs (empty and one-element runs, ties across runs, NaN)', async () => {
  for (const [N, lengths] of [[1, [1]], [3, [5, 0, 1, 9]], [2, [700, 300, 64, 1, 2000]], [1, [0, 4, 0]]] as [number, number[]][]) {
    const R = lengths.reduce((a, c) => a + c, 0);
    for (const descending of [true, false]) {
      const x = sortedRuns(N, [...lengths], descending, R + N);
      if (R > 4) x[descending ? 0 : R - 1] = NaN; // NaN first (descending) or last in its run
      const got = Array.from(await F.argsortRuns(F.tensor(x, [N, R]), lengths, descending).data());
      assert.equal(got, sortReference(x, N, R, descending).indices, `N=${N} runs=${lengths} descending=${descending}`);
    }
  }
  // Past MERGE_RUNS_MAX runs: a plain argsort.
  const many = Array.from({ length: MERGE_RUNS_MAX + 1 }, () => 3);
  const x = sortedRuns(2, many, true, 5);
  assert.equal(Array.from(await F.argsortRuns(F.tensor(x, [2, x.length / 2]), many, true).data()), sortReference(x, 2, x.length / 2, true).indices);
  assert.throws(() => F.argsortRuns(F.zeros([1, 4]), [1, 2], true), /argsort_runs: run lengths 1\+2 do not tile a row of 4/);
});

test('batchedNmsPadded with sortedRuns: the same keep and count as with a full sort, one merge dispatch for the order', async () => {
  const B = 2, lengths = [300, 120, 7], n = 427, k = 100;
  const rng = new Rng(3);
  const boxes = Array.from({ length: B * n }, () => {
    const x = rng.uniform() * 60, y = rng.uniform() * 60;
    return [x, y, x + 5 + rng.uniform() * 20, y + 5 + rng.uniform() * 20];
  });
  const scores = sortedRuns(B, lengths, true, 11).map((v) => 1 / (1 + Math.exp(-v)));
  const idxs = Int32Array.from({ length: B * n }, (_, i) => (i % n < 300 ? 0 : i % n < 420 ? 1 : 2));
  const valid = Int32Array.from({ length: B * n }, (_, i) => (i % 7 === 3 ? 0 : 1));
  const run = (runs?: number[]) => F.batchedNmsPadded(F.tensor(boxes.flat(), [B, n, 4]), F.tensor(scores, [B, n]), F.tensor(idxs, [B, n], 'int32'), F.tensor(valid, [B, n], 'int32'), 0.5, k, runs);
  const full = run();
  const before = counters().dispatches;
  const merged = run(lengths);
  assert.is(counters().dispatches - before, 3, 'merge, NMS mask, greedy pass');
  assert.equal(Array.from(await merged.keep.data()), Array.from(await full.keep.data()));
  assert.equal(Array.from(await merged.count.data()), Array.from(await full.count.data()));
  // Both against the float64 batched NMS of each row's valid boxes.
  const keep = await merged.keep.data();
  for (let b = 0; b < B; b++) {
    const rowBoxes = Float64Array.from(boxes.slice(b * n, (b + 1) * n).flat());
    const kept = Array.from({ length: n }, (_, i) => i).filter((i) => valid[b * n + i]);
    const want = boxes64.batchedNms(rowBoxes, scores.slice(b * n, (b + 1) * n), Array.from(idxs.slice(b * n, (b + 1) * n)), 0.5, kept).slice(0, k);
    assert.equal(Array.from(keep.slice(b * k, b * k + want.length)), want, `row ${b}`);
  }
});

test.run();
