// torch.matmul: 1-D operands, batch broadcasting, transposed views read in place. The kernel
// variant is chosen per call from the operands' shapes and strides (see MATMUL_VARIANTS): the
// autotuner's choice for the shape class where it has one, else the fixed per-adapter fallback.
import { matmulKernel, matmulQuickKernel, variantFits, variantTile, MATMUL_UNIFORMS, type MatmulLayout, type MatmulVariant } from '../../kernels/matmul.js';
import { packAKernel, PACK_WG } from '../../kernels/matmul-texture.js';
import { broadcastShapes } from '../../kernels/elementwise.js';
import { getBackend, type Kernel } from '../backend.js';
import { adapterIsCpu, adapterReport, adapterSubgroupsExactly } from '../device.js';
import { engineTuner } from '../autotune.js';
import { isAutocastEnabled, underForwardAutocast } from '../autocast.js';
import { timeOnScratch } from '../tune-timing.js';
import { Tensor, empty, shapeStr, sizeOf } from '../tensor.js';
import { noGrad, record } from '../autograd.js';
import { tidy } from '../scope.js';
import { contiguous } from './elementwise.js';
import { expand, reshape, transpose, squeeze, unsqueeze } from './view.js';
import { sumToShape } from './reduce.js';
import { fillInPlace } from './copy.js';
import { subgroupMatrixVariants } from './tensor-cores.js';

/**
 * The kernel variants. On CPU adapters (lavapipe, SwiftShader) the 'direct' family is 4-5x faster
 * than 'tiled' (see bench/RESULTS.md); on GPUs workgroup-memory tiling is the standard choice.
 * Both orders end with a variant that reads any strides.
 */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  // B rows contiguous and N, offsets divisible by 4: vec4 reads of B, vec4 writes of C.
  { name: 'direct_v4_16x8', kind: 'direct', wgN: 8, wgM: 1, tm: 16, tn: 8, vecB: true },
  // Any strides.
  { name: 'direct_8x8', kind: 'direct', wgN: 8, wgM: 1, tm: 8, tn: 8 },
  { name: 'tiled_64x64', kind: 'tiled', wgN: 16, wgM: 16, tm: 4, tn: 4, tk: 16 },
  // GPUs, large products: 8 x 8 per thread reads A and B once per 8 FMAs each (4 x 4: once per 4).
  // An autotuner candidate only (not measured on a GPU yet; the fixed table keeps tiled_64x64).
  { name: 'tiled_128x128', kind: 'tiled', wgN: 16, wgM: 16, tm: 8, tn: 8, tk: 8 },
  // Subgroup size 8 (lavapipe): A shared across the subgroup with subgroupBroadcast. Only the
  // autotuner picks these (never in the fallback table), on adapters whose subgroups are 8 wide.
  { name: 'subgroup8_v4_16x8', kind: 'subgroup', subgroup: 8, wgN: 8, wgM: 1, tm: 16, tn: 8, vecB: true },
  { name: 'subgroup8_8x8', kind: 'subgroup', subgroup: 8, wgN: 8, wgM: 1, tm: 8, tn: 8 },
  // Subgroup size 8, A packed into a texture first (kernels/matmul-texture.ts): lavapipe's fastest
  // (bench/RESULTS.md, "Texture-fed matmul"), first in the CPU table where the adapter's subgroups are 8 wide.
  // 32 x 4: in the accumulator-major loop, ~1.25x the 16 x 4 block and ~1.6x the old step-major
  // 16 x 4 (16 x 8, 32 x 8 and 64 x 4 were no better; bench/RESULTS.md).
  { name: 'texture8_v4_32x4', kind: 'texture', subgroup: 8, wgN: 8, wgM: 1, tm: 32, tn: 4, vecB: true },
  { name: 'texture8_32x4', kind: 'texture', subgroup: 8, wgN: 8, wgM: 1, tm: 32, tn: 4 },
];
const CPU_ORDER = ['texture8_v4_32x4', 'texture8_32x4', 'direct_v4_16x8', 'direct_8x8'];
const GPU_ORDER = ['tiled_64x64'];

/** MATMUL_VARIANTS, and under autocast the device's tensor-core ones (engine/ops/tensor-cores.ts). */
function allVariants(): readonly MatmulVariant[] {
  const tc = isAutocastEnabled() ? subgroupMatrixVariants() : [];
  return tc.length ? [...tc, ...MATMUL_VARIANTS] : MATMUL_VARIANTS;
}

function findVariant(name: string): MatmulVariant {
  const v = allVariants().find((x) => x.name === name);
  if (!v) throw new Error(`matmul: variant '${name}' is not available here${/^sgmat/.test(name) ? ' (tensor-core variants run under autocast, on devices with subgroup matrices)' : ''}`);
  return v;
}

