// Kernel tiering (engine/tiering.ts): which variant a dispatch runs, the switch to the fast variant
// once the sibling device has compiled it, the fallback without a sibling device, and a clean close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import * as F from '../engine/index.js';
import { KernelTiers } from '../engine/tiering.js';
import { createSiblingDevice, destroyWhenIdle } from '../engine/device.js';
import type { Kernel } from '../engine/backend.js';

await ready;

/** A kernel that writes `value` to dst[0] (the fast one 1, its quick variant 2: which ran shows in the data). */
function writer(value: number, name: string): Kernel {
  return {
    entry: name,
    wgsl: `struct U { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(1)
fn ${name}() { dst[0] = ${value}.0 + f32(u.n); }`,
  };
}

const fresh = (tag: string): Kernel => ({ ...writer(1, `fast_${tag}`), quick: writer(2, `quick_${tag}`) });

test('a kernel without a quick variant always runs as is; quick mode always takes the quick one', () => {
  const plain = writer(1, 'plain');
  const tiers = new KernelTiers('background', async () => null, async () => {});
  assert.is(tiers.choose(plain), plain);
  const k = fresh('q');
  const quick = new KernelTiers('quick', async () => {
    assert.unreachable('quick mode needs no device');
    return null;
  }, async () => {});
  assert.is(quick.choose(k), k.quick);
  assert.is(quick.choose(k), k.quick);
  assert.is(quick.status().quickDispatches, 2);
  assert.is(quick.withFastKernels(() => quick.choose(k)), k, 'withFastKernels forces the fast variant');
  const off = new KernelTiers('off', async () => null, async () => {});
  assert.is(off.choose(k), k);
});

test('without a sibling device tiering falls back to the fast kernels', async () => {
  const k = fresh('none');
  const tiers = new KernelTiers('background', async () => null, async () => {});
  assert.is(tiers.choose(k), k.quick, 'quick until the background is known to be missing');
  await tiers.whenIdle();
  assert.is(tiers.status().mode, 'off');
  assert.is(tiers.choose(k), k);
  assert.is(tiers.choose(fresh('other')).entry, 'fast_other');
});

test('background: quick first, the fast variant once the sibling device has run it; close destroys the sibling', async () => {
  let made: GPUDevice | null = null, destroyed = 0;
  const tiers = new KernelTiers(
    'background',
    async () => (made = await createSiblingDevice()),
    async (d) => {
      destroyed++;
      await destroyWhenIdle(d);
    },
  );
  const a = fresh('bg_a'), b = fresh('bg_b');
  assert.is(tiers.choose(a), a.quick);
  assert.is(tiers.choose(b), b.quick);
  assert.is(tiers.choose(a), a.quick, 'asked again while compiling: still quick, queued once');
  assert.is(tiers.status().pending, 2);
  await tiers.whenIdle();
  assert.ok(made, 'lavapipe gives a second device');
  assert.equal(tiers.status(), { mode: 'background', compiled: 2, pending: 0, quickDispatches: 3 });
  assert.is(tiers.choose(a), a);
  assert.is(tiers.choose(b), b);
  await tiers.close();
  assert.is(destroyed, 1);
  const c = fresh('bg_c');
  assert.is(tiers.choose(c), c.quick, 'after close nothing compiles: the quick one runs');
  await tiers.whenIdle();
  assert.is(tiers.status().compiled, 2);
});

test('background compiles go on only while the program works: an idle program waits for the kernel in flight only', async () => {
  const tiers = new KernelTiers('background', createSiblingDevice, destroyWhenIdle);
  const a = fresh('idle_a'), b = fresh('idle_b');
  tiers.choose(a);
  tiers.choose(b);
  for (let i = 0; i < 3000 && tiers.status().compiled < 1; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal([tiers.status().compiled, tiers.status().pending], [1, 1], 'paused after the first kernel');
  tiers.noteActivity();
  for (let i = 0; i < 3000 && tiers.status().compiled < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(tiers.status().compiled, 2, 'resumed on activity');
  await tiers.close();
  // A program awaiting the engine's device (the first step's long readback) is working too.
  const waiting = new KernelTiers('background', createSiblingDevice, destroyWhenIdle, () => true);
  waiting.choose(fresh('wait_a'));
  waiting.choose(fresh('wait_b'));
  for (let i = 0; i < 3000 && waiting.status().compiled < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(waiting.status().compiled, 2, 'no pause while the host waits on the GPU');
  await waiting.close();
});

test('the backend dispatches the variant its tiers choose, and switches with no other change', async () => {
  const be = F.getBackend();
  const k = fresh('be');
  const dst = be.malloc(16);
  const u = new Uint32Array([5, 0, 0, 0]);
  const run = async (): Promise<number> => {
    be.dispatch({ kernel: k, buffers: [dst], uniforms: u, workgroups: [1], label: 'tier test' });
    return new Float32Array(await be.read(dst, 0, 4))[0]!;
  };
  be.setKernelTiering('quick');
  assert.is(await run(), 7, 'the quick variant ran');
  be.setKernelTiering('off');
  assert.is(await run(), 6, 'the fast variant ran, same uniforms and buffers');
  be.free(dst);
});

test.run();
