// What the backend (engine/backend.ts) takes and gives: a kernel, a dispatch, a readback under way,
// the counters, and a captured dispatch for dev tools. Types only.
export interface Kernel {
  /** Unique WGSL source; the pipeline cache key. */
  wgsl: string;
  /** Entry point name, for error messages and labels. */
  entry: string;
  /**
   * A variant that compiles in a fraction of the time, with the same grid, uniforms, bindings and
   * results: dispatched while this kernel is compiled in the background (engine/tiering.ts).
   */
  quick?: Kernel;
}

/**
 * What the backend has done since init(), cumulative (subtract two snapshots for a span of work):
 * the figures a step that never waits for the host is judged by (bench/train.ts --json).
 */
export interface Counters {
  /** Compute dispatches recorded. */
  dispatches: number;
  /** Command buffers submitted to the queue. */
  submits: number;
  /** GPU buffers created: the pool's new buffers, readback staging buffers and the uniform arena (not the profiler's own). */
  buffersCreated: number;
  /** Compute pipelines created (each compiles a shader: the cost of a first use). */
  pipelinesCreated: number;
  /** Bind groups created (a dispatch with the same kernel and buffers as a recent one reuses its group). */
  bindGroupsCreated: number;
  /** Readbacks (read(): tensor data() and the like). */
  readbacks: number;
  /**
   * Times the host started waiting on GPU work not yet done: a readback whose data was not there
   * when its result was awaited, a sync() or a profile stop, begun while no other wait was
   * outstanding (readbacks awaited together are one wait). A readback started early
   * (readLater) and taken once the GPU has finished it is not a wait.
   */
  blockingSyncs: number;
  /** Milliseconds during which at least one such wait was outstanding. */
  blockingSyncMs: number;
  /** Textures created: scratch textures (engine/textures.ts) and kept ones (engine/kept-textures.ts). */
  texturesCreated: number;
}

/** A readback under way (WebGPUBackend.readLater). */
export interface PendingRead {
  /** Whether the bytes are on the host already (taking them then does not wait). */
  readonly ready: boolean;
  /** The bytes; the same promise on every call. */
  result(): Promise<ArrayBuffer>;
}

export interface DispatchDesc {
  kernel: Kernel;
  /** Storage buffers, bound at @binding(1..n) of group 0, in order. */
  buffers: GPUBuffer[];
  /** Texture views (a texture_2d<f32> or a texture_storage_2d), bound after the buffers at @binding(n+1..). */
  textures?: GPUTextureView[];
  /** Uniform bytes bound at @binding(0); every kernel declares one (possibly a dummy). */
  uniforms: ArrayBuffer | ArrayBufferView;
  workgroups: [number, number?, number?];
  /** Human description of the op for error messages: "matmul(f32[3,5], f32[5,7])". */
  label: string;
}

/**
 * One dispatch as the backend recorded it, handed to WebGPUBackend.captureDispatches' callback: what
 * a dev tool needs to record it again in a pass of its own (bench/step-kernels.ts times each kernel
 * kind of a training step that way). The uniform bytes are a copy; the buffers and textures are the
 * live ones, so a replay sees whatever they hold by then.
 */
export interface CapturedDispatch {
  pipeline: GPUComputePipeline;
  /** Group 0's layout: @binding(0) the uniforms, then buffers, then textures. */
  layout: GPUBindGroupLayout;
  /** Whether the layout's uniform binding takes a dynamic offset (engine/kernel-layout.ts uniformOffsetsDynamic). */
  dynamicUniforms: boolean;
  buffers: GPUBuffer[];
  textures: GPUTextureView[];
  uniforms: Uint8Array;
  /** The uniform binding's size (the uniforms padded to at least 16 bytes). */
  uniformBytes: number;
  workgroups: [number, number, number];
  /** The entry point of the variant dispatched (a tiered kernel's quick one while it runs). */
  entry: string;
  label: string;
}
