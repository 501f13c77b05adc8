// The conv spatial kernel's packed weight textures (CPU adapters; forced on here so that any adapter
// runs them): the packing kernel, single and dual, against its float64 reference on odd shapes
// (output channels not a multiple of 4, groups, 1x1 and 3x3, the f16 rounding form); and the kept
// textures of engine/ops/conv-weight-pack.ts: reused while the weight is unchanged, packed again
// after every kind of in-place write (an optimizer step, copy, fill, a checkpoint load, a buffer
// copy), released with the weight, and no texture created by a repeated training step.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { getBackend } from '../engine/backend.js';
import { fillInPlace, copyInto } from '../engine/ops/copy.js';
import { setConvWeightTexture } from '../engine/ops/conv.js';
import { dispatchWeightPack, dispatchWeightPacks, type WeightLayout } from '../engine/ops/conv-weight-pack.js';
import { packWeightsReference, weightTextureSize, PACK_WEIGHTS_MAX_BATCH } from '../kernels/conv-weight-texture.js';
import { spatialWeightStrides } from '../kernels/conv-gemm.js';
import { conv2dReference, conv2dInputGradReference, type Conv2dRefParams } from '../kernels/conv.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const TOL = { atol: 1e-4, rtol: 1e-4 };
// Numeric WebGPU flags (no globals needed).
const TEX_USAGE = 0x1 /* COPY_SRC */ | 0x4 /* TEXTURE_BINDING */ | 0x8 /* STORAGE_BINDING */;
const BUF_MAP_READ = 0x1, BUF_COPY_DST = 0x8;

function newTexture(l: WeightLayout): GPUTexture {
  const [width, height] = weightTextureSize(l.kc, l.nc, l.KHW, l.groups);
  return getBackend().device.createTexture({ size: [width, height], format: 'rgba32float', usage: TEX_USAGE });
}

/** A texture's texels (after all recorded work), rows packed: texel (x, y) at (y*width + x)*4. */
async function readTexture(texture: GPUTexture): Promise<Float32Array> {
  const b = getBackend();
  b.flush();
  const { width, height } = texture;
  const bytesPerRow = Math.ceil((width * 16) / 256) * 256;
  const buf = b.device.createBuffer({ size: bytesPerRow * height, usage: BUF_MAP_READ | BUF_COPY_DST });
  const enc = b.device.createCommandEncoder();
  enc.copyTextureToBuffer({ texture }, { buffer: buf, bytesPerRow }, [width, height]);
  b.device.queue.submit([enc.finish()]);
  await buf.mapAsync(1);
  const raw = new Float32Array(buf.getMappedRange().slice(0));
  buf.unmap();
  buf.destroy();
  const out = new Float32Array(width * height * 4);
  for (let y = 0; y < height; y++) out.set(raw.subarray((y * bytesPerRow) / 4, (y * bytesPerRow) / 4 + width * 4), y * width * 4);
  return out;
}

const swap = (l: WeightLayout): WeightLayout => ({ ...l, mode: l.mode === 'fwd' ? 'bwdInput' : 'fwd', kc: l.nc, nc: l.kc });

// [Cout, Cin/groups, KH, KW], groups: fwd layout kc = Cin/groups, nc = Cout/groups.
const SHAPES: { w: [number, number, number, number]; groups: number }[] = [
  { w: [5, 3, 3, 3], groups: 1 }, // Cout not a multiple of 4
  { w: [9, 2, 3, 3], groups: 3 }, // groups, 3 output channels each
  { w: [19, 7, 1, 1], groups: 1 }, // 1x1, several texel rows
  { w: [6, 1, 3, 3], groups: 3 }, // depthwise, multiplier 2
  { w: [3, 10, 1, 1], groups: 1 }, // fewer outputs than inputs: the dual grid is the other layout's
];

