// conv2d and conv_transpose2d: GPU forward and both gradients vs the float64 direct-loop references
// on odd shapes (strides, padding, dilation, groups, depthwise, 1x1, a small stem), then finite
// differences of the reference on small shapes. Every column geometry and register block is its own
// pipeline and lavapipe takes seconds to compile one, so the cases are chosen to cover features, not
// to repeat. Tolerances: values in [-1, 1], float32 sums of up
// to a few hundred terms, so atol/rtol 1e-4 (forward and gradients vs reference) and the checkOp
// defaults for finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, gpu, expectRef, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import {
  conv2dReference, conv2dInputGradReference, conv2dWeightGradReference, convTranspose2dReference, conv2dEpilogueReference,
  type Conv2dRefParams,
} from '../kernels/conv.js';
import { spatialKernel, spatialPlan, type SpatialShape, type SpatialSpec } from '../kernels/conv-gemm.js';
import { spatialQuickKernel } from '../kernels/conv-gemm-quick.js';
import { setConvWeightTexture, setConvWeightGradSharedDy, setConvSrcVec4, setConvWeightShare, conv2dWeightGradRaw } from '../engine/ops/conv.js';
import { setConvTransposeKs } from '../engine/ops/conv-transpose-ks.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const TOL = { atol: 1e-4, rtol: 1e-4 };

interface Case {
  name: string;
  x: number[];
  w: number[];
  bias?: boolean;
  stride?: [number, number];
  padding?: [number, number] | 'same';
  dilation?: [number, number];
  groups?: number;
  relu?: boolean;
}

const CASES: Case[] = [
  { name: '3x3 pad 1, bias', x: [2, 3, 7, 13], w: [5, 3, 3, 3], padding: [1, 1], bias: true },
  { name: '3x3 stride 2 pad 1', x: [2, 3, 7, 13], w: [4, 3, 3, 3], stride: [2, 2], padding: [1, 1], bias: true },
  { name: 'groups 3, stride (2,1), pad (1,0)', x: [2, 6, 7, 13], w: [9, 2, 3, 3], stride: [2, 1], padding: [1, 0], groups: 3, bias: true },
  { name: 'depthwise multiplier 2', x: [1, 3, 7, 13], w: [6, 1, 3, 3], stride: [2, 2], padding: [1, 1], groups: 3 },
  { name: '1x1, several channel blocks', x: [2, 7, 7, 13], w: [19, 7, 1, 1], bias: true },
  { name: '1x1 stride 2', x: [2, 7, 7, 13], w: [5, 7, 1, 1], stride: [2, 2] },
  { name: '7x7/2 stem', x: [1, 3, 13, 15], w: [8, 3, 7, 7], stride: [2, 2], padding: [3, 3] },
  { name: 'wide: 40->70 channels, 3x3', x: [1, 40, 9, 11], w: [70, 40, 3, 3], padding: [1, 1], bias: true },
  { name: '2x5 kernel, stride (1,2), pad (0,2), dilation (2,1)', x: [2, 3, 7, 13], w: [4, 3, 2, 5], stride: [1, 2], padding: [0, 2], dilation: [2, 1] },
  { name: "padding 'same' with a 4x4 kernel", x: [1, 3, 7, 13], w: [3, 3, 4, 4], padding: 'same', bias: true },
  { name: 'fused relu', x: [2, 3, 7, 13], w: [5, 3, 3, 3], padding: [1, 1], bias: true, relu: true },
  { name: 'long reduction (split-K)', x: [2, 8, 30, 31], w: [16, 8, 3, 3], padding: [1, 1], bias: true },
  // 8 x 16 register blocks of wide several-tap layers (pickBlock), the last channel block partial both ways.
  { name: '3x3, 18->21 channels, 13 columns', x: [1, 18, 5, 13], w: [21, 18, 3, 3], padding: [1, 1], bias: true },
];

function refParams(c: Case, w: number[], x: number[]): Conv2dRefParams {
  const dil = c.dilation ?? [1, 1];
  if (c.padding === 'same') {
    // torch: total padding d*(k-1), floor half before; the output keeps the input size.
    return { stride: [1, 1], padding: [Math.floor((dil[0] * (w[2]! - 1)) / 2), Math.floor((dil[1] * (w[3]! - 1)) / 2)], dilation: dil, groups: c.groups ?? 1, out: [x[2]!, x[3]!] };
  }
  return { stride: c.stride ?? [1, 1], padding: c.padding ?? [0, 0], dilation: dil, groups: c.groups ?? 1 };
}

