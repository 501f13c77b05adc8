// Losses vs PyTorch's definitions: known values worked out by hand (including |x| = 100, where a
// naive formula overflows or gives NaN), GPU vs float64 references, and finite-difference
// gradients for every reduction. Forward tolerance 1e-5 abs/rel; gradients 1e-4 abs, 1e-3 rel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { pointLossReference, crossEntropyReference, type Reduction } from '../kernels/losses.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const TOL = { atol: 1e-5, rtol: 1e-5 };
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];
const asRef = (values: number[], shape: number[], reduction: Reduction): RefTensor => ({ shape: reduction === 'none' ? shape : [], data: Float64Array.from(values) });

test('binary_cross_entropy_with_logits: known values and gradients, stable at |x| = 100', async () => {
  // loss = max(x,0) - x*y + log(1 + exp(-|x|)): x=0 -> log 2; x=100,y=1 -> e^-100 ~ 0; x=-100,y=1 -> 100;
  // x=100,y=0 -> 100; x=2,y=0.25 -> 2 - 0.5 + log(1 + e^-2).
  const xs = [0, 100, -100, 100, 2], ys = [1, 1, 1, 0, 0.25];
  const want = [Math.LN2, 0, 100, 100, 1.5 + Math.log1p(Math.exp(-2))];
  const x = F.tensor(xs).requiresGrad_();
  assertClose(await F.binaryCrossEntropyWithLogits(x, F.tensor(ys), 'none').data(), want, TOL, 'none');
  const loss = F.binaryCrossEntropyWithLogits(x, F.tensor(ys));
  assertClose([await loss.item()], [want.reduce((a, b) => a + b) / 5], TOL, 'mean');
  loss.backward();
  // d/dx = (sigmoid(x) - y) / N: (0.5 - 1), (1 - 1), (0 - 1), (1 - 0), (sigmoid(2) - 0.25).
  const sg2 = 1 / (1 + Math.exp(-2));
  assertClose(await x.grad!.data(), [-0.5, 0, -1, 1, sg2 - 0.25].map((v) => v / 5), TOL, 'grad');
  // Tiny losses keep their value: x = 30, y = 1 -> log(1 + e^-30) = e^-30 (1 + e^-30 rounds to 1 in float32).
  assertClose(await F.binaryCrossEntropyWithLogits(F.tensor([30]), F.tensor([1]), 'none').data(), [Math.exp(-30)], { atol: 0, rtol: 1e-5 }, 'log1p');
});

test('smooth_l1_loss and l1_loss: known values (beta 1, 1/9, 0), sum and mean', async () => {
  // |z| < beta: 0.5 z^2 / beta, else |z| - beta/2. beta 1: z = 0.5 -> 0.125, z = -2 -> 1.5.
  const x = F.tensor([1.5, -1]), y = F.tensor([1, 1]);
  assertClose(await F.smoothL1Loss(x, y, 'none').data(), [0.125, 1.5], TOL, 'beta 1');
  assertClose([await F.smoothL1Loss(x, y, 'sum').item()], [1.625], TOL, 'sum');
  assertClose([await F.smoothL1Loss(x, y).item()], [0.8125], TOL, 'mean');
  // torchvision's beta = 1/9: z = 0.1 -> 0.5 * 0.01 * 9 = 0.045; z = 1 -> 1 - 1/18.
  assertClose(await F.smoothL1Loss(F.tensor([0.1, 1]), F.tensor([0, 0]), 'none', 1 / 9).data(), [0.045, 1 - 1 / 18], TOL, 'beta 1/9');
  // beta = 0 is l1; its gradient is sign(z) (0 at z = 0).
  const a = F.tensor([3, -2, 5]).requiresGrad_();
  const l = F.smoothL1Loss(a, F.tensor([1, 1, 5]), 'sum', 0);
  assertClose([await l.item()], [2 + 3 + 0], TOL, 'beta 0');
  l.backward();
  assert.equal(Array.from(await a.grad!.data()), [1, -1, 0]);
  assertClose([await F.l1Loss(F.tensor([3, -2]), F.tensor([1, 1])).item()], [2.5], TOL, 'l1 mean');
  assert.throws(() => F.smoothL1Loss(F.zeros([3]), F.zeros([4])), /smooth_l1_loss: input \[3\] and target \[4\] must have the same shape/);
});

