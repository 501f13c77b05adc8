// conv1x1Select (conv2d(x, w, b)[r, channels[r]]): forward vs the float64 reference and vs conv2d
// and a gather, finite-difference gradients of input, weight and bias on odd shapes (scalar pixels)
// and vec4 shapes, a view input, repeated and unused channels, and clear errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { conv1x1SelectReference, conv1x1SelectBackwardReference } from '../kernels/conv1x1-select.js';
import type { RefTensor } from '../kernels/common.js';
import { roundToF16 } from '../kernels/f16.js';

await ready;

const TOL = { atol: 1e-5, rtol: 1e-5 };

/** The reference over [R, D, H, W] inputs, as [R, H, W]. */
function refOf(xs: RefTensor[], channels: number[], bias: boolean): RefTensor {
  const [x, w, b] = xs as [RefTensor, RefTensor, RefTensor | undefined];
  const [R, D, H, W] = x.shape as [number, number, number, number];
  const out = conv1x1SelectReference({ shape: [R, D, H * W], data: x.data }, { shape: [w.shape[0]!, D], data: w.data }, bias ? b! : null, channels);
  return { shape: [R, H, W], data: out.data };
}

// (R, D, C, H, W): pixels 3x5 (scalar path), 4x6 (vec4 path), one row, one pixel.
const SHAPES: [number, number, number, number, number][] = [[3, 5, 4, 3, 5], [4, 3, 5, 4, 6], [1, 2, 3, 1, 1], [5, 7, 2, 2, 2]];

for (const [R, D, C, H, W] of SHAPES) {
  for (const bias of [true, false]) {
    test(`gradients and forward vs reference: R=${R} D=${D} C=${C} ${H}x${W}${bias ? ' with bias' : ''}`, async () => {
      // Repeated channels and (with C > R) unused ones.
      const channels = Array.from({ length: R }, (_, r) => (r * 7 + 1) % C);
      const inputs = [ref([R, D, H, W], 1), ref([C, D, 1, 1], 2), ...(bias ? [ref([C], 3)] : [])];
      await checkOp({
        name: `conv1x1Select ${R}x${D}x${H}x${W} C=${C}`,
        inputs,
        gpu: ([x, w, b]) => F.conv1x1Select(x!, w!, bias ? b! : null, channels),
        ref: (xs) => refOf(xs, channels, bias),
        forwardTol: TOL,
      });
    });
  }
}

test('under autocast: x, w and the output gradient rounded to f16 at each load (forward and backward under the forward\'s state), bias and its gradient f32', async () => {
  // 3x5 pixels: the scalar kernels; 4x6: the vec4 ones.
  for (const [R, D, C, H, W] of [[3, 5, 4, 3, 5], [4, 3, 5, 4, 6]] as const) {
    const P = H * W;
    const channels = Array.from({ length: R }, (_, r) => (r * 7 + 1) % C);
    // Values with bits below f16's precision, so rounding shows.
    const [x, w, b, g] = [ref([R, D, H, W], 21), ref([C, D, 1, 1], 22), ref([C], 23), ref([R, H, W], 24)];
    const r16 = (t: RefTensor): RefTensor => ({ shape: t.shape, data: t.data.map(roundToF16) });
    const xt = F.keep(gpu(x)).requiresGrad_(), wt = F.keep(gpu(w)).requiresGrad_(), bt = F.keep(gpu(b)).requiresGrad_();
    const y = F.autocast(() => F.conv1x1Select(xt, wt, bt, channels));
    // Backward outside autocast: the forward's state holds.
    F.sum(F.mul(y, gpu(g))).backward();
    const want = conv1x1SelectReference({ shape: [R, D, P], data: r16(x).data }, { shape: [C, D], data: r16(w).data }, b, channels);
    const tol = { atol: 2e-6, rtol: 2e-6 };
    assertClose(await y.data(), want.data, tol, `forward ${R}x${D}x${H}x${W}`);
    const unrounded = conv1x1SelectReference({ shape: [R, D, P], data: x.data }, { shape: [C, D], data: w.data }, b, channels);
    assert.ok(unrounded.data.some((v, i) => Math.abs(v - want.data[i]!) > 1e-4), 'the f16 rounding is visible in these values');
    const back = conv1x1SelectBackwardReference({ shape: [R, D, P], data: x.data }, { shape: [C, D], data: w.data }, channels, { shape: [R, P], data: g.data });
    const backR = conv1x1SelectBackwardReference({ shape: [R, D, P], data: r16(x).data }, { shape: [C, D], data: r16(w).data }, channels, { shape: [R, P], data: r16(g).data });
    assertClose(await xt.grad!.data(), backR.dx.data, tol, 'dx from rounded g and w');
    assertClose(await wt.grad!.data(), backR.dw.data, tol, 'dw from rounded g and x');
    assertClose(await bt.grad!.data(), back.db.data, tol, 'db from g as it is');
    [xt, wt, bt].forEach((t) => t.dispose());
  }
});

