// The normalisations' fused epilogue, relu(norm(x) + residual): batch_norm (training and eval),
// frozen batch norm and group_norm against the float64 references of kernels/norm.ts followed by
// normEpilogueReference, on odd shapes, with finite-difference gradients of x, weight, bias and the
// residual. A residual that does not need a gradient (or none) takes the path where the ReLU mask
// is applied inside the backward kernels; one that does, the path with a shared relu_grad. Also:
// nn.FrozenBatchNorm2d computes its scale and shift once and recomputes them after loadStateDict;
// channelSum, the one-pass per-channel sum that conv bias gradients use.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { checkOp, ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { batchNormReference, frozenBatchNormReference, groupNormReference, normEpilogueReference } from '../kernels/norm.js';
import type { RefTensor } from '../kernels/common.js';
import { setReductionWorkgroup } from '../engine/device.js';
import { setNormVec4 } from '../engine/ops/norm.js';

await ready;

const FWD = { atol: 2e-5, rtol: 2e-5 };

interface Variant {
  name: string;
  relu: boolean;
  residual: boolean;
  /** Whether the residual gets a gradient check (requires grad). */
  residualGrad: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'relu', relu: true, residual: false, residualGrad: false },
  { name: '+ residual', relu: false, residual: true, residualGrad: true },
  { name: '+ residual, relu', relu: true, residual: true, residualGrad: true },
  { name: '+ constant residual, relu (mask in the backward kernels)', relu: true, residual: true, residualGrad: false },
];

type Norm = {
  name: string;
  shape: number[];
  /** The op with its affine inputs given (w, b), then the epilogue. */
  gpu: (x: F.Tensor, w: F.Tensor, b: F.Tensor, e: F.NormEpilogue) => F.Tensor;
  ref: (x: RefTensor, w: RefTensor, b: RefTensor) => RefTensor;
  /** Whether w and b are differentiable inputs (frozen batch norm's are buffers). */
  affineGrad: boolean;
};

const C = 5;
const rm = ref([C], 4, -0.5, 0.5), rv = ref([C], 5, 0.5, 2);
const NORMS: Norm[] = [
  {
    name: 'batch_norm training',
    shape: [2, C, 3, 7],
    gpu: (x, w, b, e) => F.batchNorm(x, null, null, w, b, true, 0.1, 1e-5, e),
    ref: (x, w, b) => batchNormReference(x, null, null, w, b, true).y,
    affineGrad: true,
  },
  {
    name: 'batch_norm eval',
    shape: [3, C, 2, 5],
    gpu: (x, w, b, e) => F.batchNorm(x, gpu(rm), gpu(rv), w, b, false, 0.1, 1e-5, e),
    ref: (x, w, b) => batchNormReference(x, rm, rv, w, b, false).y,
    affineGrad: true,
  },
  {
    name: 'frozen_batch_norm',
    shape: [2, C, 7, 3],
    gpu: (x, w, b, e) => F.frozenBatchNorm2d(x, w, b, gpu(rm), gpu(rv), 1e-5, e),
    ref: (x, w, b) => frozenBatchNormReference(x, w, b, rm, rv),
    affineGrad: false,
  },
  {
    name: 'group_norm G=5',
    shape: [2, C, 3, 5],
    gpu: (x, w, b, e) => F.groupNorm(x, 5, w, b, 1e-5, e),
    ref: (x, w, b) => groupNormReference(x, 5, w, b),
    affineGrad: true,
  },
];

// The same with trailing sizes that divide by 4: the elementwise passes (apply, input gradient) take
// their vec4 form there (the shapes above, L odd or 10, take one element per invocation); the tally
// shows that it ran.
const VEC4_SHAPES = [[2, C, 3, 4], [3, C, 2, 4], [2, C, 4, 3], [1, C, 2, 6]];
const ALL = [...NORMS, ...NORMS.map((n, k) => ({ ...n, name: `${n.name} (vec4 form)`, shape: VEC4_SHAPES[k]!, vec4: true }))];

