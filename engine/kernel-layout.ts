// The bind group layout of a kernel, read from its own WGSL declarations (engine/backend.ts and the
// background compiler of engine/tiering.ts build identical pipelines from it, so a kernel compiled on
// one device is the same driver shader as on the other).
import { adapterIsCpu } from './device.js';

/**
 * Whether the uniform block's binding takes a dynamic offset (its slot in the backend's arena) or a
 * fixed one baked into each bind group. Lavapipe applies a dynamic offset by copying the whole
 * descriptor set into a newly allocated one at every bind (lvp_execute.c apply_dynamic_offsets: a
 * memfd-backed allocation: mmap, munmap, ftruncate on its queue thread). bench/dispatch-overhead.js
 * puts that at 2-15 us of CPU per dispatch with the host idle (runs of 4096 dispatches; shorter ones
 * do not separate the two), more with the host busy; the default
 * training run's system time fell by about a quarter without it (bench/RESULTS.md). So CPU adapters
 * bind each slot with its own bind group (a step's dispatches land on mostly the same slots every
 * step, so the kept groups are reused). GPUs keep one group per kernel and buffers with a dynamic
 * offset (free there, and fewer bind groups).
 */
export function uniformOffsetsDynamic(): boolean {
  return !adapterIsCpu();
}

/**
 * An explicit layout from the kernel's declarations: with layout 'auto' a compiler drops bindings it
 * proves unused (Chromium's Tint and Dawn's differ in what they prove), and binding the buffer the op
 * passes then fails; declared bindings are always kept here. The uniform block at @binding(0) has a
 * dynamic offset where `dynamicUniforms` (uniformOffsetsDynamic(): its slot in the backend's arena
 * moves from dispatch to dispatch).
 */
export function kernelLayoutEntries(wgsl: string, dynamicUniforms = uniformOffsetsDynamic()): GPUBindGroupLayoutEntry[] {
  const entries: GPUBindGroupLayoutEntry[] = [];
  const decl = /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage)\s*(?:,\s*(read_write|read))?\s*>/g;
  for (const m of wgsl.matchAll(decl)) {
    const type: GPUBufferBindingType = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
    const hasDynamicOffset = dynamicUniforms && m[1] === '0' && type === 'uniform';
    entries.push({ binding: Number(m[1]), visibility: 0x4 /* COMPUTE */, buffer: { type, hasDynamicOffset } });
  }
  // Textures (the operands some CPU-adapter kernels read through texel fetches: engine/textures.ts).
  const tex = /@group\(0\)\s*@binding\((\d+)\)\s*var\s+\w+\s*:\s*texture_(2d<f32>|storage_2d<\s*rgba32float\s*,\s*write\s*>)/g;
  for (const m of wgsl.matchAll(tex)) {
    const binding = Number(m[1]), visibility = 0x4; /* COMPUTE */
    if (m[2]!.startsWith('2d')) entries.push({ binding, visibility, texture: { sampleType: 'unfilterable-float' } });
    else entries.push({ binding, visibility, storageTexture: { access: 'write-only', format: 'rgba32float' } });
  }
  return entries;
}
