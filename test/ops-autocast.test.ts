// Autocast (engine/autocast.ts): matmul, linear, conv2d and conv_transpose2d run their kernels'
// roundF16 forms, forward and both backward GEMMs. Each is checked against the float64 reference
// evaluated on operands rounded to f16 by kernels/f16.ts's roundToF16 (tolerance 1e-4: the f32
// accumulation error only), and also shown to differ from the unrounded reference by more than
// that tolerance (so the rounding did happen on that path) while staying within f16 tolerance of it.
// The gradients are taken with backward() called outside the autocast scope: they must still use
// the rounded forms, as torch's do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { matmulVariants, setMatmulVariant } from '../engine/ops/matmul.js';
import { matmulReference } from '../kernels/matmul.js';
import { conv2dReference, conv2dInputGradReference, conv2dWeightGradReference, convTranspose2dReference, conv2dEpilogueReference, type Conv2dRefParams } from '../kernels/conv.js';
import { roundToF16, roundArrayToF16 } from '../kernels/f16.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const TOL = { atol: 1e-4, rtol: 1e-4 };
/** Rounded vs unrounded operands: each product moves by up to ~2^-10 relative. */
const F16_TOL = { atol: 2e-2, rtol: 1e-2 };

const r16 = (r: RefTensor): RefTensor => ({ shape: r.shape, data: roundArrayToF16(r.data) });
const T = (r: RefTensor): RefTensor => {
  const [R, C] = r.shape as [number, number];
  const out = new Float64Array(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) out[j * R + i] = r.data[i * C + j]!;
  return { shape: [C, R], data: out };
};

/** The GPU result matches `rounded` tightly, is within f16 tolerance of `plain`, and differs from it beyond TOL somewhere. */
async function expectRounded(t: F.Tensor, rounded: RefTensor, plain: RefTensor, what: string): Promise<void> {
  await expectRef(t, rounded, TOL, `${what} (vs the reference on f16-rounded operands)`);
  const got = await t.data();
  assertClose(got, plain.data, F16_TOL, `${what} (vs the fp32 reference, f16 tolerance)`);
  let moved = 0;
  for (let i = 0; i < got.length; i++) moved = Math.max(moved, Math.abs(got[i]! - plain.data[i]!) - (TOL.atol + TOL.rtol * Math.abs(plain.data[i]!)));
  assert.ok(moved > 0, `${what}: no element differs from the unrounded reference beyond ${JSON.stringify(TOL)}: the f16 rounding did not run`);
}

test('autocast scopes: on inside, restored after (also on throw), nestable, async, and the enabled=false form', async () => {
  assert.is(F.isAutocastEnabled(), false);
  assert.is(F.autocast(() => F.isAutocastEnabled()), true);
  assert.is(F.autocast(() => F.autocast(() => F.isAutocastEnabled(), false)), false);
  assert.throws(() => F.autocast(() => { throw new Error('boom'); }), /boom/);
  assert.is(F.isAutocastEnabled(), false);
  assert.is(await F.autocastAsync(async () => { await new Promise((r) => setTimeout(r, 1)); return F.isAutocastEnabled(); }), true);
  assert.is(F.isAutocastEnabled(), false);
  assert.throws(() => F.autocast(() => Promise.resolve(1) as never), /use autocastAsync/);
});

test('the kernels round exactly as roundToF16 (ties, subnormals, overflow, NaN): x @ ones in every matmul variant', async () => {
  const specials = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, -70000, 2 ** -25, 1.5 * 2 ** -24, 2 ** -14 - 2 ** -25, 0.1, -3.14159, 1e-9, NaN, -0];
  const rnd = ref([200], 5, -3, 3).data.map((v, i) => v * 2 ** ((i % 40) - 26));
  const xs = Float64Array.from([...specials, ...rnd].map(Math.fround));
  const n = xs.length;
  const want = Float64Array.from(xs, roundToF16);
  for (const v of matmulVariants()) {
    setMatmulVariant(v.name);
    try {
      // A: x as a column (rounded as A), B: ones [1, 4] (vec4 variants fit). And x as B's row.
      const ya = F.autocast(() => F.matmul(F.tensor(Float32Array.from(xs), [n, 1]), F.ones([1, 4])));
      const ga = await ya.data();
      assertClose(Array.from({ length: n }, (_, i) => ga[i * 4]!), want, { atol: 0, rtol: 0 }, `${v.name}: A rounding`);
      const yb = F.autocast(() => F.matmul(F.ones([1, 1]), F.tensor(Float32Array.from([...xs, 0, 0, 0].slice(0, Math.ceil(n / 4) * 4)), [1, Math.ceil(n / 4) * 4])));
      // The subgroup variants' K tail multiplies a zeroed A by the clamped last row of B, so an
      // infinite B element comes out NaN there (fp32 as well): both non-finite, all the loss scaler needs.
      const gb = Array.from((await yb.data()).slice(0, n), (g, i) => (v.kind === 'subgroup' && !Number.isFinite(want[i]!) && Number.isNaN(g) ? want[i]! : g));
      assertClose(gb, want, { atol: 0, rtol: 0 }, `${v.name}: B rounding`);
    } finally {
      setMatmulVariant(null);
    }
  }
});

