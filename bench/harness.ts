// Timing helpers shared by the benchmarks (matmul, conv, ...): each measurement warms up, picks
// an iteration count that runs for about `targetS` seconds, queues that many iterations and ends
// with a GPU sync, and keeps the best of a few repeats (the machine is shared, so the best run is
// the least disturbed one). Plus a plain-text table printer and a description of the machine.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { getBackend, tidy, type Tensor } from '../engine/index.js';
import { waitForGPU } from '../engine/backend.js';
import { uniformBlock } from '../kernels/uniforms.js';
import type { Peer, TF } from './peer.js';

type TfTensor = ReturnType<TF['tensor']>;

export interface TimeOpts {
  /** Untimed runs first (pipeline compilation, buffer pool warm-up). */
  warmup?: number;
  /** Aim for each timed batch to take about this long. */
  targetS?: number;
  /** Timed batches; the fastest is reported. */
  repeats?: number;
  maxIters?: number;
}

const DEFAULTS: Required<TimeOpts> = { warmup: 2, targetS: 1, repeats: 3, maxIters: 200 };

/** Per-iteration cost: wall seconds, and CPU seconds of this whole process (all driver threads). */
export interface Timing {
  s: number;
  /** On a CPU adapter (lavapipe) the work runs on this process's threads, so CPU time measures it
   *  even when other processes compete for the cores; wall time alone would not. */
  cpuS: number;
}

/**
 * Cost per iteration of `step(n)`, which must queue n iterations and resolve once the GPU has
 * finished them. The iteration count comes from one timed calibration run; the fastest repeat
 * (by wall time, and separately by CPU time) is kept.
 */
export async function timeBatches(step: (n: number) => Promise<void>, opts: TimeOpts = {}): Promise<Timing> {
  const o = { ...DEFAULTS, ...opts };
  if (o.warmup > 0) await step(o.warmup);
  let t = performance.now();
  await step(1);
  const once = (performance.now() - t) / 1000;
  const n = Math.max(1, Math.min(o.maxIters, Math.round(o.targetS / Math.max(once, 1e-6))));
  const best = { s: Infinity, cpuS: Infinity };
  for (let r = 0; r < o.repeats; r++) {
    const c = process.cpuUsage();
    t = performance.now();
    await step(n);
    const used = process.cpuUsage(c);
    best.s = Math.min(best.s, (performance.now() - t) / 1000 / n);
    best.cpuS = Math.min(best.cpuS, (used.user + used.system) / 1e6 / n);
  }
  return best;
}

/** Times our engine: `fn` runs inside tidy (its tensors are freed); the batch ends with sync(). */
export function timeOurs(fn: () => Tensor | Tensor[] | void, opts?: TimeOpts): Promise<Timing> {
  return timeBatches(async (n) => {
    for (let i = 0; i < n; i++) tidy(() => void fn());
    await getBackend().sync();
  }, opts);
}

