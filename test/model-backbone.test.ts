// The ResNet-50-FPN backbone against torchvision 0.14: its state-dict keys and shapes, and THE
// parity test: with the fixture's formula weights, our backbone + FPN on the fixture's input
// reproduces torchvision's fpn.0..fpn.3 and fpn.pool (shared/fixtures/torchvision-maskrcnn).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { fromData } from '../engine/tensor.js';
import { memory } from '../engine/index.js';
import { randn } from '../engine/ops/create.js';
import { sum } from '../engine/ops/reduce.js';
import { backward } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import { conv2d } from '../engine/ops/conv.js';
import { Conv2d, ConvTranspose2d } from '../engine/nn/conv-layers.js';
import { loadSafetensors, type HostTensor } from '../engine/safetensors.js';
import { noGrad } from '../engine/autograd.js';
import { BackboneWithFPN, FEATURE_NAMES } from '../model/backbone.js';
import { getPreset } from '../model/presets.js';
import { fixtureStateDict } from '../model/fixture-weights.js';
import { headStateShapes } from '../tools/fixture-weights.js';
import { RegionProposalNetwork } from '../model/rpn.js';
import { RoIHeads } from '../model/roi-heads.js';
import { ResNetBody, type BasicBlock } from '../model/resnet.js';
import { FrozenBatchNorm2d, type NormLayer } from '../engine/nn/norm-layers.js';
import * as F from '../engine/index.js';
import { assertClose } from './helpers/check.js';

await ready;

const FIXTURE = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/expected.safetensors';

/**
 * torchvision's resnet50 body + FPN keys, written out from the structure torchvision prints
 * (Bottleneck stages of 3, 4, 6, 3 blocks with planes 64..512 and a downsample in each stage's
 * first block; FrozenBatchNorm2d has the four buffers weight, bias, running_mean, running_var and
 * no num_batches_tracked; Conv2dNormActivation puts the FPN convs at child '0').
 */
function torchvisionBackboneShapes(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const bn = (p: string, c: number): void => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) m.set(`${p}.${k}`, [c]);
  };
  m.set('backbone.body.conv1.weight', [64, 3, 7, 7]);
  bn('backbone.body.bn1', 64);
  const blocks = [3, 4, 6, 3];
  let inplanes = 64;
  blocks.forEach((n, s) => {
    const planes = 64 * 2 ** s;
    for (let i = 0; i < n; i++) {
      const p = `backbone.body.layer${s + 1}.${i}`;
      m.set(`${p}.conv1.weight`, [planes, inplanes, 1, 1]);
      bn(`${p}.bn1`, planes);
      m.set(`${p}.conv2.weight`, [planes, planes, 3, 3]);
      bn(`${p}.bn2`, planes);
      m.set(`${p}.conv3.weight`, [planes * 4, planes, 1, 1]);
      bn(`${p}.bn3`, planes * 4);
      if (i === 0) {
        m.set(`${p}.downsample.0.weight`, [planes * 4, inplanes, 1, 1]);
        bn(`${p}.downsample.1`, planes * 4);
      }
      inplanes = planes * 4;
    }
  });
  [256, 512, 1024, 2048].forEach((c, i) => {
    m.set(`backbone.fpn.inner_blocks.${i}.0.weight`, [256, c, 1, 1]);
    m.set(`backbone.fpn.inner_blocks.${i}.0.bias`, [256]);
  });
  for (let i = 0; i < 4; i++) {
    m.set(`backbone.fpn.layer_blocks.${i}.0.weight`, [256, 256, 3, 3]);
    m.set(`backbone.fpn.layer_blocks.${i}.0.bias`, [256]);
  }
  return m;
}

function ourShapes(model: BackboneWithFPN): Map<string, number[]> {
  return new Map(Object.entries(model.stateDict()).map(([k, t]) => [`backbone.${k}`, [...t.shape]]));
}

