// optim.GradScaler against torch.cuda.amp.GradScaler's documented rules, its state on the device:
// defaults (2^16, x2, x0.5, 2000); unscale on the GPU, several tensors per dispatch, vs
// kernels/optim.ts unscaleReference (odd sizes, several workgroups, inf / NaN / overflow after
// unscaling, checked-only tensors, views of one buffer); the found-inf flag skipping the step on the
// device (weights and momentum untouched; a zero-started momentum buffer then equals torch's first
// step) and on the host for momentum with dampening; scale sequences derived by hand from the rules
// and from scalerUpdateReference; state dict save / restore continuing the same sequence.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { assertClose, values } from './helpers/check.js';
import { optim, tensor, keep, zeros, type Tensor } from '../engine/index.js';
import { unscaleReference, sgdReference, scalerUpdateReference } from '../kernels/optim.js';

await ready;

// 2,257 elements: more than one workgroup of 256 invocations x 4 elements.
const SHAPES = [[7, 13], [5], [37, 61]];
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function params(shapes = SHAPES): Tensor[] {
  return shapes.map((s, i) => keep(tensor(Float32Array.from(values(size(s), 10 + i)), s)).requiresGrad_());
}

/** Sets every parameter's gradient to `scale` x seeded values (float32-exact), with `poison` written at element 3 of parameter 2. */
function setGrads(ps: Tensor[], scale: number, poison?: number): Float64Array[] {
  return ps.map((p, i) => {
    const g = Float64Array.from(values(p.size, 100 + i, -1, 1), (v) => Math.fround(v * scale));
    if (poison !== undefined && i === 2) g[3] = poison;
    p.grad?.dispose();
    p.grad = keep(tensor(Float32Array.from(g), [...p.shape]));
    return g;
  });
}

async function flag(t: Tensor): Promise<number> {
  const v = (await t.data())[0]!;
  t.dispose();
  return v;
}

test('defaults are torch.cuda.amp.GradScaler\'s', async () => {
  const s = new optim.GradScaler();
  assert.is(await s.getScale(), 65536);
  assert.equal(await s.stateDict(), { scale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: 0 });
  assert.is(await new optim.GradScaler({ enabled: false }).getScale(), 1);
  s.dispose();
});

test('unscale_ divides every gradient by the scale on the GPU, with the found-inf flag, as the reference', async () => {
  for (const [poison, scale] of [[undefined, 1024], [Infinity, 1024], [NaN, 8], [-3e38, 0.5]] as [number | undefined, number][]) {
    const ps = params();
    const s = new optim.GradScaler({ initScale: scale });
    const g = setGrads(ps, scale, poison);
    const opt = new optim.SGD(ps, { lr: 0.1 });
    const found = await flag(s.unscale_(opt));
    let any = false;
    for (const [i, p] of ps.entries()) {
      const want = unscaleReference(g[i]!, 1 / scale);
      any ||= want.foundInf;
      assertClose(await p.grad!.data(), want.grad, { atol: 0, rtol: 1e-7 }, `grad ${i} (poison ${poison}, scale ${scale})`);
    }
    assert.is(found, any ? 1 : 0, `found-inf flag with poison ${poison} at scale ${scale}`);
    // -3e38 is finite but overflows f32 once divided by 0.5: that is an inf too.
    assert.is(any, poison !== undefined, `reference flag for poison ${poison}`);
    assert.throws(() => s.unscale_(opt), /already called/);
    s.update(1);
    s.dispose();
  }
});

test('unscale_ over many tensors (several per dispatch, grouped by size), views of one buffer, and checked-only tensors', async () => {
  // 19 parameters: more than one dispatch of 8; sizes from 1 to 2,257 elements.
  const shapes = Array.from({ length: 19 }, (_, i) => (i === 7 ? [37, 61] : [1 + ((i * 37) % 97)]));
  const ps = params(shapes);
  const g = setGrads(ps, 64);
  // Two more parameters whose gradients are views of one buffer (a gradient bucket): a dispatch may
  // not bind it twice.
  const bucket = keep(tensor(Float32Array.from(values(300, 7, -64, 64)), [300]));
  const viewed = [keep(tensor(new Float32Array(100), [100])).requiresGrad_(), keep(tensor(new Float32Array(200), [200])).requiresGrad_()];
  viewed[0]!.grad = bucket.view([100], [1], 0);
  viewed[1]!.grad = bucket.view([200], [1], 100);
  const bucketBefore = await bucket.data();
  const losses = keep(tensor([1.5, 2, 3]));
  const opt = new optim.SGD([...ps, ...viewed], { lr: 0.1 });
  const s = new optim.GradScaler({ initScale: 64 });
  assert.is(await flag(s.unscale_(opt, [losses])), 0);
  for (const [i, p] of ps.entries()) assertClose(await p.grad!.data(), unscaleReference(g[i]!, 1 / 64).grad, { atol: 0, rtol: 1e-7 }, `grad ${i}`);
  assertClose(await bucket.data(), unscaleReference(bucketBefore, 1 / 64).grad, { atol: 0, rtol: 1e-7 }, 'bucket views (each unscaled once)');
  assert.equal(Array.from(await losses.data()), [1.5, 2, 3], 'checked-only tensors are not scaled');
  s.update(64);
  // A non-finite value in a checked-only tensor sets the flag; its gradients stay finite.
  setGrads(ps, 64);
  const bad = keep(tensor([1, NaN]));
  assert.is(await flag(s.unscale_(opt, [bad])), 1);
  s.dispose();
});