test('cross_entropy: known values, ignore_index, stable at |x| = 100', async () => {
  // Equal logits over 3 classes: log 3. [100, -100, 0] -> target 0: log(1 + e^-100 + e^-200) ~ 0;
  // target 1: 200 + log(1 + e^-100 + e^-200) = 200. Row 3 is ignored (-100) and not counted.
  const x = F.tensor([[0, 0, 0], [100, -100, 0], [100, -100, 0], [5, 6, 7]]).requiresGrad_();
  const t = F.tensor(Int32Array.from([1, 0, 1, -100]), [4]);
  assertClose(await F.crossEntropy(x, t, 'none').data(), [Math.log(3), 0, 200, 0], TOL, 'none');
  const loss = F.crossEntropy(x, t);
  assertClose([await loss.item()], [(Math.log(3) + 200) / 3], TOL, 'mean over 3 counted rows');
  loss.backward();
  // d/dx = (softmax - onehot) / 3, zero on the ignored row.
  const g = Array.from(await x.grad!.data());
  assertClose(g, [1 / 3, -2 / 3, 1 / 3, 0, 0, 0, 1, -1, 0, 0, 0, 0].map((v) => v / 3), TOL, 'grad');
  assertClose([await F.crossEntropy(x, F.tensor(Int32Array.from([1, 0, 1, 2]), [4]), 'sum', 2).item()], [Math.log(3) + 0 + 200], TOL, 'custom ignore_index (row 3 ignored)');
  assert.ok(Number.isNaN(await F.crossEntropy(F.zeros([2, 3]), F.tensor(Int32Array.from([-100, -100]), [2])).item()), 'all ignored -> NaN');
  assert.throws(() => F.crossEntropy(x, F.tensor([1, 0, 1, 2])), /cross_entropy: target must be int32 \[4\]/);
});

for (const reduction of REDUCTIONS) {
  test(`gradients vs finite differences: reduction=${reduction}`, async () => {
    const shape = [7, 13];
    await checkOp({
      name: `bce ${reduction}`,
      inputs: [ref(shape, 1, -4, 4), ref(shape, 2, 0, 1)],
      gpu: ([x, y]) => F.binaryCrossEntropyWithLogits(x!, y!, reduction),
      ref: ([x, y]) => asRef(pointLossReference('bce', x!.data, y!.data, reduction), shape, reduction),
      forwardTol: TOL,
    });
    // Inputs kept 0.05 away from the kinks of smooth_l1 (|z| = beta only bends; z = 0 for l1).
    const z = ref(shape, 4, -2, 2, [0, 0.5, -0.5]);
    const zero: RefTensor = { shape, data: new Float64Array(z.data.length) };
    for (const [name, beta] of [['smooth_l1', 0.5], ['smooth_l1 beta=0', 0]] as const) {
      await checkOp({
        name: `${name} ${reduction}`,
        inputs: [z, zero],
        gpu: ([x, y]) => F.smoothL1Loss(x!, y!, reduction, beta),
        ref: ([x, y]) => asRef(pointLossReference('smooth_l1', x!.data, y!.data, reduction, beta), shape, reduction),
        forwardTol: TOL,
      });
    }
    const targets: RefTensor = { shape: [7], data: Float64Array.from([0, 12, -100, 5, 5, 3, 11]) };
    await checkOp({
      name: `cross_entropy ${reduction}`,
      inputs: [ref(shape, 5, -3, 3), targets],
      differentiable: [true, false],
      gpu: ([x, t]) => F.crossEntropy(x!, F.cast(t!, 'int32'), reduction),
      ref: ([x, t]) => asRef(crossEntropyReference(x!.data, t!.data, 7, 13, reduction), [7], reduction),
      forwardTol: TOL,
    });
  });
}

test('l1_loss gradient, and strided (transposed) inputs', async () => {
  const shape = [5, 3];
  await checkOp({
    name: 'l1 transposed',
    inputs: [ref([3, 5], 7, -2, 2, [0]), ref([3, 5], 8, -0.01, 0.01)],
    gpu: ([x, y]) => F.l1Loss(F.transpose(x!, 0, 1), F.transpose(y!, 0, 1), 'none'),
    ref: ([x, y]) => {
      const t = (r: RefTensor) => Array.from({ length: 15 }, (_, i) => r.data[(i % 3) * 5 + Math.floor(i / 3)]!);
      return asRef(pointLossReference('l1', t(x!), t(y!), 'none'), shape, 'none');
    },
    forwardTol: TOL,
  });
});

test('losses free their intermediates (no GPU memory left behind outside tidy)', () => {
  const x = F.randn([5, 7]);
  const t = F.tensor(Int32Array.from([1, 2, 3, -100, 0]), [5], 'int32');
  const y = F.rand([5, 7]);
  const before = F.memory().liveBytes;
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    F.crossEntropy(x, t, reduction).dispose();
    F.binaryCrossEntropyWithLogits(x, y, reduction).dispose();
    F.smoothL1Loss(x, y, reduction, 0.5).dispose();
  }
  assert.is(F.memory().liveBytes, before);
});

test.run();
