// The engine's counters (counters(), getBackend().stats()): each is counted exactly on a known
// sequence of dispatches, buffers and readbacks, through the backend with a kernel of the test's
// own (so its pipeline is new whatever ran before in this process) and through public ops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { counters, tensor, add, mul, tidy, type Counters } from '../engine/index.js';
import { getBackend } from '../engine/backend.js';
import { uniformOffsetsDynamic } from '../engine/kernel-layout.js';

await ready;
// GPUs bind a kernel's uniform slot by dynamic offset (one bind group per kernel and buffers); CPU
// adapters bake the slot into the group, so each arena slot a dispatch lands on has its own.
const dynamic = uniformOffsetsDynamic();

/** counters() now minus `before`, every field. */
function since(before: Counters): Counters {
  const now = counters();
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - before[k as keyof Counters]])) as unknown as Counters;
}

// A kernel no other test has: doubles x into y. The token keeps its WGSL (the pipeline cache key) unique.
const DOUBLE = {
  entry: 'double_counters_test',
  wgsl: `// counters test ${Date.now()}-${Math.random()}
struct U { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn double_counters_test(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < u.n) { y[g.x] = 2.0 * x[g.x]; }
}`,
};

test('backend: dispatches, submits, buffers, pipelines, bind groups and blocking syncs counted exactly', async () => {
  const b = getBackend();
  b.trim(); // no idle buffer left: every malloc and the readback below create one
  b.flush();
  const c0 = counters();
  const x = tensor([1, 2, 3, 4, 5], [5]); // 1 buffer, written (no dispatch, no submit)
  const y = b.malloc(20); // 1 buffer
  const desc = { kernel: DOUBLE, buffers: [x.storage.buffer, y], uniforms: new Uint32Array([5, 0, 0, 0]), workgroups: [1] as [number], label: 'double(f32[5])' };
  b.dispatch(desc); // pipeline compiled once, 1 bind group
  b.dispatch(desc); // cached pipeline, same buffers: the bind group is reused (dynamic offsets) or one for the next slot
  const out = new Float32Array(await b.read(y, 0, 20)); // 1 submit, 1 staging buffer, 1 blocking sync
  assert.equal(Array.from(out), [2, 4, 6, 8, 10]);
  const d = since(c0);
  assert.equal({ ...d, blockingSyncMs: 0 }, {
    dispatches: 2, submits: 1, buffersCreated: 3, pipelinesCreated: 1, bindGroupsCreated: dynamic ? 1 : 2, readbacks: 1, blockingSyncs: 1, blockingSyncMs: 0, texturesCreated: 0,
  });
  assert.ok(d.blockingSyncMs >= 0 && Number.isFinite(d.blockingSyncMs), `blockingSyncMs ${d.blockingSyncMs}`);

  // Again with the buffer back in the pool: it is reused (and with it the first slot's bind group: a
  // submit starts the arena over), as is the readback's staging buffer; the pipeline is cached;
  // sync() waits once each time.
  b.free(y);
  const c1 = counters();
  const y2 = b.malloc(20);
  assert.is(y2, y);
  b.dispatch({ ...desc, buffers: [x.storage.buffer, y2] });
  await b.sync();
  await b.sync(); // nothing recorded: no submit, but the host still waits
  assert.equal(Array.from(new Float32Array(await b.read(y2, 0, 20))), [2, 4, 6, 8, 10]);
  assert.equal({ ...since(c1), blockingSyncMs: 0 }, {
    dispatches: 1, submits: 2, buffersCreated: 0, pipelinesCreated: 0, bindGroupsCreated: 0, readbacks: 1, blockingSyncs: 3, blockingSyncMs: 0, texturesCreated: 0,
  });
  // Two readbacks awaited together: two readbacks (two staging buffers, one of them new), one wait.
  const c2 = counters();
  const [p, q] = await Promise.all([b.read(y2, 0, 20), b.read(y2, 4, 8)]);
  assert.equal([Array.from(new Float32Array(p)), Array.from(new Float32Array(q))], [[2, 4, 6, 8, 10], [4, 6]]);
  const d2 = since(c2);
  assert.equal([d2.readbacks, d2.blockingSyncs, d2.buffersCreated, d2.submits], [2, 1, 1, 2]);
  // Another output buffer: a new bind group (GPUs: the uniform slot is a dynamic offset, not part of
  // it; CPU adapters: one per slot, the two dispatches' uniforms in two slots).
  const z = b.malloc(20);
  const c3 = counters();
  b.dispatch({ ...desc, buffers: [x.storage.buffer, z], uniforms: new Uint32Array([3, 0, 0, 0]) });
  b.dispatch({ ...desc, buffers: [x.storage.buffer, z] });
  assert.equal(Array.from(new Float32Array(await b.read(z, 0, 20))), [2, 4, 6, 8, 10]);
  assert.equal([since(c3).dispatches, since(c3).bindGroupsCreated], [2, dynamic ? 1 : 2]);
  b.free(z);
  b.free(y2);
  x.dispose();
});

