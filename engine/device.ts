// Getting a GPUDevice. In a browser we use navigator.gpu; in Node the caller registers a GPU
// provider (cli/node-gpu.ts wraps Dawn's `webgpu` package) so that engine/ imports no Node code.
import { WORKGROUP, isTreeWidth } from '../kernels/common.js';
import { pickSubgroupMatrixConfig, type SubgroupMatrixConfig } from '../kernels/matmul-subgroup-matrix.js';

export type GPUProvider = () => GPU | Promise<GPU>;

let provider: GPUProvider | undefined;
let devicePromise: Promise<GPUDevice> | undefined;
let quiet = false;
// The GPU object is never dropped once made. In Dawn's Node binding the GPU object owns the native
// instance, while its adapters and devices share a poller that calls the instance from
// setImmediate until their pending events (mapAsync, device.lost, ...) settle. Dropping the GPU
// while any was pending let the garbage collector free the instance under a queued poll: at exit
// that crashed (SIGSEGV in CallbackTaskManager::Flush, SIGABRT "std::system_error: Invalid
// argument") or spun forever, mostly when a starved process was collected at the wrong moment.
// Holding it costs nothing (it keeps no event-loop handle); Node frees it at exit, after the loop.
let gpuRef: GPU | undefined;

/** Registers where to get a `GPU` object from (Node: Dawn). Must be called before first use. */
export function setGPUProvider(p: GPUProvider): void {
  provider = p;
}

/** Whether the GPU comes from a registered provider (Node's Dawn) rather than a browser's navigator.gpu. */
export function gpuFromProvider(): boolean {
  return provider !== undefined;
}

/**
 * How the host waits for the GPU. Dawn's Node binding polls for finished work from the event loop
 * without pause, so a plain `await` of a readback keeps one CPU core busy -- on a CPU driver such as
 * lavapipe that core is taken from the shader threads doing the work. A provider may register a
 * pause (cli/node-gpu.ts: a short blocking sleep, then one event-loop turn) that the backend runs
 * between polls instead. Browsers need none.
 */
export type HostPause = () => Promise<void>;
export let hostPause: HostPause | undefined;

export function setHostPause(p: HostPause | undefined): void {
  hostPause = p;
}

/** Silences the one-line adapter report printed at start-up. */
export function setQuiet(q: boolean): void {
  quiet = q;
}

export interface AdapterReport {
  description: string;
  /** adapter.info's vendor and architecture ('' where not reported): part of the autotuner's keys. */
  vendor: string;
  architecture: string;
  backend: string;
  /** Whether the device has the 'subgroups' feature (asked for where offered), and its size range. */
  subgroups: { min: number; max: number } | null;
  /**
   * The subgroup-matrix configuration autocast's matmul uses (f16 x f16 -> f32, square), where the
   * device has 'chromium-experimental-subgroup-matrix' and 'shader-f16' (asked for where the adapter
   * offers both and such a configuration) and fixed-size subgroups (their size: the kernel's
   * workgroup is one subgroup); else null.
   */
  subgroupMatrix: (SubgroupMatrixConfig & { subgroupSize: number }) | null;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number; maxComputeInvocationsPerWorkgroup: number };
}

export let adapterReport: AdapterReport | undefined;

/**
 * Whether the adapter is a CPU implementation (lavapipe/llvmpipe, SwiftShader). Kernels are shaped
 * differently there: invocations run as SIMD lanes of a CPU thread, a workgroup barrier is a
 * coroutine switch of every lane group, and per-lane gathers are scalar loops.
 */
export function adapterIsCpu(): boolean {
  return /llvmpipe|lavapipe|swiftshader/i.test(adapterReport?.description ?? '');
}

/** Whether the adapter's subgroups are exactly `lanes` wide (kernels written for one width: lavapipe's 8). */
export function adapterSubgroupsExactly(lanes: number): boolean {
  const sg = adapterReport?.subgroups;
  return sg?.min === lanes && sg.max === lanes;
}

let forcedReductionWorkgroup: number | null = null;

/**
 * Invocations of a workgroup that reduces one row in workgroup memory (GroupNorm statistics, long
 * sums): 256 on GPUs; 16 on CPU adapters, where each barrier of the tree costs a coroutine switch
 * per group of SIMD lanes (GroupNorm's row kernels ran 2x faster, long sums 3x).
 */
