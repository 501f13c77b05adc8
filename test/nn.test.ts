// nn: Module naming (PyTorch dotted keys), buffers, state dicts and their key report, modes,
// zeroGrad/dispose, and Linear (torch's init bounds, forward vs float64, gradients vs finite differences).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { checkOp, ref, gpu, expectRef } from './helpers/check.js';
import { nn, tensor, tidy, sum, mul, memory, saveSafetensors, loadSafetensors, Rng, zeros, noGrad, type Tensor } from '../engine/index.js';
import { copyInto } from '../engine/ops/copy.js'; // internal: the in-place copy behind loadStateDict
import type { RefTensor } from '../kernels/common.js';

await ready;

// A torchvision-like nesting: model.layer1.0.conv1.weight, model.layer1.0.bn1.running_mean, model.fc.*
class Norm extends nn.Module {
  constructor(c: number) {
    super();
    this.registerParameter('weight', tensor(new Float32Array(c).fill(1), [c]));
    this.registerParameter('bias', zeros([c]));
    this.registerBuffer('running_mean', zeros([c]));
    this.registerBuffer('scratch', zeros([c]), { persistent: false });
  }
}
class Block extends nn.Module {
  constructor(rng: Rng) {
    super();
    this.registerModule('conv1', new nn.Linear(3, 4, { bias: false, rng }));
    this.registerModule('bn1', new Norm(4));
  }
}
class Net extends nn.Module {
  constructor(seed: number) {
    super();
    const rng = new Rng(seed);
    this.registerParameter('scale', tensor([1.5], [1]));
    this.registerModule('layer1', new nn.Sequential(new Block(rng) as nn.Layer, new Block(rng) as nn.Layer));
    this.registerModule('fc', new nn.Linear(4, 2, { rng }));
  }
}