const relu = (r: RefTensor): RefTensor => ({ shape: r.shape, data: r.data.map((v) => Math.max(v, 0)) });

CASES.forEach((c, ci) => {
  test(`conv2d ${c.name}: forward and gradients match the float64 references`, async () => {
    const xr = ref(c.x, 10 * ci + 1, -1, 1), wr = ref(c.w, 10 * ci + 2, -1, 1);
    const br = c.bias ? ref([c.w[0]!], 10 * ci + 3, -1, 1) : null;
    const p = refParams(c, c.w, c.x);
    let want = conv2dReference(xr, wr, br, p);
    if (c.relu) want = relu(want);
    const gyr = ref(want.shape, 10 * ci + 4, -1, 1);
    const x = gpu(xr, true), w = gpu(wr, true), b = br ? gpu(br, true) : null;
    const y = F.conv2d(x, w, b, c.stride ?? 1, c.padding ?? 0, c.dilation ?? 1, c.groups ?? 1, { activation: c.relu ? 'relu' : 'none' });
    await expectRef(y, want, TOL, `${c.name} forward`);
    F.backward(y, { grad: gpu(gyr) });
    // Through a fused relu the gradient reaching the convolution is gy where y > 0.
    const gyEff = c.relu ? { shape: gyr.shape, data: gyr.data.map((v, i) => (want.data[i]! > 0 ? v : 0)) } : gyr;
    await expectRef(x.grad!, conv2dInputGradReference(gyEff, wr, c.x, p), TOL, `${c.name} grad input`);
    await expectRef(w.grad!, conv2dWeightGradReference(gyEff, xr, c.w, p), TOL, `${c.name} grad weight`);
    if (b) {
      const [N, C, OH, OW] = want.shape as [number, number, number, number];
      const gb = new Float64Array(C);
      for (let i = 0; i < N * C * OH * OW; i++) gb[Math.floor(i / (OH * OW)) % C]! += gyEff.data[i]!;
      await expectRef(b.grad!, { shape: [C], data: gb }, TOL, `${c.name} grad bias`);
    }
    [x, w, b, y].forEach((t) => t?.dispose());
  });
});

/**
 * Forward and input gradient of CASES[ci] for each ci against the references, with a form forced by
 * `force(on)` for both settings (force(null) restores the default); seeds from `seed`.
 */
function forcedFormTests(form: (on: boolean) => string, force: (on: boolean | null) => void, indices: number[], seed: number): void {
  for (const on of [false, true]) {
    test(`conv2d ${form(on)} (forced): forward and input gradient match the references`, async () => {
      force(on);
      try {
        for (const ci of indices) {
          const c = CASES[ci]!;
          const xr = ref(c.x, 10 * ci + seed, -1, 1), wr = ref(c.w, 10 * ci + seed + 1, -1, 1);
          const p = refParams(c, c.w, c.x);
          const want = conv2dReference(xr, wr, null, p);
          const x = gpu(xr, true), w = gpu(wr);
          const y = F.conv2d(x, w, null, c.stride ?? 1, c.padding ?? 0, c.dilation ?? 1, c.groups ?? 1);
          await expectRef(y, want, TOL, `${c.name} forward`);
          const gyr = ref(want.shape, 10 * ci + seed + 2, -1, 1);
          F.backward(y, { grad: gpu(gyr) });
          await expectRef(x.grad!, conv2dInputGradReference(gyr, wr, c.x, p), TOL, `${c.name} grad input`);
          [x, w, y].forEach((t) => t.dispose());
        }
      } finally {
        force(null);
      }
    });
  }
}

// The spatial kernel reads its weights from a packed texture on CPU adapters and from the buffer on
// GPUs (engine/ops/conv.ts): both forms on the cases above that vary groups, channel blocks, the
// stem and strides (forward and the input gradient, whose weight strides differ).
forcedFormTests((on) => `weights ${on ? 'from a texture' : 'from the buffer'}`, setConvWeightTexture, [1, 2, 4, 6, 7], 5);

// The spatial kernel loads each step's weights once per 8-lane subgroup and broadcasts them where
// the adapter's subgroups are exactly 8 wide (lavapipe): both forms, with the weights from a texture
// and from the buffer, on every case (1 to 14 texels or 1 to 56 values a step, partial subgroups
// at the grid's end, the input gradient's stride phases). Forcing it on is a no-op elsewhere.
forcedFormTests((on) => `texture weights ${on ? 'shared across the subgroup' : 'fetched per lane'}`, (on) => {
  setConvWeightTexture(on === null ? null : true);
  setConvWeightShare(on);
}, [...CASES.keys()], 7);
forcedFormTests((on) => `buffer weights ${on ? 'shared across the subgroup' : 'loaded per lane'}`, (on) => {
  setConvWeightTexture(on === null ? null : false);
  setConvWeightShare(on);
}, [...CASES.keys()], 9);

