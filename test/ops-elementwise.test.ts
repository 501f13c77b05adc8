// Every op of the elementwise table: GPU forward vs the float64 reference on odd, broadcast and
// strided shapes; every differentiable one also against finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { elementwise } from '../engine/ops/elementwise.js'; // internal: the op dispatcher by name
import { EW_OPS, ewReference, type EwOpName } from '../kernels/elementwise.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

// Input ranges keep each op inside its domain and away from kinks.
const DOMAIN: Partial<Record<EwOpName, { lo: number; hi: number; avoid?: number[] }>> = {
  log: { lo: 0.2, hi: 3 },
  sqrt: { lo: 0.2, hi: 3 },
  rsqrt: { lo: 0.2, hi: 3 },
  reciprocal: { lo: 0.3, hi: 3 },
  pow: { lo: 0.3, hi: 2 },
  abs: { lo: -2, hi: 2, avoid: [0] },
  relu: { lo: -2, hi: 2, avoid: [0] },
  clamp: { lo: -2, hi: 2, avoid: [-0.5, 0.7] },
  floor: { lo: -3, hi: 3, avoid: [-3, -2, -1, 0, 1, 2, 3] },
  ceil: { lo: -3, hi: 3, avoid: [-3, -2, -1, 0, 1, 2, 3] },
};

type Fn = (xs: F.Tensor[]) => F.Tensor;
const DIFFERENTIABLE: Partial<Record<EwOpName, Fn>> = {
  neg: ([a]) => F.neg(a!),
  abs: ([a]) => F.abs(a!),
  exp: ([a]) => F.exp(a!),
  log: ([a]) => F.log(a!),
  sqrt: ([a]) => F.sqrt(a!),
  rsqrt: ([a]) => F.rsqrt(a!),
  square: ([a]) => F.square(a!),
  reciprocal: ([a]) => F.reciprocal(a!),
  relu: ([a]) => F.relu(a!),
  sigmoid: ([a]) => F.sigmoid(a!),
  tanh: ([a]) => F.tanh(a!),
  clamp: ([a]) => F.clamp(a!, -0.5, 0.7),
  add: ([a, b]) => F.add(a!, b!),
  sub: ([a, b]) => F.sub(a!, b!),
  mul: ([a, b]) => F.mul(a!, b!),
  div: ([a, b]) => F.div(a!, b!),
  pow: ([a, b]) => F.pow(a!, b!),
  minimum: ([a, b]) => F.minimum(a!, b!),
  maximum: ([a, b]) => F.maximum(a!, b!),
};
const PARAMS: Partial<Record<EwOpName, number[]>> = { clamp: [-0.5, 0.7], clamp_grad: [-0.5, 0.7] };

// Shapes per arity: odd sizes, broadcasting both ways, a rank-0 operand, and dense sizes that are
// a multiple of 4 (the 4-wide kernel form).
const SHAPES: Record<number, number[][][]> = {
  1: [[[7, 13]], [[3, 5, 9]], [[1]], [[]], [[4, 6]]],
  2: [[[7, 13], [7, 13]], [[5, 1], [1, 11]], [[3, 1, 9], [4, 1]], [[6, 5], []], [[4, 6], [4, 6]]],
  3: [[[7, 13], [7, 13], [7, 13]], [[5, 1], [1, 3], [5, 3]], [[2, 10], [2, 10], [2, 10]]],
};

for (const [name, op] of Object.entries(EW_OPS) as [EwOpName, (typeof EW_OPS)[EwOpName]][]) {
  test(`${name}: forward matches the float64 reference`, async () => {
    const dom = DOMAIN[name] ?? { lo: -2, hi: 2 };
    for (const [si, shapes] of SHAPES[op.arity]!.entries()) {
      const inputs: RefTensor[] = shapes.map((s, i) => ref(s, 10 * si + i, dom.lo, dom.hi, dom.avoid));
      if (name === 'where') inputs[0] = { shape: inputs[0]!.shape, data: inputs[0]!.data.map((v) => (v > 0 ? 1 : 0)) };
      const want = ewReference(name, inputs, PARAMS[name] ?? []);
      const ts = inputs.map((r, i) => (name === 'where' && i === 0 ? F.cast(gpu(r), 'bool') : gpu(r)));
      const out = elementwise(name, ts, PARAMS[name] ?? []);
      const isBool = (op as { out?: string }).out === 'bool';
      await expectRef(isBool ? F.cast(out, 'float32') : out, want, { atol: 1e-6, rtol: 2e-6 }, `${name} ${JSON.stringify(shapes)}`);
    }
  });
  const fn = DIFFERENTIABLE[name];
  if (fn) {
    test(`${name}: gradient matches finite differences`, async () => {
      const dom = DOMAIN[name] ?? { lo: -2, hi: 2 };
      for (const [si, shapes] of SHAPES[op.arity]!.slice(0, 3).entries()) {
        await checkOp({
          name: `${name} ${JSON.stringify(shapes)}`,
          inputs: shapes.map((s, i) => ref(s, 100 + 10 * si + i, dom.lo, dom.hi, dom.avoid)),
          gpu: fn,
          ref: (xs) => ewReference(name, xs, PARAMS[name] ?? []),
          forwardTol: { atol: 1e-6, rtol: 2e-6 },
        });
      }
    });
  }
}