test('dotted names follow PyTorch: own parameters first, then children in registration order', () => {
  const net = new Net(1);
  assert.equal(net.namedParameters().map(([n]) => n), [
    'scale',
    'layer1.0.conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.bn1.bias',
    'layer1.1.conv1.weight', 'layer1.1.bn1.weight', 'layer1.1.bn1.bias',
    'fc.weight', 'fc.bias',
  ]);
  assert.equal(net.namedBuffers().map(([n]) => n), ['layer1.0.bn1.running_mean', 'layer1.0.bn1.scratch', 'layer1.1.bn1.running_mean', 'layer1.1.bn1.scratch']);
  // torch's state_dict: each module's parameters, then its persistent buffers, then its children.
  assert.equal(Object.keys(net.stateDict()), [
    'scale',
    'layer1.0.conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.bn1.running_mean',
    'layer1.1.conv1.weight', 'layer1.1.bn1.weight', 'layer1.1.bn1.bias', 'layer1.1.bn1.running_mean',
    'fc.weight', 'fc.bias',
  ]);
  assert.equal(net.namedModules().map(([n]) => n), ['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'layer1.0.bn1', 'layer1.1', 'layer1.1.conv1', 'layer1.1.bn1', 'fc']);
  assert.is(net.numParameters(), 1 + 2 * (12 + 4 + 4) + 8 + 2);
  for (const p of net.parameters()) assert.ok(p.requiresGrad, 'parameters require grad');
  for (const b of net.buffers()) assert.not.ok(b.requiresGrad, 'buffers do not');
  net.dispose();
});

test('shared submodules are listed once; bad names and kind clashes are errors', () => {
  class Tied extends nn.Module {
    constructor() {
      super();
      const l = new nn.Linear(2, 2);
      this.registerModule('a', l);
      this.registerModule('b', l);
    }
  }
  const t = new Tied();
  assert.equal(t.namedParameters().map(([n]) => n), ['a.weight', 'a.bias']);
  assert.throws(() => t.registerParameter('x.y', zeros([1])), /'x\.y' must be non-empty and contain no '\.'/);
  assert.throws(() => t.registerBuffer('a', zeros([1])), /'a' is already registered as a module/);
  assert.throws(() => t.registerParameter('i', tensor([1, 2], [2], 'int32')), /parameter 'i' must be float32/);
  t.dispose();
});

test('train()/eval() reach every submodule', () => {
  const net = new Net(2);
  assert.ok(net.namedModules().every(([, m]) => m.training));
  net.eval();
  assert.ok(net.namedModules().every(([, m]) => !m.training));
  net.train();
  assert.ok(net.namedModules().every(([, m]) => m.training));
  net.dispose();
});

test('state dict round trip through safetensors restores every parameter and buffer', async () => {
  const a = new Net(3);
  // Give a buffer a non-default value so buffers are shown to travel too.
  const rm = a.getModule('layer1')!.getModule('1')!.getModule('bn1')!.getBuffer('running_mean')!;
  const v = tensor([0.5, -1, 2, 3], [4]);
  copyInto(rm, v);
  v.dispose();
  const bytes = await saveSafetensors(a.stateDict());
  const b = new Net(4);
  const fcBefore = b.getModule('fc')!.getParameter('weight')!;
  assert.not.equal(await b.stateDict()['fc.weight']!.toArray(), await a.stateDict()['fc.weight']!.toArray(), 'different seeds start different');
  const report = b.loadStateDict(loadSafetensors(bytes).tensors);
  assert.equal(report.missingKeys, []);
  assert.equal(report.unexpectedKeys, []);
  assert.is(report.loaded.length, 11);
  for (const [k, t] of Object.entries(a.stateDict())) {
    assert.equal(await b.stateDict()[k]!.toArray(), await t.toArray(), `${k} restored`);
  }
  assert.is(b.getModule('fc')!.getParameter('weight'), fcBefore, 'loaded in place (optimizers keep their references)');
  // A dict of GPU tensors loads too.
  const c = new Net(5);
  c.loadStateDict(a.stateDict());
  assert.equal(await c.stateDict()['layer1.0.conv1.weight']!.toArray(), await a.stateDict()['layer1.0.conv1.weight']!.toArray());
  for (const m of [a, b, c]) m.dispose();
});

test('loadStateDict reports missing, unexpected and mis-shaped keys', async () => {
  const net = new Net(6);
  const before = await net.stateDict()['fc.bias']!.toArray();
  const sd: Record<string, Tensor> = { ...net.stateDict() };
  delete sd['layer1.1.conv1.weight'];
  sd['extra.weight'] = zeros([2]);
  sd['fc.bias'] = tensor([9, 9], [2]);
  sd['fc.weight'] = zeros([3, 4]);
  // strict (default): one error naming every problem, and nothing is copied.
  assert.throws(
    () => net.loadStateDict(sd),
    /1 missing key\(s\): layer1\.1\.conv1\.weight; 1 unexpected key\(s\): extra\.weight; 1 shape mismatch\(es\): fc\.weight \(checkpoint \[3,4\], model \[2,4\]\)/,
  );
  assert.equal(await net.stateDict()['fc.bias']!.toArray(), before, 'strict failure copies nothing');
  const r = net.loadStateDict(sd, { strict: false });
  assert.equal(r.missingKeys, ['layer1.1.conv1.weight']);
  assert.equal(r.unexpectedKeys, ['extra.weight']);
  assert.equal(r.shapeMismatches, [{ key: 'fc.weight', expected: [2, 4], got: [3, 4] }]);
  assert.ok(r.loaded.includes('fc.bias') && !r.loaded.includes('fc.weight'));
  assert.equal(await net.stateDict()['fc.bias']!.toArray(), [9, 9]);
  sd['extra.weight']!.dispose();
  sd['fc.bias']!.dispose();
  sd['fc.weight']!.dispose();
  net.dispose();
});

test('zeroGrad frees gradients; dispose frees everything the module held', async () => {
  await settleGarbage();
  const start = memory().liveBytes;
  const net = new Net(7);
  const x = tensor([[0.1, -0.2, 0.3, 0.4]]);
  tidy(() => {
    const fc = net.getModule('fc') as nn.Linear;
    sum(fc.forward(x)).backward();
  });
  const fc = net.getModule('fc') as nn.Linear;
  assert.ok(fc.weight.grad && fc.bias?.grad, 'backward filled the gradients');
  // d sum(x W^T + b) / dW[o, i] = x[i]; / db = 1 (torch.nn.Linear definition).
  assert.equal(await fc.bias!.grad!.toArray(), [1, 1]);
  await expectRef(fc.weight.grad!, { shape: [2, 4], data: Float64Array.from([0.1, -0.2, 0.3, 0.4, 0.1, -0.2, 0.3, 0.4]) }, { atol: 1e-7, rtol: 1e-6 }, 'dW');
  net.zeroGrad();
  assert.is(fc.weight.grad, null);
  x.dispose();
  net.dispose();
  assert.is(memory().liveBytes, start);
});

test('Linear init: torch default bounds U(-1/sqrt(in), 1/sqrt(in)), seeded', async () => {
  const inF = 5, outF = 64;
  const l1 = new nn.Linear(inF, outF, { rng: new Rng(11) });
  const l2 = new nn.Linear(inF, outF, { rng: new Rng(11) });
  const bound = 1 / Math.sqrt(inF);
  const w = await l1.weight.data();
  const b = await l1.bias!.data();
  assert.equal([...l1.weight.shape], [outF, inF], 'weight stored [out, in]');
  let maxW = 0, maxB = 0, mean = 0;
  for (const v of w) { maxW = Math.max(maxW, Math.abs(v)); mean += v / w.length; }
  for (const v of b) maxB = Math.max(maxB, Math.abs(v));
  assert.ok(maxW <= bound && maxW > 0.9 * bound, `weight max |w| ${maxW} vs bound ${bound}`);
  assert.ok(maxB <= bound && maxB > 0.8 * bound, `bias max |b| ${maxB} vs bound ${bound}`);
  assert.ok(Math.abs(mean) < 0.05, `weight mean ${mean}`);
  assert.equal([...(await l2.weight.data())], [...w], 'same seed, same values');
  const nb = new nn.Linear(3, 2, { bias: false });
  assert.is(nb.bias, null);
  assert.equal(nb.namedParameters().map(([n]) => n), ['weight']);
  nb.dispose();
  l1.dispose();
  l2.dispose();
});

function linearRef([x, w, b]: RefTensor[]): RefTensor {
  const [O, I] = w!.shape as [number, number];
  const N = x!.data.length / I;
  const out = new Float64Array(N * O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b.data[o]! : 0;
      for (let i = 0; i < I; i++) s += x!.data[n * I + i]! * w!.data[o * I + i]!;
      out[n * O + o] = s;
    }
  }
  return { shape: [...x!.shape.slice(0, -1), O], data: out };
}

test('linear: forward vs float64 reference and gradients of x, W, b vs finite differences', async () => {
  await checkOp({
    name: 'linear [7,5] -> 3',
    inputs: [ref([7, 5], 1), ref([3, 5], 2), ref([3], 3)],
    gpu: ([x, w, b]) => nn.linear(x!, w!, b!),
    ref: linearRef,
  });
  await checkOp({
    name: 'linear 3-D input, no bias',
    inputs: [ref([2, 3, 6], 4), ref([5, 6], 5)],
    gpu: ([x, w]) => nn.linear(x!, w!),
    ref: ([x, w]) => linearRef([x!, w!]),
  });
});

test('Linear.forward uses its parameters; Sequential chains; shape errors name the shapes; nothing leaks', async () => {
  await settleGarbage();
  const start = memory().liveBytes;
  const l = new nn.Linear(5, 3, { rng: new Rng(9) });
  const xr = ref([4, 5], 7);
  const x = gpu(xr);
  const wr = { shape: [3, 5], data: Float64Array.from(await l.weight.data()) };
  const br = { shape: [3], data: Float64Array.from(await l.bias!.data()) };
  // noGrad: with grad on, each output would hold its graph (freed by backward or a scope, not by dispose).
  const y = noGrad(() => l.forward(x));
  await expectRef(y, linearRef([xr, wr, br]), { atol: 1e-5, rtol: 1e-5 }, 'Linear.forward');
  const seq = new nn.Sequential(l, new nn.ReLU());
  const z = noGrad(() => seq.forward(x));
  const want = linearRef([xr, wr, br]);
  await expectRef(z, { shape: want.shape, data: want.data.map((v) => Math.max(v, 0)) }, { atol: 1e-5, rtol: 1e-5 }, 'Sequential(Linear, ReLU)');
  assert.equal(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias']);
  assert.throws(() => tidy(() => l.forward(tensor([[1, 2, 3]]))), /linear: input \[1,3\] does not match weight \[3,5\]/);
  for (const t of [x, y, z]) t.dispose();
  seq.dispose();
  // Forward outside any tidy() must not leave views of the weights holding their memory.
  assert.is(memory().liveBytes, start, 'all memory returned');
});

test('gradients flow through Sequential after it frees intermediates', async () => {
  const seq = new nn.Sequential(new nn.Linear(3, 4, { rng: new Rng(1) }), new nn.ReLU(), new nn.Linear(4, 2, { rng: new Rng(2) }));
  const x = tensor([[0.5, -1, 2], [1, 1, -0.5]]);
  tidy(() => sum(mul(seq.forward(x), tensor([[1, -2], [0.5, 3]]))).backward());
  for (const [n, p] of seq.namedParameters()) assert.ok(p.grad, `${n} has a gradient`);
  x.dispose();
  seq.dispose();
});

test.run();
