// Reductions over any axes (sum mean max min argmax argmin) vs float64 references, with gradients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { setReductionWorkgroup } from '../engine/device.js';
import { setReduceColumnsVec4 } from '../engine/ops/reduce.js';
import { reduceRowsReference, type ReduceOp } from '../kernels/reduce.js';
import type { RefTensor } from '../kernels/common.js';
import { permuteRef } from './helpers/refs.js';

await ready;

/** float64 reduction over `axes` of x: permute reduced axes last, then reduce rows. */
function reduceRef(op: ReduceOp | 'mean', x: RefTensor, axes: number[], keepdim: boolean): RefTensor {
  const nd = x.shape.length;
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = [...kept, ...axes];
  const pshape = perm.map((i) => x.shape[i]!);
  const src = permuteRef(x, perm);
  const R = axes.reduce((a, i) => a * x.shape[i]!, 1);
  let data = reduceRowsReference(op === 'mean' ? 'sum' : op, { shape: pshape, data: src.data }, R);
  if (op === 'mean') data = data.map((v) => v / R);
  const shape = keepdim ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : kept.map((i) => x.shape[i]!);
  void nd;
  return { shape, data };
}

const CASES: { shape: number[]; axes: number[] }[] = [
  { shape: [7, 13], axes: [1] },
  { shape: [7, 13], axes: [0] },
  { shape: [3, 5, 9], axes: [0, 2] },
  { shape: [3, 5, 9], axes: [1] },
  { shape: [3, 5, 4, 3], axes: [0, 2, 3] }, // a conv bias gradient: trailing axes first, then axis 0
  { shape: [3, 4, 5, 2], axes: [0, 1, 3] },
  { shape: [2, 3, 4, 5], axes: [0, 1, 2, 3] },
  { shape: [5, 300], axes: [1] }, // long rows: workgroup tree
  { shape: [37, 3], axes: [0] }, // rows of 37 with stride 3: thread per row
  { shape: [2, 4100], axes: [0, 1] }, // one long row: workgroup tree
  { shape: [301, 4099], axes: [0] }, // many rows of 301: thread per row (split-K partial sums)
  { shape: [1031], axes: [0] },
];

for (const op of ['sum', 'mean', 'max', 'min'] as const) {
  test(`${op}: forward and gradient over any axes`, async () => {
    for (const [k, c] of CASES.entries()) {
      for (const keepdim of [false, true]) {
        await checkOp({
          name: `${op}(${JSON.stringify(c.shape)}, ${JSON.stringify(c.axes)}, keepdim=${keepdim})`,
          inputs: [ref(c.shape, k)],
          gpu: ([x]) => F[op](x!, c.axes, keepdim),
          ref: ([x]) => reduceRef(op, x!, c.axes, keepdim),
          forwardTol: { atol: 2e-5, rtol: 1e-5 },
          differentiable: [c.shape.reduce((a, b) => a * b, 1) <= 300],
        });
      }
    }
  });
}

test('sum over a transposed view reads strides without a copy', async () => {
  const x = ref([6, 5], 3);
  await expectRef(F.sum(F.transpose(gpu(x), 0, 1), 1), reduceRef('sum', x, [0], false), { atol: 1e-5, rtol: 1e-5 }, 'sum of view');
});

test('max/min gradient splits ties equally (torch.amax)', async () => {
  const x = F.tensor([[1, 3, 3], [2, 2, 2]]).requiresGrad_();
  F.sum(F.max(x, 1)).backward();
  assert.equal(Array.from(await x.grad!.data()), [0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3].map(Math.fround));
});

test('argmax/argmin: first index on ties, over a dim or flattened', async () => {
  const x = F.tensor([[1, 5, 5, 0], [7, 7, -1, 7]]);
  assert.equal(Array.from(await F.argmax(x, 1).data()), [1, 0]);
  assert.equal(Array.from(await F.argmin(x, 1).data()), [3, 2]);
  assert.equal(Array.from(await F.argmax(x, 0).data()), [1, 1, 0, 1]);
  assert.equal(await F.argmax(x).item(), 4);
  const long = new Float32Array(1000).fill(2);
  long[700] = 3;
  long[900] = 3;
  assert.equal(await F.argmax(F.tensor(long, [1000])).item(), 700);
  for (const [k, c] of CASES.entries()) {
    if (c.axes.length !== 1) continue;
    const r = ref(c.shape, 50 + k);
    await expectRef(F.cast(F.argmax(gpu(r), c.axes[0]), 'float32'), reduceRef('argmax', r, c.axes, false), { atol: 0, rtol: 0 }, `argmax ${c.shape}`);
  }
});