export function reductionWorkgroup(): number {
  return forcedReductionWorkgroup ?? (adapterIsCpu() ? 16 : WORKGROUP);
}

/** Forces reductionWorkgroup() (tests cover every adapter's choice); null restores it. */
export function setReductionWorkgroup(wg: number | null): void {
  if (wg !== null && !isTreeWidth(wg)) throw new Error(`setReductionWorkgroup: ${wg} is not a power of two in [2, 256]`);
  forcedReductionWorkgroup = wg;
}

async function findGPU(): Promise<GPU> {
  if (gpuRef) return gpuRef;
  if (provider) return provider();
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  throw new Error(
    'No WebGPU: in a browser, navigator.gpu is missing (enable WebGPU); in Node, call setGPUProvider() ' +
      '(cli/node-gpu.ts does this with the `webgpu` package).',
  );
}

// Ask for the adapter's larger limits where they exceed the defaults: big storage bindings matter for
// feature maps, and large workgroups for reductions.
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxStorageTexturesPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
  'maxTextureDimension2D',
] as const;

/** Dawn's name of the subgroup-matrix feature (not in the WebGPU standard's GPUFeatureName). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** adapter.info's subgroup-matrix configurations (Dawn; absent elsewhere). */
export function subgroupMatrixConfigsOf(info: GPUAdapterInfo): SubgroupMatrixConfig[] {
  return (info as GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[] }).subgroupMatrixConfigs ?? [];
}

/**
 * The features the engine asks for, of those the adapter offers. Timestamp queries serve the kernel
 * profiler (backend.startProfile); subgroups the subgroup matmul variants (kernels/matmul-subgroup.ts);
 * subgroup matrices autocast's tensor-core kernels (kernels/subgroup-matrix-tile.ts), only with
 * shader-f16 and a configuration they can use.
 */
export function engineFeatures(adapter: Pick<GPUAdapter, 'features' | 'info'>): GPUFeatureName[] {
  // shader-f16 wherever offered: the tensor-core tiles stage f16 (their emulated form too, which
  // tests run on lavapipe).
  const wanted = ['timestamp-query', 'subgroups', 'shader-f16'];
  const tensorCores = adapter.features.has(SUBGROUP_MATRIX_FEATURE) && adapter.features.has('shader-f16') && pickSubgroupMatrixConfig(subgroupMatrixConfigsOf(adapter.info)) !== null;
  if (tensorCores) wanted.push(SUBGROUP_MATRIX_FEATURE);
  return wanted.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
}

function withSubgroupSize(c: SubgroupMatrixConfig | null, subgroupSize: number): (SubgroupMatrixConfig & { subgroupSize: number }) | null {
  return c && { ...c, subgroupSize };
}

/** The adapter's device with the limits and features the engine asks for (an adapter makes one device). */
async function requestEngineDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name] as number;
  const requiredFeatures = engineFeatures(adapter);
  try {
    return await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    // The experimental features are the only optional ask that could be refused: retry without them.
    const plain = requiredFeatures.filter((f) => (f as string) !== SUBGROUP_MATRIX_FEATURE && f !== 'shader-f16');
    if (plain.length === requiredFeatures.length) throw e;
    return adapter.requestDevice({ requiredLimits, requiredFeatures: plain });
  }
}

const ADAPTER_OPTIONS: GPURequestAdapterOptions = { powerPreference: 'high-performance' };

