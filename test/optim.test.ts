// optim: SGD against a float64 re-implementation of torch.optim.SGD's rule (kernels/optim.ts
// sgdReference) over several steps, for momentum, dampening, nesterov, weight decay, maximize and
// parameter groups; exact resume from a state dict; lr changes; schedules vs Detectron2's formulas.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { assertClose, values } from './helpers/check.js';
import { optim, tensor, keep, memory, counters, saveSafetensors, loadSafetensors, type Tensor } from '../engine/index.js';
import { sgdReference, type SgdHyper } from '../kernels/optim.js';

await ready;

const TOL = { atol: 1e-6, rtol: 1e-5 };
// [37, 61]: 2,257 elements, more than one workgroup of 256 invocations x 4 elements each.
const SHAPES = [[7, 13], [5], [3, 1, 9], [37, 61]];

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Parameters with seeded values, float32-exact so the reference starts from the same numbers. */
function makeParams(seed: number): Tensor[] {
  return SHAPES.map((s, i) => keep(tensor(Float32Array.from(values(size(s), seed + i)), s)).requiresGrad_());
}

/** The gradient of parameter i at step t (float32-exact values). */
function gradValues(i: number, t: number): Float64Array {
  return values(size(SHAPES[i]!), 1000 + 17 * t + i, -1, 1);
}

function setGrads(params: Tensor[], t: number, skip = -1): void {
  params.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = i === skip ? null : keep(tensor(Float32Array.from(gradValues(i, t)), p.shape));
  });
}

const HYPER: SgdHyper = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

const CASES: [string, Partial<SgdHyper>][] = [
  ['plain', {}],
  ['momentum 0.9', { momentum: 0.9 }],
  ['momentum 0.9, dampening 0.3', { momentum: 0.9, dampening: 0.3 }],
  ['nesterov', { momentum: 0.8, nesterov: true }],
  ['weight decay', { weightDecay: 0.05 }],
  ['momentum + weight decay + nesterov', { momentum: 0.9, weightDecay: 1e-2, nesterov: true, lr: 0.05 }],
  ['maximize with momentum', { maximize: true, momentum: 0.5 }],
];

for (const [name, over] of CASES) {
  test(`SGD ${name}: 6 steps match torch's rule in float64`, async () => {
    const h = { ...HYPER, ...over };
    const params = makeParams(1);
    const opt = new optim.SGD(params, h);
    let ref = params.map((_, i) => ({ p: values(size(SHAPES[i]!), 1 + i) as ArrayLike<number>, buf: null as Float64Array | null }));
    for (let t = 0; t < 6; t++) {
      // Parameter 1 has no gradient at step 2 (skipped, as torch skips grad None).
      const skip = t === 2 ? 1 : -1;
      setGrads(params, t, skip);
      opt.step();
      ref = ref.map((r, i) => (i === skip ? r : sgdReference(r.p, gradValues(i, t), r.buf, h)));
      for (let i = 0; i < params.length; i++) assertClose(await params[i]!.data(), ref[i]!.p, TOL, `${name} step ${t} param ${i}`);
    }
    assert.is(opt.stepCount, 6);
    opt.zeroGrad();
    assert.ok(params.every((p) => p.grad === null));
    opt.dispose();
    params.forEach((p) => p.dispose());
  });
}

test('several tensors per dispatch: bit-identical to one tensor per dispatch, and one dispatch for all four', async () => {
  const h = { ...HYPER, momentum: 0.9, weightDecay: 1e-2, nesterov: true };
  const run = async (perDispatch: number | null): Promise<{ data: ArrayLike<number>[]; dispatches: number }> => {
    optim.setSgdTensorsPerDispatch(perDispatch);
    const params = makeParams(3);
    const opt = new optim.SGD(params, h);
    let dispatches = 0;
    for (let t = 0; t < 3; t++) {
      setGrads(params, t, t === 1 ? 2 : -1);
      const before = counters().dispatches;
      opt.step();
      dispatches = counters().dispatches - before;
    }
    const data = await Promise.all(params.map((p) => p.data()));
    opt.dispose();
    params.forEach((p) => p.dispose());
    optim.setSgdTensorsPerDispatch(null);
    return { data, dispatches };
  };
  const one = await run(1), two = await run(2), all = await run(null);
  assert.is(one.dispatches, SHAPES.length);
  assert.is(two.dispatches, 2);
  assert.is(all.dispatches, 1, 'the four parameters in one dispatch');
  for (const other of [two, all]) other.data.forEach((d, i) => assert.equal(Array.from(d), Array.from(one.data[i]!), `param ${i}`));
});