/** A variant's kernel, with its quick variant where it has one (the 'direct' ones; engine/tiering.ts). */
function tieredKernel(v: MatmulVariant, roundF16 = false): Kernel {
  return v.kind === 'direct' ? { ...matmulKernel(v, roundF16), quick: matmulQuickKernel(v, roundF16) } : matmulKernel(v, roundF16);
}

const kernels = new Map(MATMUL_VARIANTS.map((v) => [v.name, tieredKernel(v)]));
/** The autocast forms (operands rounded to f16 at load), generated when first used. */
const f16Kernels = new Map<string, Kernel>();
let forced: string | null = null;

/** The variants this adapter can run (the subgroup ones need its subgroup size), for tests and benchmarks. */
export function matmulVariants(): readonly MatmulVariant[] {
  return allVariants().filter(runsHere);
}

function runsHere(v: MatmulVariant): boolean {
  if (v.kind === 'subgroupMatrix') return isAutocastEnabled() && subgroupMatrixVariants().some((x) => x.name === v.name);
  return !v.subgroup || adapterSubgroupsExactly(v.subgroup);
}

/**
 * Forces one variant for every matmul (tests and benchmarks; null restores the automatic choice).
 * A forced variant that cannot compute a layout makes that matmul throw rather than fall back.
 */
export function setMatmulVariant(name: string | null): void {
  if (name !== null && !kernels.has(name) && !/^sgmat\d+_\d+x\d+(_w\d+x\d+)?(_k\d+)?(_emulated)?$/.test(name)) throw new Error(`setMatmulVariant: unknown variant '${name}' (have ${[...kernels.keys()].join(', ')})`);
  forced = name;
}

/** Variants this adapter can run on this layout (the subgroup ones need the 'subgroups' feature). */
function candidates(l: MatmulLayout, batch: number): MatmulVariant[] {
  return allVariants().filter((v) => fitsHere(v, l, batch) && runsHere(v));
}

/** variantFits, and for a texture variant: A's packed texture within the device's texture limit. */
function fitsHere(v: MatmulVariant, l: MatmulLayout, batch: number): boolean {
  if (!variantFits(v, l)) return false;
  if (v.kind !== 'texture') return true;
  const max = getBackend().device.limits.maxTextureDimension2D;
  return batch * l.M <= max && Math.ceil(l.K / 4) <= max;
}

/**
 * The fixed fallback table (what runs with tuning off, and before a class is tuned): the first
 * fitting variant of the adapter kind's order, measured by hand (bench/RESULTS.md).
 */
function fallbackVariant(l: MatmulLayout, batch: number): MatmulVariant {
  // Under autocast, tensor cores where the device has them (they take any layout).
  const tc = isAutocastEnabled() ? subgroupMatrixVariants() : [];
  if (tc.length) return tc[0]!;
  const order = adapterIsCpu() ? CPU_ORDER : GPU_ORDER;
  return order.map((n) => MATMUL_VARIANTS.find((v) => v.name === n)!).find((v) => fitsHere(v, l, batch) && runsHere(v))!;
}

/** Tuning classes: sizes by power of two, batch or not, operand orientation, vec4 fit. */
function shapeClass(l: MatmulLayout, batch: number): string {
  const p2 = (x: number) => Math.ceil(Math.log2(Math.max(1, x)));
  // Autocast on a device with tensor cores has other candidates: its own classes ('h').
  const tc = isAutocastEnabled() && subgroupMatrixVariants().length > 0 ? 'h' : '';
  const flags = `${l.aK === 1 ? 'a' : 'At'}${l.bN === 1 ? 'b' : 'Bt'}${variantFits(VEC_PROBE, l) ? '4' : ''}${tc}`;
  return `m${p2(l.M)}n${p2(l.N)}k${p2(l.K)}x${p2(batch)}${flags}`;
}
const VEC_PROBE = MATMUL_VARIANTS.find((v) => v.vecB)!;

function pickVariant(l: MatmulLayout, batch: number, label: string): MatmulVariant {
  if (forced !== null) {
    const v = findVariant(forced);
    if (!fitsHere(v, l, batch)) throw new Error(`${label}: forced matmul variant '${v.name}' cannot handle layout ${JSON.stringify(l)} (batch ${batch})`);
    if (!runsHere(v)) throw new Error(`${label}: forced matmul variant '${v.name}' needs subgroups of ${v.subgroup} lanes; this adapter has ${JSON.stringify(adapterReport?.subgroups ?? null)}`);
    return v;
  }
  const fallback = fallbackVariant(l, batch);
  const names = candidates(l, batch).map((v) => v.name);
  const name = engineTuner.choose('matmul', shapeClass(l, batch), names, fallback.name, (n) => timeVariant(n, l, batch));
  return findVariant(name);
}

