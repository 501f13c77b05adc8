// Where a training iteration's time goes: dispatches, submits and readbacks per iteration, the
// time the host spends waiting for readbacks (the device's share, roughly) and the rest (JS +
// Dawn encoding: the host's share), for the default synthetic configuration or a --config file.
// A dev tool for speed work; not run by tests.
// Usage: node dist/tools/profile-train.js [--iters N] [--warmup N] [--config FILE] [--top N] [--by-label] [--formula-weights]
//        [--weights FILE]   start from trained weights (e.g. a run's model_final.safetensors): late in
//                           training more sampled RoIs are positive, so the mask head costs more
import '../cli/node-gpu.js';
import { readFileSync } from 'node:fs';
import { init, getBackend, shutdown } from '../engine/index.js';
import { trainSession } from '../bench/train-session.js';
import { loadSafetensors, toTensors } from '../engine/safetensors.js';

const argv = process.argv.slice(2);
const flag = (name: string, d: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : d;
};
const iters = Number(flag('--iters', '20'));
const warmup = Number(flag('--warmup', '5'));
const configFile = flag('--config', '');

await init();
const backend = getBackend();
const session = await trainSession(configFile ? JSON.parse(readFileSync(configFile, 'utf8')) : {}, { formulaWeights: argv.includes('--formula-weights') });
const { cfg, loader } = session;
const weightsFile = flag('--weights', '');
if (weightsFile) session.model.loadStateDict(toTensors(loadSafetensors(readFileSync(weightsFile))), { strict: false });
const modelCfg = session.model.cfg;

let loadMs = 0;
const next = loader.next.bind(loader);
loader.next = async () => {
  const t = performance.now();
  try {
    return await next();
  } finally {
    loadMs += performance.now() - t;
  }
};

for (let i = 0; i < warmup; i++) await session.step();
await backend.sync();
const c0 = backend.stats();
loadMs = 0;
const t0 = performance.now();
for (let i = 0; i < iters; i++) await session.step();
await backend.sync();
const wall = (performance.now() - t0) / iters;
const c1 = backend.stats();
const per = (x: number) => (x / iters).toFixed(1);
// Readbacks and the time the host spent blocked on the GPU (the engine's counters).
const reads = c1.readbacks - c0.readbacks, readMs = c1.blockingSyncMs - c0.blockingSyncMs;
console.log(`${modelCfg.name} batch ${cfg.batch} at ${modelCfg.input.minSizesTrain.join('/')} px, mean of ${iters} iterations after ${warmup}:`);
console.log(`  ${wall.toFixed(1)} ms per iteration (${((cfg.batch * 1000) / wall).toFixed(2)} images/s)`);
console.log(`  ${per(c1.dispatches - c0.dispatches)} dispatches, ${per(c1.submits - c0.submits)} submits, ${per(reads)} readbacks, ${per(c1.buffersCreated - c0.buffersCreated)} new buffers per iteration`);
console.log(`  blocked on the GPU ${per(readMs)} ms, loading data ${per(loadMs)} ms, the rest (host: JS + encoding) ${(wall - readMs / iters - loadMs / iters).toFixed(1)} ms`);
// Where the device time goes: GPU timestamps around every dispatch of a few more iterations.
backend.startProfile();
const profiled = Math.min(iters, 5);
for (let i = 0; i < profiled; i++) await session.step();
const rows = await backend.stopProfile(argv.includes('--by-label'));
const gpuMs = rows.reduce((a, r) => a + r.ms, 0) / profiled;
console.log(`  GPU time per iteration (timestamps, ${profiled} iterations): ${gpuMs.toFixed(1)} ms in kernels; slowest kernels:`);
for (const r of rows.slice(0, Number(flag('--top', '30')))) {
  console.log(`  ${(r.ms / profiled).toFixed(2).padStart(8)} ms ${((100 * r.ms) / profiled / gpuMs).toFixed(1).padStart(5)}%  ${String(r.count / profiled).padStart(5)}x  ${r.op} [${r.entry}]`);
}
await session.dispose();
await shutdown();
