// The packed weight textures of the spatial conv kernel's `wtex` form (CPU adapters:
// kernels/conv-weight-texture.ts). A weight's texture is kept (engine/kept-textures.ts) and packed
// again only when the weight has been written since (an optimizer step, copy_, a checkpoint load):
// frozen layers, inference and evaluation pack each weight once, and the backward's input gradient
// reads the texture the forward packed for it. Where the forward knows the backward will need the
// other mode's texture (the conv input requires grad), one dispatch packs both.
import { packWeightsKernel, packWeightsGrid, weightTextureSize, PACK_WEIGHTS_UNIFORMS } from '../../kernels/conv-weight-texture.js';
import { spatialWeightStrides } from '../../kernels/conv-gemm.js';
import { getBackend } from '../backend.js';

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

// [roundF16][dual]
const kernels = [false, true].map((r16) => [packWeightsKernel(r16, false), packWeightsKernel(r16, true)]);

const other = (l: WeightLayout): WeightLayout => ({ ...l, mode: l.mode === 'fwd' ? 'bwdInput' : 'fwd', kc: l.nc, nc: l.kc });
const keyOf = (l: WeightLayout): string => `${l.mode} ${l.kc}x${l.nc}x${l.KHW} g${l.groups}${l.roundF16 ? ' f16' : ''}`;
const sizeOf = (l: WeightLayout): [number, number] => weightTextureSize(l.kc, l.nc, l.KHW, l.groups);

/**
 * Records the pack of `w` (a dense weight's buffer) into `views` ([the layout's] or, dual, [the
 * layout's, the other mode's]): one dispatch.
 */
export function dispatchWeightPack(w: GPUBuffer, l: WeightLayout, views: GPUTextureView[], label: string): void {
  const dual = views.length === 2;
  const uniforms = PACK_WEIGHTS_UNIFORMS.pack({ kc: l.kc, nc: l.nc, KHW: l.KHW, ...spatialWeightStrides(l.mode, l.kc, l.nc, l.KHW) });
  getBackend().dispatch({
    kernel: kernels[l.roundF16 ? 1 : 0]![dual ? 1 : 0]!,
    buffers: [w],
    textures: views,
    uniforms,
    workgroups: packWeightsGrid(l.kc, l.nc, l.KHW, l.groups, dual),
    label: `${label} pack weights${dual ? ' (both modes)' : ''}`,
  });
}

/** The texture view the spatial kernel reads `w` from in layout l, packed now if it is not current. */
export function weightTextureView(w: GPUBuffer, l: WeightLayout, how: WeightPacking, label: string): GPUTextureView {
  const be = getBackend();
  const [tw, th] = sizeOf(l);
  const kept = how.keep ? be.keptTextures.get(w, keyOf(l), tw, th) : null;
  if (!kept) {
    const { view } = be.textures.acquire(tw, th);
    dispatchWeightPack(w, l, [view], label);
    return view;
  }
  if (be.keptTextures.isCurrent(w, kept)) return kept.view;
  const o = other(l);
  const second = how.alsoOther ? be.keptTextures.get(w, keyOf(o), ...sizeOf(o)) : null;
  if (second && !be.keptTextures.isCurrent(w, second)) {
    dispatchWeightPack(w, l, [kept.view, second.view], label);
    be.keptTextures.packed(w, second);
  } else {
    dispatchWeightPack(w, l, [kept.view], label);
  }
  be.keptTextures.packed(w, kept);
  return kept.view;
}