let fixture: Record<string, HostTensor> | null = null;
function loadFixture(): Record<string, HostTensor> {
  if (!fixture) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(FIXTURE);
    } catch (e) {
      throw new Error(`parity fixture not found at ${FIXTURE} (run the tests from the repo root, with shared/ beside it): ${(e as Error).message}`);
    }
    fixture = loadSafetensors(bytes).tensors;
  }
  return fixture;
}

test('nn.Conv2d / nn.ConvTranspose2d: torch names, shapes and default init bounds', async () => {
  const c = new Conv2d(6, 10, [3, 5], { stride: 2, padding: [1, 2], groups: 2 });
  assert.equal(Object.keys(c.stateDict()), ['weight', 'bias']);
  assert.equal([...c.weight.shape], [10, 3, 3, 5]);
  // kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 3*3*5 = 45, bias alike.
  const bound = 1 / Math.sqrt(45);
  const w = await c.weight.data(), b = await c.bias!.data();
  const absMax = (a: ArrayLike<number>): number => Math.max(...Array.from(a, Math.abs));
  assert.ok(absMax(w) <= bound && absMax(w) > 0.8 * bound, `weight range ${absMax(w)} vs bound ${bound}`);
  assert.ok(absMax(b) <= bound);
  const x = randn([2, 6, 7, 9]);
  const y = c.forward(x);
  assert.equal([...y.shape], [2, 10, 4, 5]);
  const yRef = conv2d(x, c.weight, c.bias, 2, [1, 2], 1, 2);
  assert.equal(Array.from(await y.data()), Array.from(await yRef.data()));
  // ConvTranspose2d: weight [in, out/groups, kh, kw], torch fan_in = (out/groups)*kh*kw = 8*2*2.
  const d = new ConvTranspose2d(4, 8, 2, { stride: 2 });
  assert.equal([...d.weight.shape], [4, 8, 2, 2]);
  assert.ok(absMax(await d.weight.data()) <= 1 / Math.sqrt(32) && absMax(await d.weight.data()) > 0.8 / Math.sqrt(32));
  assert.equal([...d.forward(randn([1, 4, 3, 5])).shape], [1, 8, 6, 10]);
  // kaiming_normal fan_out (ResNet) zeroes the bias; a bias-free conv has only 'weight'.
  assert.equal(Object.keys(new Conv2d(3, 4, 1, { bias: false }).stateDict()), ['weight']);
  assert.throws(() => new Conv2d(6, 10, 3, { groups: 4 }), /divisible by groups/);
  assert.throws(() => c.forward(randn([1, 5, 7, 9])), /should be \[N, 6, H, W\]/);
  for (const t of [x, y, yRef]) t.dispose();
  c.dispose();
  d.dispose();
});

const model = new BackboneWithFPN(getPreset('torchvision-r50-fpn'));

test('state dict: torchvision resnet50-FPN keys and shapes', () => {
  const want = torchvisionBackboneShapes();
  const got = ourShapes(model);
  // 307 tensors in the whole model (fixture README) minus the heads' 26: rpn.head (conv, cls_logits,
  // bbox_pred: 6), box_head fc6/fc7 (4), box_predictor (4), mask_head 4 convs (8), mask_predictor (4).
  assert.is(want.size, 307 - 26);
  assert.is(got.size, want.size, 'number of backbone state-dict tensors');
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  assert.equal(missing, [], 'keys torchvision has and we lack');
  assert.equal(extra, [], 'keys we have and torchvision lacks');
  // With the heads as tools/fixture-weights lists them: the README's 307.
  assert.is(got.size + headStateShapes(getPreset('torchvision-r50-fpn')).length, 307);
  for (const [k, s] of want) assert.equal(got.get(k), s, `shape of ${k}`);
  // Names the brief and the fixture spell out.
  for (const k of ['backbone.body.conv1.weight', 'backbone.body.bn1.running_var', 'backbone.body.layer1.0.downsample.1.weight', 'backbone.fpn.inner_blocks.0.0.weight', 'backbone.fpn.layer_blocks.3.0.bias']) {
    assert.ok(got.has(k), k);
  }
});