test('a step with inf/NaN gradients is skipped on the device (weights and momentum untouched); the next clean step is torch\'s first', async () => {
  for (const nesterov of [false, true]) {
    const ps = params();
    const before = await Promise.all(ps.map((p) => p.data()));
    const h = { lr: 0.5, momentum: 0.9, dampening: 0, weightDecay: 0.01, nesterov, maximize: false };
    const opt = new optim.SGD(ps, { lr: h.lr, momentum: h.momentum, weightDecay: h.weightDecay, nesterov });
    const s = new optim.GradScaler({ initScale: 256 });
    setGrads(ps, 256, Infinity);
    const found = s.unscale_(opt);
    await s.step(opt);
    s.update();
    assert.is(await flag(found), 0, 'update() clears the flag for the next step');
    assert.is(await s.getScale(), 128);
    for (const [i, p] of ps.entries()) assert.equal(Array.from(await p.data()), Array.from(before[i]!), `param ${i} changed on a skipped step (nesterov ${nesterov})`);
    for (const [k, b] of Object.entries(opt.stateDict().momentumBuffers)) assert.ok((await (b as Tensor).data()).every((v) => v === 0), `momentum buffer ${k} written on a skipped step`);
    const g = setGrads(ps, 128);
    await s.step(opt);
    s.update();
    for (const [i, p] of ps.entries()) {
      const want = sgdReference(before[i]!, unscaleReference(g[i]!, 1 / 128).grad, null, h);
      assertClose(await p.data(), want.p, { atol: 1e-6, rtol: 1e-6 }, `param ${i} after a clean step (nesterov ${nesterov})`);
      assertClose(await (opt.stateDict().momentumBuffers[String(i)] as Tensor).data(), want.buf!, { atol: 1e-6, rtol: 1e-6 }, `momentum ${i}`);
    }
    s.dispose();
  }
});

test('momentum with dampening: the flag is read on the host (a skipped step makes no buffer; the first clean step starts it from d)', async () => {
  const ps = params();
  const before = await Promise.all(ps.map((p) => p.data()));
  const h = { lr: 0.5, momentum: 0.9, dampening: 0.3, weightDecay: 0, nesterov: false, maximize: false };
  const opt = new optim.SGD(ps, { lr: h.lr, momentum: h.momentum, dampening: h.dampening });
  const s = new optim.GradScaler({ initScale: 256 });
  setGrads(ps, 256, NaN);
  await s.step(opt);
  s.update();
  assert.equal(opt.stateDict().momentumBuffers, {}, 'no momentum buffer may be created by a skipped step');
  const g = setGrads(ps, 128);
  await s.step(opt);
  s.update();
  for (const [i, p] of ps.entries()) {
    const want = sgdReference(before[i]!, unscaleReference(g[i]!, 1 / 128).grad, null, h);
    assertClose(await p.data(), want.p, { atol: 1e-6, rtol: 1e-6 }, `param ${i}`);
  }
  // SGD itself refuses a device-side skip it could not start correctly.
  setGrads(ps, 1);
  const skipFlag = keep(zeros([1]));
  assert.throws(() => new optim.SGD(params(), { lr: 0.1, momentum: 0.9, dampening: 0.3 }).step({ skipIf: skipFlag }), /skipIf needs dampening 0.*group 0 has dampening 0.3/);
  assert.throws(() => opt.step({ skipIf: skipFlag, skipAt: 1 }), /skipAt 1 is outside the flag tensor/);
  s.dispose();
});

/** Runs steps with the given gradient kinds ('ok' or 'inf') and returns [stepped, scale after update] per step. */
async function run(s: optim.GradScaler, kinds: ('ok' | 'inf')[]): Promise<[boolean, number][]> {
  const ps = params();
  const opt = new optim.SGD(ps, { lr: 1e-3 });
  const out: [boolean, number][] = [];
  for (const k of kinds) {
    setGrads(ps, await s.getScale(), k === 'inf' ? Infinity : undefined);
    const found = await flag(s.unscale_(opt));
    await s.step(opt);
    s.update();
    out.push([found === 0, await s.getScale()]);
  }
  return out;
}