for (const n of ALL) {
  for (const v of VARIANTS) {
    test(`${n.name} ${JSON.stringify(n.shape)} ${v.name}: forward and gradients`, async () => {
      const x = ref(n.shape, 11, -2, 2), w = ref([C], 12, -1.5, 1.5), b = ref([C], 13), r = ref(n.shape, 14);
      const backend = F.getBackend();
      backend.tallyDispatches(true);
      await checkOp({
        name: `${n.name} ${v.name}`,
        inputs: v.residual ? [x, w, b, r] : [x, w, b],
        differentiable: [true, n.affineGrad, n.affineGrad, ...(v.residual ? [v.residualGrad] : [])],
        gpu: ([xt, wt, bt, rt]) => n.gpu(xt!, wt!, bt!, { residual: rt ?? null, relu: v.relu }),
        ref: ([xr, wr, br, rr]) => normEpilogueReference(n.ref(xr!, wr!, br!), rr ?? null, v.relu),
        forwardTol: FWD,
      });
      const tally = backend.tallyDispatches(false);
      const v4 = tally.filter(([key]) => /norm_(apply|grad_input)\w*_v4\]/.test(key));
      assert.is(v4.length > 0, 'vec4' in n, `vec4 elementwise kernels ran: ${v4.map(([k]) => k).join(', ')}`);
      // Batch statistics (not frozen batch norm): the row sums take their vec4 form too.
      const rows = tally.filter(([key]) => /norm_rows_\w*_v4\]/.test(key));
      assert.is(rows.length > 0, 'vec4' in n && n.affineGrad, `vec4 row kernels ran: ${rows.map(([k]) => k).join(', ')}`);
    });
  }
}

test('elementwise norm passes: vec4 and scalar forms agree (group_norm and batch_norm, masks, residual)', async () => {
  const shape = [3, C, 4, 4];
  const x = ref(shape, 61, -2, 2), w = ref([C], 62, -1.5, 1.5), b = ref([C], 63), r = ref(shape, 64), gy = ref(shape, 65);
  const run = async (on: boolean): Promise<ArrayLike<number>[]> => {
    setNormVec4(on);
    try {
      const out: ArrayLike<number>[] = [];
      for (const op of [(xt: F.Tensor, wt: F.Tensor, bt: F.Tensor, rt: F.Tensor) => F.groupNorm(xt, 5, wt, bt, 1e-5, { residual: rt, relu: true }), (xt: F.Tensor, wt: F.Tensor, bt: F.Tensor, rt: F.Tensor) => F.batchNorm(xt, null, null, wt, bt, true, 0.1, 1e-5, { residual: rt, relu: true })]) {
        const [xt, wt, bt, rt] = [gpu(x, true), gpu(w, true), gpu(b, true), gpu(r)];
        const y = op(xt, wt, bt, rt);
        F.sum(F.mul(y, gpu(gy))).backward();
        out.push(await y.data(), await xt.grad!.data(), await wt.grad!.data(), await bt.grad!.data());
      }
      return out;
    } finally {
      setNormVec4(true);
    }
  };
  const [on, off] = [await run(true), await run(false)];
  on.forEach((a, k) => assertCloseArrays(a, off[k]!, `output ${k}`));
});

