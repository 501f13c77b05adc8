// What each kernel kind costs in one training step, measured by replay. The per-dispatch timestamp
// profile (tools/profile-train.ts) gives every dispatch its own pass and on lavapipe attributes more
// time to a step than the step takes; this tool instead captures the dispatches of one warm step
// (WebGPUBackend.captureDispatches) and, for each kind, records that kind's dispatches of the step R
// times over in one compute pass, submits, awaits the queue and takes the process's CPU time (all
// threads: lavapipe runs kernels on its worker threads) and wall time, less an empty replay's.
// The sum over kinds is compared with a whole-step replay and with the step's own CPU time.
// Replays run the kernels again on the step's live buffers (in-place updates, atomics, scratch
// textures): the numbers are for timing only, and the session is not usable afterwards.
// A dev tool for speed work; not run by tests.
// Usage: node dist/tools/step-kernels.js [--json] [--by entry|op] [--target-s S] [--repeats N]
//          [--warmup N] [--steps N] [--config FILE] [--top N] [--labels N] [--only REGEX] [--no-vec4] [--weights FILE]
//   --by entry   one row per WGSL entry point (default); op: per op label kind and entry point;
//                dispatch: one row per dispatch (its label, entry point and workgroup grid)
//   --labels N   also prints the op labels (with shapes) of the N costliest kinds
//   --only REGEX measures only the kinds matching REGEX (before/after checks of one kernel)
//   --no-vec4    one element per invocation in the fill, strided copy, leading-axis sums and norm
//                kernels (A/B of their vec4 / run forms)
//   --no-src4    the convolutions' spatial kernel reads its source as scalars (A/B of its vec4 form)
//   --no-roi-rows RoIAlign's backward bin by bin, not in rows (A/B of its CPU row form)
//   --no-wshare  every lane of the spatial kernel fetches its weight texels itself (A/B of the
//                subgroup-shared fetches)
//   --no-wtex    the spatial kernel reads its weights from the weight buffer, not a packed texture
//   --weights F  starts from a checkpoint or weights file (e.g. a finished default run's
//                model_final.safetensors: a trained model's step has more positive RoIs and masks)
//   --json       one JSON line per kind, then one summary line (stdout); the table goes to stderr
import '../cli/node-gpu.js';
import { readFileSync } from 'node:fs';
import { init, getBackend, shutdown, setQuiet, adapterReport } from '../engine/index.js';
import type { CapturedDispatch } from '../engine/backend.js';
import { hostPause } from '../engine/device.js';
import { trainSession } from '../bench/train-session.js';
import { setFillScalarOnly, setCopyRun } from '../engine/ops/copy.js';
import { setReduceColumnsVec4 } from '../engine/ops/reduce.js';
import { setNormVec4 } from '../engine/ops/norm.js';
import { setConvSrcVec4, setConvWeightShare, setConvWeightTexture } from '../engine/ops/conv.js';
import { setRoiAlignBackwardRows } from '../engine/ops/roi_align.js';
import { threadCpu, cpuOf, type ThreadCpu } from './thread-cpu.js';

const argv = process.argv.slice(2);
const flag = (name: string, d: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : d;
};
const json = argv.includes('--json');
const by = flag('--by', 'entry');
const targetS = Number(flag('--target-s', '0.6'));
const repeats = Number(flag('--repeats', '3'));
const warmup = Number(flag('--warmup', '4'));
const steps = Number(flag('--steps', '6'));
const configFile = flag('--config', '');
const log = (line: string) => (json ? console.error(line) : console.log(line));

const USAGE_UNIFORM = 0x40, USAGE_COPY_DST = 0x8, SLOT = 256;

setQuiet(true);
if (argv.includes('--no-vec4')) {
  setFillScalarOnly(true);
  setCopyRun(1);
  setReduceColumnsVec4(false);
  setNormVec4(false);
}
if (argv.includes('--no-src4')) setConvSrcVec4(false);
if (argv.includes('--no-roi-rows')) setRoiAlignBackwardRows(false);
if (argv.includes('--no-wshare')) setConvWeightShare(false);
if (argv.includes('--no-wtex')) setConvWeightTexture(false);
await init();
const backend = getBackend();
const { device } = backend;
log(`adapter: ${adapterReport?.description ?? 'unknown'}`);
const weights = flag('--weights', '');
const session = await trainSession(configFile ? JSON.parse(readFileSync(configFile, 'utf8')) : {}, { weights: weights || undefined });
for (let i = 0; i < warmup; i++) await session.step();
if (backend.tierStatus().mode === 'background') {
  await backend.whenTiered();
  await session.step();
}

