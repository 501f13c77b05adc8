// Tiered kernels: the first steps of a process on lavapipe start at once instead of after a minute of
// compiling. llvmpipe turns a kernel into machine code at its first dispatch, in the device's queue,
// one kernel after another, and the unrolled convolution kernels cost 2-5 CPU seconds each
// (bench/RESULTS.md, "Tiered kernels"). A kernel may carry a `quick` variant (same grid, uniforms and
// bindings, bit-identical results, loops instead of unrolled registers: a fraction of a second to
// compile). While its fast variant is not ready the backend dispatches the quick one, and the fast
// one is compiled on a sibling device of the same adapter, which has its own queue thread: the
// pipeline is created there and dispatched once (one workgroup, zero uniforms, dummy buffers), and
// llvmpipe writes its machine code to Mesa's disk shader cache. When that dispatch is done the
// engine's device takes the fast variant, whose first dispatch then finds the code in the cache
// (~0.1 CPU s against 12 for the 7x7 stem's forward). Only llvmpipe is known to share code between
// devices this way (its disk cache; nothing is shared in memory), so 'auto' tiers only there.
import type { Kernel } from './backend.js';
import { kernelLayoutEntries } from './kernel-layout.js';

/**
 * 'auto': 'background' on lavapipe under Node's Dawn (with Mesa's shader cache on: cli/node-gpu.ts
 * turns it off otherwise), else 'off'. 'background': quick
 * variants until the fast one has been compiled on the sibling device. 'quick': the quick variants
 * always (tests, and measuring them). 'off': the fast variants only (compiled at first use).
 */
export type TieringMode = 'auto' | 'background' | 'quick' | 'off';

let requestedMode: TieringMode = 'auto';

/** Chooses the tiering of kernels for backends created afterwards (init() after shutdown() applies it). */
export function setKernelTiering(mode: TieringMode): void {
  requestedMode = mode;
}

export function kernelTieringRequested(): TieringMode {
  return requestedMode;
}

export interface TierStatus {
  mode: Exclude<TieringMode, 'auto'>;
  /** Fast variants compiled in the background so far. */
  compiled: number;
  /** Fast variants waiting or compiling in the background. */
  pending: number;
  /** Dispatches that ran a quick variant. */
  quickDispatches: number;
}

const USAGE_STORAGE = 0x80, USAGE_UNIFORM = 0x40, USAGE_TEXTURE_BINDING = 0x4, USAGE_TEXTURE_STORAGE = 0x8;

/**
 * Picks each dispatch's variant and compiles fast variants on a sibling device, one at a time in the
 * order first asked for. Without a sibling device (the adapter makes only one, a browser refusing)
 * it falls back to 'off': every kernel compiles on the engine's device at first use, as without tiers.
 */
export class KernelTiers {
  private mode: Exclude<TieringMode, 'auto'>;
  private ready = new Set<string>();
  private queued = new Set<string>();
  private queue: Kernel[] = [];
  private device: Promise<GPUDevice | null> | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private compiled = 0;
  /** Submits of the engine's device so far, and callers awaiting whenIdle (see noteActivity). */
  private activity = 0;
  private waiters = 0;
  private inFlight = false;
  private quickDispatches = 0;
  /** Nesting depth of withFastKernels (the autotuner times the fast variants). */
  private forceFast = 0;

  constructor(
    mode: Exclude<TieringMode, 'auto'>,
    private readonly makeDevice: () => Promise<GPUDevice | null>,
    private readonly destroyDevice: (d: GPUDevice) => Promise<void>,
    /** Whether the program is awaiting the engine's device right now (it is working: see noteActivity). */
    private readonly hostWaiting: () => boolean = () => false,
  ) {
    this.mode = mode;
  }

  /** The variant to dispatch now: the fast kernel once ready (or without tiers), else its quick one. */
  choose(k: Kernel): Kernel {
    return !k.quick || this.fastReady(k) ? k : k.quick;
  }

  /**
   * Whether k's fast variant runs now (it is compiled, or there are no tiers); if not, it is queued
   * for the background and the caller runs a stand-in: its quick variant (choose), or for a kernel
   * whose stand-in takes other bindings, whatever the op dispatches instead (the texture-fed forms).
   */
  fastReady(k: Kernel): boolean {
    if (this.mode === 'off' || this.forceFast > 0) return true;
    // 'quick' runs the quick variants outright, compiled fast ones or not (tests compare the tiers).
    if (this.mode !== 'quick' && this.ready.has(k.wgsl)) return true;
    this.quickDispatches++;
    if (this.mode === 'quick') return false;
    if (!this.queued.has(k.wgsl)) {
      this.queued.add(k.wgsl);
      this.queue.push(k);
    }
    this.noteActivity();
    return false;
  }