async function createDevice(): Promise<GPUDevice> {
  const gpu = await findGPU();
  gpuRef = gpu;
  const adapter = await gpu.requestAdapter(ADAPTER_OPTIONS);
  if (!adapter) {
    throw new Error(
      'No WebGPU adapter. On Linux without a GPU install Mesa lavapipe (run `npm run setup`, which explains how).',
    );
  }
  const device = await requestEngineDevice(adapter);
  const info = adapter.info;
  const sg = info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const fixedSubgroups = !!sg.subgroupMinSize && sg.subgroupMinSize === sg.subgroupMaxSize;
  const matrices = device.features.has(SUBGROUP_MATRIX_FEATURE as GPUFeatureName) && device.features.has('shader-f16') && fixedSubgroups;
  adapterReport = {
    description: info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') || 'unknown',
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    subgroups: device.features.has('subgroups') && sg.subgroupMinSize ? { min: sg.subgroupMinSize, max: sg.subgroupMaxSize ?? sg.subgroupMinSize } : null,
    subgroupMatrix: matrices ? withSubgroupSize(pickSubgroupMatrixConfig(subgroupMatrixConfigsOf(info)), sg.subgroupMinSize!) : null,
    backend: (info as GPUAdapterInfo & { backendType?: string }).backendType ?? guessBackend(info),
    limits: {
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
  const tc = adapterReport.subgroupMatrix;
  if (!quiet) console.error(`[webgpu] adapter: ${adapterReport.description} (backend: ${adapterReport.backend}${tc ? `; subgroup matrices ${tc.M}x${tc.N}x${tc.K} f16 -> f32 for --amp` : ''})`);
  device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') console.error(`[webgpu] device lost: ${lost.reason} ${lost.message}`);
    // Forget it only if it is still the current device (releaseDevice may have made a new one).
    if (current === device) devicePromise = undefined;
  });
  current = device;
  adapterInfoOf.set(device, info.description || '');
  return device;
}

let current: GPUDevice | undefined;

function guessBackend(info: GPUAdapterInfo): string {
  // Chromium reports SwiftShader as vendor 'google', architecture 'swiftshader', empty description.
  const d = `${info.description} ${info.vendor} ${info.architecture}`.toLowerCase();
  if (d.includes('llvmpipe') || d.includes('lavapipe')) return 'vulkan (lavapipe, CPU)';
  if (d.includes('swiftshader')) return 'swiftshader (CPU)';
  return 'native';
}

/** The process-wide device, created on first call. */
export function getDevice(): Promise<GPUDevice> {
  devicePromise ??= createDevice();
  return devicePromise;
}

/**
 * A second device on the same adapter as the engine's (same limits and features, so a kernel compiles
 * to the same driver code on both), with its own queue: engine/tiering.ts compiles kernels there in
 * the background. null where there is none (no engine device yet, or the adapter refuses).
 */
export async function createSiblingDevice(): Promise<GPUDevice | null> {
  if (!gpuRef || !current) return null;
  try {
    const adapter = await gpuRef.requestAdapter(ADAPTER_OPTIONS);
    const info = adapter?.info;
    // Another adapter than the engine's (a machine with two GPUs) would compile for the wrong driver.
    if (!adapter || (info && (info.description || '') !== (adapterInfoOf.get(current) ?? ''))) return null;
    return await requestEngineDevice(adapter);
  } catch {
    return null;
  }
}

/** Each engine device's adapter description, so a sibling can be checked to share the adapter. */
const adapterInfoOf = new WeakMap<GPUDevice, string>();

/**
 * Destroys a device once its queue is idle and waits until Dawn has delivered its `lost` event, so no
 * GPU event is left pending when the process exits (each wait bounded by RELEASE_WAIT_MS; a device
 * that fails to settle is left to the process exit).
 */
export async function destroyWhenIdle(device: GPUDevice): Promise<void> {
  await withinMs(device.queue.onSubmittedWorkDone(), RELEASE_WAIT_MS);
  device.destroy();
  await withinMs(device.lost, RELEASE_WAIT_MS);
}

/** How long releaseDevice() waits for the queue to drain and for Dawn to report the device lost. */
const RELEASE_WAIT_MS = 5000;

/** Resolves with the promise's outcome, or after `ms` (an unref'd timer: it never holds the process). */
function withinMs(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms) as unknown as { unref?: () => void };
    timer.unref?.();
    p.then(() => resolve(), () => resolve());
  });
}

/**
 * Destroys the device once its queue is idle and waits until Dawn has delivered its `lost` event,
 * so no GPU event is left pending when the process exits; getDevice() afterwards starts afresh.
 * A device that fails to settle within RELEASE_WAIT_MS is left to the process exit.
 */
export async function releaseDevice(): Promise<void> {
  if (!devicePromise) return;
  const pending = devicePromise;
  devicePromise = undefined;
  let device: GPUDevice;
  try {
    device = await pending;
  } catch {
    return; // never made: nothing to release
  }
  await destroyWhenIdle(device);
}