// The step's own cost: `steps` pipelined steps between two queue drains.
await session.flush();
await backend.sync();
let t = performance.now();
let c = process.cpuUsage();
let th0 = threadCpu();
let images = 0;
for (let i = 0; i < steps; i++) images += (await session.step()).images;
await session.flush();
await backend.sync();
const stepCpuMs = cpuMs(process.cpuUsage(c)) / steps;
const stepWallMs = (performance.now() - t) / steps;
const stepThreads = threadDelta(th0, threadCpu(), steps);
log(`step: ${stepCpuMs.toFixed(1)} CPU ms, ${stepWallMs.toFixed(1)} wall ms (${steps} steps, ${images / steps} images each); by thread: ${fmtThreads(stepThreads)}`);

// One more step, captured. Its buffers are not handed back to the pool meanwhile, so no two tensors
// of the step share a buffer and each buffer keeps the last value the step gave it: a replayed
// kernel reads what it read in the step (unless the step updated it in place later), never another
// tensor's bytes as its counts or indices (a loop bound read from a reused buffer can run for ages).
const captured: CapturedDispatch[] = [];
const release = backend.pool.release;
backend.pool.release = () => {};
backend.captureDispatches((d) => captured.push(d));
await session.step();
backend.captureDispatches(null);
backend.pool.release = release;
await session.flush();
await backend.sync();
log(`captured ${captured.length} dispatches`);

// Every captured dispatch gets a 256-byte slot of one uniform buffer and a bind group of its own.
const uniforms = device.createBuffer({ size: Math.max(SLOT, captured.length * SLOT), usage: USAGE_UNIFORM | USAGE_COPY_DST });
const bytes = new Uint8Array(captured.length * SLOT);
captured.forEach((d, i) => bytes.set(d.uniforms, i * SLOT));
device.queue.writeBuffer(uniforms, 0, bytes);
const maxBinding = device.limits.maxStorageBufferBindingSize;
const groups = captured.map((d, slot) => {
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniforms, offset: d.dynamicUniforms ? 0 : slot * SLOT, size: d.uniformBytes } }];
  d.buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer, size: Math.min(buffer.size, maxBinding) } }));
  d.textures.forEach((view, i) => entries.push({ binding: d.buffers.length + i + 1, resource: view }));
  return device.createBindGroup({ layout: d.layout, entries });
});

/** Records the dispatches (indices into captured) `times` times over in one pass, submits, awaits. */
async function replay(indices: number[], times: number): Promise<void> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (let r = 0; r < times; r++) {
    for (const i of indices) {
      const d = captured[i]!;
      pass.setPipeline(d.pipeline);
      if (d.dynamicUniforms) pass.setBindGroup(0, groups[i]!, [i * SLOT]);
      else pass.setBindGroup(0, groups[i]!);
      pass.dispatchWorkgroups(...d.workgroups);
    }
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  // Waited on as the engine waits (sleeping between Dawn's polls), not spinning the main thread.
  let done = false;
  const work = device.queue.onSubmittedWorkDone().then(() => void (done = true));
  while (!done && hostPause) await hostPause();
  await work;
}

interface Cost {
  /** CPU ms of all threads, wall ms, per replay of the set (one step's worth), less the empty replay. */
  cpuMs: number;
  wallMs: number;
  threads: ThreadCpu;
}

/** Median over `repeats` batches of `times` replays each (times calibrated to ~targetS a batch). */
async function measure(indices: number[], base?: Cost): Promise<Cost & { times: number }> {
  // Calibration: 1, 4, 16, ... replays until a batch takes a quarter of targetS.
  let times = 1;
  for (;;) {
    t = performance.now();
    await replay(indices, times);
    const s = (performance.now() - t) / 1000;
    if (s >= targetS / 4 || times >= 4096) {
      times = Math.max(1, Math.min(4096, Math.round((times * targetS) / Math.max(s, 1e-6))));
      break;
    }
    times *= 4;
  }
  const runs: Cost[] = [];
  for (let r = 0; r < repeats; r++) {
    c = process.cpuUsage();
    th0 = threadCpu();
    t = performance.now();
    await replay(indices, times);
    const wallMs = performance.now() - t;
    const cpu = cpuMs(process.cpuUsage(c));
    // The empty replay's cost is per batch (a submit and a wait), not per replay.
    const threads = threadDelta(th0, threadCpu(), 1);
    runs.push({ cpuMs: (cpu - (base?.cpuMs ?? 0)) / times, wallMs: (wallMs - (base?.wallMs ?? 0)) / times, threads: scale(threads, 1 / times) });
  }
  runs.sort((a, b) => a.cpuMs - b.cpuMs);
  return { ...runs[runs.length >> 1]!, times };
}

const empty = await measure([]);
const emptyPerBatch: Cost = { cpuMs: empty.cpuMs * empty.times, wallMs: empty.wallMs * empty.times, threads: {} };
log(`empty replay (a submit and a queue wait): ${emptyPerBatch.cpuMs.toFixed(2)} CPU ms, ${emptyPerBatch.wallMs.toFixed(2)} wall ms`);