const MM_CASES: [string, number[], number[]][] = [
  ['7x13x5', [7, 13], [13, 5]],
  ['37x45x132 (vec4 fits)', [37, 45], [45, 132]],
  ['65x33x17', [65, 33], [33, 17]],
];

for (const v of matmulVariants()) {
  test(`matmul variant ${v.name} under autocast: forward on odd shapes matches the reference on f16-rounded operands`, async () => {
    setMatmulVariant(v.name);
    try {
      for (const [name, sa, sb] of MM_CASES) {
        const a = ref(sa, 1), b = ref(sb, 2);
        if (v.vecB && sb[1]! % 4 !== 0) continue;
        const y = F.autocast(() => F.matmul(gpu(a), gpu(b)));
        await expectRounded(y, matmulReference(r16(a), r16(b)), matmulReference(a, b), `${v.name} ${name}`);
      }
    } finally {
      setMatmulVariant(null);
    }
  });
}

test('matmul and linear under autocast: both gradient GEMMs use the rounded forms (backward called outside the scope)', async () => {
  const a = ref([9, 11], 3), b = ref([11, 6], 4), gy = ref([9, 6], 5);
  const ta = gpu(a, true), tb = gpu(b, true);
  const y = F.autocast(() => F.matmul(ta, tb));
  assert.is(F.isAutocastEnabled(), false);
  F.backward(y, { grad: gpu(gy) });
  await expectRounded(ta.grad!, matmulReference(r16(gy), T(r16(b))), matmulReference(gy, T(b)), 'matmul grad a');
  await expectRounded(tb.grad!, matmulReference(T(r16(a)), r16(gy)), matmulReference(T(a), gy), 'matmul grad b');
  // linear: y = x W^T + bias; the bias and its gradient stay f32.
  const x = ref([5, 7], 6), w = ref([3, 7], 7), bias = ref([3], 8), g = ref([5, 3], 9);
  const tx = gpu(x, true), tw = gpu(w, true), tbias = gpu(bias, true);
  const yl = F.autocast(() => F.nn.linear(tx, tw, tbias));
  const addBias = (r: RefTensor): RefTensor => ({ shape: r.shape, data: r.data.map((v, i) => v + bias.data[i % 3]!) });
  await expectRounded(yl, addBias(matmulReference(r16(x), T(r16(w)))), addBias(matmulReference(x, T(w))), 'linear forward');
  F.backward(yl, { grad: gpu(g) });
  await expectRounded(tx.grad!, matmulReference(r16(g), r16(w)), matmulReference(g, w), 'linear grad x');
  await expectRounded(tw.grad!, matmulReference(T(r16(g)), r16(x)), matmulReference(T(g), x), 'linear grad w');
  const gb = new Float64Array(3);
  g.data.forEach((v, i) => (gb[i % 3]! += v));
  await expectRef(tbias.grad!, { shape: [3], data: gb }, TOL, 'linear grad bias (f32)');
});

test('without autocast the same matmul gradient is the unrounded one (the flag is captured at forward)', async () => {
  const a = ref([9, 11], 3), b = ref([11, 6], 4), gy = ref([9, 6], 5);
  const ta = gpu(a, true), tb = gpu(b, true);
  const y = F.matmul(ta, tb);
  F.autocast(() => F.backward(y, { grad: gpu(gy) }));
  await expectRef(ta.grad!, matmulReference(gy, T(b)), TOL, 'fp32 forward, backward inside autocast: still fp32');
});

interface ConvCase { name: string; x: number[]; w: number[]; stride: [number, number]; padding: [number, number]; groups: number; bias: boolean }
const CONV_CASES: ConvCase[] = [
  { name: '3x3 pad 1, bias', x: [2, 3, 7, 13], w: [5, 3, 3, 3], stride: [1, 1], padding: [1, 1], groups: 1, bias: true },
  { name: '3x3 stride 2, groups 3', x: [2, 6, 7, 11], w: [9, 2, 3, 3], stride: [2, 2], padding: [1, 1], groups: 3, bias: false },
  { name: '1x1, 19 channels', x: [2, 7, 5, 9], w: [19, 7, 1, 1], stride: [1, 1], padding: [0, 0], groups: 1, bias: true },
];