// The spatial kernel reads its source as vec4s on CPU adapters (a segment's start falls anywhere in
// a vec4; padding columns sit before the buffer's first element) and as scalars on GPUs: both forms
// on every case above (forward and the input gradient, whose source is dy).
forcedFormTests((on) => `source ${on ? 'as vec4s' : 'as scalars'}`, setConvSrcVec4, [...CASES.keys()], 3);

// The weight gradient shares dy across 8-lane subgroups where the adapter's subgroups are exactly 8
// wide (lavapipe), else reads it per lane: both forms, forced, on cases with groups, 1x1, strides,
// dilation and split-K (forcing the shared form on is a no-op on adapters without 8-wide subgroups).
for (const shared of [false, true]) {
  test(`conv2d weight gradient, dy ${shared ? 'shared across the subgroup' : 'per lane'} (forced): matches the reference`, async () => {
    setConvWeightGradSharedDy(shared);
    try {
      for (const ci of [0, 2, 3, 4, 7, 8, 11]) {
        const c = CASES[ci]!;
        const xr = ref(c.x, 10 * ci + 8, -1, 1), wr = ref(c.w, 10 * ci + 9, -1, 1);
        const p = refParams(c, c.w, c.x);
        const x = gpu(xr), w = gpu(wr, true);
        const y = F.conv2d(x, w, null, c.stride ?? 1, c.padding ?? 0, c.dilation ?? 1, c.groups ?? 1);
        const gyr = ref(conv2dReference(xr, wr, null, p).shape, 10 * ci + 1, -1, 1);
        F.backward(y, { grad: gpu(gyr) });
        await expectRef(w.grad!, conv2dWeightGradReference(gyr, xr, c.w, p), TOL, `${c.name} grad weight`);
        [x, w, y].forEach((t) => t.dispose());
      }
    } finally {
      setConvWeightGradSharedDy(null);
    }
  });
}

// The weight gradient lays its splits side by side in a workgroup (a layer with few register blocks,
// like the stem's 7x7 over 3 channels or a 1x1 predictor with 5 outputs, would otherwise leave most
// lanes idle): any split count, including ones that end mid-workgroup or mid-subgroup and more
// splits than rows, must give the reference's sums, in both dy forms and with groups.
test('conv2d weight gradient: explicit split counts side by side in workgroups match the reference', async () => {
  const cases = [
    { name: 'stem 7x7 stride 2 over 3 channels', x: [2, 3, 19, 17], w: [8, 3, 7, 7], s: 2, p: 3, groups: 1 },
    { name: '1x1 with 5 outputs', x: [3, 16, 6, 9], w: [5, 16, 1, 1], s: 1, p: 0, groups: 1 },
    { name: '3x3 groups 2', x: [2, 6, 7, 5], w: [4, 3, 3, 3], s: 1, p: 1, groups: 2 },
  ];
  for (const shared of [false, true]) {
    setConvWeightGradSharedDy(shared);
    try {
      for (const [ci, c] of cases.entries()) {
        const [N, Cin, H, W] = c.x as [number, number, number, number];
        const [Cout, , KH, KW] = c.w as [number, number, number, number];
        const OH = Math.floor((H + 2 * c.p - KH) / c.s) + 1, OW = Math.floor((W + 2 * c.p - KW) / c.s) + 1;
        const p: Conv2dRefParams = { stride: [c.s, c.s], padding: [c.p, c.p], dilation: [1, 1], groups: c.groups };
        const xr = ref(c.x, 70 + ci, -1, 1), gyr = ref([N, Cout, OH, OW], 80 + ci, -1, 1);
        const want = conv2dWeightGradReference(gyr, xr, c.w, p);
        const g = { N, Cin, H, W, Cout, KH, KW, OH, OW, sh: c.s, sw: c.s, ph: c.p, pw: c.p, dh: 1, dw: 1, groups: c.groups };
        for (const splits of [1, 2, 3, 5, 13, N * OH + 3]) {
          const x = gpu(xr), gy = gpu(gyr);
          await expectRef(conv2dWeightGradRaw(gy, x, g, splits), want, TOL, `${c.name}, ${splits} splits, dy ${shared ? 'shared' : 'per lane'}`);
          [x, gy].forEach((t) => t.dispose());
        }
      }
    } finally {
      setConvWeightGradSharedDy(null);
    }
  }
});