for (const roundF16 of [false, true]) {
  test(`conv weight pack${roundF16 ? ' (f16 rounding)' : ''}: single packs match the reference, the dual pack both single packs`, async () => {
    for (const [si, s] of SHAPES.entries()) {
      const [Cout, cinG, KH, KW] = s.w;
      // f16: values of many mantissa bits, some past f16's range and in its subnormals.
      const wr = ref(s.w, 90 + si, -3, 3);
      if (roundF16) wr.data[0] = 70000, wr.data[1] = 3e-6, wr.data[2] = -1 - 2 ** -11;
      const w = gpu(wr);
      const fwd: WeightLayout = { mode: 'fwd', kc: cinG, nc: Cout / s.groups, KHW: KH * KW, groups: s.groups, roundF16 };
      const layouts = [fwd, swap(fwd)];
      const singles = layouts.map(newTexture), duals = layouts.map(newTexture);
      layouts.forEach((l, i) => dispatchWeightPack(w.storage.buffer, l, [singles[i]!.createView()], 'test'));
      dispatchWeightPack(w.storage.buffer, fwd, duals.map((t) => t.createView()), 'test');
      for (const [i, l] of layouts.entries()) {
        const { wJ, wC } = spatialWeightStrides(l.mode, l.kc, l.nc, l.KHW);
        const want = packWeightsReference(wr.data, l.kc, l.nc, l.KHW, l.groups, wJ, wC, roundF16);
        const single = await readTexture(singles[i]!), dual = await readTexture(duals[i]!);
        const what = `w${JSON.stringify(s.w)} groups ${s.groups} ${l.mode}`;
        assert.equal(Array.from(single), Array.from(want), `${what}: single pack vs reference`);
        assert.equal(Array.from(dual), Array.from(single), `${what}: dual pack vs single pack`);
      }
      [...singles, ...duals].forEach((t) => t.destroy());
      w.dispose();
    }
  });
}

for (const [roundF16, dual] of [[false, false], [false, true], [true, true]] as const) {
  test(`conv weight pack batches${dual ? ' (both modes)' : ''}${roundF16 ? ' (f16 rounding)' : ''}: each weight of a batch matches the reference`, async () => {
    // Every shape in one list, cut into batches of the largest size and a shorter last one.
    const ws = SHAPES.map((s, si) => ({ s, wr: ref(s.w, 120 + si, -3, 3) }));
    const jobs = ws.map(({ s, wr }) => {
      const [Cout, cinG, KH, KW] = s.w;
      const fwd: WeightLayout = { mode: 'fwd', kc: cinG, nc: Cout / s.groups, KHW: KH * KW, groups: s.groups, roundF16 };
      const ls = dual ? [fwd, swap(fwd)] : [fwd];
      const textures = ls.map(newTexture);
      return { w: gpu(wr), wr, s, ls, textures };
    });
    for (let at = 0; at < jobs.length; at += PACK_WEIGHTS_MAX_BATCH) {
      dispatchWeightPacks(jobs.slice(at, at + PACK_WEIGHTS_MAX_BATCH).map((j) => ({ w: j.w.storage.buffer, l: j.ls[0]!, views: j.textures.map((t) => t.createView()) })), 'test');
    }
    for (const j of jobs) {
      for (const [i, l] of j.ls.entries()) {
        const { wJ, wC } = spatialWeightStrides(l.mode, l.kc, l.nc, l.KHW);
        const want = packWeightsReference(j.wr.data, l.kc, l.nc, l.KHW, l.groups, wJ, wC, roundF16);
        assert.equal(Array.from(await readTexture(j.textures[i]!)), Array.from(want), `w${JSON.stringify(j.s.w)} groups ${j.s.groups} ${l.mode}: batched pack vs reference`);
      }
      j.textures.forEach((t) => t.destroy());
      j.w.dispose();
    }
  });
}

