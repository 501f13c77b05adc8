// optim.GradScaler against torch.cuda.amp.GradScaler's documented rules: defaults (2^16, x2, x0.5,
// 2000), unscale on the GPU vs kernels/optim.ts unscaleReference (odd sizes, several workgroups,
// inf / NaN / overflow after unscaling), the found-inf flag skipping the step (weights and momentum
// untouched), scale sequences derived by hand from the rules with a small growthInterval, and state
// dict save / restore continuing the same sequence.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { assertClose, values } from './helpers/check.js';
import { optim, tensor, keep, type Tensor } from '../engine/index.js';
import { unscaleReference } from '../kernels/optim.js';

await ready;

// 2,257 elements: more than one workgroup of 256 invocations x 4 elements.
const SHAPES = [[7, 13], [5], [37, 61]];
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function params(): Tensor[] {
  return SHAPES.map((s, i) => keep(tensor(Float32Array.from(values(size(s), 10 + i)), s)).requiresGrad_());
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

test('defaults are torch.cuda.amp.GradScaler\'s', () => {
  const s = new optim.GradScaler();
  assert.is(s.getScale(), 65536);
  assert.equal(s.stateDict(), { scale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: 0 });
  assert.is(new optim.GradScaler({ enabled: false }).getScale(), 1);
});

test('unscale_ divides every gradient by the scale on the GPU, with the found-inf flag, as the reference', async () => {
  for (const [poison, scale] of [[undefined, 1024], [Infinity, 1024], [NaN, 8], [-3e38, 0.5]] as [number | undefined, number][]) {
    const ps = params();
    const s = new optim.GradScaler({ initScale: scale });
    const g = setGrads(ps, scale, poison);
    const opt = new optim.SGD(ps, { lr: 0.1 });
    const found = await s.unscale_(opt).data();
    let any = false;
    for (const [i, p] of ps.entries()) {
      const want = unscaleReference(g[i]!, 1 / scale);
      any ||= want.foundInf;
      assertClose(await p.grad!.data(), want.grad, { atol: 0, rtol: 1e-7 }, `grad ${i} (poison ${poison}, scale ${scale})`);
    }
    assert.is(found[0], any ? 1 : 0, `found-inf flag with poison ${poison} at scale ${scale}`);
    // -3e38 is finite but overflows f32 once divided by 0.5: that is an inf too.
    assert.is(any, poison !== undefined, `reference flag for poison ${poison}`);
    assert.throws(() => s.unscale_(opt), /already called/);
    s.update(1);
  }
});

test('a step with inf/NaN gradients is skipped (weights and momentum untouched); a clean step applies the unscaled gradients', async () => {
  const ps = params();
  const before = await Promise.all(ps.map((p) => p.data()));
  const opt = new optim.SGD(ps, { lr: 0.5, momentum: 0.9 });
  const s = new optim.GradScaler({ initScale: 256 });
  setGrads(ps, 256, Infinity);
  assert.is(await s.step(opt), false);
  s.update();
  assert.is(s.getScale(), 128);
  for (const [i, p] of ps.entries()) assert.equal(Array.from(await p.data()), Array.from(before[i]!), `param ${i} changed on a skipped step`);
  assert.equal(opt.stateDict().momentumBuffers, {}, 'no momentum buffer may be created by a skipped step');
  assert.is(opt.stepCount, 0);
  const g = setGrads(ps, 128);
  // The caller read the flag itself (as the training step does, with the losses).
  const flag = (await s.unscale_(opt).data())[0]!;
  assert.is(await s.step(opt, flag), true);
  s.update();
  for (const [i, p] of ps.entries()) {
    const want = Float64Array.from(before[i]!, (v, k) => v - 0.5 * (g[i]![k]! / 128));
    assertClose(await p.data(), want, { atol: 1e-6, rtol: 1e-6 }, `param ${i} after a clean step`);
  }
});

/** Runs steps with the given gradient kinds ('ok' or 'inf') and returns [stepped, scale after update] per step. */
async function run(s: optim.GradScaler, kinds: ('ok' | 'inf')[]): Promise<[boolean, number][]> {
  const ps = params();
  const opt = new optim.SGD(ps, { lr: 1e-3 });
  const out: [boolean, number][] = [];
  for (const k of kinds) {
    setGrads(ps, s.getScale(), k === 'inf' ? Infinity : undefined);
    const stepped = await s.step(opt);
    s.update();
    out.push([stepped, s.getScale()]);
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
  // Custom factors: growth x4, backoff x0.25.
  const c = new optim.GradScaler({ initScale: 16, growthFactor: 4, backoffFactor: 0.25, growthInterval: 2 });
  assert.equal(await run(c, ['ok', 'ok', 'inf', 'ok']), [[true, 16], [true, 64], [false, 16], [true, 16]]);
});

test('state dict: a restored scaler continues the same sequence (scale and clean-step count), and bad states are refused by field', async () => {
  const a = new optim.GradScaler({ initScale: 8, growthInterval: 3 });
  await run(a, ['ok', 'ok', 'ok', 'ok', 'ok']); // 16 after 3, then 2 clean steps counted
  const saved = JSON.parse(JSON.stringify(a.stateDict()));
  assert.equal(saved, { scale: 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3, growthTracker: 2 });
  const b = new optim.GradScaler();
  b.loadStateDict(saved);
  assert.equal(await run(b, ['ok']), [[true, 32]]);
  assert.throws(() => b.loadStateDict({ ...saved, scale: -1 }), /scale must be a positive finite number/);
  assert.throws(() => b.loadStateDict({ ...saved, growthTracker: 3 }), /growthTracker must be an integer in \[0, growthInterval\)/);
  assert.throws(() => new optim.GradScaler({ backoffFactor: 2 }), /backoffFactor must be in \(0, 1\)/);
  assert.throws(() => b.update(), /no step\(\) since the last update/);
});

test('disabled scaler: scale() is the identity, step() always steps', async () => {
  const s = new optim.GradScaler({ enabled: false });
  const x = tensor(new Float32Array([3]), [1]);
  assert.is(s.scale(x), x);
  const ps = params();
  setGrads(ps, 1, Infinity);
  assert.is(await s.step(new optim.SGD(ps, { lr: 0.1 })), true);
  s.update();
});

test.run();