test('scale sequence from the rules: x2 after growthInterval clean steps, x0.5 and skip on inf, clean count restarts after an inf', async () => {
  const s = new optim.GradScaler({ initScale: 8, growthInterval: 3 });
  // Derived by hand: 3 clean -> 16; inf -> 8 (count 0); 2 clean -> 8 (count 2); inf -> 4 (count 0);
  // 3 clean -> 8; 3 clean -> 16; inf, inf -> 8, 4.
  const kinds: ('ok' | 'inf')[] = ['ok', 'ok', 'ok', 'inf', 'ok', 'ok', 'inf', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'inf', 'inf'];
  const want: [boolean, number][] = [
    [true, 8], [true, 8], [true, 16], [false, 8], [true, 8], [true, 8], [false, 4], [true, 4], [true, 4], [true, 8],
    [true, 8], [true, 8], [true, 16], [false, 8], [false, 4],
  ];
  assert.equal(await run(s, kinds), want);
  // The same through the reference of the device's rule.
  let ref = { scale: 8, tracker: 0 };
  const viaRef = kinds.map((k) => ((ref = scalerUpdateReference(ref.scale, ref.tracker, k === 'inf', { growth: 2, backoff: 0.5, interval: 3 })), [k === 'ok', ref.scale]));
  assert.equal(viaRef, want);
  // Custom factors: growth x4, backoff x0.25.
  const c = new optim.GradScaler({ initScale: 16, growthFactor: 4, backoffFactor: 0.25, growthInterval: 2 });
  assert.equal(await run(c, ['ok', 'ok', 'inf', 'ok']), [[true, 16], [true, 64], [false, 16], [true, 16]]);
  // A growth that would overflow f32 leaves the scale (torch grows only to a finite scale).
  const big = new optim.GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
  const ps = params();
  const opt = new optim.SGD(ps, { lr: 1e-3 });
  setGrads(ps, 1);
  await big.step(opt);
  big.update();
  assert.equal(await big.stateDict(), { scale: 2 ** 127, growthFactor: 2, backoffFactor: 0.5, growthInterval: 1, growthTracker: 0 });
  assert.equal(scalerUpdateReference(2 ** 127, 0, false, { growth: 2, backoff: 0.5, interval: 1 }), { scale: 2 ** 127, tracker: 0 });
  [s, c, big].forEach((x) => x.dispose());
});

test('state dict: a restored scaler continues the same sequence (scale and clean-step count), and bad states are refused by field', async () => {
  const a = new optim.GradScaler({ initScale: 8, growthInterval: 3 });
  await run(a, ['ok', 'ok', 'ok', 'ok', 'ok']); // 16 after 3, then 2 clean steps counted
  const saved = JSON.parse(JSON.stringify(await a.stateDict()));
  assert.equal(saved, { scale: 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3, growthTracker: 2 });
  const b = new optim.GradScaler();
  b.loadStateDict(saved);
  assert.equal(await run(b, ['ok']), [[true, 32]]);
  assert.throws(() => b.loadStateDict({ ...saved, scale: -1 }), /scale must be a positive finite number/);
  assert.throws(() => b.loadStateDict({ ...saved, growthTracker: 3 }), /growthTracker must be an integer in \[0, growthInterval\)/);
  assert.throws(() => new optim.GradScaler({ backoffFactor: 2 }), /backoffFactor must be in \(0, 1\)/);
  assert.throws(() => new optim.GradScaler({ growthInterval: 2 ** 25 }), /growthInterval must be an integer in \[1, 2\^24\]/);
  assert.throws(() => b.update(), /no step\(\) since the last update/);
  b.update(4);
  assert.is(await b.getScale(), 4, 'update(newScale) sets the scale');
  assert.is((await b.stateDict()).growthTracker, 0, 'update(newScale) leaves the count');
  a.dispose();
  b.dispose();
});

test('disabled scaler: scale() is the identity, step() always steps', async () => {
  const s = new optim.GradScaler({ enabled: false });
  const x = tensor(new Float32Array([3]), [1]);
  assert.is(s.scale(x), x);
  const ps = params();
  const before = await ps[0]!.data();
  setGrads(ps, 1, Infinity);
  await s.step(new optim.SGD(ps, { lr: 0.1 }));
  s.update();
  assert.not.equal(Array.from(await ps[0]!.data()), Array.from(before));
});

test.run();
