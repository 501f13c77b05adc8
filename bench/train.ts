// Training speed: images per second of full Mask R-CNN training iterations (data loading, forward,
// the five losses, backward, SGD step) on the synthetic shapes data, after warm-up iterations that
// compile the pipelines. Cases:
//   tiny-cpu at 128 px, batch 4   the default `node cli/train.js` run
//   tiny at 128 px, batch 4       the `tiny` preset
//   R50-FPN at 512 px, batch 2    with --r50 (minutes per iteration on a CPU adapter)
//   R50-FPN at 800 px, batch 2    with --r50-full (for a real GPU): Detectron2's input sizes (short side
//                                 800, long side <= 1333) on square 800x800 synthetic images, so about
//                                 2/3 of a typical COCO image's pixels; Detectron2 reports ~7.6 img/s per V100
// R50-FPN is torchvision's maskrcnn_resnet50_fpn (frozen BN) with the parity fixture's formula
// weights, which keep activations in range (a random init with identity-frozen BN diverges).
// No peer: TensorFlow.js has no Mask R-CNN training to compare with, so this prints plain rates
// and the CPU seconds per image of this process (all driver threads), which load does not inflate.
// --json prints one JSON line per case (after warm-up): preset, size, batch, imagesPerSecond,
// msPerStep, and per step: dispatches, submits, GPU buffers / pipelines / bind groups created, readbacks,
// blocking host<->GPU syncs, hostMs (wall time not spent blocked on the GPU: JS, encoding, data)
// and gpuMs (summed kernel times from timestamp queries over extra profiled steps; null without
// 'timestamp-query'); then the pool's bytes (live + idle, MB) and the peak live MB. Profiling gives every dispatch its own pass, so it runs after the timed steps.
// --no-profile skips those extra steps (gpuMs null): R50 steps take minutes each on lavapipe.
// --weights FILE starts the tiny cases from a checkpoint or weights file (e.g. a finished default run's
// model_final.safetensors: a trained model keeps more positive RoIs, so its steps cost more than a fresh one's).
// --tally prints (stderr) the dispatches per step of each op kind (label without shapes, entry point).
// --trace-buffers prints (stderr) each GPU buffer created in the measured steps: its size (and the
// pool request it serves), usage, the pool's live/idle bytes then and the call stack (where a step
// still creates buffers after warm-up); and the call stack of each bind group created.
// --amp trains every case with mixed precision (autocast, loss scaling: `node cli/train.js --amp`).
// Usage: node dist/bench/train.js [--r50] [--r50-full] [--amp] [--iters N] [--warmup N] [--json] [--no-profile] [--tally] [--trace-buffers] [--weights FILE] [--only tiny-cpu|tiny|r50]
import '../cli/node-gpu.js';
import { init, setQuiet, adapterReport, shutdown, counters, getBackend, memory, type Counters } from '../engine/index.js';
import type { TrainConfig } from '../train/config.js';
import { printTable } from './harness.js';
import { trainSession } from './train-session.js';

interface Case {
  name: string;
  /** Short name for --only. */
  key: string;
  config: Partial<TrainConfig>;
  warmup: number;
  iters: number;
  formulaWeights?: boolean;
}

const argv = process.argv.slice(2);
const itersFlag = argv.includes('--iters') ? Number(argv[argv.indexOf('--iters') + 1]) : 0;
const warmupFlag = argv.includes('--warmup') ? Number(argv[argv.indexOf('--warmup') + 1]) : undefined;
const r50 = (size: number, maxSize: number): Partial<TrainConfig> => ({
  preset: 'torchvision-r50-fpn',
  batch: 2,
  synthetic: { size, trainCount: 8, valCount: 1 },
  model: { input: { minSizesTrain: [size], minSizeTest: size, maxSize } },
});
const cases: Case[] = [
  { key: 'tiny-cpu', name: 'tiny-cpu, 128 px, batch 4 (default run)', config: {}, warmup: 3, iters: 20 },
  { key: 'tiny', name: 'tiny, 128 px, batch 4', config: { preset: 'tiny', synthetic: { size: 128 } }, warmup: 2, iters: 6 },
];
// Two warm-up steps at least: the first step's SGD step creates the momentum buffers (taking idle
// pool buffers the next forward pass then misses), so the second step still creates ~50 buffers.
if (argv.includes('--r50')) cases.push({ key: 'r50', name: 'torchvision-r50-fpn, 512 px, batch 2', config: r50(512, 512), warmup: 2, iters: 2, formulaWeights: true });
if (argv.includes('--r50-full')) cases.push({ key: 'r50', name: 'torchvision-r50-fpn, 800x800 (min 800, max 1333), batch 2', config: r50(800, 1333), warmup: 2, iters: 10, formulaWeights: true });

const json = argv.includes('--json');
const weightsFlag = argv.includes('--weights') ? argv[argv.indexOf('--weights') + 1] : undefined;
const tally = argv.includes('--tally');
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
const log = (line: string) => (json ? console.error(line) : console.log(line));

/**
 * Logs every GPU buffer created while `on` is true (--trace-buffers): its size (and the pool request
 * it serves), usage, the pool's bytes then and the call stack (paths relative to dist/).
 */
