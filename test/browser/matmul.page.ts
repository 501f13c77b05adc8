// matmul in the page: GPU vs the float64 reference on odd shapes, batch broadcasting, transposed
// (strided) operands and vectors, and its gradient vs finite differences. Written against the
// uvu API like every test file, so it runs unchanged under Node too.
import { test } from 'uvu';
import { ready } from '../helpers/gpu.js';
import { checkOp, ref, gpu, expectRef } from '../helpers/check.js';
import * as F from '../../engine/index.js';
import { matmulReference } from '../../kernels/matmul.js';
import type { RefTensor } from '../../kernels/common.js';

await ready;

// Float32 accumulation over K <= 37 terms of values in [-2, 2]: 1e-5 absolute is ample.
const TOL = { atol: 1e-5, rtol: 1e-5 };

const transposeLast = (x: RefTensor): RefTensor => {
  const [m, n] = x.shape.slice(-2) as [number, number];
  const batch = x.data.length / (m * n);
  const out = new Float64Array(x.data.length);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[b * m * n + j * m + i] = x.data[b * m * n + i * n + j]!;
  }
  return { shape: [...x.shape.slice(0, -2), n, m], data: out };
};

test('matmul: odd 2-D shapes and broadcast batches match the float64 reference', async () => {
  const cases: [number[], number[]][] = [
    [[7, 13], [13, 5]],
    [[1, 37], [37, 3]],
    [[3, 1, 5, 6], [4, 6, 7]],
    [[2, 9, 11], [11, 1]],
  ];
  for (const [i, [sa, sb]] of cases.entries()) {
    const a = ref(sa, 2 * i + 1), b = ref(sb, 2 * i + 2);
    const out = F.matmul(gpu(a), gpu(b));
    await expectRef(out, matmulReference(a, b), TOL, `matmul ${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
  }
});

test('matmul: transposed views are read in place; vectors are promoted and squeezed', async () => {
  const a = ref([6, 9], 11), b = ref([5, 6], 12);
  // a^T [9, 6] @ b^T [6, 5], both strided views.
  const out = F.matmul(F.transpose(gpu(a), 0, 1), F.transpose(gpu(b), 0, 1));
  await expectRef(out, matmulReference(transposeLast(a), transposeLast(b)), TOL, 'a^T @ b^T');
  const v = ref([9], 13);
  const mv = F.matmul(F.transpose(gpu(a), 0, 1), F.transpose(gpu(ref([1, 6], 14)), 0, 1));
  await expectRef(mv, matmulReference(transposeLast(a), transposeLast(ref([1, 6], 14))), TOL, 'a^T @ column');
  const vm = F.matmul(gpu(v), F.transpose(gpu(a), 0, 1));
  const want = matmulReference({ shape: [1, 9], data: v.data }, transposeLast(a));
  await expectRef(vm, { shape: [6], data: want.data }, TOL, 'vector @ a^T');
});

test('matmul: gradient of both operands matches finite differences (batched, broadcast)', async () => {
  await checkOp({
    name: 'matmul [2,3,5] @ [5,4]',
    inputs: [ref([2, 3, 5], 21, -1, 1), ref([5, 4], 22, -1, 1)],
    gpu: ([a, b]) => F.matmul(a!, b!),
    ref: ([a, b]) => matmulReference(a!, b!),
    forwardTol: TOL,
    gradTol: { atol: 1e-4, rtol: 1e-3 },
  });
});

test.run();