test('conv2d: gradients match finite differences (stride 2, pad 1, bias)', async () => {
  const p: Conv2dRefParams = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
  await checkOp({
    name: 'conv2d s2p1',
    // 13 columns: the same pipelines as the stride-2 case above.
    inputs: [ref([1, 3, 5, 13], 1, -1, 1), ref([4, 3, 3, 3], 2, -1, 1), ref([4], 3, -1, 1)],
    gpu: ([x, w, b]) => F.conv2d(x!, w!, b!, 2, 1),
    ref: ([x, w, b]) => conv2dReference(x!, w!, b!, p),
  });
});

test('conv2d: gradients match finite differences (groups 2, dilation 2, pad 2)', async () => {
  const p: Conv2dRefParams = { stride: [1, 1], padding: [2, 2], dilation: [2, 2], groups: 2 };
  await checkOp({
    name: 'conv2d g2d2',
    inputs: [ref([1, 4, 6, 7], 4, -1, 1), ref([6, 2, 3, 3], 5, -1, 1), ref([6], 6, -1, 1)],
    gpu: ([x, w, b]) => F.conv2d(x!, w!, b!, 1, 2, 2, 2),
    ref: ([x, w, b]) => conv2dReference(x!, w!, b!, p),
  });
});

test('conv2d: gradients match finite differences (depthwise, 1x1)', async () => {
  const dp: Conv2dRefParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 3 };
  await checkOp({
    name: 'conv2d depthwise',
    inputs: [ref([2, 3, 4, 5], 7, -1, 1), ref([3, 1, 3, 3], 8, -1, 1)],
    gpu: ([x, w]) => F.conv2d(x!, w!, null, 1, 1, 1, 3),
    ref: ([x, w]) => conv2dReference(x!, w!, null, dp),
  });
  const pp: Conv2dRefParams = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };
  await checkOp({
    name: 'conv2d 1x1',
    inputs: [ref([2, 5, 3, 4], 9, -1, 1), ref([3, 5, 1, 1], 10, -1, 1), ref([3], 11, -1, 1)],
    gpu: ([x, w, b]) => F.conv2d(x!, w!, b!),
    ref: ([x, w, b]) => conv2dReference(x!, w!, b!, pp),
  });
});

// The scale-and-residual epilogue (ConvOptions: relu?(conv * scale[c] + bias[c] + residual), conv +
// FrozenBatchNorm2d + shortcut + relu in one dispatch): float64 references on odd shapes (Cout 5, 9
// and 19, stride 2, groups, 1x1 and 3x3, with and without residual and relu), weights from the
// buffer and from a texture, gradients of x, w and the residual against the adjoint references,
// finite differences through the fused op, the fallback for a scale that requires grad, and the
// dispatch counts against conv then frozen batch norm.
interface EpiCase extends Case {
  residual: boolean;
  /** A bias (the shift) is given. */
  shift: boolean;
}
const EPI_CASES: EpiCase[] = [
  { name: '3x3 pad 1, Cout 5, shift + residual + relu', x: [2, 3, 7, 13], w: [5, 3, 3, 3], padding: [1, 1], shift: true, residual: true, relu: true },
  // 8x6 pixels (a multiple of 4): the backward's two-output pass takes its vec4 form.
  { name: '3x3 pad 1, Cout 6, 8x6 pixels, shift + residual + relu', x: [2, 3, 8, 6], w: [6, 3, 3, 3], padding: [1, 1], shift: true, residual: true, relu: true },
  { name: '3x3 stride 2 groups 3, Cout 9, shift + relu', x: [2, 6, 7, 13], w: [9, 2, 3, 3], stride: [2, 2], padding: [1, 1], groups: 3, shift: true, residual: false, relu: true },
  { name: '1x1, Cout 19, shift + residual', x: [2, 7, 7, 13], w: [19, 7, 1, 1], shift: true, residual: true, relu: false },
  { name: '1x1 stride 2, Cout 5, scale only', x: [2, 7, 7, 13], w: [5, 7, 1, 1], stride: [2, 2], shift: false, residual: false, relu: false },
];

/** The references of an epilogue case: y, and the gradients of x, w and the residual for output gradient gy. */
function epiReferences(c: EpiCase, xr: RefTensor, wr: RefTensor, sr: RefTensor, br: RefTensor | null, rr: RefTensor | null, gyr: RefTensor): RefTensor[] {
  const p = refParams(c, c.w, c.x);
  const y = conv2dEpilogueReference(xr, wr, sr, br, rr, !!c.relu, p);
  const [, C, OH, OW] = y.shape as [number, number, number, number];
  // d/d(sum before the relu), then d/d(conv output) = that times scale[c].
  const gz = gyr.data.map((v, i) => (!c.relu || y.data[i]! > 0 ? v : 0));
  const gc = { shape: y.shape, data: gz.map((v, i) => v * sr.data[Math.floor(i / (OH * OW)) % C]!) };
  return [y, conv2dInputGradReference(gc, wr, c.x, p), conv2dWeightGradReference(gc, xr, c.w, p), { shape: y.shape, data: gz }];
}