const kindOf = (d: CapturedDispatch, i: number): string => {
  if (by === 'dispatch') return `${d.label} [${d.entry} ${d.workgroups.join('x')}] #${i}`;
  if (by !== 'op') return d.entry;
  const op = d.label.replace(/\w*\[[^\]]*\]|(?<![A-Za-z_\d])-?\d[\d.e+x-]*|[(),=]|->/g, ' ').replace(/\s+/g, ' ').trim();
  return `${op} [${d.entry}]`;
};
const kinds = new Map<string, number[]>();
captured.forEach((d, i) => {
  const k = kindOf(d, i);
  kinds.set(k, [...(kinds.get(k) ?? []), i]);
});

const rows: { kind: string; dispatches: number; cost: Cost; times: number }[] = [];
const only = argv.includes('--only') ? new RegExp(flag('--only', '')) : null;
for (const [kind, indices] of kinds) {
  if (only && !only.test(kind)) continue;
  const t0 = performance.now();
  rows.push({ kind, dispatches: indices.length, ...(await measureCost(indices)) });
  const r = rows[rows.length - 1]!;
  console.error(`  measured ${kind}: ${r.cost.cpuMs.toFixed(2)} CPU ms (${r.times} replays, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
rows.sort((a, b) => b.cost.cpuMs - a.cost.cpuMs);
const whole = await measure(captured.map((_, i) => i), emptyPerBatch);

async function measureCost(indices: number[]): Promise<{ cost: Cost; times: number }> {
  const m = await measure(indices, emptyPerBatch);
  return { cost: m, times: m.times };
}

const sum = rows.reduce((a, r) => a + r.cost.cpuMs, 0);
const sumWall = rows.reduce((a, r) => a + r.cost.wallMs, 0);
const top = Number(flag('--top', '1000'));
const pad = (s: string | number, n: number) => String(s).padStart(n);
log(`${pad('CPU ms', 8)} ${pad('%', 5)} ${pad('main ms', 8)} ${pad('wall ms', 8)} ${pad('disp', 5)} ${pad('reps', 5)}  kind`);
for (const r of rows.slice(0, top)) {
  const main = r.cost.threads.main ?? 0;
  log(`${pad(r.cost.cpuMs.toFixed(2), 8)} ${pad(((100 * r.cost.cpuMs) / sum).toFixed(1), 5)} ${pad(main.toFixed(2), 8)} ${pad(r.cost.wallMs.toFixed(2), 8)} ${pad(r.dispatches, 5)} ${pad(r.times, 5)}  ${r.kind}`);
  if (json) console.log(JSON.stringify({ kind: r.kind, dispatchesPerStep: r.dispatches, cpuMsPerStep: round(r.cost.cpuMs), mainThreadMsPerStep: round(main), wallMsPerStep: round(r.cost.wallMs), percent: round((100 * r.cost.cpuMs) / sum), replays: r.times }));
}
// --labels N: the ops behind the N costliest kinds (their labels carry the shapes).
const showLabels = Number(flag('--labels', '0'));
for (const r of rows.slice(0, showLabels)) {
  const labels = new Map<string, number>();
  for (const i of kinds.get(r.kind)!) labels.set(captured[i]!.label, (labels.get(captured[i]!.label) ?? 0) + 1);
  log(`${r.kind}:`);
  for (const [l, n] of labels) log(`  ${n}x ${l}`);
}
log(`sum of kinds: ${sum.toFixed(1)} CPU ms, ${sumWall.toFixed(1)} wall ms; whole step replayed at once: ${whole.cpuMs.toFixed(1)} CPU ms, ${whole.wallMs.toFixed(1)} wall ms (threads: ${fmtThreads(whole.threads)})`);
log(`the step itself: ${stepCpuMs.toFixed(1)} CPU ms, ${stepWallMs.toFixed(1)} wall ms: kernels (sum of kinds) ${((100 * sum) / stepCpuMs).toFixed(0)}% of its CPU time`);
if (json) {
  console.log(JSON.stringify({
    summary: true, preset: session.model.cfg.name, dispatches: captured.length, sumCpuMs: round(sum), sumWallMs: round(sumWall),
    wholeReplayCpuMs: round(whole.cpuMs), wholeReplayWallMs: round(whole.wallMs), stepCpuMs: round(stepCpuMs), stepWallMs: round(stepWallMs),
    stepThreadsCpuMs: stepThreads, emptyReplayCpuMs: round(emptyPerBatch.cpuMs),
  }));
}
uniforms.destroy();
await session.dispose();
await shutdown();

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}
function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
function threadDelta(a: ThreadCpu, b: ThreadCpu, n: number): ThreadCpu {
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, round((v - (a[k] ?? 0)) / n)]));
}
function scale(a: ThreadCpu, f: number): ThreadCpu {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, round(v * f)]));
}
function fmtThreads(a: ThreadCpu): string {
  return Object.entries(a)
    .filter(([, v]) => v >= 0.05)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ') + ` (all ${cpuOf(a).toFixed(1)})`;
}
