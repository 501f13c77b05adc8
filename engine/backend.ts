// The WebGPU backend: a small interface in the spirit of jax-js (malloc, free, write, read,
// dispatch). Dispatches are recorded into one compute pass and submitted in batches; their uniforms
// go into one arena written right before the submit; pipelines are cached by their WGSL source, and
// bind groups by kernel and buffers (each dispatch's arena slot is a dynamic offset).
// Nothing is read back unless asked.
import { BufferPool, sizeClass, type PoolStats } from './pool.js';
import { getDevice, releaseDevice, hostPause, adapterReport, adapterIsCpu, createSiblingDevice, destroyWhenIdle, gpuFromProvider } from './device.js';
import { KernelProfiler, type ProfileRow } from './profiler.js';
import { engineTuner, TUNE_BUDGET_S } from './autotune.js';
import { ScratchTextures } from './textures.js';
import { KeptTextures } from './kept-textures.js';
import { kernelLayoutEntries, uniformOffsetsDynamic } from './kernel-layout.js';
import { KernelTiers, kernelTieringRequested, type TierStatus, type TieringMode } from './tiering.js';

import { checkSubgroupMatrix } from './ops/tensor-cores.js';
import type { Kernel, Counters, PendingRead, DispatchDesc, CapturedDispatch } from './backend-types.js';
export type { Kernel, Counters, PendingRead, DispatchDesc, CapturedDispatch } from './backend-types.js';

// Numeric WebGPU flags, so the engine does not depend on the GPUBufferUsage globals being installed.
const USAGE_MAP_READ = 0x1, USAGE_COPY_DST = 0x8, USAGE_UNIFORM = 0x40, MAP_MODE_READ = 0x1;
const UNIFORM_SLOT = 256;
const ARENA_BYTES = 64 * 1024;
const MAX_BATCH = 256;
/**
 * The batch limit right after a blocking wait, doubled at each submit up to MAX_BATCH. After a wait
 * the GPU is idle; a full batch would keep it idle while the host records 256 dispatches (~30 ms of
 * JS and encoding for the RoI heads on lavapipe), so the first submits are small and early.
 */
const RAMP_FIRST_BATCH = 8;
/**
 * Readback staging buffers kept for reuse: at most this many, each at most STAGING_KEEP_BYTES (R50's
 * RPN readback at 512 px is 2 MB, so a 1 MB bound made it create a staging buffer every step).
 */
const MAX_IDLE_STAGING = 8;
const STAGING_KEEP_BYTES = 32 << 20;
/** Bind groups kept for reuse, most recently used last; older ones (and those of destroyed buffers) age out. */
const MAX_BIND_GROUPS = 8192;

export class WebGPUBackend {
  readonly pool: BufferPool;
  private pipelines = new Map<string, GPUComputePipeline>();
  /** Each kernel's bind group layout and a small id for bind group keys. */
  private layouts = new Map<string, { layout: GPUBindGroupLayout; id: number; writable: number[] }>();
  /**
   * Each buffer's write stamp: the clock at the last recorded write into it (a dispatch binding it
   * read_write, write(), a copy into it); absent: never written since created. Kept textures
   * (engine/kept-textures.ts) compare it with the stamp they were packed at.
   */
  private writeStamps = new WeakMap<GPUBuffer, number>();
  private writeClock = 0;
  /** Bind groups by kernel, uniform size and buffers: the uniform slot is a dynamic offset, so a
   *  dispatch on the same buffers as an earlier one (the next training step's) reuses its group. */
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer | GPUTextureView, number>();
  private nextBufferId = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: GPUBuffer;
  private arenaCpu = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  /** Unmapped readback staging buffers by size, so a steady readback pattern creates none. */
  private idleStaging: GPUBuffer[] = [];
  private batchLabels: string[] = [];
  /** Dispatches per submit now: RAMP_FIRST_BATCH after a blocking wait, doubling to MAX_BATCH. */
  private batchLimit = MAX_BATCH;
  /** Buffers the recorded, not yet submitted work uses: write() into any other needs no submit first. */
  private pendingUse = new Set<GPUBuffer>();
  private pendingErrors: string[] = [];
  private lastLabel = '';
  /** When true every dispatch is submitted on its own inside an error scope: slow, exact errors. */
  debug = false;
  /** Uniform slots bound by dynamic offset (GPUs), or fixed in each bind group (CPU adapters: kernel-layout.ts). */
  private readonly dynamicUniforms = uniformOffsetsDynamic();
  isShutDown = false;
  private lost: string | null = null;
  private counts: Omit<Counters, 'buffersCreated' | 'texturesCreated'> & { ownBuffers: number } = {
    dispatches: 0, submits: 0, ownBuffers: 0, pipelinesCreated: 0, bindGroupsCreated: 0, readbacks: 0, blockingSyncs: 0, blockingSyncMs: 0,
  };
  /** Host waits outstanding, and when the first of them began. */
  private waiting = 0;
  private waitStart = 0;
  private profiler: KernelProfiler | null = null;
  /** Dispatches per op kind while a tally runs (tallyDispatches), else null: a cheap per-op count
   *  that needs no timestamp queries (lavapipe has none). */
  private tally: Map<string, number> | null = null;
  /** Receives every dispatch while a capture runs (captureDispatches), else null. */
  private capture: ((d: CapturedDispatch) => void) | null = null;

