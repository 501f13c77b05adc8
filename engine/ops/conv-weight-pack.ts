// The packed weight textures of the spatial conv kernel's `wtex` form (CPU adapters:
// kernels/conv-weight-texture.ts). A weight's texture is kept (engine/kept-textures.ts) and packed
// again only when the weight has been written since (an optimizer step, copy_, a checkpoint load):
// frozen layers, inference and evaluation pack each weight once, and the backward's input gradient
// reads the texture the forward packed for it. Where the forward knows the backward will need the
// other mode's texture (the conv input requires grad), one dispatch packs both.
//
// Batching: after an optimizer step every trainable weight's textures are stale at once. The first
// conv that finds its texture stale packs it together with every other stale kept texture, up to
// PACK_WEIGHTS_MAX_BATCH weights per dispatch (R50-FPN: 58 trainable conv weights, 58 pack
// dispatches a step -> 15). A weight written again before its conv runs is simply packed again there.
import { packWeightsKernel, packWeightsDispatch, weightTextureSize, PACK_WEIGHTS_MAX_BATCH, type PackMember } from '../../kernels/conv-weight-texture.js';
import { spatialWeightStrides } from '../../kernels/conv-gemm.js';
import { getBackend } from '../backend.js';
import type { KeptTexture } from '../kept-textures.js';

export type ConvMode = 'fwd' | 'bwdInput';

/** How a dispatch's weight texture is had. */
export interface WeightPacking {
  /** Kept with its weight (false: a scratch texture packed now, e.g. the autotuner's runs on scratch buffers). */
  keep: boolean;
  /** The other mode's texture of this weight will be read later (the backward): pack both in one dispatch. */
  alsoOther: boolean;
}

/** The layout of a weight's texture for one mode: kc source and nc output channels per group of that mode. */
export interface WeightLayout {
  mode: ConvMode;
  kc: number;
  nc: number;
  KHW: number;
  groups: number;
  roundF16: boolean;
}

/** Pack kernels by (roundF16, dual, weights per dispatch), made at first use. */
const kernels = new Map<string, { wgsl: string; entry: string }>();
function packKernel(roundF16: boolean, dual: boolean, k: number): { wgsl: string; entry: string } {
  const key = `${roundF16} ${dual} ${k}`;
  let kernel = kernels.get(key);
  if (!kernel) kernels.set(key, (kernel = packWeightsKernel(roundF16, dual, k)));
  return kernel;
}

const other = (l: WeightLayout): WeightLayout => ({ ...l, mode: l.mode === 'fwd' ? 'bwdInput' : 'fwd', kc: l.nc, nc: l.kc });
const keyOf = (l: WeightLayout): string => `${l.mode} ${l.kc}x${l.nc}x${l.KHW} g${l.groups}${l.roundF16 ? ' f16' : ''}`;
const sizeOf = (l: WeightLayout): [number, number] => weightTextureSize(l.kc, l.nc, l.KHW, l.groups);
/** The layout of every key kept so far (a key names its layout exactly). */
const layouts = new Map<string, WeightLayout>();
function keepKey(l: WeightLayout): string {
  const key = keyOf(l);
  if (!layouts.has(key)) layouts.set(key, l);
  return key;
}

/** One weight of a pack: its buffer, its layout and one texture, or (dual) that and the other mode's. */
export interface PackJob {
  w: GPUBuffer;
  l: WeightLayout;
  views: GPUTextureView[];
}

const member = (l: WeightLayout): PackMember => ({ kc: l.kc, nc: l.nc, KHW: l.KHW, groups: l.groups, ...spatialWeightStrides(l.mode, l.kc, l.nc, l.KHW) });

/**
 * Records the packs of `jobs` (all single or all dual, all of one roundF16; at most
 * PACK_WEIGHTS_MAX_BATCH): one dispatch.
 */