/** Weights packed by single and by dual packs, and pack dispatches, recorded by fn. */
function packs<T>(fn: () => T): { result: T; single: number; dual: number; dispatches: number } {
  const b = getBackend();
  b.tallyDispatches(true);
  const result = fn();
  const rows = b.tallyDispatches(false);
  // Weights packed (a batch entry _xK packs K) by single and by dual packs, and the dispatches.
  const count = (entry: string) => rows.reduce((s, [k, n]) => {
    const m = new RegExp(`\\[${entry}(?:_x(\\d+))?(?:_f16)?\\]$`).exec(k);
    return m ? s + n * Number(m[1] ?? 1) : s;
  }, 0);
  const dispatches = rows.filter(([k]) => /\[conv_pack_weights/.test(k)).reduce((s, [, n]) => s + n, 0);
  return { result, single: count('conv_pack_weights'), dual: count('conv_pack_weights_dual'), dispatches };
}

/** Runs fn with the weight textures forced on and the fast kernels dispatched outright. */
async function withTextures(fn: () => Promise<void>): Promise<void> {
  const b = getBackend();
  const mode = b.tierStatus().mode;
  setConvWeightTexture(true);
  b.setKernelTiering('off');
  try {
    await fn();
  } finally {
    setConvWeightTexture(null);
    b.setKernelTiering(mode);
  }
}

const P: Conv2dRefParams = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
const X = [2, 3, 7, 9], W = [5, 3, 3, 3];
const conv = (x: F.Tensor, w: F.Tensor) => F.conv2d(x, w, null, 2, 1);
/** Forward and backward of sum(conv(x, w)); the gradients are kept on the leaves, x disposed when disposeX. */
function trainStep(x: F.Tensor, w: F.Tensor, disposeX = false): void {
  const y = conv(x, w), s = F.sum(y);
  F.backward(s);
  [s, y].forEach((t) => t.dispose());
  if (disposeX) x.dispose();
}
const host = async (t: F.Tensor): Promise<RefTensor> => ({ shape: [...t.shape], data: Float64Array.from(await t.data()) });

test('kept weight textures: reused while the weight is unchanged; the forward packs the backward\'s too', () => withTextures(async () => {
  const xr = ref(X, 1, -1, 1), wr = ref(W, 2, -1, 1);
  const want = conv2dReference(xr, wr, null, P);
  const x = gpu(xr), w = gpu(wr);
  // Inference: packed once, then read as it is.
  const a = packs(() => conv(x, w));
  await expectRef(a.result, want, TOL, 'first forward');
  const b = packs(() => conv(x, w));
  await expectRef(b.result, want, TOL, 'second forward');
  assert.equal([a.single, a.dual, b.single, b.dual], [1, 0, 0, 0]);
  // Training (the input requires grad), on a weight not packed yet: the forward packs the input
  // gradient's texture in the same dispatch, and the backward's four stride phases pack nothing.
  const w2 = gpu(wr), xg = gpu(xr, true);
  const f = packs(() => conv(xg, w2));
  await expectRef(f.result, want, TOL, 'training forward');
  const gyr = ref(want.shape, 3, -1, 1);
  const bw = packs(() => F.backward(f.result, { grad: gpu(gyr) }));
  await expectRef(xg.grad!, conv2dInputGradReference(gyr, wr, X, P), TOL, 'input gradient');
  assert.equal([f.single, f.dual, bw.single, bw.dual], [0, 1, 0, 0]);
  // The f16 form is its own layout; the fp32 texture stays current beside it.
  const h = packs(() => F.autocast(() => conv(x, w)));
  const g = packs(() => conv(x, w));
  await expectRef(g.result, want, TOL, 'fp32 forward after an autocast one');
  assert.equal([h.single, g.single], [1, 0]);
  [x, w, w2, xg, a.result, b.result, f.result, g.result, h.result].forEach((t) => t.dispose());
}));

test('kept weight textures: every in-place writer of the weight makes the next conv pack again', () => withTextures(async () => {
  const xr = ref(X, 4, -1, 1);
  const x = gpu(xr);
  const m = new F.nn.Conv2d(3, 5, 3, { stride: 2, padding: 1, bias: false });
  const w = m.weight;
  /** The next forward packs once and matches the reference on the weight's values now. */
  const check = async (what: string, expectChanged: RefTensor | null) => {
    const now = await host(w);
    if (expectChanged) assert.not.equal(Array.from(now.data), Array.from(expectChanged.data), `${what}: the writer changed the weight`);
    const r = packs(() => F.noGrad(() => conv(x, w)));
    await expectRef(r.result, conv2dReference(xr, now, null, P), TOL, `${what}: forward on the new weight`);
    assert.is(r.single + r.dual, 1, `${what}: packed again`);
    r.result.dispose();
    return now;
  };
  let before = await check('first use', null);
  const writers: [string, () => void][] = [
    ['SGD step', () => {
      const opt = new F.optim.SGD([w], { lr: 0.5, momentum: 0.9 });
      trainStep(gpu(xr, true), w, true);
      opt.step();
      m.zeroGrad();
    }],
    ['fill', () => void fillInPlace(w, 0.25)],
    ['copy from a tensor', () => F.tidy(() => copyInto(w, gpu(ref(W, 5, -1, 1))))],
    ['checkpoint load (host values)', () => void m.loadStateDict({ weight: { dtype: 'float32', shape: W, data: Float32Array.from(ref(W, 6, -1, 1).data) } })],
    ['checkpoint load (a tensor)', () => F.tidy(() => void m.loadStateDict({ weight: gpu(ref(W, 7, -1, 1)) }))],
    ['buffer copy', () => {
      const src = gpu(ref(W, 8, -1, 1));
      getBackend().copy(src.storage.buffer, 0, w.storage.buffer, 0, src.size * 4);
      src.dispose();
    }],
  ];
  for (const [what, write] of writers) {
    // Used (texture current) right before the write, so a missed write would read a stale texture.
    const r = packs(() => F.noGrad(() => conv(x, w)));
    assert.is(r.single + r.dual, 0, `${what}: current before the write`);
    r.result.dispose();
    write();
    before = await check(what, before);
  }
  m.dispose();
  x.dispose();
}));

test('kept weight textures: released with the weight, reused by the next of that size, none created by repeated steps', () => withTextures(async () => {
  const be = getBackend();
  const xr = ref(X, 9, -1, 1), wr = ref(W, 10, -1, 1);
  const x = gpu(xr, true), w = gpu(wr, true);
  const held0 = be.keptTextures.stats();
  trainStep(x, w); // both modes packed and kept
  [x, w].forEach((t) => { t.grad?.dispose(); t.grad = null; });
  const held1 = be.keptTextures.stats();
  const kept = (h: typeof held0) => h.textures - h.idle;
  assert.is(kept(held1) - kept(held0), 2, 'two textures kept');
  w.dispose();
  const held2 = be.keptTextures.stats();
  assert.equal([kept(held2), held2.idle - held1.idle], [kept(held0), 2], 'idle once the weight is freed');
  // A new weight of that shape takes the idle textures: none created.
  const c0 = F.counters().texturesCreated;
  const w3 = gpu(ref(W, 11, -1, 1), true);
  const opt = new F.optim.SGD([w3], { lr: 0.1 });
  const step = () => {
    const r = packs(() => trainStep(x, w3));
    opt.step();
    w3.grad?.dispose();
    w3.grad = null;
    x.grad?.dispose();
    x.grad = null;
    return r;
  };
  for (let i = 0; i < 3; i++) {
    const r = step();
    assert.equal([r.single, r.dual], [0, 1], `step ${i}: one pack of both modes`);
  }
  assert.is(F.counters().texturesCreated - c0, 0, 'no texture created');
  // trim() retires the idle ones; disposing the last weight and trimming leaves what was held before.
  w3.dispose();
  be.trim();
  be.flush();
  const held3 = be.keptTextures.stats();
  assert.equal([held3.textures, held3.idle], [kept(held0), 0], 'only the textures of weights alive before');
  assert.ok(held3.bytes <= held0.bytes, `bytes ${held3.bytes} back within what was held before (${held0.bytes})`);
  x.dispose();
}));

test('kept weight textures: after an optimizer step, the first conv packs every stale weight in batches', () => withTextures(async () => {
  // Six trainable convs in a chain (the input requires grad, so each keeps both modes' textures).
  const chans = [3, 5, 4, 7, 6, 3, 5];
  const convs = chans.slice(1).map((c, i) => new F.nn.Conv2d(chans[i]!, c, 3, { padding: 1, bias: false }));
  const weights = convs.map((m) => m.weight);
  const opt = new F.optim.SGD(weights, { lr: 0.1, momentum: 0.9 });
  const xr = ref([2, 3, 6, 5], 12, -1, 1);
  const forward = (x: F.Tensor) => convs.reduce((h, m) => F.relu(m.forward(h)), x);
  const step = () => packs(() => {
    const x = gpu(xr, true);
    const y = forward(x), s = F.sum(y);
    F.backward(s);
    opt.step();
    opt.zeroGrad();
    [x, y, s].forEach((t) => t.dispose());
  });
  step(); // warm-up: each weight packs its own textures as its conv first runs
  const c0 = F.counters().texturesCreated;
  for (let i = 0; i < 2; i++) {
    const r = step();
    // 6 stale weights, both modes each: a batch of 4 and one of 2.
    assert.equal([r.single, r.dual, r.dispatches], [0, 6, Math.ceil(6 / PACK_WEIGHTS_MAX_BATCH)], `step ${i}: every weight packed, in batches`);
  }
  assert.is(F.counters().texturesCreated - c0, 0, 'no texture created');
  // The batched textures hold the weights as they are now: the forward and the input gradient match
  // the references on the weights' present values.
  const host64 = await Promise.all(weights.map(host));
  const x = gpu(xr, true);
  const y = forward(x);
  let h: RefTensor = xr;
  const pre: RefTensor[] = [];
  for (const w of host64) {
    const z = conv2dReference(h, w, null, { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 });
    pre.push(z);
    h = { shape: z.shape, data: z.data.map((v) => Math.max(v, 0)) };
  }
  await expectRef(y, h, TOL, 'forward after the batched packs');
  F.backward(F.sum(y));
  // Input gradient through the chain: ones through each relu mask and conv's input gradient.
  let gr: RefTensor = { shape: h.shape, data: h.data.map(() => 1) };
  for (let i = host64.length - 1; i >= 0; i--) {
    const masked = { shape: gr.shape, data: gr.data.map((v, k) => (pre[i]!.data[k]! > 0 ? v : 0)) };
    gr = conv2dInputGradReference(masked, host64[i]!, i === 0 ? xr.shape : pre[i - 1]!.shape, { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 });
  }
  await expectRef(x.grad!, gr, TOL, 'input gradient after the batched packs');
  [x, y].forEach((t) => t.dispose());
  opt.zeroGrad();
  convs.forEach((m) => m.dispose());
}));

test.run();
