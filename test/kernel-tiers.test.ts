// The quick kernel variants that run while the fast ones compile in the background
// (engine/tiering.ts). Convolutions (kernels/conv-gemm-quick.ts): on odd shapes covering every column geometry the fast kernels
// bake (1, 2, 3 and 7 column taps, column strides 1 and 2, dilation, groups, the empty stride
// phases of a 1x1 stride-2 input gradient, split-K weight gradients, bias and relu, autocast's f16
// rounding), forward, input gradient and weight gradient of the quick tier match the float64
// references, and are bit for bit what the fast tier computes (so a run's numbers never depend on
// when a kernel tiered up). Matmul's 'direct' variants (matmulQuickKernel): the same on odd
// batched shapes, plain and autocast. RoIAlign (roiAlignKernel's quick form): the multi-level
// pooler with partial channel blocks, forward (bits too) and backward (float atomics: references).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import {
  conv2dReference, conv2dInputGradReference, conv2dWeightGradReference, convTranspose2dReference, conv2dEpilogueReference, type Conv2dRefParams,
} from '../kernels/conv.js';
import type { RefTensor } from '../kernels/common.js';
import { matmulReference } from '../kernels/matmul.js';
import { setMatmulVariant } from '../engine/ops/matmul.js';
import { roiAlignReference, roiAlignBackwardReference, mapLevelsReference, type RoiAlignParams, type LevelMapperParams } from '../kernels/roi_align.js';

await ready;
const backend = F.getBackend();
const TOL = { atol: 1e-4, rtol: 1e-4 };

interface Case {
  name: string;
  x: number[];
  w: number[];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: boolean;
  relu?: boolean;
}

const CASES: Case[] = [
  { name: '3x3 pad 1, bias, relu', x: [2, 3, 7, 13], w: [5, 3, 3, 3], padding: [1, 1], bias: true, relu: true },
  { name: '3x3 stride 2 pad 1', x: [2, 3, 7, 13], w: [4, 3, 3, 3], stride: [2, 2], padding: [1, 1], bias: true },
  { name: '7x7/2 stem', x: [1, 3, 13, 15], w: [8, 3, 7, 7], stride: [2, 2], padding: [3, 3] },
  { name: '1x1 stride 2, several channel blocks', x: [2, 7, 7, 13], w: [19, 7, 1, 1], stride: [2, 2] },
  { name: 'groups 3, stride (2,1), pad (1,0)', x: [2, 6, 7, 13], w: [9, 2, 3, 3], stride: [2, 1], padding: [1, 0], groups: 3, bias: true },
  { name: '2x5 kernel, stride (1,2), pad (0,2), dilation (2,1)', x: [2, 3, 7, 13], w: [4, 3, 2, 5], stride: [1, 2], padding: [0, 2], dilation: [2, 1] },
  { name: 'long reduction (split-K)', x: [2, 8, 30, 31], w: [16, 8, 3, 3], padding: [1, 1], bias: true },
];

const params = (c: Case): Conv2dRefParams => ({ stride: c.stride ?? [1, 1], padding: c.padding ?? [0, 0], dilation: c.dilation ?? [1, 1], groups: c.groups ?? 1 });

/** Forward, input gradient and weight gradient of a case with the given tier, as float32 arrays. */
async function run(c: Case, mode: 'quick' | 'off', xr: RefTensor, wr: RefTensor, br: RefTensor | null, gyr: RefTensor): Promise<Float32Array[]> {
  backend.setKernelTiering(mode);
  try {
    const x = gpu(xr, true), w = gpu(wr, true), b = br ? gpu(br) : null;
    const y = F.conv2d(x, w, b, c.stride ?? 1, c.padding ?? 0, c.dilation ?? 1, c.groups ?? 1, { activation: c.relu ? 'relu' : 'none' });
    F.backward(y, { grad: gpu(gyr) });
    const out = [await y.data(), await x.grad!.data(), await w.grad!.data()] as Float32Array[];
    [x, w, b, y].forEach((t) => t?.dispose());
    return out;
  } finally {
    backend.setKernelTiering('off');
  }
}

function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length), w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  assert.is(g.length, w.length, `${what}: length`);
  const i = g.findIndex((v, k) => v !== w[k]);
  if (i >= 0) assert.unreachable(`${what}: element ${i} is ${got[i]} with the quick kernels, ${want[i]} with the fast ones`);
}