test('JS-number operands (uniforms) with dense and strided tensors, both kernel widths', async () => {
  for (const [name, op] of Object.entries(EW_OPS) as [EwOpName, (typeof EW_OPS)[EwOpName]][]) {
    if (op.arity !== 2 || name === 'pow') continue;
    for (const shape of [[4, 6], [5, 3]]) {
      const x = ref(shape, 7, 0.5, 2);
      for (const [a, b] of [[x, 1.25], [0.75, x]] as const) {
        const want = ewReference(name, [a, b], PARAMS[name] ?? []);
        const out = elementwise(name, [typeof a === 'number' ? a : gpu(a), typeof b === 'number' ? b : gpu(b)], PARAMS[name] ?? []);
        const isBool = (op as { out?: string }).out === 'bool';
        await expectRef(isBool ? F.cast(out, 'float32') : out, want, { atol: 1e-6, rtol: 2e-6 }, `${name}(${typeof a === 'number' ? a : shape}, ${typeof b === 'number' ? b : shape})`);
      }
    }
  }
});

test('the 4-wide form reads offset views that are 4-aligned, and not others', async () => {
  const x = ref([3, 8], 21);
  const rows = F.slice(gpu(x), 0, 1, 3); // offset 8: aligned
  const sliceRef = { shape: [2, 8], data: x.data.slice(8) };
  await expectRef(F.exp(rows), ewReference('exp', [sliceRef]), { atol: 1e-6, rtol: 2e-6 }, 'exp of aligned rows');
  const flat = F.slice(F.reshape(gpu(x), [24]), 0, 2, 22); // offset 2, 20 elements: scalar form
  await expectRef(F.neg(flat), ewReference('neg', [{ shape: [20], data: x.data.slice(2, 22) }]), { atol: 0, rtol: 0 }, 'neg of unaligned slice');
});

test('the 4-wide form on sizes where each invocation takes several vec4s (grid-strided), with a partial last round', async () => {
  // 1501 vec4s: 376 invocations of up to 4 vec4s in 2 workgroups (stride 512), the last round partial.
  for (const n of [6004, 4 * 70001]) {
    const a = ref([n], 31, -2, 2), b = ref([n], 32, -2, 2);
    await expectRef(F.add(gpu(a), gpu(b)), ewReference('add', [a, b]), { atol: 1e-6, rtol: 2e-6 }, `add of ${n}`);
    await expectRef(F.mul(gpu(a), 0.5), ewReference('mul', [a, 0.5]), { atol: 1e-6, rtol: 2e-6 }, `mul by a scalar, ${n}`);
  }
});

test('scalar operands and strided views are read in place', async () => {
  const x = ref([4, 6], 1);
  const t = F.transpose(gpu(x), 0, 1); // [6,4] view
  const want = ewReference('mul', [{ shape: [6, 4], data: Float64Array.from({ length: 24 }, (_, i) => x.data[(i % 4) * 6 + Math.floor(i / 4)]!) }, 2.5]);
  await expectRef(F.mul(t, 2.5), want, { atol: 1e-6, rtol: 1e-6 }, 'view * scalar');
  await expectRef(F.sub(1, F.slice(gpu(x), 1, 1, 6, 2)), ewReference('sub', [1, { shape: [4, 3], data: Float64Array.from({ length: 12 }, (_, i) => x.data[Math.floor(i / 3) * 6 + 1 + 2 * (i % 3)]!) }]), { atol: 1e-6, rtol: 1e-6 }, '1 - slice');
});

test('int32 arithmetic and comparisons', async () => {
  const a = F.tensor(Int32Array.from([5, -3, 7, 0]), [4]);
  const b = F.tensor(Int32Array.from([2, -3, 9, 1]), [4]);
  assert.equal(Array.from(await F.add(a, b).data()), [7, -6, 16, 1]);
  assert.equal(Array.from(await F.mul(a, 3).data()), [15, -9, 21, 0]);
  assert.equal(Array.from(await F.eq(a, b).data()), [0, 1, 0, 0]);
  assert.equal(Array.from(await F.cast(F.tensor([1.7, -1.7, 0.2]), 'int32').data()), [1, -1, 0]);
});

test('stable sigmoid, tanh and exp at |x| = 100 (no NaN)', async () => {
  const x = F.tensor([-100, -30, 0, 30, 100]);
  // exp(-100) is a float32 denormal, which CPU drivers may flush to zero.
  assertClose(await F.sigmoid(x).data(), [Math.exp(-100), 1 / (1 + Math.exp(30)), 0.5, 1, 1], { atol: 1e-30, rtol: 1e-5 }, 'sigmoid');
  assertClose(await F.tanh(x).data(), [-1, -1, 0, 1, 1], { atol: 0, rtol: 0 }, 'tanh');
  const g = F.tensor([-100, 100]).requiresGrad_();
  F.sum(F.sigmoid(g)).backward();
  assertClose(await g.grad!.data(), [0, 0], { atol: 1e-30, rtol: 0 }, 'sigmoid grad');
});

test('pow with a negative base follows torch.pow', async () => {
  const y = await F.pow(F.tensor([-2, -2, -2, 0, 3]), F.tensor([2, 3, 0.5, 0, -1])).data();
  assert.equal(Array.from(y.slice(0, 2)), [4, -8]);
  assert.ok(Number.isNaN(y[2]));
  assert.equal(y[3], 1);
  assert.ok(Math.abs(y[4]! - 1 / 3) < 1e-7);
});

test('clear errors: mismatched shapes, dtypes, disposed tensors', () => {
  assert.throws(() => F.add(F.zeros([3, 4]), F.zeros([5])), /\[3,4\] and \[5\] do not broadcast/);
  assert.throws(() => F.add(F.zeros([3]), F.zeros([3], 'int32')), /different dtypes \(float32, int32\)/);
  assert.throws(() => F.log(F.zeros([3], 'int32')), /log\(int32\[3\]\): defined for float32 only/);
  assert.throws(() => elementwise('clamp', [F.zeros([3])]), /expects 2 parameters, got 0/);
  const t = F.ones([2]);
  t.dispose();
  assert.throws(() => F.exp(t), /was disposed/);
});

test.run();