  /** Changes the mode from now on (tests compare the tiers); fast variants already compiled stay ready. */
  setMode(mode: Exclude<TieringMode, 'auto'>): void {
    this.mode = mode;
  }

  /** Runs fn with every dispatch on the fast variants (timing them). */
  withFastKernels<T>(fn: () => T): T {
    this.forceFast++;
    try {
      return fn();
    } finally {
      this.forceFast--;
    }
  }

  /**
   * The engine's device was given work (the backend calls this at each submit). The background goes
   * on from one kernel to the next only while the program is working (submits, or awaits the engine's
   * device or whenIdle): a Node
   * process stays alive while a GPU event is pending, so a program that ends without shutdown()
   * waits for the kernel in flight only, not for the whole queue.
   */
  noteActivity(): void {
    this.activity++;
    if (!this.running && this.queue.length > 0 && !this.closed && this.mode === 'background') this.running = this.pump();
  }

  status(): TierStatus {
    return { mode: this.mode, compiled: this.compiled, pending: this.queue.length + (this.inFlight ? 1 : 0), quickDispatches: this.quickDispatches };
  }

  /** Resolves when no fast variant is waiting or compiling (those asked for later start a new wait). */
  async whenIdle(): Promise<void> {
    this.waiters++;
    try {
      for (;;) {
        if (!this.running) this.noteActivity();
        if (!this.running) return;
        await this.running;
      }
    } finally {
      this.waiters--;
    }
  }

  /** Stops compiling: the kernel in flight is awaited, the rest dropped, the sibling device destroyed. */
  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
    await this.whenIdle();
    const device = this.device ? await this.device : null;
    this.device = null;
    if (device) await this.destroyDevice(device);
  }

  private async pump(): Promise<void> {
    try {
      this.device ??= this.makeDevice().catch(() => null);
      const device = await this.device;
      if (!device) {
        // No second device: no background, every kernel compiles where it runs.
        this.mode = 'off';
        this.queue = [];
        return;
      }
      for (let k = this.queue.shift(); k && !this.closed; k = this.queue.shift()) {
        const seen = this.activity;
        this.inFlight = true;
        try {
          await compileOnce(device, k);
        } catch {
          // A kernel that fails there compiles on the engine's device, which reports the error with the op.
        } finally {
          this.inFlight = false;
        }
        if (this.closed) break;
        this.ready.add(k.wgsl);
        this.compiled++;
        // The program did nothing meanwhile: pause until it does (noteActivity starts a new pump).
        if (this.activity === seen && this.waiters === 0 && !this.hostWaiting()) break;
      }
    } finally {
      this.running = null;
    }
  }
}

/**
 * Creates the kernel's pipeline on `device` exactly as the backend does (same WGSL, entry point and
 * layout) and dispatches one workgroup on zeroed uniforms and small buffers (robust buffer access
 * keeps every kernel's reads and writes inside them), then waits for the queue: llvmpipe compiles at
 * that dispatch and stores the machine code in Mesa's disk cache.
 */
async function compileOnce(device: GPUDevice, k: Kernel): Promise<void> {
  const entries = kernelLayoutEntries(k.wgsl);
  const layout = device.createBindGroupLayout({ entries, label: k.entry });
  const module = device.createShaderModule({ code: k.wgsl, label: k.entry });
  const pipeline = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: k.entry }, label: k.entry });
  const buffers = entries.filter((e) => e.buffer).map((e) => device.createBuffer({ size: 256, usage: e.buffer!.type === 'uniform' ? USAGE_UNIFORM : USAGE_STORAGE }));
  // Texture bindings (CPU adapters' texture-fed kernels) get a 1x1 texture of their kind.
  const textures = entries.filter((e) => !e.buffer).map((e) =>
    device.createTexture({ size: [1, 1], format: 'rgba32float', usage: e.storageTexture ? USAGE_TEXTURE_STORAGE : USAGE_TEXTURE_BINDING }));
  try {
    let bi = 0, ti = 0;
    const resources = entries.map((e): GPUBindingResource => (e.buffer ? { buffer: buffers[bi++]!, size: 256 } : textures[ti++]!.createView()));
    const group = device.createBindGroup({ layout, entries: entries.map((e, i) => ({ binding: e.binding, resource: resources[i]! })) });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group, entries.filter((e) => e.buffer?.hasDynamicOffset).map(() => 0));
    pass.dispatchWorkgroups(1);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  } finally {
    for (const b of buffers) b.destroy();
    for (const t of textures) t.destroy();
  }
}