/** One run of a variant on scratch buffers of this layout's extent, timed (the autotuner's timer). */
async function timeVariant(name: string, l: MatmulLayout, batch: number): Promise<number> {
  const v = findVariant(name);
  const extent = (off: number, bs: number, s1: number, n1: number, s2: number, n2: number) => off + (batch - 1) * bs + (n1 - 1) * s1 + (n2 - 1) * s2 + 1;
  const sizes = [extent(l.aOff, l.aBatch, l.aM, l.M, l.aK, l.K), extent(l.bOff, l.bBatch, l.bK, l.K, l.bN, l.N), batch * l.M * l.N];
  return timeOnScratch(sizes, (bufs) => dispatchVariant(v, bufs, l, batch, `autotune matmul ${name}`), 2 * batch * l.M * l.N * l.K);
}

/** The variant's kernel: its autocast form under autocast (the same variant: same tiles and speed class). */
function variantKernel(v: MatmulVariant): Kernel {
  if (!isAutocastEnabled()) return kernels.get(v.name)!;
  let k = f16Kernels.get(v.name);
  if (!k) f16Kernels.set(v.name, (k = tieredKernel(v, true)));
  return k;
}

const packKernels = [packAKernel(false), packAKernel(true)];

/** Dispatches a variant on [a, b, c]; a texture variant first packs A into a scratch texture. */
function dispatchVariant(v: MatmulVariant, buffers: GPUBuffer[], l: MatmulLayout, batch: number, label: string): void {
  const be = getBackend();
  let kernel = variantKernel(v);
  if (v.kind === 'texture' && !be.fastKernelReady(kernel)) {
    // Until the texture-fed kernel is compiled (engine/tiering.ts), the quick variant of the table's
    // first storage-fed choice stands in (its own grid; no packing).
    v = CPU_ORDER.map((n) => MATMUL_VARIANTS.find((x) => x.name === n)!).find((x) => x.kind === 'direct' && fitsHere(x, l, batch))!;
    kernel = variantKernel(v).quick!;
  }
  const tile = variantTile(v);
  const uniforms = MATMUL_UNIFORMS.pack({ ...l, batch, cBatch: l.M * l.N });
  let textures: GPUTextureView[] | undefined;
  if (v.kind === 'texture') {
    const kq = Math.ceil(l.K / 4);
    const { texture, view } = be.textures.acquire(kq, batch * l.M);
    // Dense rows of a multiple of 64 floats are the texture's rows as they are: a plain copy (the
    // packing dispatch costs a per-lane loop per element on lavapipe). Else (strides, broadcast
    // batches, odd K, autocast's rounding) the packing kernel.
    const dense = l.aK === 1 && l.aM === l.K && (batch === 1 || l.aBatch === l.M * l.K) && l.K % 64 === 0 && l.aOff % 4 === 0;
    if (dense && !isAutocastEnabled()) be.copyToTexture(buffers[0]!, l.aOff * 4, l.K * 4, texture, kq, batch * l.M);
    else be.dispatch({ kernel: packKernels[isAutocastEnabled() ? 1 : 0]!, buffers: [buffers[0]!], textures: [view], uniforms, workgroups: [Math.ceil(kq / PACK_WG), batch * l.M], label: `${label} pack A` });
    buffers = buffers.slice(1);
    textures = [view];
  }
  be.dispatch({
    kernel,
    buffers,
    textures,
    uniforms,
    workgroups: [Math.ceil(l.N / tile.tileN), Math.ceil(l.M / tile.tileM), batch],
    label,
  });
}

/** Batch dims of t (all but the last two) as one (count, stride), copying when they do not fold. */
function foldBatch(t: Tensor): { t: Tensor; stride: number } {
  const dims = t.shape.slice(0, -2).map((d, i) => ({ d, s: t.strides[i]! })).filter((e) => e.d !== 1);
  let ok = true;
  for (let k = 0; k + 1 < dims.length; k++) if (dims[k]!.s !== dims[k + 1]!.s * dims[k + 1]!.d) ok = false;
  if (ok) return { t, stride: dims.length ? dims[dims.length - 1]!.s : 0 };
  const c = contiguous(t);
  return { t: c, stride: t.shape[t.ndim - 1]! * t.shape[t.ndim - 2]! };
}