test('state dict: the heads of MaskRCNN have torchvision 0.14 keys and shapes (as tools/fixture-weights lists them)', () => {
  for (const name of ['torchvision-r50-fpn', 'tiny']) {
    const cfg = getPreset(name, { numClasses: 5 });
    const rpn = new RegionProposalNetwork(cfg);
    const heads = new RoIHeads(cfg);
    const got = [
      ...Object.entries(rpn.stateDict()).map(([k, t]) => [`rpn.${k}`, [...t.shape]]),
      ...Object.entries(heads.stateDict()).map(([k, t]) => [`roi_heads.${k}`, [...t.shape]]),
    ].sort();
    assert.equal(got, headStateShapes(cfg).sort(), name);
    rpn.dispose();
    heads.dispose();
  }
});

test('state dict: shapes agree with the gradients stored in the fixture', () => {
  const fx = loadFixture();
  const got = ourShapes(model);
  let n = 0;
  for (const [key, t] of Object.entries(fx)) {
    const m = /^grad\.(backbone\..*?)(\[0:(\d+)\])?$/.exec(key);
    if (!m) continue;
    const shape = [...got.get(m[1]!)!];
    if (m[3]) shape[0] = Math.min(shape[0]!, Number(m[3]));
    assert.equal(t.shape, shape, key);
    n++;
  }
  assert.is(n, 4);
});

test('frozen stages: stem and layer1 frozen, layer2..4 and FPN trainable (trainable_layers=3)', () => {
  const params = model.namedParameters();
  assert.ok(params.length > 0);
  for (const [name, p] of params) {
    const frozen = name.startsWith('body.conv1.') || name.startsWith('body.bn1.') || name.startsWith('body.layer1.');
    assert.is(p.requiresGrad, !frozen, name);
  }
  // FrozenBatchNorm2d holds buffers, not parameters: no norm tensor is trainable.
  assert.not.ok(params.some(([n]) => /\.(bn\d|downsample\.1)\./.test(n)));
});

test('tiny preset (basic blocks, GN, all trainable): shapes, backward reaches every parameter, no leaks', async () => {
  await settleGarbage();
  const tiny = new BackboneWithFPN(getPreset('tiny'));
  const sd = tiny.stateDict();
  assert.equal([...sd['body.conv1.weight']!.shape], [16, 3, 7, 7]);
  assert.equal([...sd['body.layer1.0.conv2.weight']!.shape], [16, 16, 3, 3]);
  assert.ok(!('body.layer1.0.downsample.0.weight' in sd), 'no projection where the shape is unchanged (BasicBlock)');
  assert.equal([...sd['body.layer2.0.downsample.0.weight']!.shape], [32, 16, 1, 1]);
  assert.equal([...sd['body.layer4.1.bn2.weight']!.shape], [128]);
  assert.equal([...sd['fpn.inner_blocks.3.0.weight']!.shape], [64, 128, 1, 1]);
  const before = memory().liveBytes;
  const x = randn([2, 3, 37, 53]);
  const feats = tiny.forward(x);
  // Odd input: strides 4..64 with ceil-ish conv arithmetic (37x53 -> 10x14, 5x7, 3x4, 2x2, 1x1).
  assert.equal(FEATURE_NAMES.map((n) => [...feats.get(n)!.shape]), [[2, 64, 10, 14], [2, 64, 5, 7], [2, 64, 3, 4], [2, 64, 2, 2], [2, 64, 1, 1]]);
  const total = tidy(() => {
    let acc = sum(feats.get('0')!);
    for (const n of FEATURE_NAMES.slice(1)) acc = acc.add(sum(feats.get(n)!));
    return acc;
  });
  backward(total);
  for (const [name, p] of tiny.namedParameters()) {
    assert.ok(p.requiresGrad, `${name} trains in the tiny preset`);
    assert.ok(p.grad, `${name} has a gradient`);
  }
  total.dispose();
  x.dispose();
  for (const t of feats.values()) t.dispose();
  tiny.zeroGrad();
  tiny.dispose();
  await settleGarbage();
  assert.ok(memory().liveBytes <= before, `live bytes ${memory().liveBytes} > ${before} before the tiny model ran (leak)`);
});