test('parameter groups: per-group lr and weight decay, lr changes between steps', async () => {
  const params = makeParams(2);
  const opt = new optim.SGD([{ params: [params[0]!, params[2]!] }, { params: [params[1]!], lr: 0.5, weightDecay: 0 }], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const h0 = { ...HYPER, lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
  const h1 = { ...h0, lr: 0.5, weightDecay: 0 };
  assert.equal(opt.paramGroups.map((g) => [g.lr, g.weightDecay]), [[0.1, 0.01], [0.5, 0]]);
  let ref = params.map((_, i) => ({ p: values(size(SHAPES[i]!), 2 + i) as ArrayLike<number>, buf: null as Float64Array | null }));
  for (let t = 0; t < 4; t++) {
    // Step 2 halves every group's lr through the schedule hook; step 3 sets one lr for all.
    if (t === 2) opt.scaleLr(0.5);
    if (t === 3) opt.lr = 0.02;
    setGrads(params, t);
    opt.step();
    const lr0 = t === 2 ? 0.05 : t === 3 ? 0.02 : 0.1;
    const lr1 = t === 2 ? 0.25 : t === 3 ? 0.02 : 0.5;
    ref = ref.map((r, i) => sgdReference(r.p, gradValues(i, t), r.buf, i === 1 ? { ...h1, lr: lr1 } : { ...h0, lr: lr0 }));
    for (let i = 0; i < 3; i++) assertClose(await params[i]!.data(), ref[i]!.p, TOL, `groups step ${t} param ${i}`);
  }
  opt.dispose();
  params.forEach((p) => p.dispose());
});

test('a non-contiguous gradient (transposed view) is read correctly', async () => {
  const p = keep(tensor([1, 2, 3, 4, 5, 6], [2, 3])).requiresGrad_();
  const g = tensor([[1, 4], [2, 5], [3, 6]]);
  p.grad = keep(g.T);
  const opt = new optim.SGD([p], { lr: 0.5 });
  opt.step();
  // p - 0.5 * g^T = p - 0.5 * p (g^T equals p's values here)
  assert.equal([...(await p.data())], [0.5, 1, 1.5, 2, 2.5, 3]);
  g.dispose();
  p.dispose();
});

test('state dict resume gives bit-identical parameters to an uninterrupted run', async () => {
  const h = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true };
  const a = makeParams(3);
  const optA = new optim.SGD([{ params: [a[0]!, a[1]!] }, { params: [a[2]!], weightDecay: 0 }], h);
  for (let t = 0; t < 3; t++) {
    setGrads(a, t);
    optA.step();
  }
  // Snapshot to bytes, as a checkpoint file would: parameters + momentum buffers + JSON state.
  const s = optA.stateDict();
  const paramBytes = await saveSafetensors(Object.fromEntries(a.map((p, i) => [`p${i}`, p])));
  const bufBytes = await saveSafetensors(s.momentumBuffers as Record<string, Tensor>);
  const json = JSON.stringify({ step: s.step, groups: s.groups });
  for (let t = 3; t < 6; t++) {
    setGrads(a, t);
    optA.step();
  }
  const loaded = loadSafetensors(paramBytes).tensors;
  const b2 = a.map((_, i) => keep(tensor(loaded[`p${i}`]!.data, loaded[`p${i}`]!.shape)).requiresGrad_());
  const optB = new optim.SGD([{ params: [b2[0]!, b2[1]!] }, { params: [b2[2]!], weightDecay: 0 }], { lr: 1 });
  optB.loadStateDict({ ...JSON.parse(json), momentumBuffers: loadSafetensors(bufBytes).tensors });
  assert.is(optB.stepCount, 3);
  assert.is(optB.paramGroups[0]!.lr, 0.05, 'hyper-parameters restored');
  for (let t = 3; t < 6; t++) {
    setGrads(b2, t);
    optB.step();
  }
  for (let i = 0; i < 3; i++) assert.equal([...(await b2[i]!.data())], [...(await a[i]!.data())], `param ${i} identical`);
  // Loading the optimizer's own live state is safe too.
  const buf0 = () => optA.stateDict().momentumBuffers['0'] as Tensor;
  const before = [...(await buf0().data())];
  optA.loadStateDict(optA.stateDict());
  assert.equal([...(await buf0().data())], before);
  for (const o of [optA, optB]) o.dispose();
  [...a, ...b2].forEach((p) => p.dispose());
});

test('bad hyper-parameters and parameter lists are clear errors', () => {
  const p = keep(tensor([1, 2], [2])).requiresGrad_();
  assert.throws(() => new optim.SGD([p], { lr: -1 }), /invalid learning rate -1/);
  assert.throws(() => new optim.SGD([p], { lr: 0.1, nesterov: true }), /nesterov momentum requires a momentum and zero dampening/);
  assert.throws(() => new optim.SGD([{ params: [p] }, { params: [p] }], { lr: 0.1 }), /more than one parameter group/);
  assert.throws(() => new optim.SGD([], { lr: 0.1 }), /empty parameter list/);
  const opt = new optim.SGD([p], { lr: 0.1 });
  p.grad = keep(tensor([1, 2, 3], [3]));
  assert.throws(() => opt.step(), /gradient \[3\] does not match parameter \[2\]/);
  p.dispose();
});

test('no leak: steps, stateDict and dispose return live bytes to the start', async () => {
  await settleGarbage();
  const start = memory().liveBytes;
  const params = makeParams(4);
  const opt = new optim.SGD(params, { lr: 0.1, momentum: 0.9 });
  for (let t = 0; t < 3; t++) {
    setGrads(params, t);
    opt.step();
  }
  opt.loadStateDict(opt.stateDict());
  opt.zeroGrad();
  opt.dispose();
  params.forEach((p) => p.dispose());
  assert.is(memory().liveBytes, start);
});

test("schedules: Detectron2's WarmupMultiStepLR factors", () => {
  const { warmupFactorAt, multiStepFactorAt, warmupMultiStep } = optim.lrSchedules;
  const w = { warmupIters: 1000, warmupFactor: 0.001 };
  // linear: factor * (1 - alpha) + alpha with alpha = iter / warmupIters; 1 from warmupIters on.
  assert.is(warmupFactorAt(0, w), 0.001);
  assert.ok(Math.abs(warmupFactorAt(500, w) - 0.5005) < 1e-15);
  assert.ok(Math.abs(warmupFactorAt(999, w) - (0.001 * 0.001 + 0.999)) < 1e-15);
  assert.is(warmupFactorAt(1000, w), 1);
  assert.is(warmupFactorAt(10, { ...w, warmupMethod: 'constant' }), 0.001);
  // gamma ** bisect_right(milestones, iter)
  assert.is(multiStepFactorAt(1999, [2000, 3000]), 1);
  assert.ok(Math.abs(multiStepFactorAt(2000, [2000, 3000]) - 0.1) < 1e-15);
  assert.ok(Math.abs(multiStepFactorAt(3500, [2000, 3000]) - 0.01) < 1e-15);
  const sched = warmupMultiStep({ ...w, milestones: [2000, 3000], gamma: 0.5 });
  assert.ok(Math.abs(sched(250) - (0.001 * 0.75 + 0.25)) < 1e-15);
  assert.is(sched(2500), 0.5);
  assert.throws(() => warmupMultiStep({ ...w, milestones: [3000, 2000] }), /milestones must not decrease/);
  // Equal milestones (a short run's rounded fractions) both count, as in MultiStepLR.
  assert.ok(Math.abs(multiStepFactorAt(2, [2, 2]) - 0.01) < 1e-15);
  assert.is(multiStepFactorAt(1, [2, 2]), 1);
});

test.run();