function traceBufferCreations(): { on: boolean } {
  const state = { on: false };
  const backend = getBackend();
  const { pool, device } = backend;
  const create = device.createBuffer.bind(device);
  const acquire = pool.acquire.bind(pool);
  let request = 0;
  pool.acquire = (bytes: number, fresh?: boolean) => {
    request = bytes;
    try {
      return acquire(bytes, fresh);
    } finally {
      request = 0;
    }
  };
  Error.stackTraceLimit = 40;
  const dist = new URL('..', import.meta.url).href;
  const stack = (): string => {
    const frames = (new Error().stack ?? '').split('\n').slice(3).filter((l) => !l.includes('node:internal') && !l.includes('/bench/train.js'));
    return frames.map((l) => l.trim().replace(/^at /, '').replaceAll(dist, '')).join(' < ');
  };
  device.createBuffer = (desc: GPUBufferDescriptor) => {
    if (state.on) {
      const { liveBytes, idleBytes } = pool.getStats();
      const asked = request ? ` for a request of ${request}` : '';
      console.error(`buffer created: ${desc.size} bytes${asked}, usage ${desc.usage}, pool live ${liveBytes} idle ${idleBytes}: ${stack()}`);
    }
    return create(desc);
  };
  const createBindGroup = device.createBindGroup.bind(device);
  device.createBindGroup = (desc: GPUBindGroupDescriptor) => {
    if (state.on) console.error(`bind group created: ${stack()}`);
    return createBindGroup(desc);
  };
  return state;
}

/** Counter differences divided by the number of steps. */
function perStep(before: Counters, after: Counters, n: number): Counters {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v - before[k as keyof Counters]) / n])) as unknown as Counters;
}

/** Summed kernel time per step over `n` extra profiled steps, or null without timestamp queries. */
async function gpuMsPerStep(step: () => Promise<unknown>, n: number): Promise<number | null> {
  const backend = getBackend();
  if (!backend.device.features.has('timestamp-query')) return null;
  backend.startProfile();
  for (let i = 0; i < n; i++) await step();
  const rows = await backend.stopProfile();
  return rows.reduce((a, r) => a + r.ms, 0) / n;
}

setQuiet(true);
await init();
if (argv.includes('--amp')) {
  for (const c of cases) {
    c.config = { ...c.config, amp: true };
    c.name += ', --amp';
  }
}

const trace = argv.includes('--trace-buffers') ? traceBufferCreations() : undefined;
log(`adapter: ${adapterReport?.description ?? 'unknown'}`);
const rows: (string | number)[][] = [];
for (const c of cases.filter((c) => !only || c.key === only)) {
  const session = await trainSession(c.config, { formulaWeights: c.formulaWeights, weights: c.formulaWeights ? undefined : weightsFlag });
  for (let i = 0; i < (warmupFlag ?? c.warmup); i++) await session.step();
  // Steady state: every tiered kernel on its fast variant (engine/tiering.ts), then one more step
  // so that the switch (pipeline and bind group creation) falls before the timed span.
  if (getBackend().tierStatus().mode === 'background') {
    await getBackend().whenTiered();
    await session.step();
  }
  // No sync here: steps are pipelined (each takes the previous one's losses late), so the timed
  // span runs from one step's start to a later step's start, the same phase at both ends.
  const n = itersFlag || c.iters;
  if (tally) getBackend().tallyDispatches(true);
  if (trace) trace.on = true;
  const c0 = counters();
  const q0 = getBackend().tierStatus().quickDispatches;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let images = 0;
  for (let i = 0; i < n; i++) {
    if (trace) console.error(`measured step ${i + 1}`);
    images += (await session.step()).images;
  }
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const per = perStep(c0, counters(), n);
  const quickPerStep = (getBackend().tierStatus().quickDispatches - q0) / n;
  if (trace) trace.on = false;
  if (tally) for (const [k, v] of getBackend().tallyDispatches(false)) console.error(`  ${(v / n).toFixed(1).padStart(7)}  ${k}`);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  rows.push([c.name, n, images / s, (1000 * s) / n, cpuS / images]);
  log(`  ${c.name}: ${(images / s).toFixed(2)} images/s`);
  if (json) {
    const gpuMs = argv.includes('--no-profile') ? null : await gpuMsPerStep(session.step, Math.min(n, 2));
    const input = session.model.cfg.input;
    const round = (x: number) => Math.round(x * 100) / 100;
    console.log(JSON.stringify({
      preset: session.model.cfg.name,
      size: input.minSizesTrain[0],
      batch: session.cfg.batch,
      amp: session.cfg.amp,
      steps: n,
      imagesPerSecond: round(images / s),
      msPerStep: round((1000 * s) / n),
      dispatchesPerStep: round(per.dispatches),
      submitsPerStep: round(per.submits),
      buffersCreatedPerStep: round(per.buffersCreated),
      texturesCreatedPerStep: round(per.texturesCreated),
      pipelinesCreatedPerStep: round(per.pipelinesCreated),
      quickKernelDispatchesPerStep: round(quickPerStep),
      bindGroupsCreatedPerStep: round(per.bindGroupsCreated),
      readbacksPerStep: round(per.readbacks),
      blockingSyncsPerStep: round(per.blockingSyncs),
      blockingSyncMsPerStep: round(per.blockingSyncMs),
      hostMsPerStep: round((1000 * s) / n - per.blockingSyncMs),
      gpuMsPerStep: gpuMs === null ? null : round(gpuMs),
      cpuSecondsPerImage: Math.round((cpuS / images) * 1000) / 1000,
      poolMB: round((memory().liveBytes + memory().idleBytes) / 2 ** 20),
      peakLiveMB: round(memory().peakLiveBytes / 2 ** 20),
      keptTexturesMB: round(getBackend().keptTextures.stats().bytes / 2 ** 20),
    }));
  }
  await session.dispose();
}
if (!json) printTable('training speed (after warm-up)', ['case', 'iterations', 'images/s', 'ms/iteration', 'CPU s/image'], rows);
await shutdown();