for (const wtex of [false, true]) {
  test(`conv2d scale/shift/residual/relu epilogue, weights ${wtex ? 'from a texture' : 'from the buffer'} (forced): forward and gradients match the references`, async () => {
    setConvWeightTexture(wtex);
    try {
      for (const [ci, c] of EPI_CASES.entries()) {
        const xr = ref(c.x, 40 * ci + 1, -1, 1), wr = ref(c.w, 40 * ci + 2, -1, 1);
        const Cout = c.w[0]!;
        const sr = ref([Cout], 40 * ci + 3, 0.3, 1.7), br = c.shift ? ref([Cout], 40 * ci + 4, -1, 1) : null;
        const y0 = conv2dReference(xr, wr, null, refParams(c, c.w, c.x));
        const rr = c.residual ? ref(y0.shape, 40 * ci + 5, -1, 1) : null;
        const gyr = ref(y0.shape, 40 * ci + 6, -1, 1);
        const [want, gx, gw, gr] = epiReferences(c, xr, wr, sr, br, rr, gyr);
        // Scale and shift are constants (a frozen norm's): no gradient, the fused path.
        const x = gpu(xr, true), w = gpu(wr, true), s = gpu(sr), b = br && gpu(br), r = rr && gpu(rr, true);
        const y = F.conv2d(x, w, b, c.stride ?? 1, c.padding ?? 0, 1, c.groups ?? 1, { scale: s, residual: r, activation: c.relu ? 'relu' : 'none' });
        await expectRef(y, want!, TOL, `${c.name} forward`);
        F.backward(y, { grad: gpu(gyr) });
        await expectRef(x.grad!, gx!, TOL, `${c.name} grad input`);
        await expectRef(w.grad!, gw!, TOL, `${c.name} grad weight`);
        if (r) await expectRef(r.grad!, gr!, TOL, `${c.name} grad residual`);
        [x, w, s, b, r, y].forEach((t) => t?.dispose());
      }
    } finally {
      setConvWeightTexture(null);
    }
  });
}

test('conv2d epilogue: finite differences of x, w and the residual through the fused op (stride 2, relu)', async () => {
  const p: Conv2dRefParams = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
  await checkOp({
    name: 'conv2d fused scale/shift/residual/relu',
    inputs: [ref([1, 3, 5, 13], 301, -1, 1), ref([5, 3, 3, 3], 302, -1, 1), ref([5], 303, 0.3, 1.7), ref([5], 304, -1, 1), ref([1, 5, 3, 7], 305, -1, 1)],
    differentiable: [true, true, false, false, true],
    gpu: ([x, w, s, b, r]) => F.conv2d(x!, w!, b!, 2, 1, 1, 1, { scale: s!, residual: r!, activation: 'relu' }),
    ref: ([x, w, s, b, r]) => conv2dEpilogueReference(x!, w!, s!, b!, r!, true, p),
  });
});

test('conv2d epilogue: a scale and shift that require grad take the unfused ops and get their gradients (1x1, groups 2)', async () => {
  const p: Conv2dRefParams = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 2 };
  await checkOp({
    name: 'conv2d unfused scale/shift/residual',
    inputs: [ref([2, 4, 3, 5], 311, -1, 1), ref([6, 2, 1, 1], 312, -1, 1), ref([6], 313, 0.3, 1.7), ref([6], 314, -1, 1), ref([2, 6, 3, 5], 315, -1, 1)],
    gpu: ([x, w, s, b, r]) => F.conv2d(x!, w!, b!, 1, 0, 1, 2, { scale: s!, residual: r! }),
    ref: ([x, w, s, b, r]) => conv2dEpilogueReference(x!, w!, s!, b!, r!, false, p),
  });
});

