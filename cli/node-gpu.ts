// Node's WebGPU: Dawn through the `webgpu` package. Importing this module registers it with the
// engine, so `await init()` works in Node exactly as in a browser.
import { closeSync, openSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { create, globals } from 'webgpu';
import { engineFeatures, setGPUProvider, setHostPause, SUBGROUP_MATRIX_FEATURE } from '../engine/device.js';
import { setKernelTiering, type TieringMode } from '../engine/tiering.js';

Object.assign(globalThis, globals);
process.env.XDG_RUNTIME_DIR ??= '/tmp';
setGPUProvider(nodeGPU);

/**
 * Dawn's instance toggles for tensor cores: subgroup matrices are an unsafe (experimental) feature,
 * and Dawn hides shader-f16 on NVIDIA's Vulkan driver unless asked.
 */
const TENSOR_CORE_TOGGLES = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];
/** Every GPU object made, kept for the process's life (engine/device.ts says why dropping one crashes). */
const made: GPU[] = [];

/**
 * The plain Dawn instance, or, where its adapter is a GPU (not lavapipe) and an instance with the
 * tensor-core toggles offers subgroup matrices and shader-f16 there, that one: the toggles are set
 * only where they buy something. WEBGPU_TENSOR_CORES=0 keeps the plain instance.
 */
async function nodeGPU(): Promise<GPU> {
  const plain = quietAdapters(create([]));
  made.push(plain);
  if (/^(0|false|no|off)$/i.test(process.env.WEBGPU_TENSOR_CORES ?? '')) return plain;
  const adapter = await plain.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter || /llvmpipe|lavapipe|swiftshader/i.test(adapter.info.description ?? '')) return plain;
  try {
    const unsafe = quietAdapters(create(TENSOR_CORE_TOGGLES));
    made.push(unsafe);
    const a2 = await unsafe.requestAdapter({ powerPreference: 'high-performance' });
    const ok = a2 && engineFeatures(a2).includes(SUBGROUP_MATRIX_FEATURE as GPUFeatureName);
    return ok ? unsafe : plain;
  } catch {
    return plain; // a Dawn build without these toggles: no tensor cores, nothing else changes
  }
}

// Kernel tiering (engine/tiering.ts) hands machine code from a background device to the engine's
// through Mesa's disk shader cache: with the cache off it would compile every fast kernel twice.
// KERNEL_TIERS=auto|background|quick|off chooses it outright (benchmarks).
const tiers = process.env.KERNEL_TIERS;
if (tiers) {
  if (!['auto', 'background', 'quick', 'off'].includes(tiers)) throw new Error(`KERNEL_TIERS=${tiers}: expected auto, background, quick or off`);
  setKernelTiering(tiers as TieringMode);
} else if (/^(1|true|yes)$/i.test(process.env.MESA_SHADER_CACHE_DISABLE ?? '')) {
  setKernelTiering('off');
}

/**
 * Dawn prints "Warning: maxDynamic{Uniform,Storage}BuffersPerPipelineLayout artificially reduced
 * ..." from native code, synchronously inside requestAdapter() (it clamps lavapipe's limits), and no
 * option turns that off. So file descriptor 2 points at /dev/null for the duration of that call
 * only (no JavaScript runs meanwhile, so nothing of ours is lost). Linux only; where stderr cannot
 * be reopened (a socket, such as child_process's 'pipe'), or with DAWN_WARNINGS=1, the call runs as
 * is and the warnings show.
 */
function quietAdapters(gpu: GPU): GPU {
  if (process.platform !== 'linux' || process.env.DAWN_WARNINGS) return gpu;
  const request = gpu.requestAdapter.bind(gpu);
  Object.defineProperty(gpu, 'requestAdapter', {
    value: (options?: GPURequestAdapterOptions) => withStderrAt('/dev/null', () => request(options)),
  });
  return gpu;
}

/** Runs the synchronous fn with fd 2 reopened on `path`, then puts the original stderr back. */
function withStderrAt<T>(path: string, fn: () => T): T {
  let saved: number;
  try {
    saved = openSync('/proc/self/fd/2', 'a'); // the same pipe, terminal or file, appended to
  } catch {
    return fn();
  }
  const reopen = (target: string): boolean => {
    closeSync(2);
    const fd = openSync(target, 'a'); // the lowest free descriptor: 2
    if (fd === 2) return true;
    closeSync(fd);
    return false;
  };
  try {
    if (!reopen(path)) return fn();
    return fn();
  } finally {
    reopen(`/proc/self/fd/${saved}`);
    closeSync(saved);
  }
}

// While waiting for the GPU, sleep 0.5 ms between Dawn's polls rather than spinning (see HostPause):
// on lavapipe this leaves both cores to the shader threads.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
setHostPause(
  () =>
    new Promise<void>((resolve) => {
      Atomics.wait(sleeper, 0, 0, 0.5);
      setImmediate(resolve);
    }),
);

// V8's old-generation limit. A training step keeps its graph (tensors, autograd records, dispatch
// descriptors) alive for a few hundred ms, so part of it survives a scavenge and is promoted; with
// ~15 MB live V8 set the old-space limit at 1.3x that and began incremental marking 16 MB (one
// semi-space) below it: a mark-compact nearly every step, ~8 ms on the main thread plus concurrent
// marking on four helper threads (~10% of the process's CPU). A growing factor of 4 lets the heap
// reach ~60 MB before marking: tiny-cpu, 60 steps after 20, `node --trace-gc`: 65 -> 5
// mark-compacts, host ms per step 61 -> 37, CPU s per image 0.120 -> 0.088 (bench/RESULTS.md).
// The flag is read at every GC, so setting it here works; a --heap-growing-percent given to node
// (command line or NODE_OPTIONS) wins.
const heapFlag = '--heap-growing-percent';
if (![...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes(heapFlag))) setFlagsFromString(`${heapFlag}=300`);