test('pool: a request whose class has no idle buffer takes one up to 1.5x larger, not beyond', () => {
  const b = getBackend();
  b.trim();
  const c0 = counters();
  const big = b.malloc(5000); // class 5120: created
  b.free(big);
  const near = b.malloc(4200); // class 4608: the idle 5120 (1.11x) serves it
  assert.is(near, big);
  assert.is(since(c0).buffersCreated, 1);
  b.free(near);
  const small = b.malloc(2000); // class 2048: 5120 is 2.5x, so a new buffer
  assert.is.not(small, big);
  assert.is(small.size, 2048);
  assert.is(since(c0).buffersCreated, 2);
  b.free(small);
  b.trim();
});

test('ops: a repeated tidy step creates no buffer or pipeline after its first run; each readback is one blocking sync', async () => {
  const a = tensor([1, -2, 3, 0.5, 7, 11, -13], [7]);
  // Each step starts a submit batch, as a training step's work lands on the same uniform slots each
  // step (CPU adapters key bind groups by slot).
  const step = () => {
    getBackend().flush();
    return tidy(() => add(mul(a, a), a));
  };
  // Warm-up: pipelines, pool buffers, and bind groups for both orders in which the two buffers
  // come back from the pool (freed in one order, taken last-in first-out in the other).
  step().dispose();
  step().dispose();
  const c0 = counters();
  const r = step(); // mul, add: 2 dispatches, the intermediate freed by tidy
  const d = since(c0);
  assert.is(d.dispatches, 2);
  assert.is(d.bindGroupsCreated, 0);
  assert.is(d.buffersCreated, 0);
  assert.is(d.pipelinesCreated, 0);
  assert.is(d.blockingSyncs, 0);
  const c1 = counters();
  assert.equal(Array.from(await r.data()), [2, 2, 12, 0.75, 56, 132, 156]);
  assert.is(since(c1).blockingSyncs, 1);
  r.dispose();
  a.dispose();
});

test('a readback started early and taken after the GPU finished it is not a blocking sync', async () => {
  const b = getBackend();
  const a = tensor([1, 2, 3], [3]);
  const r = tidy(() => mul(a, a));
  const c0 = counters();
  const late = r.dataLater(); // copy submitted and map requested: no wait yet
  r.dispose(); // the tensor may go; the readback holds its copy
  assert.equal([since(c0).readbacks, since(c0).blockingSyncs], [1, 0]);
  const first = a.dataLater(); // recorded after `late`: when it is in, so is `late`
  assert.is(first.ready, false);
  assert.equal(Array.from(await first.result()), [1, 2, 3]);
  assert.is(since(c0).blockingSyncs, 1, 'awaiting the second readback before its data was there is one wait');
  assert.is(late.ready, true);
  assert.equal(Array.from(await late.result()), [1, 4, 9]);
  assert.is(late.result(), late.result(), 'the same promise every call');
  const d = since(c0);
  assert.equal([d.readbacks, d.blockingSyncs], [2, 1], 'taking the finished readback did not wait');
  // Taken at once (data(), read()), a readback is one blocking sync as before.
  await b.sync();
  const c1 = counters();
  assert.equal(Array.from(await a.data()), [1, 2, 3]);
  assert.is(since(c1).blockingSyncs, 1);
  a.dispose();
});

test.run();