interface TfjsWebGPUInternals {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/** Submits tfjs's pending commands and waits for its queue (no readback of any tensor). */
export async function syncTfjs(tf: TF): Promise<void> {
  const be = tf.backend() as unknown as TfjsWebGPUInternals;
  if (be.commandEncoder) {
    be.endComputePassEncoder();
    be.submitQueue();
  }
  // Waited for as our engine waits (with the host pause of cli/node-gpu.ts), so neither side spins a core.
  await waitForGPU(be.device.queue.onSubmittedWorkDone());
}

/** Times tfjs: `fn` runs inside tf.tidy (its tensors are freed); the batch ends with a queue sync. */
export function timeTfjs(tf: TF, fn: () => TfTensor | TfTensor[] | void, opts?: TimeOpts): Promise<Timing> {
  return timeBatches(async (n) => {
    for (let i = 0; i < n; i++) tf.tidy(() => void fn());
    await syncTfjs(tf);
  }, opts);
}

export type Cell = string | number;

/** Prints an aligned plain-text table (numbers right-aligned, `digits` decimals). */
export function printTable(title: string, headers: string[], rows: Cell[][], digits = 2): string {
  const fmt = (c: Cell): string => (typeof c === 'number' ? (Number.isFinite(c) ? c.toFixed(digits) : String(c)) : c);
  const cells = rows.map((r) => r.map(fmt));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[], isNum: (i: number) => boolean) =>
    r.map((c, i) => (isNum(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  const out = [
    title,
    line(headers, (i) => i > 0),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map((r, ri) => line(r, (i) => typeof rows[ri]![i] === 'number')),
  ].join('\n');
  console.log(`${out}\n`);
  return out;
}

/** A Markdown version of the same table, for RESULTS files. */
export function markdownTable(headers: string[], rows: Cell[][], digits = 2): string {
  const fmt = (c: Cell): string => (typeof c === 'number' ? c.toFixed(digits) : c);
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(fmt).join(' | ')} |`)].join('\n');
}

/** CPU, cores, adapter, Node version, date and load: what a results file should state. */
export function machineInfo(peer: Peer): Record<string, string> {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    // not Linux: os.cpus() is good enough
  }
  let load = 'unknown';
  try {
    load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    // no /proc
  }
  return {
    cpu,
    cores: String(cpus().length),
    adapter: peer.adapter,
    node: process.version,
    date: new Date().toISOString(),
    'load average (1/5/15 min)': load,
  };
}

/** One variant of the FMA-bound kernel: `regs` independent accumulators of vecN<f32>, `unroll` rounds per loop. */
export interface PeakConfig {
  vec: 1 | 2 | 4;
  regs: number;
  unroll: number;
  wg: number;
}

/** iters fma steps per register with multiplier m and addend k. */
const PEAK_UNIFORMS = uniformBlock('peak', { iters: 'u32', m: 'f32', k: 'f32' });

/**
 * WGSL kernel whose invocations each run `iters` (a uniform, so nothing is constant-folded) loops
 * of regs*unroll independent fma chains; the sum is stored so the work cannot be eliminated.
 */
export function peakKernel(c: PeakConfig): { wgsl: string; entry: string; flopsPerIter: number } {
  const T = c.vec === 1 ? 'f32' : `vec${c.vec}<f32>`;
  const decl = Array.from({ length: c.regs }, (_, r) => `  var r${r} = ${T}(x + ${r}.0);`).join('\n');
  const body = Array.from({ length: c.unroll }, () =>
    Array.from({ length: c.regs }, (_, r) => `r${r} = fma(r${r}, m, k);`).join(' '),
  ).join('\n    ');
  const sum = Array.from({ length: c.regs }, (_, r) => `r${r}`).join(' + ');
  const reduce = c.vec === 1 ? 's' : `dot(s, ${T}(1.0))`;
  const wgsl = `${PEAK_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${c.wg})
fn peak(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = f32(gid.x) * 1e-7;
  let m = ${T}(u.m);
  let k = ${T}(u.k);
${decl}
  for (var i = 0u; i < u.iters; i++) {
    ${body}
  }
  let s = ${sum};
  out[gid.x] = ${reduce};
}
`;
  return { wgsl, entry: 'peak', flopsPerIter: 2 * c.vec * c.regs * c.unroll };
}

export const PEAK_CONFIGS: PeakConfig[] = [
  { vec: 1, regs: 8, unroll: 4, wg: 64 },
  { vec: 1, regs: 16, unroll: 2, wg: 64 },
  { vec: 4, regs: 4, unroll: 4, wg: 64 },
  { vec: 4, regs: 8, unroll: 2, wg: 64 },
];

export interface Rate {
  /** Per wall-clock second. */
  wall: number;
  /** Per CPU-second of this process. */
  cpu: number;
}

/** The adapter's measured fp32 peak in GFLOP/s: the best over PEAK_CONFIGS, with the per-variant numbers. */
export async function measurePeak(opts: TimeOpts = {}): Promise<{ gflops: Rate; variants: { config: PeakConfig; gflops: Rate }[] }> {
  const be = getBackend();
  const groups = 256;
  const variants: { config: PeakConfig; gflops: Rate }[] = [];
  for (const config of PEAK_CONFIGS) {
    const k = peakKernel(config);
    const invocations = groups * config.wg;
    const out = be.malloc(invocations * 4);
    const iters = 512;
    // m slightly below 1 and k small keep the values finite and normal for any number of iterations.
    const uniforms = PEAK_UNIFORMS.pack({ iters, m: 0.999, k: 1e-3 });
    const s = await timeBatches(async (n) => {
      for (let i = 0; i < n; i++) be.dispatch({ kernel: k, buffers: [out], uniforms, workgroups: [groups], label: 'peak' });
      await be.sync();
    }, { targetS: 0.5, ...opts });
    be.free(out);
    const flops = invocations * iters * k.flopsPerIter;
    variants.push({ config, gflops: { wall: flops / s.s / 1e9, cpu: flops / s.cpuS / 1e9 } });
  }
  const gflops = { wall: Math.max(...variants.map((v) => v.gflops.wall)), cpu: Math.max(...variants.map((v) => v.gflops.cpu)) };
  return { gflops, variants };
}