test('NaN propagates through max/min and wins argmax, as in torch (short and long rows)', async () => {
  for (const n of [5, 700]) {
    const v = new Float32Array(n).fill(1);
    v[3] = NaN;
    v[4] = 9;
    const x = F.tensor(v, [1, n]);
    assert.ok(Number.isNaN(await F.max(x, 1).item()), `max, ${n}`);
    assert.ok(Number.isNaN(await F.min(x, 1).item()), `min, ${n}`);
    assert.is(await F.argmax(x, 1).item(), 3, `argmax, ${n}`);
  }
});

// Long rows reduce in a workgroup tree 256 wide on GPUs and 16 wide on CPU adapters: check both,
// and 2, on every long-row case, argmax ties and NaN included.
for (const wg of [2, 16, 256]) {
  test(`long rows with ${wg}-wide workgroup trees`, async () => {
    setReductionWorkgroup(wg);
    try {
      for (const [k, c] of CASES.entries()) {
        const x = ref(c.shape, 90 + k);
        for (const op of ['sum', 'max', 'min'] as const) {
          await expectRef(F[op](gpu(x), c.axes), reduceRef(op, x, c.axes, false), { atol: 2e-5, rtol: 1e-5 }, `${op} ${JSON.stringify(c)} wg=${wg}`);
        }
        if (c.axes.length === 1) {
          await expectRef(F.cast(F.argmax(gpu(x), c.axes[0]), 'float32'), reduceRef('argmax', x, c.axes, false), { atol: 0, rtol: 0 }, `argmax ${JSON.stringify(c)} wg=${wg}`);
        }
      }
      const long = new Float32Array(1000).fill(2);
      long[700] = 3;
      long[900] = 3;
      assert.equal(await F.argmax(F.tensor(long, [1000])).item(), 700, `argmax tie wg=${wg}`);
      long[800] = NaN;
      assert.ok(Number.isNaN(await F.max(F.tensor(long, [1000])).item()), `max NaN wg=${wg}`);
    } finally {
      setReductionWorkgroup(null);
    }
  });
}

// Sums over leading axes of rows side by side (split-K partials, bias gradients) take the vec4
// form where the kept size, offset and stride divide by 4: both forms against the reference, and
// the dispatch tally shows which form ran.
test('sums over leading axes: vec4 form and one row per thread, offsets, int32', async () => {
  const cases: { shape: number[]; axes: number[]; vec4: boolean }[] = [
    { shape: [7, 12], axes: [0], vec4: true },
    { shape: [22, 32, 3, 3], axes: [0], vec4: true },
    { shape: [2, 4], axes: [0], vec4: true },
    { shape: [3, 7, 8], axes: [0, 1], vec4: true },
    { shape: [9, 4, 5], axes: [0], vec4: true },
    { shape: [7, 13], axes: [0], vec4: false },
    { shape: [5, 6], axes: [0], vec4: false },
  ];
  const backend = F.getBackend();
  for (const [k, c] of cases.entries()) {
    const x = ref(c.shape, 120 + k);
    for (const on of [true, false]) {
      setReduceColumnsVec4(on);
      try {
        backend.tallyDispatches(true);
        await expectRef(F.sum(gpu(x), c.axes), reduceRef('sum', x, c.axes, false), { atol: 2e-5, rtol: 1e-5 }, `sum ${JSON.stringify(c)} vec4 ${on}`);
        const ran = backend.tallyDispatches(false).some(([key]) => key.includes('reduce_sum_short_v4'));
        assert.is(ran, on && c.vec4, `vec4 form used: ${JSON.stringify(c)} ${on}`);
      } finally {
        setReduceColumnsVec4(true);
      }
    }
  }
  // A view at an offset that divides by 4 (rows 1..5 of [6, 8]) and one that does not (rows of [6, 6]).
  for (const cols of [8, 6]) {
    const r = ref([6, cols], 140 + cols);
    const rows = { shape: [5, cols], data: r.data.slice(cols) };
    await expectRef(F.sum(F.slice(gpu(r), 0, 1, 6), 0), reduceRef('sum', rows, [0], false), { atol: 2e-5, rtol: 1e-5 }, `sum of rows 1..5 of [6,${cols}]`);
  }
  const xi = F.tensor(Int32Array.from({ length: 24 }, (_, i) => i * 3 - 20), [3, 8], 'int32');
  const want = Array.from({ length: 8 }, (_, c) => [0, 1, 2].reduce((a, r) => a + (r * 8 + c) * 3 - 20, 0));
  assert.equal(Array.from(await F.sum(xi, 0).data()), want);
});

test('int32 and bool sums', async () => {
  assert.equal(await F.sum(F.tensor(Int32Array.from([1, -2, 30]), [3])).item(), 29);
  assert.equal(await F.sum(F.gt(F.tensor([1, -2, 3]), 0)).item(), 2);
});

test('reduction errors name the op and shape', () => {
  assert.throws(() => F.sum(F.zeros([2, 3]), 2), /dim 2 is out of range for a tensor with 2 dimensions/);
  assert.throws(() => F.max(F.zeros([0, 3]), 0), /cannot reduce an empty dimension of \[0,3\]/);
});

test.run();