CASES.forEach((c, ci) => {
  test(`quick conv2d ${c.name}: float64 references, and the fast kernels' bits`, async () => {
    const xr = ref(c.x, 30 * ci + 1, -1, 1), wr = ref(c.w, 30 * ci + 2, -1, 1);
    const br = c.bias ? ref([c.w[0]!], 30 * ci + 3, -1, 1) : null;
    const p = params(c);
    let want = conv2dReference(xr, wr, br, p);
    if (c.relu) want = { shape: want.shape, data: want.data.map((v) => Math.max(v, 0)) };
    const gyr = ref(want.shape, 30 * ci + 4, -1, 1);
    const gyEff = c.relu ? { shape: gyr.shape, data: gyr.data.map((v, i) => (want.data[i]! > 0 ? v : 0)) } : gyr;
    const q0 = backend.tierStatus().quickDispatches;
    const quick = await run(c, 'quick', xr, wr, br, gyr);
    assert.ok(backend.tierStatus().quickDispatches - q0 >= 3, 'the quick variants ran (forward, input and weight gradients)');
    const shapes = [want.shape, c.x, c.w];
    const refs = [want, conv2dInputGradReference(gyEff, wr, c.x, p), conv2dWeightGradReference(gyEff, xr, c.w, p)];
    const names = ['forward', 'grad input', 'grad weight'];
    for (let k = 0; k < 3; k++) {
      await expectRef(F.tensor(quick[k]!, shapes[k]), refs[k]!, TOL, `${c.name} quick ${names[k]}`);
    }
    const q1 = backend.tierStatus().quickDispatches;
    const fast = await run(c, 'off', xr, wr, br, gyr);
    assert.is(backend.tierStatus().quickDispatches, q1, 'the fast variants ran');
    for (let k = 0; k < 3; k++) assertSameBits(quick[k]!, fast[k]!, `${c.name} ${names[k]}`);
  });
});

test('quick conv_transpose2d stride 2 (every stride phase) matches the reference and the fast bits', async () => {
  const xr = ref([2, 4, 5, 6], 401, -1, 1), wr = ref([4, 3, 3, 3], 402, -1, 1), br = ref([3], 403, -1, 1);
  const want = convTranspose2dReference(xr, wr, br, { stride: [2, 2], padding: [1, 1], outputPadding: [1, 1], dilation: [1, 1], groups: 1 });
  const out: Float32Array[] = [];
  for (const mode of ['quick', 'off'] as const) {
    backend.setKernelTiering(mode);
    const y = F.convTranspose2d(gpu(xr), gpu(wr), gpu(br), 2, 1, 1);
    out.push((await y.data()) as Float32Array);
    if (mode === 'quick') await expectRef(y, want, TOL, 'transposed quick');
  }
  backend.setKernelTiering('off');
  assertSameBits(out[0]!, out[1]!, 'transposed');
});

test('quick conv2d with the scale/shift/residual/relu epilogue matches the reference and the fast bits', async () => {
  const p: Conv2dRefParams = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
  const xr = ref([2, 3, 7, 13], 451, -1, 1), wr = ref([5, 3, 3, 3], 452, -1, 1), sr = ref([5], 453, 0.3, 1.7), br = ref([5], 454, -1, 1);
  const rr = ref([2, 5, 4, 7], 455, -1, 1);
  const want = conv2dEpilogueReference(xr, wr, sr, br, rr, true, p);
  const out: Float32Array[] = [];
  for (const mode of ['quick', 'off'] as const) {
    backend.setKernelTiering(mode);
    const q0 = backend.tierStatus().quickDispatches;
    const y = F.conv2d(gpu(xr), gpu(wr), gpu(br), 2, 1, 1, 1, { scale: gpu(sr), residual: gpu(rr), activation: 'relu' });
    assert.is(backend.tierStatus().quickDispatches - q0, mode === 'quick' ? 1 : 0, `${mode} ran`);
    await expectRef(y, want, TOL, `epilogue ${mode}`);
    out.push((await y.data()) as Float32Array);
  }
  backend.setKernelTiering('off');
  assertSameBits(out[0]!, out[1]!, 'epilogue');
});