  /** Scratch textures of ops that repack an operand (engine/textures.ts). */
  readonly textures: ScratchTextures;
  /** Textures packed from a buffer and kept while it is unchanged (engine/kept-textures.ts). */
  readonly keptTextures: KeptTextures;
  /** Which variant of a tiered kernel each dispatch runs (engine/tiering.ts). */
  private readonly tiers: KernelTiers;

  constructor(readonly device: GPUDevice, tiering: Exclude<TieringMode, 'auto'> = 'off') {
    this.tiers = new KernelTiers(tiering, createSiblingDevice, destroyWhenIdle, () => this.waiting > 0);
    this.pool = new BufferPool(device, adapterIsCpu() ? 'recent' : 'stable');
    this.textures = new ScratchTextures(device, () => this.flush());
    this.keptTextures = new KeptTextures(device, (b) => this.writeStamp(b));
    this.arena = device.createBuffer({ size: ARENA_BYTES, usage: USAGE_UNIFORM | USAGE_COPY_DST });
    this.counts.ownBuffers++;
    device.lost.then((info) => {
      if (!this.isShutDown) this.lost = `the GPU device was lost (${info.reason || 'unknown'}: ${info.message}); call init() again`;
    });
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.pendingErrors.push(`WebGPU error near ${this.lastLabel || 'start-up'}: ${e.message}`);
    });
  }

  /** A buffer of at least `bytes` from the pool; `fresh`: a new one, not an idle one (persistent state). */
  malloc(bytes: number, fresh = false): GPUBuffer {
    this.throwPending();
    return this.pool.acquire(Math.max(bytes, 4), fresh);
  }

  free(buffer: GPUBuffer): void {
    this.keptTextures.release(buffer);
    this.pool.release(buffer);
  }

  /**
   * The bytes of a dispatch's binding of `buffer`: a buffer may be larger than the tensor it holds (a
   * size class, a larger idle buffer, a row capacity), so it is bound up to the device's limit; the
   * tensor itself lies within it.
   */
  bindingBytes(buffer: GPUBuffer): number {
    return Math.min(buffer.size, this.device.limits.maxStorageBufferBindingSize);
  }

  /** The 4-byte words of buffer's binding that lie in whole vec4s: what a kernel's array<vec4> form can reach. */
  vec4Words(buffer: GPUBuffer): number {
    return Math.floor(this.bindingBytes(buffer) / 16) * 4;
  }

  /** The clock at the last write recorded into the buffer (0: none since it was created). */
  writeStamp(buffer: GPUBuffer): number {
    return this.writeStamps.get(buffer) ?? 0;
  }

  private noteWrite(buffer: GPUBuffer): void {
    this.writeStamps.set(buffer, ++this.writeClock);
  }

  /** Copies CPU data into a buffer, after all work recorded so far (which may still read it). */
  write(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    // queue.writeBuffer runs before the work still being recorded: submit that first only if it
    // uses this buffer (a submit per upload costs lavapipe a queue round trip each).
    if (this.pendingUse.has(buffer)) this.flush();
    this.noteWrite(buffer);
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Reads bytes back to the CPU once all recorded work has run (awaiting at once: a blocking wait). */
  read(buffer: GPUBuffer, byteOffset: number, byteLength: number): Promise<ArrayBuffer> {
    return this.readLater(buffer, byteOffset, byteLength).result();
  }

  /**
   * Starts a readback of what all recorded work leaves in the buffer, and returns at once: the copy
   * is submitted and the map requested now, and result() gives the bytes. Awaiting result() counts
   * as a blocking sync only if the GPU has not finished the copy by then, so a readback started at
   * the end of one step and taken after the next step's own wait costs no wait of its own.
   */
  readLater(buffer: GPUBuffer, byteOffset: number, byteLength: number): PendingRead {
    const size = Math.ceil(byteLength / 4) * 4;
    const staging = this.stagingBuffer(size);
    this.counts.readbacks++;
    this.recordCopy(buffer, byteOffset, staging, 0, size);
    this.flush();
    let ready = false;
    const mapped = staging.mapAsync(MAP_MODE_READ, 0, size).then(() => {
      ready = true;
    });
    mapped.catch(() => {}); // a failure surfaces where result() awaits it, not as an unhandled rejection
    let bytes: Promise<ArrayBuffer> | undefined;
    const take = async (): Promise<ArrayBuffer> => {
      let reusable = false;
      try {
        if (ready) await mapped;
        else {
          await this.wait(mapped);
          // A blocking readback is where the host waits anyway: time kernel variants queued by the autotuner.
          if (engineTuner.pending) await engineTuner.tunePending(TUNE_BUDGET_S);
        }
        const out = staging.getMappedRange(0, size).slice(0, byteLength);
        staging.unmap();
        reusable = true;
        return out;
      } finally {
        if (reusable && this.idleStaging.length < MAX_IDLE_STAGING && staging.size <= STAGING_KEEP_BYTES) this.idleStaging.push(staging);
        else staging.destroy();
        this.throwPending();
      }
    };
    return {
      get ready() {
        return ready;
      },
      result: () => (bytes ??= take()),
    };
  }

  /** Empties the buffer pool and the idle readback buffers (see BufferPool.trim). */
  trim(): void {
    this.pool.trim();
    this.keptTextures.trim();
    for (const b of this.idleStaging) b.destroy();
    this.idleStaging = [];
  }

  /** An unmapped MAP_READ buffer of at least `bytes`: an idle one of its size class, or a new one. */
  private stagingBuffer(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const i = this.idleStaging.findIndex((b) => b.size === size);
    if (i >= 0) return this.idleStaging.splice(i, 1)[0]!;
    this.counts.ownBuffers++;
    return this.device.createBuffer({ size, usage: USAGE_MAP_READ | USAGE_COPY_DST });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.recordCopy(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Copies rows of texels from a buffer into a texture's top-left corner (bytesPerRow a multiple of
   * 256, offset of the texel size), after all work recorded so far.
   */
  copyToTexture(src: GPUBuffer, offset: number, bytesPerRow: number, texture: GPUTexture, width: number, height: number): void {
    this.endPass();
    this.pendingUse.add(src);
    this.ensureEncoder().copyBufferToTexture({ buffer: src, offset, bytesPerRow }, { texture }, [width, height]);
  }

  private recordCopy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.noteWrite(dst);
    this.pendingUse.add(src).add(dst);
    this.ensureEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  pipeline(kernel: Kernel): GPUComputePipeline {
    let p = this.pipelines.get(kernel.wgsl);
    if (!p) {
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code: kernel.wgsl, label: kernel.entry });
      p = this.device.createComputePipeline({ layout: this.layoutFor(kernel), compute: { module, entryPoint: kernel.entry }, label: kernel.entry });
      this.device.popErrorScope().then((err) => {
        if (err) {
          this.pendingErrors.unshift(`WGSL kernel '${kernel.entry}' failed to compile: ${err.message}\n${numbered(kernel.wgsl)}`);
        }
      });
      this.pipelines.set(kernel.wgsl, p);
      this.counts.pipelinesCreated++;
    }
    return p;
  }

  /** The kernel's explicit pipeline layout (engine/kernel-layout.ts), its bind group layout kept for bind groups. */
  private layoutFor(kernel: Kernel): GPUPipelineLayout {
    const entries = kernelLayoutEntries(kernel.wgsl, this.dynamicUniforms);
    const bindGroupLayout = this.device.createBindGroupLayout({ entries, label: kernel.entry });
    // Buffers bound read_write (binding i + 1 holds buffers[i]): each dispatch stamps them written.
    const writable = entries.filter((e) => e.buffer?.type === 'storage').map((e) => e.binding - 1);
    this.layouts.set(kernel.wgsl, { layout: bindGroupLayout, id: this.layouts.size, writable });
    return this.device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout], label: kernel.entry });
  }

  dispatch(d: DispatchDesc): void {
    this.throwPending();
    const bytes = d.uniforms.byteLength;
    const slotBytes = Math.max(UNIFORM_SLOT, Math.ceil(bytes / UNIFORM_SLOT) * UNIFORM_SLOT);
    if (this.arenaUsed + slotBytes > ARENA_BYTES || this.batchLabels.length >= this.batchLimit) this.flush();
    const offset = this.arenaUsed;
    const src = d.uniforms instanceof ArrayBuffer ? new Uint8Array(d.uniforms) : new Uint8Array(d.uniforms.buffer, d.uniforms.byteOffset, bytes);
    this.arenaCpu.set(src, offset);
    this.arenaUsed += slotBytes;

    const kernel = this.tiers.choose(d.kernel);
    const pipeline = this.pipeline(kernel);
    if (this.debug) this.device.pushErrorScope('validation');
    const bindGroup = this.bindGroupFor(kernel, Math.max(bytes, 16), this.dynamicUniforms ? 0 : offset, d.buffers, d.textures ?? []);
    for (const i of this.layouts.get(kernel.wgsl)!.writable) if (d.buffers[i]) this.noteWrite(d.buffers[i]!);
    for (const b of d.buffers) this.pendingUse.add(b);
    if (this.profiler) {
      this.endPass();
      this.pass = this.ensureEncoder().beginComputePass(this.profiler.passFor(d.label, kernel.entry));
    }
    const pass = this.ensurePass();
    pass.setPipeline(pipeline);
    if (this.dynamicUniforms) pass.setBindGroup(0, bindGroup, [offset]);
    else pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = d.workgroups;
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new Error(`${d.label}: ${x}x${y}x${z} workgroups exceed the device limit ${maxDim} per dimension (${kernel.entry})`);
    }
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.lastLabel = `${d.label} [${kernel.entry}]`;
    this.batchLabels.push(this.lastLabel);
    this.counts.dispatches++;
    if (this.capture) {
      const { layout } = this.layouts.get(kernel.wgsl)!;
      this.capture({ pipeline, layout, dynamicUniforms: this.dynamicUniforms, buffers: [...d.buffers], textures: [...(d.textures ?? [])], uniforms: src.slice(), uniformBytes: Math.max(bytes, 16), workgroups: [x, y, z], entry: kernel.entry, label: d.label });
    }
    if (this.tally) {
      // The label without its shapes and sizes, and the entry point: one row per op kind.
      const kind = d.label.replace(/\w*\[[^\]]*\]|(?<![A-Za-z_\d])-?\d[\d.e+x-]*|[(),=]|->/g, ' ').replace(/\s+/g, ' ').trim();
      const key = `${kind} [${kernel.entry}]`;
      this.tally.set(key, (this.tally.get(key) ?? 0) + 1);
    }
    if (this.debug) {
      this.flush();
      this.device.popErrorScope().then((err) => {
        if (err) this.pendingErrors.push(`WebGPU validation error in ${d.label} (entry ${kernel.entry}): ${err.message}`);
      });
    }
  }

  /**
   * The kept bind group of this kernel, uniform size and offset (0 where the offset is dynamic),
   * buffers and textures, or a new one (kept, the oldest dropped).
   */
  private bindGroupFor(kernel: Kernel, uniformBytes: number, uniformOffset: number, buffers: GPUBuffer[], textures: GPUTextureView[]): GPUBindGroup {
    const { layout, id } = this.layouts.get(kernel.wgsl)!;
    let key = `${id}:${uniformBytes}@${uniformOffset}`;
    for (const b of [...buffers, ...textures]) {
      let bid = this.bufferIds.get(b);
      if (bid === undefined) this.bufferIds.set(b, (bid = this.nextBufferId++));
      key += `,${bid}`;
    }
    let group = this.bindGroups.get(key);
    if (group) {
      this.bindGroups.delete(key); // most recently used goes last
    } else {
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arena, offset: uniformOffset, size: uniformBytes } }];
      buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer, size: this.bindingBytes(buffer) } }));
      textures.forEach((view, i) => entries.push({ binding: buffers.length + i + 1, resource: view }));
      group = this.device.createBindGroup({ layout, entries });
      this.counts.bindGroupsCreated++;
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.delete(this.bindGroups.keys().next().value as string);
    }
    this.bindGroups.set(key, group);
    return group;
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) {
      this.pool.destroyRetired();
      this.keptTextures.destroyRetired();
      return;
    }
    this.endPass();
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu.buffer, 0, this.arenaUsed);
    const labels = this.batchLabels;
    this.profiler?.resolve(this.encoder);
    this.device.pushErrorScope('validation');
    this.device.queue.submit([this.encoder.finish()]);
    this.tiers.noteActivity();
    this.device.popErrorScope().then((err) => {
      if (err) {
        const ops = labels.length > 8 ? [...labels.slice(0, 8), `... ${labels.length - 8} more`] : labels;
        this.pendingErrors.push(
          `WebGPU validation error in a batch of ${labels.length} ops (set backend.debug = true to pin it to one op): ${err.message}\n  ops: ${ops.join('\n       ')}`,
        );
      }
    });
    this.encoder = null;
    this.arenaUsed = 0;
    this.batchLabels = [];
    this.pendingUse.clear();
    this.batchLimit = Math.min(MAX_BATCH, this.batchLimit * 2);
    this.counts.submits++;
    this.pool.destroyRetired();
    this.keptTextures.destroyRetired();
  }

  /** Resolves when the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.wait(this.device.queue.onSubmittedWorkDone());
    this.throwPending();
  }

  /** Starts timing every dispatch on the GPU (needs 'timestamp-query'; see engine/profiler.ts). */
  startProfile(): void {
    this.flush();
    this.profiler = new KernelProfiler(this.device, MAX_BATCH);
  }

  /** Stops timing and returns the GPU time per kernel and op (or whole label), slowest first. */
  async stopProfile(byLabel = false): Promise<ProfileRow[]> {
    this.flush();
    const p = this.profiler;
    this.profiler = null;
    if (!p) throw new Error('stopProfile: no profile was started');
    await this.wait(this.device.queue.onSubmittedWorkDone());
    return p.collect(byLabel);
  }

  memory(): PoolStats {
    return this.pool.getStats();
  }

  /** Starts (true) or stops (false) counting dispatches per op kind; returns the counts so far, most first. */
  tallyDispatches(on: boolean): [string, number][] {
    const rows = [...(this.tally ?? [])].sort((a, b) => b[1] - a[1]);
    this.tally = on ? new Map() : null;
    return rows;
  }

  /**
   * Hands every dispatch recorded from now on to `fn` (null stops): a debug hook for dev tools that
   * replay a step's kernels (bench/step-kernels.ts). Costs nothing while off.
   */
  captureDispatches(fn: ((d: CapturedDispatch) => void) | null): void {
    this.capture = fn;
  }

  /** Where kernel tiering stands: its mode, fast variants compiled and pending in the background. */
  tierStatus(): TierStatus {
    return this.tiers.status();
  }

  /** Changes how tiered kernels are dispatched from now on (setKernelTiering chooses it for new backends). */
  setKernelTiering(mode: Exclude<TieringMode, 'auto'>): void {
    this.tiers.setMode(mode);
  }

  /** Resolves when every fast variant asked for so far has been compiled in the background. */
  whenTiered(): Promise<void> {
    return this.tiers.whenIdle();
  }

  /**
   * Whether the fast variant of a tiered kernel runs now; if not, it is queued for the background
   * and the op dispatches a stand-in of its own (ops whose fast form binds other resources than its
   * stand-in: the texture-fed kernels of CPU adapters).
   */
  fastKernelReady(kernel: Kernel): boolean {
    return this.tiers.fastReady(kernel);
  }

  /** Runs fn with its dispatches on the fast variants whatever their state (the autotuner times those). */
  withFastKernels<T>(fn: () => T): T {
    return this.tiers.withFastKernels(fn);
  }

  /** Stops the background compiles (the one in flight is awaited) and destroys their device. */
  closeTiers(): Promise<void> {
    return this.tiers.close();
  }

  /** The counters since init() (a snapshot). */
  stats(): Counters {
    const { ownBuffers, ...rest } = this.counts;
    return { ...rest, buffersCreated: ownBuffers + this.pool.getStats().created, texturesCreated: this.textures.created + this.keptTextures.created };
  }

  /** A host wait on the GPU, counted and timed (overlapping waits count once, their union timed). */
  private async wait<T>(work: Promise<T>): Promise<T> {
    if (this.waiting++ === 0) {
      this.counts.blockingSyncs++;
      this.waitStart = performance.now();
    }
    try {
      return await waitForGPU(work);
    } finally {
      if (--this.waiting === 0) {
        this.counts.blockingSyncMs += performance.now() - this.waitStart;
        this.batchLimit = RAMP_FIRST_BATCH;
      }
    }
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private ensurePass(): GPUComputePassEncoder {
    this.pass ??= this.ensureEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private throwPending(): void {
    if (this.lost) throw new Error(this.lost);
    if (this.pendingErrors.length) {
      const msg = this.pendingErrors.join('\n');
      this.pendingErrors = [];
      throw new Error(msg);
    }
  }
}

/** Awaits GPU work, pausing the host between polls where a pause is registered (see HostPause). */
export async function waitForGPU<T>(work: Promise<T>): Promise<T> {
  const pause = hostPause;
  if (!pause) return work;
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  while (!settled) await pause();
  return done;
}

function numbered(src: string): string {
  return src
    .split('\n')
    .map((l, i) => `${String(i + 1).padStart(4)}| ${l}`)
    .join('\n');
}

let backend: WebGPUBackend | undefined;

/**
 * setKernelTiering's choice for this adapter: 'auto' tiers on lavapipe under Dawn in Node only, where
 * Mesa's disk shader cache was measured to carry a kernel's machine code from the sibling device to
 * the engine's (engine/tiering.ts); a browser compiles in its GPU process, not measured.
 */
function resolveTiering(): Exclude<TieringMode, 'auto'> {
  const mode = kernelTieringRequested();
  if (mode !== 'auto') return mode;
  return gpuFromProvider() && /llvmpipe|lavapipe/i.test(adapterReport?.description ?? '') ? 'background' : 'off';
}

/** Initialises the engine (device + backend). Every program awaits this once before using tensors. */
export async function init(): Promise<WebGPUBackend> {
  if (!backend) {
    const device = await getDevice();
    if (!backend) {
      // Tensor cores (autocast's matmul) only once their kernel computed a known product here.
      const off = await checkSubgroupMatrix(device, waitForGPU).catch((e: unknown) => `the check failed: ${e instanceof Error ? e.message : String(e)}`);
      if (off) console.error(`[webgpu] tensor cores (partly) off for --amp: ${off}`);
    }
    backend ??= new WebGPUBackend(device, resolveTiering());
  }
  return backend;
}

/** The backend; throws a clear error if init() was not awaited. */
export function getBackend(): WebGPUBackend {
  if (!backend) throw new Error('engine not initialised: `await init()` before creating tensors');
  return backend;
}

/**
 * Submits what is recorded, frees the pool and destroys the device; init() afterwards creates a
 * new one. The promise settles when the GPU is idle and Dawn has no event left pending: a program
 * awaits it before it exits (see releaseDevice).
 */
export async function shutdown(): Promise<void> {
  const b = backend;
  backend = undefined;
  if (b) {
    b.flush();
    b.pool.trim();
    b.textures.clear();
    b.keptTextures.clear();
    b.pool.destroyRetired();
    b.keptTextures.destroyRetired();
    b.isShutDown = true;
    await b.closeTiers();
  }
  await releaseDevice();
}