test('conv2d epilogue: one forward dispatch, and fewer backward dispatches than conv then frozen batch norm (no more without a residual gradient)', async () => {
  setConvWeightTexture(false);
  try {
    const xr = ref([2, 3, 7, 13], 321, -1, 1), wr = ref([5, 3, 3, 3], 322, -1, 1), sr = ref([5], 323, 0.3, 1.7), br = ref([5], 324, -1, 1);
    const rr = ref([2, 5, 7, 13], 325, -1, 1), gyr = ref([2, 5, 7, 13], 326, -1, 1);
    for (const residualGrad of [false, true]) {
      const count = (fused: boolean): [number, number] => F.tidy(() => {
        const x = gpu(xr, true), w = gpu(wr, true), s = gpu(sr), b = gpu(br), r = gpu(rr, residualGrad), gy = gpu(gyr);
        const d0 = F.counters().dispatches;
        const y = fused
          ? F.conv2d(x, w, b, 1, 1, 1, 1, { scale: s, residual: r, activation: 'relu' })
          : F.frozenBatchNormApply(F.conv2d(x, w, null, 1, 1), s, b, { residual: r, relu: true });
        const d1 = F.counters().dispatches;
        F.backward(y, { grad: gy });
        return [d1 - d0, F.counters().dispatches - d1];
      });
      count(true); // compile and warm every pipeline first
      const [fusedFwd, fusedBwd] = count(true), [plainFwd, plainBwd] = count(false);
      assert.is(fusedFwd, plainFwd - 1, `the norm's dispatch is gone (residual grad ${residualGrad})`);
      // With the residual's gradient, the masked gradient and its scaled form come from one dispatch.
      assert.ok(residualGrad ? fusedBwd < plainBwd : fusedBwd <= plainBwd, `backward: ${fusedBwd} dispatches fused, ${plainBwd} unfused (residual grad ${residualGrad})`);
    }
  } finally {
    setConvWeightTexture(null);
  }
});

