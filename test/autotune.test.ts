// The kernel autotuner (engine/autotune.ts, cli/node-tune.ts): it keeps the fastest candidate by the
// timings it is given, runs the fallback when off or before a class is timed, persists choices
// across processes through the file store, ignores another version's choices, and honours
// --no-tune / MASKRCNN_NO_TUNE / CI. On the GPU: matmul's tuned choices (each candidate in turn)
// still match the float64 reference (tolerances as in ops-matmul: atol 1e-4, rtol 1e-4).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ready } from './helpers/gpu.js';
import { ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { Autotuner, engineTuner, memoryTuneStore } from '../engine/autotune.js';
import { adapterIsCpu } from '../engine/device.js';
import { chooseMatmulVariant, matmulVariants } from '../engine/ops/matmul.js';
import { matmulReference } from '../kernels/matmul.js';
import { convBlockChoice, conv2dForwardRaw, conv2dInputGradRaw } from '../engine/ops/conv.js';
import { conv2dReference, conv2dInputGradReference, refGeom, convOutSize } from '../kernels/conv.js';
import { configureAutotune, fileTuneStore, tuneCachePath, tuneDisabledByEnv } from '../cli/node-tune.js';

await ready;

const timings = (s: Record<string, number>, calls: string[] = []) => async (name: string) => {
  calls.push(name);
  if (!(name in s)) throw new Error(`${name} cannot run`);
  return s[name]!;
};

test('keeps the fastest candidate by its timings; the fallback runs until the class is timed', async () => {
  const t = new Autotuner({ enabled: true, adapter: () => 'fake' });
  const time = timings({ a: 3e-3, b: 1e-3, c: 2e-3 });
  assert.is(t.choose('mm', 'small', ['a', 'b', 'c'], 'a', time), 'a');
  assert.is(t.pending, 1);
  await t.tunePending();
  assert.is(t.pending, 0);
  assert.is(t.choose('mm', 'small', ['a', 'b', 'c'], 'a', time), 'b');
  // Another class is timed on its own; a candidate that fails to run is skipped.
  const calls: string[] = [];
  assert.is(t.choose('mm', 'big', ['a', 'b', 'c'], 'a', timings({ a: 5, c: 4 }, calls)), 'a');
  await t.tunePending();
  assert.equal(calls, ['a', 'b', 'c']);
  assert.is(t.choose('mm', 'big', ['a', 'b', 'c'], 'a', time), 'c');
  // A stored choice that is no longer a candidate (e.g. a feature missing) gives way to the fallback.
  assert.is(t.choose('mm', 'small', ['a', 'c'], 'c', time), 'c');
});

test('a time budget spreads the queued classes over several calls (one at least per call)', async () => {
  const t = new Autotuner({ enabled: true, adapter: () => 'fake' });
  const time = timings({ a: 2, b: 1 });
  for (const cls of ['x', 'y', 'z']) t.choose('mm', cls, ['a', 'b'], 'a', time);
  assert.is(t.pending, 3);
  await t.tunePending(0);
  assert.is(t.pending, 2);
  await t.tunePending(0);
  await t.tunePending(0);
  assert.is(t.pending, 0);
  assert.equal(Object.values(t.entries()), ['b', 'b', 'b']);
});

test('off (the default, --no-tune): always the fallback, nothing queued or timed', async () => {
  const calls: string[] = [];
  const t = new Autotuner({ adapter: () => 'fake', store: memoryTuneStore({ 'tune-v1|mm|fake|small': 'b' }) });
  await t.load();
  assert.is(t.choose('mm', 'small', ['a', 'b'], 'a', timings({ a: 1, b: 2 }, calls)), 'a');
  assert.is(t.pending, 0);
  await t.tunePending();
  assert.equal(calls, []);
});

test('keys name the version, family, adapter and shape class', () => {
  const t = new Autotuner({ version: 7, adapter: () => 'nvidia/hopper/H200' });
  assert.is(t.key('matmul', 'm10n10k10'), 'tune-v7|matmul|nvidia/hopper/H200|m10n10k10');
});

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = (rel: string) => pathToFileURL(path.join(here, rel)).href;

/** Runs one process that loads the file store, chooses among a/b/c and tunes; prints the choices. */
function processRun(cacheHome: string, version: number): { before: string; after: string; timed: string[] } {
  const script = `
    import { Autotuner } from ${JSON.stringify(mod('../engine/autotune.js'))};
    import { fileTuneStore, tuneCachePath } from ${JSON.stringify(mod('../cli/node-tune.js'))};
    const t = new Autotuner({ enabled: true, version: ${version}, adapter: () => 'fake' });
    await t.useStore(fileTuneStore(tuneCachePath()));
    const timed = [];
    const time = async (n) => { timed.push(n); return { a: 3, b: 1, c: 2 }[n]; };
    const before = t.choose('mm', 'cls', ['a', 'b', 'c'], 'a', time);
    await t.tunePending();
    const after = t.choose('mm', 'cls', ['a', 'b', 'c'], 'a', time);
    console.log(JSON.stringify({ before, after, timed }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, XDG_CACHE_HOME: cacheHome }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { before: string; after: string; timed: string[] };
}

test('the file store keeps choices across processes; another tuner version ignores them', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'tune-cache-'));
  try {
    const first = processRun(home, 1);
    assert.equal(first, { before: 'a', after: 'b', timed: ['a', 'b', 'c'] });
    const file = tuneCachePath({ XDG_CACHE_HOME: home });
    assert.is(file, path.join(home, 'maskrcnn-webgpu', 'tune.json'));
    assert.equal(JSON.parse(readFileSync(file, 'utf8')), { 'tune-v1|mm|fake|cls': 'b' });
    // The second process starts with the stored choice and times nothing.
    assert.equal(processRun(home, 1), { before: 'b', after: 'b', timed: [] });
    // Version 2 does not trust version 1's choice: it retimes, and both entries stay in the file.
    assert.equal(processRun(home, 2), { before: 'a', after: 'b', timed: ['a', 'b', 'c'] });
    assert.equal(Object.keys(JSON.parse(readFileSync(file, 'utf8'))).sort(), ['tune-v1|mm|fake|cls', 'tune-v2|mm|fake|cls']);
    // A damaged file is ignored (and rewritten at the next save), not an error.
    writeFileSync(file, '{not json');
    assert.equal(fileTuneStore(file).load(), {});
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('--no-tune, MASKRCNN_NO_TUNE=1 and CI switch tuning off; without a flag it follows the adapter kind', async () => {
  const home = mkdtempSync(path.join(tmpdir(), 'tune-cache-'));
  try {
    assert.is(tuneDisabledByEnv({}), null);
    assert.is(tuneDisabledByEnv({ MASKRCNN_NO_TUNE: '0' }), null);
    assert.match(tuneDisabledByEnv({ MASKRCNN_NO_TUNE: '1' }) ?? '', /MASKRCNN_NO_TUNE/);
    assert.match(tuneDisabledByEnv({ CI: 'true' }) ?? '', /CI/);
    assert.is(await configureAutotune(false, { XDG_CACHE_HOME: home }), false);
    assert.is(engineTuner.enabled, false);
    assert.is(await configureAutotune(true, { XDG_CACHE_HOME: home, CI: '1' }), false);
    assert.is(await configureAutotune(true, { XDG_CACHE_HOME: home }), true);
    assert.is(engineTuner.enabled, true);
    // No flag: on for GPUs, off for CPU adapters (whose fixed table is their measured winners).
    assert.is(await configureAutotune(undefined, { XDG_CACHE_HOME: home }), !adapterIsCpu());
  } finally {
    await F.setAutotune({ enabled: false, store: memoryTuneStore() });
    engineTuner.reset();
    rmSync(home, { recursive: true, force: true });
  }
});

test('matmul: a readback times the queued classes, and every tuned choice matches the float64 reference', async () => {
  const cases: [number, number, number][] = [[37, 29, 12], [65, 33, 17]];
  try {
    for (const [M, K, N] of cases) {
      const ra = ref([M, K], M), rb = ref([K, N], N);
      const want = matmulReference(ra, rb);
      engineTuner.reset();
      await F.setAutotune({ enabled: true, store: memoryTuneStore() });
      const a = gpu(ra), b = gpu(rb);
      await expectRef(F.matmul(a, b), want, { atol: 1e-4, rtol: 1e-4 }, `${M}x${K}x${N} (fallback, class queued)`);
      const tuned = Object.entries(engineTuner.entries());
      assert.is(tuned.length, 1, 'the readback must have timed the queued class');
      const [key, winner] = tuned[0]!;
      assert.is(chooseMatmulVariant(a, b).name, winner);
      // Each candidate as the stored choice (the key proves the class; the winner is one of them).
      let ran = 0;
      for (const { name } of matmulVariants()) {
        await engineTuner.useStore(memoryTuneStore({ [key]: name }));
        if (chooseMatmulVariant(a, b).name !== name) continue; // not a candidate for this layout/adapter
        ran++;
        await expectRef(F.matmul(a, b), want, { atol: 1e-4, rtol: 1e-4 }, `${M}x${K}x${N} tuned to ${name}`);
      }
      assert.ok(ran >= 2, `at least two candidates must have run (${ran})`);
      a.dispose(); b.dispose();
    }
  } finally {
    await F.setAutotune({ enabled: false, store: memoryTuneStore() });
    engineTuner.reset();
  }
});

test('conv: the spatial kernel tunes its register block, and every candidate block matches the float64 reference', async () => {
  // 3x3 stride 2: the input gradient runs four phases; channels 9 and 5 leave partial channel blocks.
  const p = { stride: [2, 2] as [number, number], padding: [1, 1] as [number, number], dilation: [1, 1] as [number, number], groups: 1 };
  const xs = [2, 5, 11, 13], ws = [9, 5, 3, 3];
  const g = refGeom(xs, ws, p);
  const xr = ref(xs, 31), wr = ref(ws, 32), gyr = ref([2, 9, convOutSize(11, 3, 2, 1, 1), convOutSize(13, 3, 2, 1, 1)], 33);
  const runs: [string, () => F.Tensor, ReturnType<typeof conv2dReference>, 'fwd' | 'bwdInput'][] = [
    ['forward', () => conv2dForwardRaw(gpu(xr), gpu(wr), null, g), conv2dReference(xr, wr, null, p), 'fwd'],
    ['input gradient', () => conv2dInputGradRaw(gpu(gyr), gpu(wr), g), conv2dInputGradReference(gyr, wr, xs, p), 'bwdInput'],
  ];
  try {
    for (const [what, run, want, mode] of runs) {
      engineTuner.reset();
      await F.setAutotune({ enabled: true, store: memoryTuneStore() });
      await expectRef(run(), want, { atol: 1e-4, rtol: 1e-4 }, `conv ${what} (fallback, classes queued)`);
      const tunedKeys = Object.keys(engineTuner.entries()).filter((k) => k.includes('|conv-spatial|'));
      assert.ok(tunedKeys.length >= 1, `conv ${what}: the readback must have timed the spatial kernel's classes`);
      const { candidates, shapeClass } = convBlockChoice(mode, g);
      assert.ok(candidates.length >= 2, `conv ${what}: candidates ${candidates.join(', ')}`);
      for (const block of candidates) {
        // Every phase's class (the input gradient has several) set to this block where it is a candidate.
        const seeded = Object.fromEntries(tunedKeys.map((k) => [k, block]));
        await engineTuner.useStore(memoryTuneStore(seeded));
        assert.is(convBlockChoice(mode, g).block, block, `${shapeClass} seeded with ${block}`);
        await expectRef(run(), want, { atol: 1e-4, rtol: 1e-4 }, `conv ${what} with block ${block}`);
      }
    }
  } finally {
    await F.setAutotune({ enabled: false, store: memoryTuneStore() });
    engineTuner.reset();
  }
});

test.run();