test('quick conv2d under autocast (f16-rounded operands) gives the fast kernels\' bits', async () => {
  const c: Case = { name: 'autocast 3x3', x: [2, 5, 9, 11], w: [6, 5, 3, 3], padding: [1, 1], bias: true };
  const xr = ref(c.x, 501, -1, 1), wr = ref(c.w, 502, -1, 1), br = ref([6], 503, -1, 1), gyr = ref([2, 6, 9, 11], 504, -1, 1);
  const both = [];
  for (const mode of ['quick', 'off'] as const) both.push(await F.autocastAsync(() => run(c, mode, xr, wr, br, gyr)));
  for (let k = 0; k < 3; k++) assertSameBits(both[0]![k]!, both[1]![k]!, `autocast output ${k}`);
});

for (const [variant, N] of [['direct_v4_16x8', 20], ['direct_8x8', 19]] as const) {
  test(`quick matmul ${variant}: [2,37,13] @ [2,13,${N}] matches the reference and the fast bits, plain and autocast`, async () => {
    const ar = ref([2, 37, 13], 601, -1, 1), br = ref([2, 13, N], 602, -1, 1);
    setMatmulVariant(variant);
    try {
      for (const amp of [false, true]) {
        const out: Float32Array[] = [];
        for (const mode of ['quick', 'off'] as const) {
          backend.setKernelTiering(mode);
          const q0 = backend.tierStatus().quickDispatches;
          const c = await F.autocastAsync(async () => F.matmul(gpu(ar), gpu(br)), amp);
          assert.is(backend.tierStatus().quickDispatches - q0, mode === 'quick' ? 1 : 0, `${mode} ran`);
          if (mode === 'quick' && !amp) await expectRef(c, matmulReference(ar, br), TOL, `${variant} quick`);
          out.push((await c.data()) as Float32Array);
        }
        assertSameBits(out[0]!, out[1]!, `${variant}${amp ? ' autocast' : ''}`);
      }
    } finally {
      backend.setKernelTiering('off');
      setMatmulVariant(null);
    }
  });
}

test('quick multi-level RoIAlign: 3 levels, 19 channels (partial blocks), forward bits and backward reference', async () => {
  const C = 19;
  const featRefs = [ref([2, C, 12, 10], 701, -1, 1), ref([2, C, 6, 5], 702, -1, 1), ref([2, C, 3, 3], 703, -1, 1)];
  const scales = [1 / 2, 1 / 4, 1 / 8];
  // [batch, x1, y1, x2, y2] in image pixels (24 x 20): sizes 1.5 to 14 spread over the three levels.
  const boxes = [[0, 1, 2, 2.5, 3.5], [1, 3, 1, 9, 8], [0, 0.5, 0.5, 14, 12], [1, 10, 4, 12, 6], [0, 6, 6, 19, 22], [1, -1, -2, 4, 3], [0, 2, 9, 10, 13]];
  const rois: RefTensor = { shape: [boxes.length, 5], data: Float64Array.from(boxes.flat()) };
  const mp: LevelMapperParams = { kMin: 1, kMax: 3, canonicalScale: 8, canonicalLevel: 4, eps: 1e-6, variant: 'torchvision' };
  const levels = mapLevelsReference(rois.data, 5, 1, mp);
  assert.is(new Set(levels).size, 3, `boxes cover all levels: ${levels}`);
  const p: RoiAlignParams = { pooledH: 2, pooledW: 3, samplingRatio: 2, aligned: false };
  const gout = ref([boxes.length, C, 2, 3], 704, -1, 1);
  const outs: Float32Array[] = [];
  for (const mode of ['quick', 'off'] as const) {
    backend.setKernelTiering(mode);
    const feats = featRefs.map((r) => gpu(r, true));
    const q0 = backend.tierStatus().quickDispatches;
    const y = F.multiScaleRoiAlign(feats, gpu(rois), { outputSize: [2, 3], samplingRatio: 2, scales, canonicalScale: 8 });
    F.backward(y, { grad: gpu(gout) });
    outs.push((await y.data()) as Float32Array);
    if (mode === 'quick') {
      assert.ok(backend.tierStatus().quickDispatches - q0 >= 2, 'the quick variants ran');
      await expectRef(y, roiAlignReference(featRefs, rois, scales, p, levels), TOL, 'quick roi_align forward');
      const want = roiAlignBackwardReference(featRefs.map((r) => r.shape), gout, rois, scales, p, levels);
      for (let l = 0; l < 3; l++) await expectRef(feats[l]!.grad!, want[l]!, TOL, `quick roi_align grad level ${l}`);
    }
  }
  backend.setKernelTiering('off');
  assertSameBits(outs[0]!, outs[1]!, 'roi_align forward');
});

test.run();
