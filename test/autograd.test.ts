// The tape: composite gradients vs finite differences, accumulation, noGrad, detach, graph reuse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { ewReference } from '../kernels/elementwise.js';
import { matmulReference } from '../kernels/matmul.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const r = (name: Parameters<typeof ewReference>[0], ...xs: (RefTensor | number)[]): RefTensor => ewReference(name, xs);
const transposeRef = (x: RefTensor): RefTensor => {
  const [m, n] = x.shape as [number, number];
  return { shape: [n, m], data: Float64Array.from({ length: m * n }, (_, i) => x.data[(i % m) * n + Math.floor(i / m)]!) };
};
const sumRows = (x: RefTensor): RefTensor => {
  const [m, n] = x.shape as [number, number];
  return { shape: [m, 1], data: Float64Array.from({ length: m }, (_, i) => x.data.slice(i * n, i * n + n).reduce((a, b) => a + b, 0)) };
};

test('composite: shared subexpressions, views and broadcasting', async () => {
  // f(a, b, c) = tanh(a @ b^T + c) * (a @ b^T) / sum_rows(exp(a @ b^T)), with c broadcast along rows.
  await checkOp({
    name: 'composite',
    inputs: [ref([5, 3], 1, -1, 1), ref([7, 3], 2, -1, 1), ref([7], 3, -1, 1)],
    gpu: ([a, b, c]) => {
      const h = F.matmul(a!, F.transpose(b!, 0, 1));
      return F.div(F.mul(F.tanh(F.add(h, c!)), h), F.sum(F.exp(h), 1, true));
    },
    ref: ([a, b, c]) => {
      const h = matmulReference(a!, transposeRef(b!));
      return r('div', r('mul', r('tanh', r('add', h, c!)), h), sumRows(r('exp', h)));
    },
    forwardTol: { atol: 1e-5, rtol: 1e-4 },
  });
});

test('x used twice in one op and in two branches', async () => {
  await checkOp({
    name: 'x*x + sigmoid(x)',
    inputs: [ref([4, 9], 4)],
    gpu: ([x]) => F.add(F.mul(x!, x!), F.sigmoid(x!)),
    ref: ([x]) => r('add', r('mul', x!, x!), r('sigmoid', x!)),
  });
});

test('a tensor with many uses: its gradient contributions summed three at a time', async () => {
  // Integer factors: every partial sum is exact, whatever order the contributions arrive in.
  const x = F.tensor(Float32Array.from(ref([37], 5).data), [37]).requiresGrad_();
  const factors = [1, 2, 3, 4, 5].map((k) => Float32Array.from(ref([37], 10 + k, -50, 50).data, Math.round));
  const loss = F.tidy(() => factors.map((a) => F.sum(F.mul(x, F.tensor(a, [37])))).reduce((p, q) => F.add(p, q)));
  F.getBackend().tallyDispatches(true);
  loss.backward();
  const kinds = F.getBackend().tallyDispatches(false);
  assert.equal([...(await x.grad!.data())], Array.from({ length: 37 }, (_, i) => factors.reduce((acc, a) => acc + a[i]!, 0)));
  // x's five contributions: two three-way adds, where pairwise adds took four.
  const count = (op: string): number => kinds.filter(([k]) => k.startsWith(`${op} [`)).reduce((a, [, n]) => a + n, 0);
  assert.is(count('add3'), 2);
  assert.is(count('add'), 0);
});

test('gradients accumulate across backward calls until zeroed', async () => {
  const x = F.tensor([1, 2, 3]).requiresGrad_();
  F.sum(F.mul(x, 2)).backward();
  F.sum(F.mul(x, x)).backward();
  assert.equal(Array.from(await x.grad!.data()), [4, 6, 8]);
  x.grad!.dispose();
  x.grad = null;
  F.sum(x).backward();
  assert.equal(Array.from(await x.grad!.data()), [1, 1, 1]);
});

test('noGrad and detach cut the graph; requiresGrad only on floats', async () => {
  const x = F.tensor([1, 2]).requiresGrad_();
  const y = F.noGrad(() => F.mul(x, 3));
  assert.is(y.requiresGrad, false);
  const z = F.mul(x, 3).detach();
  assert.is(z.requiresGrad, false);
  assert.throws(() => F.sum(z).backward(), /does not require grad/);
  assert.throws(() => F.zeros([2], 'int32').requiresGrad_(), /needs a float32 tensor/);
});

test('backward twice needs retainGraph; non-scalar needs a gradient', async () => {
  const x = F.tensor([1, 2]).requiresGrad_();
  const y = F.sum(F.exp(x));
  y.backward({ retainGraph: true });
  y.backward();
  assertClose(await x.grad!.data(), [2 * Math.E, 2 * Math.E * Math.E], { atol: 1e-5, rtol: 1e-6 }, 'twice');
  assert.throws(() => y.backward(), /already freed/);
  const v = F.mul(x, 2);
  assert.throws(() => v.backward(), /needs a scalar output, got shape \[2\]/);
  v.backward(F.tensor([1, 10]));
});

test('gradient flows through int32 comparisons only where it should (where)', async () => {
  const x = F.tensor([-1, 2, -3, 4]).requiresGrad_();
  F.sum(F.where(F.gt(x, 0), x, F.mul(x, 0.5))).backward();
  assert.equal(Array.from(await x.grad!.data()), [0.5, 1, 0.5, 1]);
});

test.run();