export function dispatchWeightPacks(jobs: readonly PackJob[], label: string): void {
  const dual = jobs[0]!.views.length === 2;
  if (jobs.some((j) => (j.views.length === 2) !== dual || j.l.roundF16 !== jobs[0]!.l.roundF16)) throw new Error('dispatchWeightPacks: a batch mixes single and dual packs or f16 rounding');
  const { uniforms, workgroups } = packWeightsDispatch(jobs.map((j) => member(j.l)), dual);
  getBackend().dispatch({
    kernel: packKernel(jobs[0]!.l.roundF16, dual, jobs.length),
    buffers: jobs.map((j) => j.w),
    textures: jobs.flatMap((j) => j.views),
    uniforms,
    workgroups,
    label: `${label} pack ${jobs.length > 1 ? `${jobs.length} weights` : 'weights'}${dual ? ' (both modes)' : ''}`,
  });
}

/**
 * Records the pack of `w` (a dense weight's buffer) into `views` ([the layout's] or, dual, [the
 * layout's, the other mode's]): one dispatch.
 */
export function dispatchWeightPack(w: GPUBuffer, l: WeightLayout, views: GPUTextureView[], label: string): void {
  dispatchWeightPacks([{ w, l, views }], label);
}

/** The texture view the spatial kernel reads `w` from in layout l, packed now if it is not current. */
export function weightTextureView(w: GPUBuffer, l: WeightLayout, how: WeightPacking, label: string): GPUTextureView {
  const be = getBackend();
  const [tw, th] = sizeOf(l);
  const kept = how.keep ? be.keptTextures.get(w, keepKey(l), tw, th) : null;
  if (!kept) {
    const { view } = be.textures.acquire(tw, th);
    dispatchWeightPack(w, l, [view], label);
    return view;
  }
  if (be.keptTextures.isCurrent(w, kept)) return kept.view;
  const o = other(l);
  // The other mode's texture is made now when the backward will read it; the batch below packs it.
  if (how.alsoOther) be.keptTextures.get(w, keepKey(o), ...sizeOf(o));
  packStale(label);
  return kept.view;
}

/**
 * Packs every stale kept texture (those of `w` included), pairing a weight's two modes in dual
 * packs, in batches of PACK_WEIGHTS_MAX_BATCH weights of one kind (single / dual, f16 rounding), fewer
 * where the device binds fewer storage textures.
 */
function packStale(label: string): void {
  const kept = getBackend().keptTextures;
  const stale = new Map<GPUBuffer, Map<string, KeptTexture>>();
  for (const [buffer, key, t] of kept.entries()) {
    if (!layouts.has(key) || kept.isCurrent(buffer, t)) continue;
    let m = stale.get(buffer);
    if (!m) stale.set(buffer, (m = new Map()));
    m.set(key, t);
  }
  const byKind = new Map<string, PackJob[]>();
  const add = (job: PackJob, t: KeptTexture[]): void => {
    const kind = `${job.views.length} ${job.l.roundF16}`;
    let jobs = byKind.get(kind);
    if (!jobs) byKind.set(kind, (jobs = []));
    jobs.push(job);
    for (const x of t) kept.packed(job.w, x);
  };
  for (const [w, m] of stale) {
    for (const [key, t] of m) {
      if (!m.has(key)) continue; // taken as the other half of a dual pack
      const l = layouts.get(key)!;
      const okey = keyOf(other(l));
      const t2 = okey !== key ? m.get(okey) : undefined;
      m.delete(key);
      if (t2) {
        m.delete(okey);
        add({ w, l, views: [t.view, t2.view] }, [t, t2]);
      } else {
        add({ w, l, views: [t.view] }, [t]);
      }
    }
  }
  const textureBindings = getBackend().device.limits.maxStorageTexturesPerShaderStage;
  for (const jobs of byKind.values()) {
    const batch = Math.max(1, Math.min(PACK_WEIGHTS_MAX_BATCH, Math.floor(textureBindings / jobs[0]!.views.length)));
    for (let at = 0; at < jobs.length; at += batch) dispatchWeightPacks(jobs.slice(at, at + batch), label);
  }
}