test('conv2d epilogue: bad scale or residual shapes raise errors naming them; conv_transpose2d refuses them', () => {
  const x = F.zeros([1, 3, 5, 5]), w = F.zeros([4, 3, 3, 3]);
  assert.throws(() => F.conv2d(x, w, null, 1, 1, 1, 1, { scale: F.ones([3]) }), /conv2d: scale \[3\] should be \[4\]/);
  assert.throws(() => F.conv2d(x, w, null, 1, 1, 1, 1, { residual: F.zeros([1, 4, 3, 3]) }), /conv2d: residual \[1,4,3,3\] should be the output's shape \[1,4,5,5\]/);
  assert.throws(() => F.convTranspose2d(x, F.zeros([3, 2, 3, 3]), null, 1, 0, 0, 1, 1, { scale: F.ones([2]) }), /conv_transpose2d: takes no scale or residual/);
});

test('conv2d: non-contiguous input and unbatched [C, H, W] input', async () => {
  const xr = ref([2, 3, 7, 13], 21, -1, 1), wr = ref([4, 3, 3, 3], 22, -1, 1);
  const p: Conv2dRefParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
  // A [2,3,13,7] tensor transposed to [2,3,7,13]: same values, strided.
  const xt: RefTensor = { shape: [2, 3, 13, 7], data: new Float64Array(xr.data.length) };
  for (let i = 0; i < 2 * 3; i++) for (let h = 0; h < 7; h++) for (let w = 0; w < 13; w++) xt.data[(i * 13 + w) * 7 + h] = xr.data[(i * 7 + h) * 13 + w]!;
  const y = F.conv2d(F.transpose(gpu(xt), 2, 3), gpu(wr), null, 1, 1);
  await expectRef(y, conv2dReference(xr, wr, null, p), TOL, 'strided input');
  const x1: RefTensor = { shape: [3, 7, 13], data: xr.data.slice(0, 3 * 7 * 13) };
  const want = conv2dReference({ shape: [1, 3, 7, 13], data: x1.data }, wr, null, p);
  await expectRef(F.conv2d(gpu(x1), gpu(wr), null, 1, 1), { shape: want.shape.slice(1), data: want.data }, TOL, 'unbatched');
});

test('conv2d: known answer from the definition (2x2 ones kernel sums 2x2 windows)', async () => {
  // x = 0..8 as 3x3, kernel of ones, no padding: each output is the sum of a 2x2 window.
  const y = F.conv2d(F.tensor(Array.from({ length: 9 }, (_, i) => i), [1, 1, 3, 3]), F.ones([1, 1, 2, 2]));
  assert.equal(Array.from(await y.data()), [0 + 1 + 3 + 4, 1 + 2 + 4 + 5, 3 + 4 + 6 + 7, 4 + 5 + 7 + 8]);
});

test('conv2d: bad shapes raise errors naming the op and the shapes', () => {
  const x = F.zeros([2, 3, 7, 13]);
  assert.throws(() => F.conv2d(x, F.zeros([8, 4, 3, 3])), /conv2d: input \[2,3,7,13\] has 3 channels, weight \[8,4,3,3\]/);
  assert.throws(() => F.conv2d(x, F.zeros([8, 3, 3, 3]), F.zeros([7])), /conv2d: bias \[7\]/);
  assert.throws(() => F.conv2d(x, F.zeros([8, 1, 3, 3]), null, 1, 0, 1, 2), /conv2d: input \[2,3,7,13\] has 3 channels/);
  assert.throws(() => F.conv2d(x, F.zeros([8, 3, 9, 9])), /smaller than the dilated kernel/);
  assert.throws(() => F.conv2d(x, F.zeros([8, 3, 3, 3]), null, 2, 'same'), /'same'/);
});

interface TCase {
  name: string;
  x: number[];
  w: number[];
  bias?: boolean;
  stride?: [number, number];
  padding?: [number, number];
  outputPadding?: [number, number];
  groups?: number;
  dilation?: [number, number];
}

const TCASES: TCase[] = [
  { name: 'mask head 2x2 stride 2', x: [2, 4, 5, 7], w: [4, 3, 2, 2], stride: [2, 2], bias: true },
  { name: '3x3 stride 2 pad 1 output_padding 1 groups 3', x: [1, 6, 5, 4], w: [6, 2, 3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [1, 1], groups: 3, bias: true },
  { name: '3x2 stride (3,1) dilation (2,3) pad (2,1) output_padding (1,0)', x: [2, 3, 4, 5], w: [3, 5, 3, 2], stride: [3, 1], padding: [2, 1], outputPadding: [1, 0], dilation: [2, 3] },
  { name: '1x1 stride 1', x: [2, 5, 3, 7], w: [5, 4, 1, 1], bias: true },
  // 16-channel register blocks of single-tap phases (pickBlock), the last block partial.
  { name: 'mask head 2x2 stride 2, 19 outputs', x: [1, 3, 3, 5], w: [3, 19, 2, 2], stride: [2, 2], bias: true },
  // Kernel = stride on CPU adapters (conv-transpose-ks.ts): vec4 stores and dy loads (output width
  // 16; 12, whose last column block is half past the row), and a 3x1 kernel (scalar, 3-row taps).
  { name: '2x2 stride 2, output width 16 (vec4)', x: [2, 5, 3, 8], w: [5, 3, 2, 2], stride: [2, 2], bias: true },
  { name: '2x2 stride 2, output width 12 (vec4, partial block)', x: [1, 3, 2, 6], w: [3, 9, 2, 2], stride: [2, 2] },
  { name: '3x1 stride (3,1)', x: [2, 2, 3, 5], w: [2, 3, 3, 1], stride: [3, 1], bias: true },
];

TCASES.forEach((c, ci) => {
  const p = {
    stride: c.stride ?? [1, 1], padding: c.padding ?? [0, 0], outputPadding: c.outputPadding ?? [0, 0],
    dilation: c.dilation ?? [1, 1], groups: c.groups ?? 1,
  } as const;
  const run = (x: F.Tensor, w: F.Tensor, b: F.Tensor | null): F.Tensor =>
    F.convTranspose2d(x, w, b, p.stride, p.padding, p.outputPadding, p.groups, p.dilation);
  test(`conv_transpose2d ${c.name}: forward matches the reference, gradients match finite differences`, async () => {
    const coutTotal = c.w[1]! * (c.groups ?? 1);
    const inputs = [ref(c.x, 50 + ci, -1, 1), ref(c.w, 60 + ci, -1, 1), ...(c.bias ? [ref([coutTotal], 70 + ci, -1, 1)] : [])];
    await checkOp({
      name: `conv_transpose2d ${c.name}`,
      inputs,
      gpu: ([x, w, b]) => run(x!, w!, b ?? null),
      ref: ([x, w, b]) => convTranspose2dReference(x!, w!, b ?? null, { ...p, stride: [...p.stride], padding: [...p.padding], outputPadding: [...p.outputPadding], dilation: [...p.dilation] }),
      forwardTol: TOL,
    });
  });
});

for (const amp of [false, true]) {
  test(`conv_transpose2d kernel = stride: the one-dispatch form equals the generic phase kernels (mask head shape, bias, ReLU${amp ? ', under autocast: the same f16 rounding of x, dy and w' : ''})`, async () => {
    const x = gpu(ref([3, 32, 14, 14], 80, -1, 1), true), w = gpu(ref([32, 16, 2, 2], 81, -1, 1), true), b = gpu(ref([16], 82, -1, 1), true);
    const gy = gpu(ref([3, 16, 28, 28], 83, -1, 1));
    const results: ArrayLike<number>[][] = [];
    for (const on of [true, false]) {
      setConvTransposeKs(on);
      try {
        const y = F.autocast(() => F.convTranspose2d(x, w, b, 2, 0, 0, 1, 1, { activation: 'relu' }), amp);
        // Backward outside autocast: the forward's state holds.
        F.backward(y, { grad: gy });
        results.push([await y.data(), await x.grad!.data(), await w.grad!.data(), await b.grad!.data()]);
        for (const t of [x, w, b]) {
          t.grad!.dispose();
          t.grad = null;
        }
      } finally {
        setConvTransposeKs(null);
      }
    }
    // Unrounded vs rounded operands differ by ~1e-3 here: the tolerance tells them apart.
    ['forward', 'input grad', 'weight grad', 'bias grad'].forEach((what, k) => assertClose(results[0]![k]!, results[1]![k]!, { atol: 1e-5, rtol: 1e-5 }, what));
  });
}

test('conv_transpose2d: known answer (2x2 stride 2 places each pixel times the kernel in its own 2x2 block)', async () => {
  const y = F.convTranspose2d(F.tensor([1, 2, 3, 4], [1, 1, 2, 2]), F.tensor([1, 10, 100, 1000], [1, 1, 2, 2]), null, 2);
  assert.equal([...y.shape], [1, 1, 4, 4]);
  assert.equal(Array.from(await y.data()), [1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000]);
});

test('conv_transpose2d: bad shapes raise errors naming the op and the shapes', () => {
  assert.throws(() => F.convTranspose2d(F.zeros([1, 3, 4, 4]), F.zeros([4, 2, 2, 2])), /conv_transpose2d: input \[1,3,4,4\] has 3 channels, weight \[4,2,2,2\]/);
  assert.throws(() => F.convTranspose2d(F.zeros([1, 4, 4, 4]), F.zeros([4, 2, 2, 2]), null, 2, 0, 2), /output_padding/);
});

test('conv kernels: the input gradient shares the forward pipeline, stride phases with the same column taps share one', () => {
  const spec = (mode: SpatialSpec['mode'], k: number, s: number, p: number, phase: [number, number] = [0, 0]): SpatialSpec =>
    ({ mode, KH: k, KW: k, sh: s, sw: s, ph: p, pw: p, dh: 1, dw: 1, phase, tm: 8, tn: 8 });
  const shape = (s: SpatialSpec): string => JSON.stringify(spatialPlan(s).shape);
  assert.is(shape(spec('bwdInput', 3, 1, 1)), shape(spec('fwd', 3, 1, 1)));
  // 3x3 stride 2 pad 1 transposed: one column tap in column phase 0, two in phase 1, whatever the row phase.
  assert.is(shape(spec('bwdInput', 3, 2, 1, [1, 0])), shape(spec('bwdInput', 3, 2, 1, [0, 0])));
  assert.is(shape(spec('bwdInput', 3, 2, 1, [1, 1])), shape(spec('bwdInput', 3, 2, 1, [0, 1])));
  assert.is.not(shape(spec('bwdInput', 3, 2, 1, [0, 1])), shape(spec('bwdInput', 3, 2, 1, [0, 0])));
  // A phase with no taps (1x1 stride 2) runs no kernel rows.
  assert.is(spatialPlan(spec('bwdInput', 1, 2, 0, [0, 1])).geometry.khN, 0);
  // The forward's column stride is baked: stride 2 and stride 1 differ.
  assert.is.not(shape(spec('fwd', 3, 2, 1)), shape(spec('fwd', 3, 1, 1)));
  // The epilogue's scale and residual bindings exist only in its form (the weight texture follows them).
  const wgsl = (extra: Partial<SpatialShape>): string => spatialKernel({ ...spatialPlan(spec('fwd', 3, 1, 1)).shape, ...extra }).wgsl;
  for (const q of [wgsl({}), wgsl({ wtex: true }), spatialQuickKernel(8).wgsl]) assert.not.match(q, /binding\(6\)|scale\[|res\[/);
  assert.match(wgsl({ wtex: true }), /@binding\(5\) var wtx/);
  for (const q of [wgsl({ epi: true, wtex: true }), spatialQuickKernel(8, false, true).wgsl]) assert.match(q, /@binding\(5\) var<storage, read> scale[^]*@binding\(6\) var<storage, read> res/);
  assert.match(wgsl({ epi: true, wtex: true }), /@binding\(7\) var wtx/);
  assert.throws(() => spatialPlan({ ...spec('bwdInput', 3, 1, 1), epi: true }), /'fwd' only/);
});

test.run();
