// Time to the first training step with an empty Mesa shader cache, and what the pipelines cost.
// The default `node cli/train.js` run (tiny-cpu, 128 px, batch 4) spends its first step compiling
// every pipeline: lavapipe (llvmpipe) translates each shader to LLVM IR and machine code at its first
// dispatch, not at createComputePipeline. This benchmark:
//  1. runs in a child process whose MESA_SHADER_CACHE_DIR is a fresh empty folder (so nothing is
//     cached from earlier runs; --warm-cache keeps the user's cache instead), times the first
//     training step and the next --steps steps (wall and process CPU seconds: all threads, so the
//     driver's compile threads count and other load on the machine inflates it less), and records
//     every distinct kernel with its first dispatch (buffer sizes, uniforms, workgroups);
//  2. with --per-pipeline, replays each recorded kernel once in another child with the Mesa cache
//     disabled: its pipeline creation and its first (one-workgroup) dispatch timed alone, in CPU
//     seconds, so the compile cost of each kernel family and size shows.
// Usage: node dist/bench/first-step.js [--steps N] [--per-pipeline] [--warm-cache] [--json] [--top N]
// With kernel tiering (engine/tiering.ts; KERNEL_TIERS=off for the untiered run) the next steps
// follow at once while the fast kernels compile in the background; then the run waits for the tier-up
// (its time from the first step's start is tieredUpS) and --steps more are the steady figure.
// --json prints one JSON line: firstStep {wallS, cpuS}, earlySteps and steadyStep {wallS, cpuS}
// (means over the steps during and after the tier-up), tieredUpS, tiers (the backend's tierStatus),
// pipelines, wgslChars, and with --per-pipeline the families (count, createCpuS,
// firstDispatchCpuS) and the costliest kernels.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TierStatus } from '../engine/index.js';

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
const num = (name: string, dflt: number): number => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
const json = flag('--json');
const log = (line: string) => (json ? console.error(line) : console.log(line));
const self = fileURLToPath(import.meta.url);

/** A kernel's first dispatch, as recorded in the training run and replayed alone. */
interface Recorded {
  entry: string;
  wgsl: string;
  bufferSizes: number[];
  uniforms: number[];
  workgroups: number[];
}

interface StepTimes {
  firstStep: { wallS: number; cpuS: number };
  earlySteps: { wallS: number; cpuS: number };
  tieredUpS: number;
  tiers: TierStatus;
  steadyStep: { wallS: number; cpuS: number };
  steps: number;
  pipelines: number;
}

interface Replayed {
  entry: string;
  chars: number;
  createCpuS: number;
  dispatchCpuS: number;
  dispatchWallS: number;
}

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

/** Child 1: the training steps, kernels recorded at their first dispatch. */
async function trainChild(outFile: string): Promise<void> {
  await import('../cli/node-gpu.js');
  const { init, setQuiet, shutdown, counters, getBackend } = await import('../engine/index.js');
  const { trainSession } = await import('./train-session.js');
  setQuiet(true);
  await init();
  const backend = getBackend();
  const recorded = new Map<string, Recorded>();
  const dispatch = backend.dispatch.bind(backend);
  backend.dispatch = (d) => {
    // A tiered kernel's quick variant too (either may run; the replay times both).
    for (const k of [d.kernel, d.kernel.quick]) {
      if (!k || recorded.has(k.wgsl)) continue;
      const u = d.uniforms instanceof ArrayBuffer ? new Uint8Array(d.uniforms) : new Uint8Array(d.uniforms.buffer, d.uniforms.byteOffset, d.uniforms.byteLength);
      recorded.set(k.wgsl, { entry: k.entry, wgsl: k.wgsl, bufferSizes: d.buffers.map((b) => b.size), uniforms: [...u], workgroups: [...d.workgroups].map((w) => w ?? 1) });
    }
    dispatch(d);
  };
  const session = await trainSession({});
  const p0 = counters().pipelinesCreated;
  const start = performance.now();
  let cpu = process.cpuUsage(), t = start;
  await session.step();
  await backend.sync();
  const firstStep = { wallS: (performance.now() - t) / 1000, cpuS: cpuSeconds(cpu) };
  const pipelines = counters().pipelinesCreated - p0;
  const steps = num('--steps', 3);
  const timeSteps = async (): Promise<{ wallS: number; cpuS: number }> => {
    cpu = process.cpuUsage();
    t = performance.now();
    for (let i = 0; i < steps; i++) await session.step();
    await backend.sync();
    return { wallS: (performance.now() - t) / 1000 / steps, cpuS: cpuSeconds(cpu) / steps };
  };
  let tieredUpS = -1;
  const tieredUp = backend.whenTiered().then(() => (tieredUpS = (performance.now() - start) / 1000));
  const earlySteps = await timeSteps();
  await tieredUp;
  const steadyStep = await timeSteps();
  const tiers = backend.tierStatus();
  await session.dispose();
  await shutdown();
  const times: StepTimes = { firstStep, earlySteps, tieredUpS, tiers, steadyStep, steps, pipelines };
  writeFileSync(outFile, JSON.stringify({ times, kernels: [...recorded.values()] }));
}