test('frozen batch norm folds into the trunk convs (nn.convNorm): no norm dispatch, same outputs and gradients as conv then norm', async () => {
  const cfg = getPreset('tiny', { backbone: { norm: 'frozen_bn', trainableLayers: 5 } }).backbone;
  const body = new ResNetBody(cfg);
  // Non-trivial frozen statistics and affine in every norm (registerBuffer drops the kept scale and shift).
  let seed = 900;
  for (const [, m] of body.namedModules()) {
    if (!(m instanceof FrozenBatchNorm2d)) continue;
    const C = m.numFeatures, u = (lo: number, hi: number): F.Tensor => F.rand([C], { low: lo, high: hi, rng: new F.Rng(seed++) });
    m.registerBuffer('weight', u(0.5, 1.5));
    m.registerBuffer('bias', u(-0.5, 0.5));
    m.registerBuffer('running_mean', u(-0.3, 0.3));
    m.registerBuffer('running_var', u(0.5, 2));
  }
  // The trunk as conv then norm, each its own layer (what ResNetBody ran before the fusion).
  const cn = (conv: Conv2d, norm: NormLayer, x: F.Tensor, e: F.NormEpilogue = {}): F.Tensor => norm.forward(conv.forward(x), e);
  const unfused = (x: F.Tensor): F.Tensor[] => {
    let h = F.maxPool2d(cn(body.conv1, body.bn1, x, { relu: true }), 3, 2, 1);
    const outs: F.Tensor[] = [];
    for (const layer of body.layers) {
      for (const b of layer.layers as BasicBlock[]) {
        const out = cn(b.conv1, b.bn1, h, { relu: true });
        const identity = b.downsample ? b.downsample.forward(h) : h;
        h = cn(b.conv2, b.bn2, out, { residual: identity, relu: true });
      }
      outs.push(h);
    }
    return outs;
  };
  const xr = F.randn([2, 3, 37, 53], { rng: new F.Rng(7) });
  const run = async (fused: boolean): Promise<{ outs: Float32Array[]; grads: Float32Array[]; norms: number }> => {
    body.zeroGrad();
    const x = xr.detach();
    x.requiresGrad = true;
    F.getBackend().tallyDispatches(true);
    const outs = tidy(() => (fused ? body.forward(x) : unfused(x)));
    const total = tidy(() => outs.map((o, i) => sum(o.mul(i + 1))).reduce((a, b) => a.add(b)));
    backward(total);
    const norms = F.getBackend().tallyDispatches(false).filter(([k]) => k.includes('frozen_batch_norm')).reduce((n, [, v]) => n + v, 0);
    const res = { outs: await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>)), grads: [(await x.grad!.data()) as Float32Array, ...(await Promise.all(body.namedParameters().map(([, p]) => p.grad!.data() as Promise<Float32Array>)))], norms };
    [...outs, total, x].forEach((t) => t.dispose());
    return res;
  };
  const plain = await run(false), fused = await run(true);
  assert.ok(plain.norms > 0, 'the unfused walk runs frozen batch norm kernels');
  assert.is(fused.norms, 0, 'the trunk runs no frozen batch norm kernel, forward or backward');
  const tol = { atol: 1e-5, rtol: 1e-4 };
  fused.outs.forEach((o, i) => assertClose(o, plain.outs[i]!, tol, `C${i + 2}`));
  fused.grads.forEach((g, i) => assertClose(g, plain.grads[i]!, { atol: 1e-4, rtol: 1e-3 }, i === 0 ? 'grad input' : `grad ${body.namedParameters()[i - 1]![0]}`));
  xr.dispose();
  body.dispose();
});

// The features' parity with torchvision (fpn.0..3, fpn.pool) is checked in model-parity.test.ts,
// which runs the whole model on the fixture once.

test.run();