test('the backward reference agrees with finite differences of the forward reference', () => {
  const [R, D, C, P] = [3, 4, 3, 5];
  const channels = [2, 0, 2];
  const x = ref([R, D, P], 4), w = ref([C, D], 5), b = ref([C], 6), g = ref([R, P], 7);
  const { dx, dw, db } = conv1x1SelectBackwardReference(x, w, channels, g);
  const objective = (xx: RefTensor, ww: RefTensor, bb: RefTensor): number => {
    const o = conv1x1SelectReference(xx, ww, bb, channels);
    return o.data.reduce((s, v, i) => s + v * g.data[i]!, 0);
  };
  const eps = 1e-6;
  for (const [which, t, want] of [['x', x, dx], ['w', w, dw], ['b', b, db]] as const) {
    const numeric = t.data.map((_, j) => {
      const plus = { shape: t.shape, data: Float64Array.from(t.data) }, minus = { shape: t.shape, data: Float64Array.from(t.data) };
      plus.data[j]! += eps;
      minus.data[j]! -= eps;
      const pick = (v: RefTensor) => (which === 'x' ? objective(v, w, b) : which === 'w' ? objective(x, v, b) : objective(x, w, v));
      return (pick(plus) - pick(minus)) / (2 * eps);
    });
    assertClose(want.data, numeric, { atol: 1e-6, rtol: 1e-6 }, `backward reference d${which}`);
  }
});

test('equals conv2d and a gather of each row\'s channel (vec4 path, 28x28)', async () => {
  const [R, D, C] = [6, 8, 5];
  const channels = [4, 1, 1, 0, 3, 4];
  const x = gpu(ref([R, D, 28, 28], 8)), w = gpu(ref([C, D, 1, 1], 9)), b = gpu(ref([C], 10));
  const got = await F.conv1x1Select(x, w, b, channels).data();
  const full = await F.conv2d(x, w, b).data();
  const want = new Float64Array(R * 784);
  for (let r = 0; r < R; r++) for (let p = 0; p < 784; p++) want[r * 784 + p] = full[(r * C + channels[r]!) * 784 + p]!;
  assertClose(got, want, TOL, 'conv1x1Select vs conv2d + gather');
});

test('reads a view input (offset and strides) as its values', async () => {
  const base = gpu(ref([2, 3, 4, 4], 11));
  const view = F.slice(base, 0, 1, 2); // offset 48: vec4-aligned; dense
  const odd = F.slice(F.reshape(base, [2, 3, 16]), 2, 1, 13); // non-contiguous: copied first
  const w = gpu(ref([2, 3, 1, 1], 12));
  for (const [x, H, W] of [[view, 4, 4], [F.reshape(F.contiguous(odd), [2, 3, 3, 4]), 3, 4]] as const) {
    const got = await F.conv1x1Select(x, w, null, x.shape[0] === 1 ? [1] : [1, 0]).data();
    const host = await x.data();
    const want = conv1x1SelectReference({ shape: [x.shape[0]!, 3, H * W], data: Float64Array.from(host) }, { shape: [2, 3], data: Float64Array.from(await w.data()) }, null, x.shape[0] === 1 ? [1] : [1, 0]);
    assertClose(got, want.data, TOL, `view input ${x.shape.join('x')}`);
  }
});

test('clear errors: channel out of range, wrong counts and shapes', () => {
  const x = gpu(ref([2, 3, 2, 2], 13)), w = gpu(ref([4, 3, 1, 1], 14));
  assert.throws(() => F.conv1x1Select(x, w, null, [0, 4]), /channel 4 of row 1 is not in \[0, 4\)/);
  assert.throws(() => F.conv1x1Select(x, w, null, [0]), /1 channels for 2 rows/);
  assert.throws(() => F.conv1x1Select(x, gpu(ref([4, 2, 1, 1], 15)), null, [0, 1]), /weight \[4,2,1,1\] must be \[C, 3, 1, 1\]/);
  assert.throws(() => F.conv1x1Select(x, w, gpu(ref([3], 16)), [0, 1]), /bias \[3\] should be \[4\]/);
});

test.run();