/** Child 2: each recorded kernel alone: pipeline creation, then one one-workgroup dispatch, synced. */
async function replayChild(inFile: string, outFile: string): Promise<void> {
  await import('../cli/node-gpu.js');
  const { init, setQuiet, shutdown, getBackend } = await import('../engine/index.js');
  setQuiet(true);
  await init();
  const backend = getBackend();
  const kernels = (JSON.parse(readFileSync(inFile, 'utf8')) as { kernels: Recorded[] }).kernels;
  const out: Replayed[] = [];
  for (const k of kernels) {
    const kernel = { wgsl: k.wgsl, entry: k.entry };
    const buffers = k.bufferSizes.map((s) => backend.malloc(s));
    let cpu = process.cpuUsage();
    backend.pipeline(kernel);
    const createCpuS = cpuSeconds(cpu);
    cpu = process.cpuUsage();
    const t = performance.now();
    backend.dispatch({ kernel, buffers, uniforms: new Uint8Array(k.uniforms), workgroups: [1, 1, 1], label: `replay ${k.entry}` });
    await backend.sync();
    out.push({ entry: k.entry, chars: k.wgsl.length, createCpuS, dispatchCpuS: cpuSeconds(cpu), dispatchWallS: (performance.now() - t) / 1000 });
    for (const b of buffers) backend.free(b);
  }
  await shutdown();
  writeFileSync(outFile, JSON.stringify(out));
}

function runChild(args: string[], env: NodeJS.ProcessEnv): void {
  const r = spawnSync(process.execPath, [self, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env });
  if (r.status !== 0) throw new Error(`first-step child ${args[0]} failed (exit ${r.status ?? r.signal})`);
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'first-step-'));
  try {
    const cacheDir = join(tmp, 'mesa-cache');
    const env = flag('--warm-cache') ? { ...process.env } : { ...process.env, MESA_SHADER_CACHE_DIR: cacheDir };
    const trainOut = join(tmp, 'train.json');
    runChild(['--child-train', trainOut, ...argv], env);
    const { times, kernels } = JSON.parse(readFileSync(trainOut, 'utf8')) as { times: StepTimes; kernels: Recorded[] };
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    log(`cache: ${flag('--warm-cache') ? 'the user\'s Mesa shader cache' : `empty (MESA_SHADER_CACHE_DIR=${cacheDir})`}`);
    log(`first step: ${times.firstStep.wallS.toFixed(1)} s wall, ${times.firstStep.cpuS.toFixed(1)} CPU s; ${times.pipelines} pipelines, ${kernels.length} kernels dispatched`);
    log(`next ${times.steps} steps (kernel tiers ${times.tiers.mode}, ${times.tiers.compiled} fast variants compiled in the background, ${times.tiers.quickDispatches} quick dispatches): ${times.earlySteps.wallS.toFixed(2)} s wall, ${times.earlySteps.cpuS.toFixed(2)} CPU s per step`);
    log(`tiered up ${times.tieredUpS.toFixed(1)} s after the first step began; then ${times.steps} steps: ${times.steadyStep.wallS.toFixed(2)} s wall, ${times.steadyStep.cpuS.toFixed(2)} CPU s per step`);
    const families: Record<string, { count: number; chars: number; createCpuS: number; firstDispatchCpuS: number }> = {};
    let top: Replayed[] = [];
    if (flag('--per-pipeline')) {
      const replayOut = join(tmp, 'replay.json');
      runChild(['--child-replay', trainOut, replayOut], { ...process.env, MESA_SHADER_CACHE_DISABLE: 'true', KERNEL_TIERS: 'off' });
      const rows = JSON.parse(readFileSync(replayOut, 'utf8')) as Replayed[];
      for (const r of rows) {
        const f = (families[r.entry] ??= { count: 0, chars: 0, createCpuS: 0, firstDispatchCpuS: 0 });
        f.count++;
        f.chars += r.chars;
        f.createCpuS = r3(f.createCpuS + r.createCpuS);
        f.firstDispatchCpuS = r3(f.firstDispatchCpuS + r.dispatchCpuS);
      }
      const total = rows.reduce((a, r) => a + r.createCpuS + r.dispatchCpuS, 0);
      log(`replayed alone (Mesa cache disabled): ${total.toFixed(1)} CPU s in all`);
      log('family                      count   WGSL chars   create CPU s   first dispatch CPU s');
      for (const [name, f] of Object.entries(families).sort((a, b) => b[1].firstDispatchCpuS - a[1].firstDispatchCpuS)) {
        log(`${name.padEnd(28)}${String(f.count).padStart(5)}${String(f.chars).padStart(13)}${f.createCpuS.toFixed(2).padStart(15)}${f.firstDispatchCpuS.toFixed(2).padStart(23)}`);
      }
      top = rows.sort((a, b) => b.dispatchCpuS - a.dispatchCpuS).slice(0, num('--top', 15));
      log('costliest kernels (first dispatch CPU s, WGSL chars):');
      for (const r of top) log(`  ${r.entry.padEnd(28)} ${r.dispatchCpuS.toFixed(2).padStart(7)} ${String(r.chars).padStart(8)}`);
    }
    if (json) {
      console.log(JSON.stringify({
        cache: flag('--warm-cache') ? 'warm' : 'empty',
        firstStep: { wallS: r3(times.firstStep.wallS), cpuS: r3(times.firstStep.cpuS) },
        earlySteps: { wallS: r3(times.earlySteps.wallS), cpuS: r3(times.earlySteps.cpuS), steps: times.steps },
        tieredUpS: r3(times.tieredUpS),
        tiers: times.tiers,
        steadyStep: { wallS: r3(times.steadyStep.wallS), cpuS: r3(times.steadyStep.cpuS), steps: times.steps },
        pipelines: times.pipelines,
        wgslChars: kernels.reduce((a, k) => a + k.wgsl.length, 0),
        families,
        top: top.map((r) => ({ entry: r.entry, chars: r.chars, createCpuS: r3(r.createCpuS), firstDispatchCpuS: r3(r.dispatchCpuS) })),
      }));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (argv[0] === '--child-train') await trainChild(argv[1]!);
else if (argv[0] === '--child-replay') await replayChild(argv[1]!, argv[2]!);
else await main();