function assertCloseArrays(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 1e-5 * Math.max(1, Math.abs(b[i]!))) assert.unreachable(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('group_norm with a ReLU: only the residual and the affine need gradients', async () => {
  const shape = [2, 6, 5, 3];
  const x = ref(shape, 21), w = ref([6], 22), b = ref([6], 23), r = ref(shape, 24);
  await checkOp({
    name: 'group_norm G=3 affine + residual grads',
    inputs: [x, w, b, r],
    differentiable: [false, true, true, true],
    gpu: ([xt, wt, bt, rt]) => F.groupNorm(xt!, 3, wt!, bt!, 1e-5, { residual: rt!, relu: true }),
    ref: ([xr, wr, br, rr]) => normEpilogueReference(groupNormReference(xr!, 3, wr!, br!), rr!, true),
    forwardTol: FWD,
  });
});

test('a residual of the wrong shape is refused with both shapes named', () => {
  const x = F.zeros([2, 3, 4, 4]);
  assert.throws(() => F.groupNorm(x, 3, null, null, 1e-5, { residual: F.zeros([2, 3, 4, 5]) }), /group_norm: residual \[2,3,4,5\] does not match input \[2,3,4,4\]/);
  assert.throws(() => F.frozenBatchNorm2d(x, F.ones([3]), F.zeros([3]), F.zeros([3]), F.ones([3]), 1e-5, { residual: F.zeros([3, 4, 4]) }), /frozen_batch_norm: residual \[3,4,4\] does not match/);
});

test('nn.FrozenBatchNorm2d keeps its scale and shift, and recomputes them after loadStateDict', async () => {
  const layer = new F.nn.FrozenBatchNorm2d(C);
  const x = ref([2, C, 3, 4], 31);
  const load = (seed: number): RefTensor[] => {
    const s = [ref([C], seed, 0.5, 1.5), ref([C], seed + 1), ref([C], seed + 2, -0.5, 0.5), ref([C], seed + 3, 0.5, 2)];
    layer.loadStateDict({ weight: gpu(s[0]!), bias: gpu(s[1]!), running_mean: gpu(s[2]!), running_var: gpu(s[3]!) });
    return s;
  };
  let [w, b, m, v] = load(40);
  await expectRef(layer.forward(gpu(x)), frozenBatchNormReference(x, w!, b!, m!, v!), FWD, 'first forward');
  const before = F.counters().dispatches;
  const again = layer.forward(gpu(x), { relu: true });
  assert.is(F.counters().dispatches - before, 1, 'a later forward is one dispatch');
  await expectRef(again, normEpilogueReference(frozenBatchNormReference(x, w!, b!, m!, v!), null, true), FWD, 'cached, relu');
  [w, b, m, v] = load(50);
  await expectRef(layer.forward(gpu(x)), frozenBatchNormReference(x, w!, b!, m!, v!), FWD, 'after loadStateDict');
  layer.registerBuffer('running_var', gpu(ref([C], 60, 0.5, 2)));
  const rv2 = { shape: [C], data: Float64Array.from(await layer.getBuffer('running_var')!.data()) };
  await expectRef(layer.forward(gpu(x)), frozenBatchNormReference(x, w!, b!, m!, rv2), FWD, 'after registerBuffer');
  layer.dispose();
});

test("a model's dispose() frees its FrozenBatchNorm2d's kept scale and shift", async () => {
  const x = F.randn([2, C, 3, 3]);
  await settleGarbage();
  const live = F.memory().liveBytes;
  const model = new F.nn.Sequential(new F.nn.FrozenBatchNorm2d(C));
  F.tidy(() => model.forward(x)).dispose();
  model.dispose();
  assert.is(F.memory().liveBytes, live, 'no GPU memory left behind');
  x.dispose();
});

test('channelSum (conv bias gradients): per-channel sums over images and pixels, float64 reference, several row widths', async () => {
  for (const wg of [2, 16, 256]) {
    setReductionWorkgroup(wg);
    try {
      // The last three have trailing sizes that divide by 4 (the vec4 form of the row sums).
      for (const shape of [[3, 5, 7, 11], [1, 4, 1, 1], [2, 3, 5], [5, 2], [3, 5, 4, 3], [2, 3, 8], [2, 3, 4, 17]]) {
        const x = ref(shape, 81);
        const [N, Cn] = shape as [number, number];
        const L = x.data.length / (N * Cn);
        const want = new Float64Array(Cn);
        for (let n = 0; n < N; n++) for (let c = 0; c < Cn; c++) for (let k = 0; k < L; k++) want[c] += x.data[(n * Cn + c) * L + k]!;
        await expectRef(F.channelSum(gpu(x)), { shape: [Cn], data: want }, { atol: 1e-5, rtol: 1e-5 }, `channelSum ${JSON.stringify(shape)} wg=${wg}`);
      }
    } finally {
      setReductionWorkgroup(null);
    }
  }
});

test.run();