CONV_CASES.forEach((c, ci) => {
  test(`conv2d ${c.name} under autocast: forward, input gradient and weight gradient use f16-rounded operands`, async () => {
    const xr = ref(c.x, 20 + ci, -1, 1), wr = ref(c.w, 30 + ci, -1, 1), br = c.bias ? ref([c.w[0]!], 40 + ci, -1, 1) : null;
    const p: Conv2dRefParams = { stride: c.stride, padding: c.padding, dilation: [1, 1], groups: c.groups };
    const x = gpu(xr, true), w = gpu(wr, true), b = br ? gpu(br, true) : null;
    const y = F.autocast(() => F.conv2d(x, w, b, c.stride, c.padding, 1, c.groups));
    const plain = conv2dReference(xr, wr, br, p);
    await expectRounded(y, conv2dReference(r16(xr), r16(wr), br, p), plain, `${c.name} forward`);
    const gy = ref(plain.shape, 50 + ci, -1, 1);
    F.backward(y, { grad: gpu(gy) });
    await expectRounded(x.grad!, conv2dInputGradReference(r16(gy), r16(wr), c.x, p), conv2dInputGradReference(gy, wr, c.x, p), `${c.name} grad input`);
    await expectRounded(w.grad!, conv2dWeightGradReference(r16(gy), r16(xr), c.w, p), conv2dWeightGradReference(gy, xr, c.w, p), `${c.name} grad weight`);
  });
});

test('conv2d with the scale/shift/residual/relu epilogue under autocast: f16-rounded operands, an f32 epilogue', async () => {
  const xr = ref([2, 3, 7, 13], 70, -1, 1), wr = ref([5, 3, 3, 3], 71, -1, 1), sr = ref([5], 72, 0.3, 1.7), br = ref([5], 73, -1, 1), rr = ref([2, 5, 7, 13], 74, -1, 1);
  const p: Conv2dRefParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
  const x = gpu(xr, true), w = gpu(wr, true), r = gpu(rr, true);
  const y = F.autocast(() => F.conv2d(x, w, gpu(br), 1, 1, 1, 1, { scale: gpu(sr), residual: r, activation: 'relu' }));
  const want = conv2dEpilogueReference(r16(xr), r16(wr), sr, br, rr, true, p);
  await expectRounded(y, want, conv2dEpilogueReference(xr, wr, sr, br, rr, true, p), 'forward');
  const gy = ref(want.shape, 75, -1, 1);
  F.backward(y, { grad: gpu(gy) });
  // The gradient reaching the convolution, gy * (y > 0) * scale[c], is f32; the conv kernels round it as they load it.
  const gz: RefTensor = { shape: gy.shape, data: gy.data.map((v, i) => (want.data[i]! > 0 ? v : 0)) };
  const gc: RefTensor = { shape: gy.shape, data: gz.data.map((v, i) => v * sr.data[Math.floor(i / (7 * 13)) % 5]!) };
  await expectRounded(x.grad!, conv2dInputGradReference(r16(gc), r16(wr), [2, 3, 7, 13], p), conv2dInputGradReference(gc, wr, [2, 3, 7, 13], p), 'grad input');
  await expectRounded(w.grad!, conv2dWeightGradReference(r16(gc), r16(xr), [5, 3, 3, 3], p), conv2dWeightGradReference(gc, xr, [5, 3, 3, 3], p), 'grad weight');
  await expectRef(r.grad!, gz, TOL, 'grad residual (f32)');
});

test('conv_transpose2d under autocast: forward and both gradients use f16-rounded operands', async () => {
  const xr = ref([2, 4, 5, 7], 60, -1, 1), wr = ref([4, 3, 3, 3], 61, -1, 1);
  const tp = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number], outputPadding: [1, 1] as [number, number], dilation: [1, 1] as [number, number], groups: 1 };
  const x = gpu(xr, true), w = gpu(wr, true);
  const y = F.autocast(() => F.convTranspose2d(x, w, null, 2, 1, 1));
  await expectRounded(y, convTranspose2dReference(r16(xr), r16(wr), null, tp), convTranspose2dReference(xr, wr, null, tp), 'forward');
  // conv_transpose2d(x, w) is conv2d's input gradient: its gradients are conv2d's forward and weight gradient.
  const gy = ref([...y.shape], 62, -1, 1);
  const p: Conv2dRefParams = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
  F.backward(y, { grad: gpu(gy) });
  await expectRounded(x.grad!, conv2dReference(r16(gy), r16(wr), null, p), conv2dReference(gy, wr, null, p), 'grad input');
  await expectRounded(w.grad!, conv2dWeightGradReference(r16(xr), r16(gy), [4, 3, 3, 3], p), conv2dWeightGradReference(xr, gy, [4, 3, 3, 3], p), 'grad weight');
});

test.run();