/** a [..., M, K] @ b [..., K, N] for operands of equal rank >= 2 whose batch dims broadcast. */
function bmm(a: Tensor, b: Tensor): Tensor {
  const M = a.shape[a.ndim - 2]!, K = a.shape[a.ndim - 1]!, N = b.shape[b.ndim - 1]!;
  const batch = broadcastShapes([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  const out = empty([...batch, M, N]);
  if (out.size === 0) return out;
  if (K === 0) return fillInPlace(out, 0);
  return tidy(() => {
    const { fa, fb, layout } = prepare(a, b, batch);
    const nb = sizeOf(batch);
    const label = `matmul(${shapeStr(a.shape)}, ${shapeStr(b.shape)})`;
    dispatchVariant(pickVariant(layout, nb, label), [fa.storage.buffer, fb.storage.buffer, out.storage.buffer], layout, nb, label);
    return out;
  });
}

/** Operands with their batch dims folded, and the layout the kernels read them with. */
function prepare(a: Tensor, b: Tensor, batch: number[]): { fa: Tensor; fb: Tensor; layout: MatmulLayout } {
  const M = a.shape[a.ndim - 2]!, K = a.shape[a.ndim - 1]!, N = b.shape[b.ndim - 1]!;
  const fa = foldBatch(expand(a, [...batch, M, K]));
  const fb = foldBatch(expand(b, [...batch, K, N]));
  const layout: MatmulLayout = {
    M, N, K,
    aOff: fa.t.offset, aBatch: fa.stride, aM: fa.t.strides[fa.t.ndim - 2]!, aK: fa.t.strides[fa.t.ndim - 1]!,
    bOff: fb.t.offset, bBatch: fb.stride, bK: fb.t.strides[fb.t.ndim - 2]!, bN: fb.t.strides[fb.t.ndim - 1]!,
  };
  return { fa: fa.t, fb: fb.t, layout };
}

/** The variant torch.matmul-style operands of rank >= 2 would run with (benchmarks report it). */
export function chooseMatmulVariant(a: Tensor, b: Tensor): MatmulVariant {
  return noGrad(() => tidy(() => {
    const batch = broadcastShapes([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
    while (a.ndim < b.ndim) a = unsqueeze(a, 0);
    while (b.ndim < a.ndim) b = unsqueeze(b, 0);
    return pickVariant(prepare(a, b, batch).layout, sizeOf(batch), 'chooseMatmulVariant');
  }));
}

/** torch.matmul semantics (vectors are promoted and the added dim removed). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`matmul: needs float32 operands, got ${a.dtype} and ${b.dtype}`);
  if (a.ndim === 0 || b.ndim === 0) throw new Error('matmul: operands must have at least one dimension');
  const K1 = a.shape[a.ndim - 1]!, K2 = b.ndim === 1 ? b.shape[0]! : b.shape[b.ndim - 2]!;
  if (K1 !== K2) throw new Error(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} cannot be multiplied (${K1} != ${K2})`);
  const out = noGrad(() => tidy(() => {
    let a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
    let b2 = b.ndim === 1 ? unsqueeze(b, 1) : b;
    while (a2.ndim < b2.ndim) a2 = unsqueeze(a2, 0);
    while (b2.ndim < a2.ndim) b2 = unsqueeze(b2, 0);
    let y = bmm(a2, b2);
    if (a.ndim === 1) y = squeeze(y, -2);
    if (b.ndim === 1) y = squeeze(y, -1);
    return y;
  }));
  record('matmul', [a, b], out, [a, b], underForwardAutocast((g, [as, bs]) => {
    // Work in >= 2-D: vectors become rows/columns again.
    const A = as!.ndim === 1 ? unsqueeze(as!, 0) : as!;
    const B = bs!.ndim === 1 ? unsqueeze(bs!, 1) : bs!;
    // Restore the removed dims, the trailing one first (for a dot product g is 0-d).
    let G = g;
    if (b.ndim === 1) G = unsqueeze(G, -1);
    if (a.ndim === 1) G = unsqueeze(G, -2);
    const ga = bmmBroadcast(G, transpose(B, -1, -2));
    const gb = bmmBroadcast(transpose(A, -1, -2), G);
    return [reshape(sumToShape(ga, padLeft(A.shape, ga.ndim)), a.shape), reshape(sumToShape(gb, padLeft(B.shape, gb.ndim)), b.shape)];
  }));
  return out;
}

function padLeft(shape: readonly number[], ndim: number): number[] {
  return [...new Array<number>(Math.max(0, ndim - shape.length)).fill(1), ...shape];
}

function bmmBroadcast(a: Tensor, b: Tensor): Tensor {
  while (a.ndim < b.ndim) a = unsqueeze(a, 0);
  while (b.ndim < a.ndim) b = unsqueeze(b, 0);
  return bmm(a, b);
}
