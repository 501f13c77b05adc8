// softmax / log_softmax: GPU vs the float64 reference over every dim (short rows: one thread per
// row; long rows: a workgroup per row), strided inputs, extreme values, and finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { softmaxReference, softmaxShortRows, splitAround, SOFTMAX_SHORT_ROW } from '../kernels/softmax.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const FWD = { atol: 1e-6, rtol: 1e-5 };

for (const log of [false, true]) {
  const name = log ? 'log_softmax' : 'softmax';
  const op = log ? F.logSoftmax : F.softmax;

  test(`${name}: forward over every dim, short and long rows`, async () => {
    // Dim lengths on both sides of SOFTMAX_SHORT_ROW, so both kernels run.
    const cases: [number[], number][] = [
      [[7, 13], -1],
      [[7, 13], 0],
      [[3, 5, 9], 1],
      [[3, 5, 9], 0],
      [[5, SOFTMAX_SHORT_ROW + 37], 1],
      [[2, 301, 3], 1],
      [[1000], 0],
      [[1], 0],
      [[1, SOFTMAX_SHORT_ROW + 3, 1024], 1], // long strided rows, many of them: thread per row
    ];
    const kinds = cases.map(([shape, dim]) => {
      const { outer, n, inner } = splitAround(shape, dim < 0 ? dim + shape.length : dim);
      return softmaxShortRows(outer * inner, n, inner);
    });
    assert.ok(kinds.includes(true) && kinds.includes(false), 'cases cover both kernels');
    for (const [i, [shape, dim]] of cases.entries()) {
      const r = ref(shape, 10 + i, -4, 4);
      const nd = dim < 0 ? dim + shape.length : dim;
      await expectRef(op(gpu(r), dim), softmaxReference(r, nd, log), FWD, `${name} ${JSON.stringify(shape)} dim ${dim}`);
    }
  });

  test(`${name}: strided (transposed, sliced) input`, async () => {
    const r = ref([9, 70], 3, -3, 3);
    const x = gpu(r);
    const xt = F.transpose(x, 0, 1); // [70, 9], non-contiguous
    const want = softmaxReference({ shape: [70, 9], data: transposeData(r.data, 9, 70) }, 0, log);
    await expectRef(op(xt, 0), want, FWD, `${name} transposed`);
    const xs = F.slice(x, 0, 2, 5); // dense view with a non-zero offset
    const rs: RefTensor = { shape: [3, 70], data: r.data.slice(2 * 70, 5 * 70) };
    await expectRef(op(xs, 1), softmaxReference(rs, 1, log), FWD, `${name} sliced`);
  });

  test(`${name}: rows with |x| = 100 (and 1e30) stay finite`, async () => {
    for (const n of [5, 300]) {
      const data: number[] = Array.from({ length: 2 * n }, (_, k) => (k % 3 === 0 ? 100 : k % 3 === 1 ? -100 : 99.5));
      data[n] = 1e30;
      const r: RefTensor = { shape: [2, n], data: Float64Array.from(data, (v) => Math.fround(v)) };
      const y = await op(gpu(r), 1).data();
      assert.ok(y.every((v) => !Number.isNaN(v)), `${name} n=${n}: NaN in output`);
      // Softmax values are exactly 0/1 where 1e30 dominates; log-softmax of the others is -1e30ish.
      const want = softmaxReference(r, 1, log);
      for (let k = 0; k < y.length; k++) {
        if (Number.isFinite(want.data[k]!)) {
          const tol = log ? 1e-5 * Math.abs(want.data[k]!) + 1e-4 : 1e-6;
          assert.ok(Math.abs(y[k]! - want.data[k]!) <= tol, `${name} n=${n} element ${k}: ${y[k]} vs ${want.data[k]}`);
        }
      }
    }
  });

  test(`${name}: gradient matches finite differences`, async () => {
    const cases: [number[], number][] = [
      [[4, 7], -1],
      [[3, 5, 2], 1],
      [[2, SOFTMAX_SHORT_ROW + 5], 1],
    ];
    for (const [shape, dim] of cases) {
      const nd = dim < 0 ? dim + shape.length : dim;
      await checkOp({
        name: `${name} ${JSON.stringify(shape)} dim ${dim}`,
        inputs: [ref(shape, 7, -2, 2)],
        gpu: ([x]) => op(x!, dim),
        ref: ([x]) => softmaxReference(x!, nd, log),
        forwardTol: FWD,
        gradTol: { atol: 2e-5, rtol: 1e-3 },
      });
    }
  });
}

test('softmax: known answer and rows summing to one', async () => {
  // softmax([1, 2, 3]) = e^k / (e + e^2 + e^3) (torch.nn.Softmax definition).
  const z = Math.E + Math.E ** 2 + Math.E ** 3;
  const y = await F.softmax(F.tensor([1, 2, 3]), 0).data();
  [Math.E / z, Math.E ** 2 / z, Math.E ** 3 / z].forEach((w, i) => assert.ok(Math.abs(y[i]! - w) < 1e-6, `element ${i}`));
  const s = await F.sum(F.softmax(gpu(ref([6, 200], 5, -5, 5)), 1), 1).data();
  s.forEach((v, i) => assert.ok(Math.abs(v - 1) < 1e-5, `row ${i} sums to ${v}`));
});

test('softmax: errors name the op and shape', () => {
  assert.throws(() => F.softmax(F.tensor([1, 2], 'int32'), 0), /softmax: needs a float32 tensor, got int32\[2\]/);
  assert.throws(() => F.softmax(F.tensor([[1, 2]]), 2), /dim 2 is out of range/);
});

function transposeData(d: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(d.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = d[r * cols + c]!;
  return out;
}

test.run();
